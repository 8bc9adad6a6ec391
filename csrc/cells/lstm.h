// LSTM cell (cs231n's gate order i, f, o, g, or with its option, ifgo,
// Keras's and PyTorch's i, f, g, o, in the columns of Wx, Wh, b, the gates
// and their gradients; G = 4H):
//   a_t = x_t · Wx + h_{t-1} · Wh + b                       (N,4H)
//   i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = tanh(a_g)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
//   x (N,T,D), h0 and c0 (N,H), Wx (D,4H), Wh (H,4H), b (4H);
//   h and c (N,T,H) out, and saved: the post-activation gates (N,T,4H).
// The backward carries dc from step to step (dcT in, dc0 out).
// Read twice, like every cell file (see rnn.h).
#ifndef RNN_FAST_CELL_BODIES
#ifndef RNN_FAST_CELLS_LSTM_H
#define RNN_FAST_CELLS_LSTM_H
#include "cell.h"

namespace rnn_fast {

struct Lstm {
    static constexpr const char* name = "lstm";
    static constexpr int gates = 4;  // G = 4H
    static constexpr int saved = 4;  // the gates, in place of x·Wx + b
    static constexpr Carry carry = Carry::cell_state;
    static constexpr bool split = false, fusable = true, recurrent_bias = false, reads_prev_h = false;
    int option = 0;  // 1: gate order i, f, g, o
    template <typename T>
    static const CellBody<T>& body(const Kernels<T>& k) { return k.lstm; }
};

}  // namespace rnn_fast
#endif
#else  // the SIMD bodies

// LSTM forward: a holds x·Wx + b on entry and the post-activation gates
// i, f, o, g on exit (i, f, g, o with ifgo: Keras's and PyTorch's order, the
// columns of its weights and so of a and acc); c = f * cp + i * g;
// h = o * tanh(c). With bias (laid out like a row of a), acc holds x·Wx as
// well and the pre-activations are bias + acc (a is only written, and may be
// acc itself, with a_rs = acc_rs and gs = as: the gates in place of the
// products, each vector read before it is written).
template <typename T, int L>
RNN_FAST_INLINE void lstm_forward_cell(index_t rows, index_t n, const T* acc, index_t acc_rs, index_t as, T* a,
                                       index_t a_rs, index_t gs, const T* cp, index_t cp_rs, T* c, T* h,
                                       index_t ch_rs, bool ifgo, const T* bias) {
    // Gate q of i, f, o, g at column block at[q].
    const index_t at[4] = {0, 1, ifgo ? 3 : 2, ifgo ? 2 : 3};
    const index_t fo = gs, oo = at[2] * gs, go = at[3] * gs;
    // The pre-activations' other part: a's row, or the bias for every row.
    const T* in = bias != nullptr ? bias : a;
    const index_t in_rs = bias != nullptr ? 0 : a_rs;
    // Two passes over each row: the four gates, then the states from them.
    // Every vector of a pass is independent of the others, so that the
    // core overlaps their long exp/division chains (one fused pass, whose
    // tanh(c) waits on all four gates, took ~8% longer on AVX2, measured).
    for (index_t r = 0; r < rows; ++r, acc += acc_rs, a += a_rs, in += in_rs, cp += cp_rs, c += ch_rs, h += ch_rs) {
        if (r + kAhead < rows) {
            for (int q = 0; q < 4; ++q) fetch_row<1>(a + kAhead * a_rs + q * gs, n);
            fetch_row<0>(cp + kAhead * cp_rs, n);
            fetch_row<1>(c + kAhead * ch_rs, n);
            fetch_row<1>(h + kAhead * ch_rs, n);
        }
        if constexpr (sizeof(T) == 4) {
            // The four gates' activations side by side (see vtanh_rational_n):
            // three sigmoids and a tanh.
            for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
                constexpr bool F = decltype(full)::value;
                V<T, L> g[4];
                for (int q = 0; q < 4; ++q)
                    g[q] = ld<T, L, F>(in + at[q] * gs + k, m) + load<T, L>(acc + at[q] * as + k);
                vtanh_rational_n<T, L, 4, 3>(g);
                for (int q = 0; q < 4; ++q) st<T, L, F>(a + at[q] * gs + k, g[q], m);
            });
        } else for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            for (int q = 0; q < 3; ++q)
                st<T, L, F>(a + at[q] * gs + k,
                            vsigmoid<T, L>(ld<T, L, F>(in + at[q] * gs + k, m) + load<T, L>(acc + at[q] * as + k)), m);
            st<T, L, F>(a + go + k, vtanh<T, L>(ld<T, L, F>(in + go + k, m) + load<T, L>(acc + at[3] * as + k)), m);
        });
        index_t k0 = 0;
        if constexpr (sizeof(T) == 4)  // whole vectors two at a time, their tanh side by side
            for (; k0 + 2 * L <= n; k0 += 2 * L) {
                V<T, L> ct[2], tc[2];
                for (int j = 0; j < 2; ++j) {
                    const index_t k = k0 + j * L;
                    ct[j] = load<T, L>(a + fo + k) * load<T, L>(cp + k) + load<T, L>(a + k) * load<T, L>(a + go + k);
                    store<T, L>(c + k, ct[j]);
                    tc[j] = ct[j];
                }
                vtanh_rational_n<T, L, 2>(tc);
                for (int j = 0; j < 2; ++j) store<T, L>(h + k0 + j * L, load<T, L>(a + oo + k0 + j * L) * tc[j]);
            }
        for_vectors<T, L>(n - k0, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            k += k0;
            const V<T, L> ct = ld<T, L, F>(a + fo + k, m) * ld<T, L, F>(cp + k, m) +
                               ld<T, L, F>(a + k, m) * ld<T, L, F>(a + go + k, m);
            st<T, L, F>(c + k, ct, m);
            st<T, L, F>(h + k, ld<T, L, F>(a + oo + k, m) * vtanh<T, L>(ct), m);
        });
    }
}

// LSTM backward of one step, from the post-activation gates a and the cell
// states: dh + acc is the total gradient of h_t; dc (row stride dc_rs) holds
// the gradient of c_t from the next step on entry, that of c_{t-1} on exit;
// da (like a, in its gate order) gets the gradients of the pre-activations.
template <typename T, int L>
RNN_FAST_INLINE void lstm_backward_cell(index_t rows, index_t n, const T* dh, index_t ch_rs, const T* acc,
                                        index_t acc_rs, T* dc, index_t dc_rs, const T* a, index_t a_rs,
                                        index_t gs, const T* c, const T* cp, index_t cp_rs, T* da, index_t da_rs,
                                        bool ifgo) {
    const index_t fo = gs, oo = (ifgo ? 3 : 2) * gs, go = (ifgo ? 2 : 3) * gs;
    for (index_t r = 0; r < rows;
         ++r, dh += ch_rs, acc += acc_rs, dc += dc_rs, a += a_rs, c += ch_rs, cp += cp_rs, da += da_rs) {
        for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            const V<T, L> i = ld<T, L, F>(a + k, m), f = ld<T, L, F>(a + fo + k, m);
            const V<T, L> o = ld<T, L, F>(a + oo + k, m), g = ld<T, L, F>(a + go + k, m);
            const V<T, L> tc = vtanh<T, L>(ld<T, L, F>(c + k, m));
            const V<T, L> dht = ld<T, L, F>(dh + k, m) + load<T, L>(acc + k);
            const V<T, L> dct = ld<T, L, F>(dc + k, m) + dht * o * (T(1) - tc * tc);  // through h = o * tanh(c)
            const V<T, L> d[4] = {dct * g * i * (T(1) - i), dct * ld<T, L, F>(cp + k, m) * f * (T(1) - f),
                                  dht * tc * o * (T(1) - o), dct * i * (T(1) - g * g)};
            const index_t off[4] = {0, fo, oo, go};
            for (int q = 0; q < 4; ++q) st<T, L, F>(da + off[q] + k, d[q], m);
            st<T, L, F>(dc + k, dct * f, m);
        });
    }
}

template <typename T, int L>
void lstm_forward_body(const CellArgs<T>& a) {
    lstm_forward_cell<T, L>(a.rows, a.n, a.acc, a.acc_rs, a.acc_gs, a.gates, a.gates_rs, a.gs, a.cp, a.prs, a.c, a.h,
                            a.rs, a.option != 0, a.bias);
}

template <typename T, int L>
void lstm_backward_body(const CellArgs<T>& a) {
    lstm_backward_cell<T, L>(a.rows, a.n, a.dh, a.rs, a.acc, a.acc_rs, a.carry, a.carry_rs, a.gates, a.gates_rs, a.gs,
                             a.c, a.cp, a.prs, a.da, a.da_rs, a.option != 0);
}
#endif
