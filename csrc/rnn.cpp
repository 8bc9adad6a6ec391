#include "rnn.h"

#include <algorithm>

#include "activations.h"
#include "sequence.h"

namespace rnn_fast {

template <typename F>
void rnn_seq_forward(F* h, const F* x, const F* h0, const F* Wx, const F* Wh, const F* b, index_t N,
                     index_t T, index_t D, index_t H, Activation act, bool reverse, int nthreads) {
    // Pre-activations of all steps, x · Wx + b, straight into h.
    input_projection(h, x, Wx, b, N, T, D, H, nthreads);
    PackedB<F> wh;
    wh.pack(H, H, dense_rows(Wh, H), false, nthreads);
    for (index_t s = 0; s < T; ++s) {
        const index_t t = step_time(s, T, reverse);
        const Rows<F> prev = s == 0 ? dense_rows(h0, H)
                                    : dense_rows(h + step_time(s - 1, T, reverse) * H, T * H);
        F* ht = h + t * H;
        gemm_packed(N, prev, false, wh, true, ht, T * H, nthreads);
        for_each_row(N, H, nthreads, [&](index_t n) {
            F* row = ht + n * T * H;
            for (index_t j = 0; j < H; ++j) row[j] = activate(act, row[j]);
        });
    }
}

template <typename F>
void rnn_seq_backward(F* dx, F* dh0, F* dWx, F* dWh, F* db, const F* dh, const F* x, const F* h0,
                      const F* Wx, const F* Wh, const F* h, index_t N, index_t T, index_t D,
                      index_t H, Activation act, bool reverse, int nthreads) {
    Buffer<F> dA;  // (N,T,H) gradient of every step's pre-activation
    dA.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * H)));
    PackedB<F> wh_t;  // Wh^T, (H,H)
    wh_t.pack(H, H, dense_rows(Wh, H), true, nthreads);
    // dh0 carries the recurrent gradient from step to step; it ends as dh0.
    std::fill(dh0, dh0 + N * H, F(0));
    for (index_t s = T - 1; s >= 0; --s) {
        const index_t t = step_time(s, T, reverse);
        for_each_row(N, H, nthreads, [&](index_t n) {
            const index_t o = (n * T + t) * H;
            const F* dhr = dh0 + n * H;
            for (index_t j = 0; j < H; ++j) dA.data()[o + j] = (dh[o + j] + dhr[j]) * d_activate(act, h[o + j]);
        });
        gemm_packed(N, dense_rows<F>(dA.data() + t * H, T * H), false, wh_t, false, dh0, H, nthreads);
    }
    sequence_weight_grads(dx, dWx, dWh, db, dA.data(), x, h0, h, Wx, N, T, D, H, H, reverse, nthreads);
}

#define RNN_FAST_INSTANTIATE(F)                                                                   \
    template void rnn_seq_forward<F>(F*, const F*, const F*, const F*, const F*, const F*, index_t, \
                                     index_t, index_t, index_t, Activation, bool, int);            \
    template void rnn_seq_backward<F>(F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*,  \
                                      const F*, const F*, index_t, index_t, index_t, index_t,       \
                                      Activation, bool, int);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
