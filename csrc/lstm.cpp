#include "lstm.h"

#include <algorithm>

#include "sequence.h"

namespace rnn_fast {

template <typename F>
void lstm_seq_forward(F* h, F* c, F* gates, const F* x, const F* h0, const F* c0, const F* Wx,
                      const F* Wh, const F* b, index_t N, index_t T, index_t D, index_t H,
                      bool reverse, int nthreads) {
    const index_t G = 4 * H;
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr, nr = uk.nr;
    // Pre-activations x · Wx + b of all steps, straight into the gate buffer.
    input_projection(gates, x, Wx, b, N, T, D, G, nthreads);
    // Wh packed once, each gate's columns padded to whole slivers, so that a
    // thread's chunk of units has all four gates' tiles.
    PackedB<F> wh;
    wh.pack(H, G, dense_rows(Wh, G), false, nthreads, 4);
    // The recurrent operand h_{t-1}, packed, double-buffered across steps.
    const index_t a_size = std::max<index_t>(1, (N + mr - 1) / mr * mr * H);
    Buffer<F> a_buf;
    a_buf.reserve(static_cast<std::size_t>(2 * a_size));
    F* const a[2] = {a_buf.data(), a_buf.data() + a_size};
    pack_a_rows(a[0], dense_rows(h0, H), N, H, mr);

    recurrent_loop<F>(T, N, 4, wh, a, false, nthreads,
                      [&](index_t s, index_t row0, int mi, index_t chunk, const F* tiles, F* a_next) {
        const index_t t = step_time(s, T, reverse);
        const index_t tp = s == 0 ? 0 : step_time(s - 1, T, reverse);
        const index_t j0 = chunk * nr, uc = std::min(nr, H - j0);
        alignas(64) F buf[7][32];  // a_i a_f a_o a_g c_prev c h, one tile row, zero-padded
        for (int r = 0; r < mi; ++r) {
            const index_t n = row0 + r;
            F* gp = gates + (n * T + t) * G + j0;
            const F* cp = s == 0 ? c0 + n * H + j0 : c + (n * T + tp) * H + j0;
            for (int q = 0; q < 4; ++q) {
                const F* tq = tiles + (q * mr + r) * nr;
                for (index_t u = 0; u < nr; ++u) buf[q][u] = u < uc ? tq[u] + gp[q * H + u] : F(0);
            }
            for (index_t u = 0; u < nr; ++u) buf[4][u] = u < uc ? cp[u] : F(0);
            uk.lstm_forward_cell(nr, buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]);
            F* ct = c + (n * T + t) * H + j0;
            F* ht = h + (n * T + t) * H + j0;
            F* an = a_next + packed_a_index(n, j0, H, mr);
            for (int q = 0; q < 4; ++q)
                for (index_t u = 0; u < uc; ++u) gp[q * H + u] = buf[q][u];
            for (index_t u = 0; u < uc; ++u) {
                ct[u] = buf[5][u];
                ht[u] = buf[6][u];
                an[u * mr] = buf[6][u];
            }
        }
    });
}

template <typename F>
void lstm_seq_backward(F* dx, F* dh0, F* dc0, F* dWx, F* dWh, F* db, const F* dh, const F* dcT,
                       const F* x, const F* h0, const F* c0, const F* Wx, const F* Wh, const F* h,
                       const F* c, const F* gates, index_t N, index_t T, index_t D, index_t H,
                       bool reverse, int nthreads) {
    const index_t G = 4 * H;
    const Kernels<F>& uk = kernels<F>();
    const index_t mr = uk.mr, nr = uk.nr;
    Buffer<F> dA;  // (N,T,4H) gradient of every step's pre-activations
    dA.reserve(static_cast<std::size_t>(std::max<index_t>(1, N * T * G)));
    PackedB<F> wh_t;  // Wh^T, (4H,H)
    wh_t.pack(G, H, dense_rows(Wh, G), true, nthreads);
    // The recurrent operand dA of the step before, packed, double-buffered.
    const index_t a_size = std::max<index_t>(1, (N + mr - 1) / mr * mr * G);
    Buffer<F> a_buf;
    a_buf.reserve(static_cast<std::size_t>(2 * a_size));
    F* const a[2] = {a_buf.data(), a_buf.data() + a_size};
    // dc0 carries the cell-state gradient from step to step; it ends as dc0.
    if (dcT != nullptr) std::copy(dcT, dcT + N * H, dc0);
    else std::fill(dc0, dc0 + N * H, F(0));

    // Step s handles forward step T-1-s; the extra step T computes dh0.
    recurrent_loop<F>(T + 1, N, 1, wh_t, a, true, nthreads,
                      [&](index_t s, index_t row0, int mi, index_t chunk, const F* tiles, F* a_next) {
        const index_t j0 = chunk * nr, uc = std::min(nr, H - j0);
        if (s == T) {
            for (int r = 0; r < mi; ++r)
                for (index_t u = 0; u < uc; ++u) dh0[(row0 + r) * H + j0 + u] = tiles[r * nr + u];
            return;
        }
        const index_t fs = T - 1 - s;
        const index_t t = step_time(fs, T, reverse);
        const index_t tp = fs == 0 ? 0 : step_time(fs - 1, T, reverse);
        // dh_total dc i f o g c c_prev da_i da_f da_o da_g, one tile row, zero-padded
        alignas(64) F buf[12][32];
        for (int r = 0; r < mi; ++r) {
            const index_t n = row0 + r;
            const index_t o = (n * T + t) * H + j0;
            const F* gp = gates + (n * T + t) * G + j0;
            const F* cp = fs == 0 ? c0 + n * H + j0 : c + (n * T + tp) * H + j0;
            F* dcn = dc0 + n * H + j0;
            for (index_t u = 0; u < nr; ++u) {
                const bool in = u < uc;
                buf[0][u] = in ? dh[o + u] + tiles[r * nr + u] : F(0);
                buf[1][u] = in ? dcn[u] : F(0);
                for (int q = 0; q < 4; ++q) buf[2 + q][u] = in ? gp[q * H + u] : F(0);
                buf[6][u] = in ? c[o + u] : F(0);
                buf[7][u] = in ? cp[u] : F(0);
            }
            uk.lstm_backward_cell(nr, buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8],
                                  buf[9], buf[10], buf[11]);
            F* da = dA.data() + (n * T + t) * G + j0;
            F* an = a_next + packed_a_index(n, j0, G, mr);
            for (int q = 0; q < 4; ++q)
                for (index_t u = 0; u < uc; ++u) {
                    da[q * H + u] = buf[8 + q][u];
                    an[(q * H + u) * mr] = buf[8 + q][u];
                }
            for (index_t u = 0; u < uc; ++u) dcn[u] = buf[1][u];
        }
    });
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
