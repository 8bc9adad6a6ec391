// Vanilla (Elman) RNN cell: h_t = act(x_t · Wx + h_{t-1} · Wh + b), act = tanh or relu.
#pragma once

#include "common.h"
#include "gemm.h"

namespace rnn_fast {

// Forward over a sequence.
//   h  (N,T,H)  out: hidden state of every step
//   x  (N,T,D)  input; h0 (N,H) initial state
//   Wx (D,H), Wh (H,H), b (H)
// reverse runs time from T-1 down to 0 (the backward half of a bidirectional RNN).
// wh_t, if given, also gets Wh^T (or [Wh^T Wx^T], see fused_input_gradient)
// packed for the backward (rather than the caller keeping a copy of Wh and
// the backward packing it again). pre, if
// given, holds Wx and Wh packed (PackedWeights::pack of these very Wx and Wh,
// for the ISA now dispatched), which the forward reads instead of packing
// them: the same sums. No argument may alias h.
template <typename F>
void rnn_seq_forward(F* h, const F* x, const F* h0, const F* Wx, const F* Wh, const F* b, index_t N,
                     index_t T, index_t D, index_t H, Activation act, bool reverse, int nthreads,
                     PackedB<F>* wh_t = nullptr, const PackedWeights<F>* pre = nullptr);

// Backward over a sequence, given the forward's inputs and its output h.
//   dx (N,T,D), dh0 (N,H), dWx (D,H), dWh (H,H), db (H)  out
//   dh (N,T,H)  upstream gradient of each step's output only (no recurrent part)
//   wh_t        Wh^T packed by pack_recurrent_transpose (or the forward), or
//               [Wh^T Wx^T] (the forward's, for fused_input_gradient shapes),
//               whose products give dx in the time loop
// Outputs must not alias each other or the inputs.
template <typename F>
void rnn_seq_backward(F* dx, F* dh0, F* dWx, F* dWh, F* db, const F* dh, const F* x, const F* h0,
                      const F* Wx, const PackedB<F>& wh_t, const F* h, index_t N, index_t T, index_t D,
                      index_t H, Activation act, bool reverse, int nthreads);

// One step: the sequence kernels with T = 1 (x (N,D), next_h (N,H), ...).
template <typename F>
void rnn_step_forward(F* next_h, const F* x, const F* prev_h, const F* Wx, const F* Wh, const F* b,
                      index_t N, index_t D, index_t H, Activation act, int nthreads) {
    rnn_seq_forward(next_h, x, prev_h, Wx, Wh, b, N, 1, D, H, act, false, nthreads);
}

template <typename F>
void rnn_step_backward(F* dx, F* dprev_h, F* dWx, F* dWh, F* db, const F* dnext_h, const F* x,
                       const F* prev_h, const F* Wx, const F* Wh, const F* next_h, index_t N,
                       index_t D, index_t H, Activation act, int nthreads) {
    PackedB<F> wh_t;
    pack_recurrent_transpose(wh_t, Wh, H, H, nthreads);
    rnn_seq_backward(dx, dprev_h, dWx, dWh, db, dnext_h, x, prev_h, Wx, wh_t, next_h, N, 1, D, H, act, false,
                     nthreads);
}

}  // namespace rnn_fast
