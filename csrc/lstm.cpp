#include "lstm.h"

#include <algorithm>

#include "sequence.h"

namespace rnn_fast {

template <typename F>
void lstm_seq_forward(F* h, F* c, F* gates, const F* x, const F* h0, const F* c0, const F* Wx,
                      const F* Wh, const F* b, index_t N, index_t T, index_t D, index_t H,
                      bool reverse, int nthreads, PackedB<F>* wh_t, const PackedWeights<F>* pre, bool ifgo) {
    const index_t G = 4 * H;
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr;
    // Pre-activations x · Wx + b of all steps, straight into the gate buffer,
    // unless the time loop's products take x·Wx (fused_input_projection).
    const bool fused = fused_input_projection<F>(N, D, H, G);
    const index_t K = fused ? H + D : H;
    const Partition how = choose_partition<F>(N, K, G, nthreads);
    // Without gates (an inference: nothing keeps them), each tile's cell
    // turns its products into the gates in place when they are whole rows
    // laid out like the bias (fused, threads owning rows: a 32 x 60 x 50 x
    // 50 inference 5% faster, 32 x 60 x 1 x 50 2%, measured); otherwise
    // they go to a buffer of the forward's own, taken before the loop's
    // other buffers.
    const bool in_place = gates == nullptr && fused && how == Partition::rows;
    Buffer<F> own;
    if (gates == nullptr && !in_place) {
        own.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * G)));
        gates = own.data();
    }
    if (!fused) input_projection(gates, x, Wx, b, N, T, D, G, nthreads, pre);
    PackedB<F> wh_own;
    StepOperand<F> op(N, K, mr, N <= kDenseRows);  // ([x_t] h_{t-1}), double-buffered across steps
    const PackedB<F>& wh =
        prepare_forward(wh_own, wh_t, op, Wh, h0, Wx, x, N, T, D, H, 4, reverse, fused, how, nthreads, pre);

    recurrent_loop<F>(T, op, 4, wh, false, how, nthreads, [&](index_t s, const StepTile<F>& tile, F* a_next) {
        const index_t t = step_time(s, T, reverse);
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        const index_t row0 = tile.row0, j0 = tile.j0, uc = tile.units;
        const int mi = tile.mi;
        // The cell for the whole tile: rows row0.. of time t, units j0..
        const index_t o0 = row0 * T + t;
        const F* cp0 = s == 0 ? c0 + row0 * H + j0 : c + (row0 * T + tp) * H + j0;
        // The gates: in the gate buffer, or in place of the tile's products
        // (whole rows, gate q at q * H like the bias's: see above).
        F* const a = in_place ? const_cast<F*>(tile.acc) : gates + o0 * G + j0;
        const index_t a_rs = in_place ? tile.row_stride : T * G;
        uk.lstm_forward_cell(mi, uc, tile.acc, tile.row_stride, tile.gate_stride, a, a_rs, H, cp0,
                             s == 0 ? H : T * H, c + o0 * H + j0, h + o0 * H + j0, T * H, ifgo,
                             fused ? b + j0 : nullptr);
        op.put(a_next, row0, mi, (fused ? D : 0) + j0, h + o0 * H + j0, T * H, uc);
        if (fused && j0 == 0 && s + 1 < T)  // x of the next step, once per row block
            put_input(op, a_next, row0, mi, x, step_time(s + 1, T, reverse), T, D);
    }, [&](index_t s, const StepTile<F>& tile) {
        // x·Wx + b and c_{t-1} of the tile, and the lines it will write.
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        for_tile_lines(tile, T, step_time(s, T, reverse), [&](index_t n, index_t o, index_t u) {
            if (!in_place)
                for (int q = 0; q < 4; ++q) __builtin_prefetch(gates + o * G + q * H + u, 1);
            __builtin_prefetch((s == 0 ? c0 + n * H : c + (n * T + tp) * H) + u);
            __builtin_prefetch(c + o * H + u, 1);
            __builtin_prefetch(h + o * H + u, 1);
        });
    });
}

template <typename F>
void lstm_seq_backward(F* dx, F* dh0, F* dc0, F* dWx, F* dWh, F* db, const F* dh, const F* dcT,
                       const F* x, const F* h0, const F* c0, const F* Wx, const PackedB<F>& wh_t, const F* h,
                       const F* c, const F* gates, index_t N, index_t T, index_t D, index_t H,
                       bool reverse, int nthreads, bool ifgo) {
    const index_t G = 4 * H;
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr;
    Buffer<F> dA;  // (N,T,4H) gradient of every step's pre-activations
    dA.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * G)));
    const Partition how = choose_partition<F>(N, G, wh_t.N(), nthreads);
    LoopSums<F> sums(RowBlocks(N, G, mr), T, D, G, dA.data(), x, Wx, dx);
    const index_t side_cols = wh_t.N() - H;  // D when the loop takes dx (fused_input_gradient), else 0
    const bool by_rows = how == Partition::rows;  // tiles are whole rows
    {  // the step loop's buffers are freed before the weight-gradient GEMMs
        // The recurrent operand dA of the step before: dA itself (a view) when
        // dense, else packed and double-buffered.
        const bool dense = by_rows || N <= kDenseRows;
        StepOperand<F> op = dense ? StepOperand<F>(N, T, G, mr, dA.data(), reverse) : StepOperand<F>(N, G, mr, false);
        // dc0 carries the cell-state gradient from step to step; it ends as dc0.
        if (dcT != nullptr) std::copy(dcT, dcT + N * H, dc0);
        else std::fill(dc0, dc0 + N * H, F(0));

        // Step s handles forward step T-1-s; the extra final step computes dh0.
        recurrent_loop<F>(T, op, 1, wh_t, true, how, nthreads, [&](index_t s, const StepTile<F>& tile, F* a_next) {
            const index_t row0 = tile.row0, j0 = tile.j0, uc = tile.units;
            const int mi = tile.mi;
            const index_t fs = T - 1 - s;
            const index_t t = step_time(fs, T, reverse);
            const index_t tp = fs == 0 ? 0 : step_time(fs - 1, T, reverse);
            // The cell for the whole tile: rows row0.. of time t, units j0..
            const index_t o0 = row0 * T + t;
            const F* cp0 = fs == 0 ? c0 + row0 * H + j0 : c + (row0 * T + tp) * H + j0;
            uk.lstm_backward_cell(mi, uc, dh + o0 * H + j0, T * H, tile.acc, tile.row_stride, dc0 + row0 * H + j0, H,
                                  gates + o0 * G + j0, T * G, H, c + o0 * H + j0, cp0, fs == 0 ? H : T * H,
                                  dA.data() + o0 * G + j0, ifgo);
            const F* da = dA.data() + o0 * G + j0;
            if (!op.dense)  // else the next step reads dA itself
                for (int q = 0; q < 4; ++q) op.put(a_next, row0, mi, j0 + q * H, da + q * H, T * G, uc);
            const index_t b = op.rows.block(row0);
            if (by_rows) sums.add_rows(b, t);
            else for (int q = 0; q < 4; ++q) sums.add_db(b, t, q * H + j0, uc);
        }, [&](index_t s, const StepTile<F>& tile) {
            // The tile's rows of dh, the gates, c_t and c_{t-1}, and of dA.
            const index_t fs = T - 1 - s;
            const index_t tp = fs == 0 ? 0 : step_time(fs - 1, T, reverse);
            for_tile_lines(tile, T, step_time(fs, T, reverse), [&](index_t n, index_t o, index_t u) {
                __builtin_prefetch(dh + o * H + u);
                for (int q = 0; q < 4; ++q) {
                    __builtin_prefetch(gates + o * G + q * H + u);
                    __builtin_prefetch(dA.data() + o * G + q * H + u, 1);
                }
                __builtin_prefetch(c + o * H + u);
                __builtin_prefetch((fs == 0 ? c0 + n * H : c + (n * T + tp) * H) + u);
            });
        }, dh0, side_cols, [&](index_t s, const StepTile<F>& tile) {
            store_input_gradient(dx, s, tile, T, D, reverse);
        });
    }
    sequence_weight_grads(dx, dWx, dWh, db, dA.data(), x, h0, h, Wx, N, T, D, H, G, reverse, nthreads, sums,
                          by_rows, side_cols > 0);
}

#define RNN_FAST_INSTANTIATE(F)                                                                      \
    template void lstm_seq_forward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, const F*,    \
                                      const F*, index_t, index_t, index_t, index_t, bool, int,         \
                                      PackedB<F>*, const PackedWeights<F>*, bool);                     \
    template void lstm_seq_backward<F>(F*, F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*, \
                                       const F*, const F*, const PackedB<F>&, const F*, const F*,      \
                                       const F*, index_t, index_t, index_t, index_t, bool, int, bool);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
