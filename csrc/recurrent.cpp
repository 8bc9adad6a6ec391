// The time loops of every cell: the recurrent products of each step
// (sequence.h's recurrent_loop), the cell's body on each tile of them, and
// the weight gradients after a backward's loop. What differs between cells
// comes from their descriptions (cells/cell.h).
#include "recurrent.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "sequence.h"

namespace rnn_fast {

// The epilogues below are inlined into recurrent_loop's tile loops, as they
// were when each cell had its own loop (out of line, a call per tile: small
// layers 2-5% slower, measured).
#define RNN_FAST_INLINE_LAMBDA __attribute__((always_inline))

// What the forward's and the backward's bodies see alike of the tile of
// rows row0.. and units j0.. at time t (tp: the time of the step before;
// first: there is none, the initial states stand in): the recurrent
// products, the saved gates (S values a row), this step's states and the
// step before's, laid out as L says. The loops add their own: the biases,
// the gradients.
template <typename Cell, typename F>
inline CellArgs<F> tile_args(const Cell& cell, const StepTile<F>& tile, F* saved, index_t S, F* h, F* c,
                             const F* h0, const F* c0, index_t t, index_t tp, bool first, const SeqLayout& L,
                             index_t H) {
    const index_t row0 = tile.row0, j0 = tile.j0, o0 = L.at(row0, t), rs = L.stride();
    CellArgs<F> a;
    a.rows = tile.mi;
    a.n = tile.units;
    a.option = cell.option;
    a.acc = tile.acc;
    a.acc_rs = tile.row_stride;
    a.acc_gs = tile.gate_stride;
    a.gates = saved != nullptr ? saved + o0 * S + j0 : nullptr;
    a.gates_rs = rs * S;
    a.gs = H;
    a.h = h + o0 * H + j0;
    a.c = c != nullptr ? c + o0 * H + j0 : nullptr;
    a.rs = rs * H;
    a.hp = first ? h0 + row0 * H + j0 : h + L.at(row0, tp) * H + j0;
    a.cp = c == nullptr ? nullptr : first ? c0 + row0 * H + j0 : c + L.at(row0, tp) * H + j0;
    a.prs = first ? H : rs * H;
    return a;
}

// The layout of a time loop's sequence arrays: packed as packing says, or
// batch first (N,T,...).
inline SeqLayout layout_of(const Packing* packing, index_t T) {
    return packing != nullptr ? packing->layout() : SeqLayout{T};
}

template <typename Cell, typename F>
void seq_forward(const Cell& cell, const ForwardArrays<F>& a, index_t N, index_t T_padded, index_t D, index_t H,
                 bool reverse, int nthreads, PackedB<F>* wh_t, const PackedWeights<F>* pre, const Packing* packing) {
    constexpr int Q = Cell::gates;
    const SeqLayout L = layout_of(packing, T_padded);
    const index_t T = L.T, M = packing != nullptr ? packing->P : N * T;  // steps; rows of the sequence arrays
    if (packing != nullptr) reverse = false;  // the packing's order
    check(packing == nullptr || packing->mr == kernels<F>().mr, "a packing for another ISA's row blocks");
    constexpr bool has_c = Cell::carry == Carry::cell_state;
    const index_t G = Q * H, S = Cell::saved * H;
    const Kernels<F>& uk = kernels<F>();
    const CellBody<F>& body = Cell::body(uk);
    const index_t mr = uk.mr;
    // Pre-activations x · Wx + b of all steps, into the saved gates (or h,
    // for a cell that saves none), unless the time loop's products take x·Wx
    // (fused_input_projection).
    const bool fused = Cell::fusable && fused_input_projection<F>(N, D, H, G);
    const index_t K = fused ? H + D : H;
    Partition how = choose_partition<F>(N, K, G, nthreads);
    if (packing != nullptr && how == Partition::row_passes) how = Partition::columns;  // see recurrent_loop
    // Without saved gates (an inference: nothing keeps them), each tile's
    // body turns its products into the gates in place when they are whole
    // rows laid out like the bias (fused, threads owning rows, the gates
    // the products' shape: a 32 x 60 x 50 x 50 LSTM inference 5% faster, 32
    // x 60 x 1 x 50 2%, measured); otherwise they go to a buffer of the
    // forward's own, taken before the loop's other buffers.
    F* gates = a.saved;
    const bool in_place = S > 0 && gates == nullptr && S == G && fused && how == Partition::rows;
    Buffer<F> own;
    if (S > 0 && gates == nullptr && !in_place) {
        own.reserve(static_cast<std::size_t>(std::max<index_t>(1, M * S)));
        gates = own.data();
    }
    if (!fused) input_projection(S > 0 ? gates : a.h, S > 0 ? S : H, a.x, a.Wx, a.b, M, 1, D, G, nthreads, pre);
    PackedB<F> wh_own;
    StepOperand<F> op(N, K, mr, N <= kDenseRows);  // ([x_t] h_{t-1}), double-buffered across steps
    const PackedB<F>& wh =
        prepare_forward(wh_own, wh_t, op, a.Wh, a.h0, a.Wx, a.x, N, L, D, H, Q, reverse, fused, how, nthreads, pre);

    recurrent_loop<F>(T, op, Q, wh, false, how, nthreads, [&](index_t s, const StepTile<F>& tile,
                                                              F* a_next) RNN_FAST_INLINE_LAMBDA {
        const index_t t = step_time(s, T, reverse);
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        const index_t row0 = tile.row0, j0 = tile.j0;
        // The body for the whole tile: rows row0.. of time t, units j0..
        CellArgs<F> c = tile_args(cell, tile, S > 0 ? gates : nullptr, S, a.h, has_c ? a.c : nullptr, a.h0, a.c0,
                                  t, tp, s == 0, L, H);
        c.bias = fused ? a.b + j0 : nullptr;
        c.rbias = Cell::recurrent_bias ? a.bh + j0 : nullptr;
        if (in_place) {  // the gates in place of the tile's products (whole rows, gate q at q * H like the bias's)
            c.gates = const_cast<F*>(tile.acc);
            c.gates_rs = tile.row_stride;
        }
        body.forward(c);
        op.put(a_next, row0, tile.mi, (fused ? D : 0) + j0, c.h, c.rs, tile.units);
        if (fused && j0 == 0 && s + 1 < T)  // x of the next step, once per row block
            put_input(op, a_next, row0, tile.mi, a.x, step_time(s + 1, T, reverse), L, D);
    }, [&](index_t s, const StepTile<F>& tile) {
        // The tile's x·Wx + b and previous states, and the lines it will write.
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        for_tile_lines(tile, L, step_time(s, T, reverse), [&](index_t n, index_t o, index_t u) {
            if (S > 0 && !in_place)
                for (int q = 0; q < Cell::saved; ++q) __builtin_prefetch(gates + o * S + q * H + u, 1);
            if (has_c) {
                __builtin_prefetch((s == 0 ? a.c0 + n * H : a.c + L.at(n, tp) * H) + u);
                __builtin_prefetch(a.c + o * H + u, 1);
            }
            if (Cell::reads_prev_h) __builtin_prefetch((s == 0 ? a.h0 + n * H : a.h + L.at(n, tp) * H) + u);
            __builtin_prefetch(a.h + o * H + u, 1);
        });
    }, nullptr, 0, NoSide{}, StepRows{L.rows, nullptr});
}

template <typename Cell, typename F>
void seq_backward(const Cell& cell, const BackwardArrays<F>& a, index_t N, index_t T_padded, index_t D, index_t H,
                  bool reverse, int nthreads, const PackedB<F>& wh_t, const Packing* packing) {
    constexpr int Q = Cell::gates;
    constexpr bool has_c = Cell::carry == Carry::cell_state, split = Cell::split;
    const SeqLayout L = layout_of(packing, T_padded);
    const index_t T = L.T, M = packing != nullptr ? packing->P : N * T;  // steps; rows of the sequence arrays
    if (packing != nullptr) reverse = false;  // the packing's order
    check(packing == nullptr || packing->mr == kernels<F>().mr, "a packing for another ISA's row blocks");
    const index_t G = Q * H, S = Cell::saved * H;
    const Kernels<F>& uk = kernels<F>();
    const CellBody<F>& body = Cell::body(uk);
    const index_t mr = uk.mr;
    const index_t size = std::max<index_t>(1, M * G);
    Buffer<F> dA, dAh_own;  // (N,T,G) gradient of every step's pre-activations, and of their recurrent part
    dA.reserve(static_cast<std::size_t>(size));
    if (split) dAh_own.reserve(static_cast<std::size_t>(size));
    F* const dAh = split ? dAh_own.data() : dA.data();  // the left operand of the loop's products
    Partition how = choose_partition<F>(N, G, wh_t.N(), nthreads);
    if (packing != nullptr && how == Partition::row_passes) how = Partition::columns;  // see recurrent_loop
    const RowBlocks blocks(N, G, mr);
    LoopSums<F> sums(blocks, L, D, G, dA.data(), a.x, a.Wx, a.dx);
    std::optional<LoopSums<F>> sums_h;  // dbh (split cells)
    if (split) sums_h.emplace(blocks, L, 0, G, dAh, nullptr, nullptr, nullptr);
    // Packed, the rows of loop step s (forward step T-1-s; the extra last
    // step's: all, dh0) and of its operand (forward step T-s's dAh).
    std::vector<index_t> tile_rows, fed_rows;
    if (packing != nullptr) {
        tile_rows.assign(T + 1, N);
        fed_rows.assign(T + 1, N);
        for (index_t s = 0; s < T; ++s) tile_rows[s] = L.rows[T - 1 - s];
        for (index_t s = 1; s <= T; ++s) fed_rows[s] = L.rows[T - s];
    }
    const StepRows step_rows = packing != nullptr ? StepRows{tile_rows.data(), fed_rows.data()} : StepRows{};
    const index_t side_cols = wh_t.N() - H;  // D when the loop takes dx (fused_input_gradient), else 0
    const bool by_rows = how == Partition::rows;  // tiles are whole rows
    // The gradient carried from step to step (cell.h's Carry): dc0 itself,
    // from dcT (or 0) at the last step to dc0 at the first; or (hidden) a
    // buffer of its own, added to dh0 at the end.
    Buffer<F> carry_own;
    F* carry = nullptr;
    if (has_c) {
        carry = a.dc0;
        if (a.dcT != nullptr) std::copy(a.dcT, a.dcT + N * H, carry);
        else std::fill(carry, carry + N * H, F(0));
    } else if (Cell::carry == Carry::hidden) {
        carry_own.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * H)));
        carry = carry_own.data();
        std::fill(carry, carry + N * H, F(0));
    }
    {  // the step loop's buffers are freed before the weight-gradient GEMMs
        // The recurrent operand dAh of the step before: dAh itself (a view)
        // when dense, else packed and double-buffered.
        const bool dense = by_rows || N <= kDenseRows;
        StepOperand<F> op = dense ? StepOperand<F>(N, L, G, mr, dAh, reverse) : StepOperand<F>(N, G, mr, false);

        // Step s handles forward step T-1-s; the extra final step computes dh0.
        recurrent_loop<F>(T, op, 1, wh_t, true, how, nthreads, [&](index_t s, const StepTile<F>& tile,
                                                                  F* a_next) RNN_FAST_INLINE_LAMBDA {
            const index_t row0 = tile.row0, j0 = tile.j0, uc = tile.units;
            const int mi = tile.mi;
            const index_t fs = T - 1 - s;
            const index_t t = step_time(fs, T, reverse);
            const index_t tp = fs == 0 ? 0 : step_time(fs - 1, T, reverse);
            // The body for the whole tile: rows row0.. of time t, units j0..
            const index_t o0 = L.at(row0, t), rs = L.stride();
            CellArgs<F> c = tile_args(cell, tile, const_cast<F*>(a.saved), S, const_cast<F*>(a.h),
                                      has_c ? const_cast<F*>(a.c) : nullptr, a.h0, a.c0, t, tp, fs == 0, L, H);
            c.dh = a.dh + o0 * H + j0;
            c.carry = carry != nullptr ? carry + row0 * H + j0 : nullptr;
            c.carry_rs = H;
            c.da = dA.data() + o0 * G + j0;
            c.da_rs = rs * G;
            c.dah = split ? dAh + o0 * G + j0 : nullptr;
            body.backward(c);
            if (!op.dense)  // else the next step reads dAh itself
                for (int q = 0; q < Q; ++q)
                    op.put(a_next, row0, mi, j0 + q * H, dAh + o0 * G + j0 + q * H, rs * G, uc);
            const index_t b = op.rows.block(row0);
            if (by_rows) {
                sums.add_rows(b, t);
                if (split) sums_h->add_rows(b, t);
            } else {
                for (int q = 0; q < Q; ++q) {
                    sums.add_db(b, t, q * H + j0, uc);
                    if (split) sums_h->add_db(b, t, q * H + j0, uc);
                }
            }
        }, [&](index_t s, const StepTile<F>& tile) {
            // The tile's rows of dh, of what the body reads, and of dA.
            const index_t fs = T - 1 - s;
            const index_t tp = fs == 0 ? 0 : step_time(fs - 1, T, reverse);
            for_tile_lines(tile, L, step_time(fs, T, reverse), [&](index_t n, index_t o, index_t u) {
                __builtin_prefetch(a.dh + o * H + u);
                for (int q = 0; q < Cell::saved; ++q) __builtin_prefetch(a.saved + o * S + q * H + u);
                for (int q = 0; q < Q; ++q) {
                    __builtin_prefetch(dA.data() + o * G + q * H + u, 1);
                    if (split) __builtin_prefetch(dAh + o * G + q * H + u, 1);
                }
                if (S == 0) __builtin_prefetch(a.h + o * H + u);
                if (has_c) {
                    __builtin_prefetch(a.c + o * H + u);
                    __builtin_prefetch((fs == 0 ? a.c0 + n * H : a.c + L.at(n, tp) * H) + u);
                }
                if (Cell::reads_prev_h) __builtin_prefetch((fs == 0 ? a.h0 + n * H : a.h + L.at(n, tp) * H) + u);
            });
        }, a.dh0, side_cols, [&](index_t s, const StepTile<F>& tile) {
            store_input_gradient(a.dx, s, tile, L, D, reverse);
        }, step_rows);
    }
    if (Cell::carry == Carry::hidden)
        for (index_t i = 0; i < N * H; ++i) a.dh0[i] += carry[i];
    // The state before each step, h_prev: packed, a copy of its own.
    Buffer<F> h_prev_own;
    Rows<F> h_prev = previous_states(a.h, a.h0, T, H, reverse);
    if (packing != nullptr) {
        h_prev_own.reserve(static_cast<std::size_t>(std::max<index_t>(1, M * H)));
        packing->previous(a.h, a.h0, H, h_prev_own.data(), nthreads);
        h_prev = dense_rows<F>(h_prev_own.data(), H);
    }
    sequence_weight_grads(a.dx, a.dWx, a.dWh, a.db, dA.data(), a.x, h_prev, a.Wx, M, D, H, G, reverse, nthreads, sums,
                          by_rows, side_cols > 0, dAh, a.dbh, split ? &*sums_h : nullptr);
}

// The instantiations: one line per cell.
#define RNN_FAST_INSTANTIATE(Cell)                                                                               \
    template void seq_forward<Cell, float>(const Cell&, const ForwardArrays<float>&, index_t, index_t, index_t,  \
                                           index_t, bool, int, PackedB<float>*, const PackedWeights<float>*,      \
                                           const Packing*);                                                      \
    template void seq_forward<Cell, double>(const Cell&, const ForwardArrays<double>&, index_t, index_t, index_t, \
                                            index_t, bool, int, PackedB<double>*, const PackedWeights<double>*,   \
                                            const Packing*);                                                     \
    template void seq_backward<Cell, float>(const Cell&, const BackwardArrays<float>&, index_t, index_t, index_t, \
                                            index_t, bool, int, const PackedB<float>&, const Packing*);          \
    template void seq_backward<Cell, double>(const Cell&, const BackwardArrays<double>&, index_t, index_t,        \
                                             index_t, index_t, bool, int, const PackedB<double>&, const Packing*);

RNN_FAST_INSTANTIATE(Rnn)
RNN_FAST_INSTANTIATE(Lstm)
RNN_FAST_INSTANTIATE(Gru)

}  // namespace rnn_fast
