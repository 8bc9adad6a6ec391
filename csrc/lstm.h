// LSTM cell (cs231n's gate order i, f, o, g, or with ifgo Keras's and
// PyTorch's i, f, g, o, in the columns of Wx, Wh, b, the gates and their
// gradients; G = 4H):
//   a_t = x_t · Wx + h_{t-1} · Wh + b                       (N,4H)
//   i = sigmoid(a_i), f = sigmoid(a_f), o = sigmoid(a_o), g = tanh(a_g)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
#pragma once

#include "common.h"
#include "gemm.h"

namespace rnn_fast {

// Forward over a sequence.
//   h     (N,T,H)   out: hidden state of every step
//   c     (N,T,H)   out: cell state of every step
//   gates (N,T,4H)  out: post-activation gates i, f, o, g of every step, or
//                   nullptr (an inference: nothing keeps them)
//   x (N,T,D) input; h0, c0 (N,H) initial states
//   Wx (D,4H), Wh (H,4H), b (4H)
// reverse runs time from T-1 down to 0. wh_t, if given, also gets Wh^T (or
// [Wh^T Wx^T], see fused_input_gradient) packed for the backward (rather
// than the caller keeping a copy of Wh and the backward packing it again). pre, if given, holds Wx and Wh packed
// (PackedWeights::pack of these very Wx and Wh, for the ISA now dispatched),
// which the forward reads instead of packing them: the same sums. No
// argument may alias an output.
template <typename F>
void lstm_seq_forward(F* h, F* c, F* gates, const F* x, const F* h0, const F* c0, const F* Wx,
                      const F* Wh, const F* b, index_t N, index_t T, index_t D, index_t H,
                      bool reverse, int nthreads, PackedB<F>* wh_t = nullptr,
                      const PackedWeights<F>* pre = nullptr, bool ifgo = false);

// Backward over a sequence, from the forward's inputs and outputs.
//   dx (N,T,D), dh0 (N,H), dc0 (N,H), dWx (D,4H), dWh (H,4H), db (4H)  out
//   dh  (N,T,H)  upstream gradient of each step's h only (no recurrent part)
//   dcT (N,H)    upstream gradient of the final cell state, or nullptr for 0
//   wh_t         Wh^T packed by pack_recurrent_transpose (or the forward), or
//                [Wh^T Wx^T] (the forward's, for fused_input_gradient shapes),
//                whose products give dx in the time loop
// Outputs must not alias each other or the inputs.
template <typename F>
void lstm_seq_backward(F* dx, F* dh0, F* dc0, F* dWx, F* dWh, F* db, const F* dh, const F* dcT,
                       const F* x, const F* h0, const F* c0, const F* Wx, const PackedB<F>& wh_t, const F* h,
                       const F* c, const F* gates, index_t N, index_t T, index_t D, index_t H,
                       bool reverse, int nthreads, bool ifgo = false);

// One step: the sequence kernels with T = 1 (x (N,D), next_h and next_c (N,H),
// gates (N,4H)).
template <typename F>
void lstm_step_forward(F* next_h, F* next_c, F* gates, const F* x, const F* prev_h,
                       const F* prev_c, const F* Wx, const F* Wh, const F* b, index_t N, index_t D,
                       index_t H, int nthreads) {
    lstm_seq_forward(next_h, next_c, gates, x, prev_h, prev_c, Wx, Wh, b, N, 1, D, H, false, nthreads);
}

template <typename F>
void lstm_step_backward(F* dx, F* dprev_h, F* dprev_c, F* dWx, F* dWh, F* db, const F* dnext_h,
                        const F* dnext_c, const F* x, const F* prev_h, const F* prev_c, const F* Wx,
                        const F* Wh, const F* next_h, const F* next_c, const F* gates, index_t N,
                        index_t D, index_t H, int nthreads) {
    PackedB<F> wh_t;
    pack_recurrent_transpose(wh_t, Wh, H, 4 * H, nthreads);
    lstm_seq_backward(dx, dprev_h, dprev_c, dWx, dWh, db, dnext_h, dnext_c, x, prev_h, prev_c, Wx, wh_t,
                      next_h, next_c, gates, N, 1, D, H, false, nthreads);
}

}  // namespace rnn_fast
