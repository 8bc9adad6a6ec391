// The recurrent kernels of every cell (cells/cells.h): a forward and a
// backward over a sequence, batch first; a step is a sequence with T = 1.
// The shapes of each cell's arrays are in its file; G = gates * H and
// S = saved * H (its description's).
#pragma once

#include "cells/cells.h"
#include "gemm.h"
#include "packing.h"

namespace rnn_fast {

// A forward's arrays. Those a cell does not have are nullptr.
template <typename F>
struct ForwardArrays {
    F* h = nullptr;         // (N,T,H) out: hidden state of every step
    F* c = nullptr;         // (N,T,H) out: the cell state (Carry::cell_state)
    F* saved = nullptr;     // (N,T,S) out: what the backward reads, or nullptr (an inference)
    const F* x = nullptr;   // (N,T,D)
    const F* h0 = nullptr;  // (N,H)
    const F* c0 = nullptr;  // (N,H) (Carry::cell_state)
    const F* Wx = nullptr;  // (D,G)
    const F* Wh = nullptr;  // (H,G)
    const F* b = nullptr;   // (G)
    const F* bh = nullptr;  // (G) (recurrent_bias)
};

// A backward's arrays: the gradients (out; those a cell does not have are
// nullptr) and the forward's inputs and outputs.
template <typename F>
struct BackwardArrays {
    F* dx = nullptr;   // (N,T,D)
    F* dh0 = nullptr;  // (N,H)
    F* dc0 = nullptr;  // (N,H) (Carry::cell_state)
    F* dWx = nullptr;  // (D,G)
    F* dWh = nullptr;  // (H,G)
    F* db = nullptr;   // (G)
    F* dbh = nullptr;  // (G) (recurrent_bias)
    const F* dh = nullptr;   // (N,T,H) upstream gradient of each step's h only (no recurrent part)
    const F* dcT = nullptr;  // (N,H) upstream gradient of the final cell state, or nullptr for 0
    const F *x = nullptr, *h0 = nullptr, *c0 = nullptr, *Wx = nullptr;  // the forward's
    const F *h = nullptr, *c = nullptr, *saved = nullptr;               // the forward's outputs
};

// Forward over a sequence; reverse runs time from T-1 down to 0 (the
// backward half of a bidirectional layer). wh_t, if given, also gets Wh^T
// (or [Wh^T Wx^T], see fused_input_gradient) packed for the backward
// (rather than the caller keeping a copy of Wh and the backward packing it
// again). pre, if given, holds Wx and Wh packed (PackedWeights::pack of
// these very Wx and Wh, for the ISA now dispatched), which the forward
// reads instead of packing them: the same sums. No argument may alias an
// output. With packing (sequences of its lengths, see packing.h): x, h, c
// and saved are packed ((P,D), (P,H), (P,S)), h0 and c0 sorted, reverse is
// the packing's (the argument is ignored), and T is the padded arrays'.
template <typename Cell, typename F>
void seq_forward(const Cell& cell, const ForwardArrays<F>& a, index_t N, index_t T, index_t D, index_t H,
                 bool reverse, int nthreads, PackedB<F>* wh_t = nullptr, const PackedWeights<F>* pre = nullptr,
                 const Packing* packing = nullptr);

// Backward over a sequence, from the forward's inputs and outputs. wh_t:
// Wh^T packed by pack_recurrent_transpose (or the forward), or [Wh^T Wx^T]
// (the forward's, for fused_input_gradient shapes), whose products give dx
// in the time loop. Outputs must not alias each other or the inputs. With
// packing, as the forward's: the sequence arrays (dx and dh too) packed,
// the others (dh0, dc0, dcT) sorted.
template <typename Cell, typename F>
void seq_backward(const Cell& cell, const BackwardArrays<F>& a, index_t N, index_t T, index_t D, index_t H,
                  bool reverse, int nthreads, const PackedB<F>& wh_t, const Packing* packing = nullptr);

}  // namespace rnn_fast
