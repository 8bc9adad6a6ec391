#include "lstm.h"

#include <algorithm>
#include <cmath>

#include "activations.h"
#include "sequence.h"

namespace rnn_fast {

template <typename F>
void lstm_seq_forward(F* h, F* c, F* gates, const F* x, const F* h0, const F* c0, const F* Wx,
                      const F* Wh, const F* b, index_t N, index_t T, index_t D, index_t H,
                      bool reverse, int nthreads) {
    const index_t G = 4 * H;
    // Pre-activations x · Wx + b of all steps, straight into the gate buffer.
    input_projection(gates, x, Wx, b, N, T, D, G, nthreads);
    PackedB<F> wh;
    wh.pack(H, G, dense_rows(Wh, G), false, nthreads);
    for (index_t s = 0; s < T; ++s) {
        const index_t t = step_time(s, T, reverse);
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        const Rows<F> h_prev = s == 0 ? dense_rows(h0, H) : dense_rows(h + tp * H, T * H);
        F* at = gates + t * G;
        gemm_packed(N, h_prev, false, wh, true, at, T * G, nthreads);
        for_each_row(N, G, nthreads, [&](index_t n) {
            F* a = at + n * T * G;
            const F* cp = s == 0 ? c0 + n * H : c + (n * T + tp) * H;
            F* ct = c + (n * T + t) * H;
            F* ht = h + (n * T + t) * H;
            for (index_t j = 0; j < H; ++j) {
                const F i = sigmoid(a[j]), f = sigmoid(a[H + j]);
                const F o = sigmoid(a[2 * H + j]), g = std::tanh(a[3 * H + j]);
                a[j] = i;
                a[H + j] = f;
                a[2 * H + j] = o;
                a[3 * H + j] = g;
                ct[j] = f * cp[j] + i * g;
                ht[j] = o * std::tanh(ct[j]);
            }
        });
    }
}

template <typename F>
void lstm_seq_backward(F* dx, F* dh0, F* dc0, F* dWx, F* dWh, F* db, const F* dh, const F* dcT,
                       const F* x, const F* h0, const F* c0, const F* Wx, const F* Wh, const F* h,
                       const F* c, const F* gates, index_t N, index_t T, index_t D, index_t H,
                       bool reverse, int nthreads) {
    const index_t G = 4 * H;
    Buffer<F> dA;  // (N,T,4H) gradient of every step's pre-activations
    dA.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * G)));
    PackedB<F> wh_t;  // Wh^T, (4H,H)
    wh_t.pack(G, H, dense_rows(Wh, G), true, nthreads);
    // dh0 and dc0 carry the recurrent gradients from step to step and end as
    // the gradients of the initial states.
    std::fill(dh0, dh0 + N * H, F(0));
    if (dcT != nullptr) std::copy(dcT, dcT + N * H, dc0);
    else std::fill(dc0, dc0 + N * H, F(0));
    for (index_t s = T - 1; s >= 0; --s) {
        const index_t t = step_time(s, T, reverse);
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        for_each_row(N, G, nthreads, [&](index_t n) {
            const index_t o = (n * T + t) * H;
            const F* a = gates + (n * T + t) * G;
            const F* cp = s == 0 ? c0 + n * H : c + (n * T + tp) * H;
            F* da = dA.data() + (n * T + t) * G;
            F* dhn = dh0 + n * H;
            F* dcn = dc0 + n * H;
            for (index_t j = 0; j < H; ++j) {
                const F i = a[j], f = a[H + j], og = a[2 * H + j], g = a[3 * H + j];
                const F tc = std::tanh(c[o + j]);
                const F dht = dh[o + j] + dhn[j];
                const F dct = dcn[j] + dht * og * d_tanh(tc);  // through h_t = o * tanh(c_t)
                da[j] = dct * g * d_sigmoid(i);                // i
                da[H + j] = dct * cp[j] * d_sigmoid(f);        // f
                da[2 * H + j] = dht * tc * d_sigmoid(og);      // o
                da[3 * H + j] = dct * i * d_tanh(g);           // g
                dcn[j] = dct * f;                              // to c_{t-1}
            }
        });
        gemm_packed(N, dense_rows<F>(dA.data() + t * G, T * G), false, wh_t, false, dh0, H, nthreads);
    }
    sequence_weight_grads(dx, dWx, dWh, db, dA.data(), x, h0, h, Wx, N, T, D, H, G, reverse, nthreads);
}

#define RNN_FAST_INSTANTIATE(F)                                                                      \
    template void lstm_seq_forward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, const F*,    \
                                      const F*, index_t, index_t, index_t, index_t, bool, int);        \
    template void lstm_seq_backward<F>(F*, F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*, \
                                       const F*, const F*, const F*, const F*, const F*, const F*,     \
                                       index_t, index_t, index_t, index_t, bool, int);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
