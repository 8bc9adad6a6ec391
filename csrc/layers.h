// The non-recurrent layers of cs231n's rnn_layers.py surface.
#pragma once

#include <cstdint>

#include "common.h"

namespace rnn_fast {

// out (N,T,M) = x (N,T,D) · w (D,M) + b (M). out must not alias the inputs.
template <typename F>
void temporal_affine_forward(F* out, const F* x, const F* w, const F* b, index_t N, index_t T,
                             index_t D, index_t M, int nthreads);

// dx (N,T,D) = dout · w^T; dw (D,M) = x^T · dout; db (M) = sum of dout over N, T.
//   dout (N,T,M), x (N,T,D), w (D,M)
template <typename F>
void temporal_affine_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                              index_t N, index_t T, index_t D, index_t M, int nthreads);

// out (N,T,D) = W[x]: row x[n,t] of W (V,D) for every (n,t); x (N,T) indices.
// Throws std::invalid_argument if an index is outside [0, V).
template <typename F>
void word_embedding_forward(F* out, const std::int64_t* x, const F* W, index_t N, index_t T,
                            index_t V, index_t D, int nthreads);

// dW (V,D) = sum of dout[n,t] (N,T,D) into row x[n,t], added in (n,t) order.
template <typename F>
void word_embedding_backward(F* dW, const F* dout, const std::int64_t* x, index_t N, index_t T,
                             index_t V, index_t D, int nthreads);

// Softmax cross-entropy over V classes at every (n,t), weighted by mask and
// divided by N (cs231n's temporal_softmax_loss). Returns the loss.
//   dx (N,T,V) out: gradient of the loss; x (N,T,V) scores
//   y (N,T) targets in [0, V) (throws std::invalid_argument otherwise)
//   mask (N,T) weights, 1 or 0 for cs231n's boolean mask
template <typename F>
double temporal_softmax_loss(F* dx, const F* x, const std::int64_t* y, const F* mask, index_t N,
                             index_t T, index_t V, int nthreads);

// Inverted dropout: mask[i] = 1 / keep with probability keep, else 0, and
// y = x * mask (n values each; y may be x). Element i is kept when the 32-bit
// half i % 2 of SplitMix64(seed + (i / 2 + 1) * 0x9E3779B97F4A7C15) is below
// keep * 2^32 (rounded): a counter-based draw, so the mask depends on seed
// and i only, not on the thread count. 0 < keep <= 1.
template <typename F>
void dropout_forward(F* y, F* mask, const F* x, index_t n, double keep, std::uint64_t seed, int nthreads);

// A dropout's backward: dx[i] = dy[i] * mask[i] (n values; dx may be dy).
template <typename F>
void dropout_backward(F* dx, const F* dy, const F* mask, index_t n, int nthreads);

// One Adam step on n parameters, in place, in F's arithmetic, the order of
// Keras's (and rnn_fast.nn's NumPy) update:
//   m += (g - m) * (1 - beta_1);  v += (g * g - v) * (1 - beta_2)
//   vhat = max(vhat, v) (amsgrad: vhat not null)
//   w -= alpha * m / (sqrt(vhat or v) + epsilon)
// alpha is the step's bias-corrected learning rate. g may not alias the rest.
// Over `count` arrays (a model's weights) at once: array s is n[s] elements
// at w[s], g[s], m[s], v[s] (and vhat[s]; vhat is null or holds count
// pointers).
template <typename F>
void adam_update(index_t count, F* const* w, const F* const* g, F* const* m, F* const* v, F* const* vhat,
                 const index_t* n, F alpha, F one_minus_beta_1, F one_minus_beta_2, F epsilon, int nthreads);

}  // namespace rnn_fast
