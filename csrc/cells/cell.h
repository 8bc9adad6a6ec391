// What a recurrent cell is: a description (a struct in the cell's file) from
// which the time loops (recurrent.cpp, on sequence.h's machinery), the
// weight gradients, the Python bindings and the caches follow, plus its
// element-wise SIMD bodies (the CellBody of every instruction set's Kernels
// table, kernels.h).
//
// A description holds:
//   name            the prefix of its kernels' Python names (gru_forward, ...)
//   gates           G = gates * H, the columns of Wx, Wh, b (and bh)
//   saved           S = saved * H values per row and time step that the
//                   forward saves for the backward (0: none beyond the
//                   states). When not fused, the forward writes x·Wx + b
//                   into their first G columns for the body to read.
//   carry           the gradient the backward carries from step to step
//                   besides the recurrent products' (Carry)
//   split           the recurrent pre-activations' gradient (dah) differs
//                   from the input's (da): dWh = h_prev^T dah, and the
//                   time loop's products are dah · Wh^T
//   fusable         x·Wx may be summed into the step's products
//                   (fused_input_projection): the pre-activations are
//                   x·Wx + h·Wh + b, nothing applied to h·Wh alone
//   recurrent_bias  a bias bh (G) of its own for h·Wh (rbias)
//   reads_prev_h    the bodies read h_{t-1} (hp)
//   option          an int the bodies read (CellArgs::option)
//   body(k)         the cell's CellBody in the Kernels table k
// Adding a cell: its file in this directory (description and bodies), and
// one line in each registry: cells.h, the Kernels table's fields (kernels.h)
// and their filling (table-inl.h), recurrent.cpp's instantiations, and
// bind_recurrent (bindings/recurrent.cpp) with the cell's public functions.
#pragma once

#include "kernels.h"

namespace rnn_fast {

// What a backward carries from step t to step t-1 besides dah · Wh^T:
enum class Carry {
    none,        // nothing
    cell_state,  // the gradient of the second state c (LSTM): dcT in, dc0 out
    hidden,      // a part of dh_{t-1} the body works out (GRU: z ⊙ dh_t),
                 // added to dh0 at the end
};

}  // namespace rnn_fast
