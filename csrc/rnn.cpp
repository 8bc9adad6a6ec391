#include "rnn.h"

#include <algorithm>

#include "sequence.h"

namespace rnn_fast {

template <typename F>
void rnn_seq_forward(F* h, const F* x, const F* h0, const F* Wx, const F* Wh, const F* b, index_t N,
                     index_t T, index_t D, index_t H, Activation act, bool reverse, int nthreads,
                     PackedB<F>* wh_t, const PackedWeights<F>* pre) {
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr;
    // Pre-activations of all steps, x · Wx + b, straight into h, unless the
    // time loop's products take x·Wx (fused_input_projection).
    const bool fused = fused_input_projection<F>(N, D, H, H);
    if (!fused) input_projection(h, x, Wx, b, N, T, D, H, nthreads, pre);
    PackedB<F> wh_own;
    const index_t K = fused ? H + D : H;
    StepOperand<F> op(N, K, mr, N <= kDenseRows);  // ([x_t] h_{t-1}), double-buffered across steps
    const Partition how = choose_partition<F>(N, K, H, nthreads);
    const PackedB<F>& wh =
        prepare_forward(wh_own, wh_t, op, Wh, h0, Wx, x, N, T, D, H, 1, reverse, fused, how, nthreads, pre);

    recurrent_loop<F>(T, op, 1, wh, false, how, nthreads, [&](index_t s, const StepTile<F>& tile, F* a_next) {
        const index_t t = step_time(s, T, reverse);
        const index_t row0 = tile.row0, j0 = tile.j0, uc = tile.units;
        const int mi = tile.mi;
        uk.rnn_forward_cell(mi, uc, act, tile.acc, tile.row_stride, h + (row0 * T + t) * H + j0, T * H,
                            fused ? b + j0 : nullptr);
        op.put(a_next, row0, mi, (fused ? D : 0) + j0, h + (row0 * T + t) * H + j0, T * H, uc);
        if (fused && j0 == 0 && s + 1 < T)  // x of the next step, once per row block
            put_input(op, a_next, row0, mi, x, step_time(s + 1, T, reverse), T, D);
    }, [&](index_t s, const StepTile<F>& tile) {
        // The tile's x·Wx + b, which the cell turns into h in place.
        for_tile_lines(tile, T, step_time(s, T, reverse),
                       [&](index_t, index_t o, index_t u) { __builtin_prefetch(h + o * H + u, 1); });
    });
}

template <typename F>
void rnn_seq_backward(F* dx, F* dh0, F* dWx, F* dWh, F* db, const F* dh, const F* x, const F* h0,
                      const F* Wx, const PackedB<F>& wh_t, const F* h, index_t N, index_t T, index_t D,
                      index_t H, Activation act, bool reverse, int nthreads) {
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr;
    Buffer<F> dA;  // (N,T,H) gradient of every step's pre-activation
    dA.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * H)));
    const Partition how = choose_partition<F>(N, H, wh_t.N(), nthreads);
    LoopSums<F> sums(RowBlocks(N, H, mr), T, D, H, dA.data(), x, Wx, dx);
    const index_t side_cols = wh_t.N() - H;  // D when the loop takes dx (fused_input_gradient), else 0
    const bool by_rows = how == Partition::rows;  // tiles are whole rows
    {  // the step loop's buffers are freed before the weight-gradient GEMMs
        // The recurrent operand dA of the step before: dA itself (a view) when
        // dense, else packed and double-buffered.
        const bool dense = by_rows || N <= kDenseRows;
        StepOperand<F> op = dense ? StepOperand<F>(N, T, H, mr, dA.data(), reverse) : StepOperand<F>(N, H, mr, false);

        // Step s handles forward step T-1-s; the extra final step computes dh0.
        recurrent_loop<F>(T, op, 1, wh_t, true, how, nthreads, [&](index_t s, const StepTile<F>& tile, F* a_next) {
            const index_t row0 = tile.row0, j0 = tile.j0, uc = tile.units;
            const int mi = tile.mi;
            const index_t t = step_time(T - 1 - s, T, reverse);
            const index_t o0 = (row0 * T + t) * H + j0;
            uk.rnn_backward_cell(mi, uc, act, dh + o0, tile.acc, tile.row_stride, h + o0, dA.data() + o0, T * H);
            if (!op.dense) op.put(a_next, row0, mi, j0, dA.data() + o0, T * H, uc);  // else dA itself is read
            if (by_rows) sums.add_rows(op.rows.block(row0), t);
            else sums.add_db(op.rows.block(row0), t, j0, uc);
        }, [&](index_t s, const StepTile<F>& tile) {
            // The tile's rows of dh and h, and of dA.
            for_tile_lines(tile, T, step_time(T - 1 - s, T, reverse), [&](index_t, index_t o, index_t u) {
                __builtin_prefetch(dh + o * H + u);
                __builtin_prefetch(h + o * H + u);
                __builtin_prefetch(dA.data() + o * H + u, 1);
            });
        }, dh0, side_cols, [&](index_t s, const StepTile<F>& tile) {
            store_input_gradient(dx, s, tile, T, D, reverse);
        });
    }
    sequence_weight_grads(dx, dWx, dWh, db, dA.data(), x, h0, h, Wx, N, T, D, H, H, reverse, nthreads, sums,
                          by_rows, side_cols > 0);
}

#define RNN_FAST_INSTANTIATE(F)                                                                   \
    template void rnn_seq_forward<F>(F*, const F*, const F*, const F*, const F*, const F*, index_t, \
                                     index_t, index_t, index_t, Activation, bool, int, PackedB<F>*,  \
                                     const PackedWeights<F>*);                                       \
    template void rnn_seq_backward<F>(F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*,  \
                                      const PackedB<F>&, const F*, index_t, index_t, index_t,       \
                                      index_t, Activation, bool, int);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
