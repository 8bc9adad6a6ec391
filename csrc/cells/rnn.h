// Vanilla (Elman) RNN cell: h_t = act(x_t · Wx + h_{t-1} · Wh + b), act = tanh
// or relu (its option, an Activation). G = H.
//   x (N,T,D), h0 (N,H), Wx (D,H), Wh (H,H), b (H); h (N,T,H) out.
// Nothing is saved beside h: the backward takes act' from h itself.
//
// Like every cell file (see cells.h), it is read twice: for its
// description (struct Rnn), and with RNN_FAST_CELL_BODIES defined by
// kernels.cpp, once per instruction set, for its SIMD bodies.
#ifndef RNN_FAST_CELL_BODIES
#ifndef RNN_FAST_CELLS_RNN_H
#define RNN_FAST_CELLS_RNN_H
#include "cell.h"

namespace rnn_fast {

struct Rnn {
    static constexpr const char* name = "rnn";
    static constexpr int gates = 1;  // G = H
    static constexpr int saved = 0;  // nothing beside h
    static constexpr Carry carry = Carry::none;
    static constexpr bool split = false, fusable = true, recurrent_bias = false, reads_prev_h = false;
    int option = static_cast<int>(Activation::tanh);
    template <typename T>
    static const CellBody<T>& body(const Kernels<T>& k) { return k.rnn; }
};

}  // namespace rnn_fast
#endif
#else  // the SIMD bodies

// Vanilla RNN forward: a -> act(a + acc) in place; with bias (n values),
// a := act(bias + acc) (acc holding x·Wx as well).
template <typename T, int L>
RNN_FAST_INLINE void rnn_forward_cell(index_t rows, index_t n, Activation act, const T* acc, index_t acc_rs, T* a,
                                      index_t a_rs, const T* bias) {
    const T* in = bias != nullptr ? bias : a;
    const index_t in_rs = bias != nullptr ? 0 : a_rs;
    for (index_t r = 0; r < rows; ++r, acc += acc_rs, a += a_rs, in += in_rs) {
        if (r + kAhead < rows) fetch_row<1>(a + kAhead * a_rs, n);
        for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            const V<T, L> x = ld<T, L, F>(in + k, m) + load<T, L>(acc + k);
            st<T, L, F>(a + k, act == Activation::tanh ? vtanh<T, L>(x) : vrelu<T, L>(x), m);
        });
    }
}

// Vanilla RNN backward: da = (dh + acc) * act'(h), from the output h; dh, h
// and da share the row stride rs.
template <typename T, int L>
RNN_FAST_INLINE void rnn_backward_cell(index_t rows, index_t n, Activation act, const T* dh, const T* acc,
                                       index_t acc_rs, const T* h, T* da, index_t rs) {
    for (index_t r = 0; r < rows; ++r, dh += rs, acc += acc_rs, h += rs, da += rs) {
        for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            const V<T, L> y = ld<T, L, F>(h + k, m);
            const V<T, L> d = act == Activation::tanh ? T(1) - y * y : (y > T(0) ? splat<T, L>(1) : splat<T, L>(0));
            const V<T, L> g = (ld<T, L, F>(dh + k, m) + load<T, L>(acc + k)) * d;
            st<T, L, F>(da + k, g, m);
        });
    }
}

template <typename T, int L>
void rnn_forward_body(const CellArgs<T>& a) {
    rnn_forward_cell<T, L>(a.rows, a.n, static_cast<Activation>(a.option), a.acc, a.acc_rs, a.h, a.rs, a.bias);
}

template <typename T, int L>
void rnn_backward_body(const CellArgs<T>& a) {
    rnn_backward_cell<T, L>(a.rows, a.n, static_cast<Activation>(a.option), a.dh, a.acc, a.acc_rs, a.h, a.da,
                            a.rs);
}
#endif
