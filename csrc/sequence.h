// Pieces shared by every recurrent cell: the input projection done for all
// time steps before the time loop, and the weight gradients done for all
// time steps after the backward loop, each as one GEMM.
#pragma once

#include "gemm.h"

namespace rnn_fast {

// Runs body(n) for n in [0, N); rows are independent, so threads split them.
template <typename Body>
inline void for_each_row(index_t N, index_t work_per_row, int nthreads, Body body) {
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && N > 1 && N * work_per_row >= (1 << 14))
    for (index_t n = 0; n < N; ++n) body(n);
}

// a (N,T,G) = x (N,T,D) · Wx (D,G) + b (G), over all N*T rows in one GEMM.
template <typename F>
void input_projection(F* a, const F* x, const F* Wx, const F* b, index_t N, index_t T, index_t D,
                      index_t G, int nthreads) {
    fill_rows(a, N * T, G, G, b, nthreads);
    gemm<F>(N * T, G, D, dense_rows(x, D), false, dense_rows(Wx, G), false, true, a, G, nthreads);
}

// Given dA (N,T,G), the gradient of every step's pre-activations:
//   dx (N,T,D) = dA · Wx^T      dWx (D,G) = x^T · dA
//   dWh (H,G) = sum over steps of h_prev^T · dA_t, where h_prev of a step is
//               h0 (N,H) for the first step and otherwise the state h (N,T,H)
//               of the time before it (after it when reverse)
//   db (G) = sum of dA over N and T
template <typename F>
void sequence_weight_grads(F* dx, F* dWx, F* dWh, F* db, const F* dA, const F* x, const F* h0,
                           const F* h, const F* Wx, index_t N, index_t T, index_t D, index_t H,
                           index_t G, bool reverse, int nthreads) {
    gemm<F>(N * T, D, G, dense_rows(dA, G), false, dense_rows(Wx, G), true, false, dx, D, nthreads);
    gemm<F>(D, G, N * T, dense_rows(x, D), true, dense_rows(dA, G), false, false, dWx, G, nthreads);
    // Steps after the first pair dA[:, t] with h[:, t-1] (h[:, t+1] when
    // reverse): N*(T-1) rows, viewed through grouped rows that skip one
    // time step per sequence.
    const index_t pairs = T > 0 ? T - 1 : 0;
    const Rows<F> h_prev = grouped_rows(reverse ? h + H : h, H, pairs, T * H);
    const Rows<F> dA_next = grouped_rows(reverse ? dA : dA + G, G, pairs, T * G);
    gemm<F>(H, G, N * pairs, h_prev, true, dA_next, false, false, dWh, G, nthreads);
    if (T > 0) {
        const index_t t0 = step_time(0, T, reverse);
        gemm<F>(H, G, N, dense_rows(h0, H), true, dense_rows(dA + t0 * G, T * G), false, true,
                dWh, G, nthreads);
    }
    column_sums(db, dA, N * T, G, nthreads);
}

}  // namespace rnn_fast
