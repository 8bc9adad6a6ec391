// rnn_fast C++ core: shared definitions. No Python in here.
//
// Dimension legend, used by every kernel comment:
//   N = batch, T = time steps, D = input features, H = hidden units,
//   G = gate width (H for the vanilla RNN, 4H for the LSTM, 3H for the GRU),
//   M = affine output features, V = vocabulary size.
// All arrays are dense, row-major (C order) and batch-first: a sequence input
// x is (N,T,D) and its hidden states h are (N,T,H).
// Each cell's gate order and saved values: its file in cells/.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace rnn_fast {

using index_t = std::int64_t;

enum class Activation { tanh, relu };

// Throws std::invalid_argument (ValueError in Python) when `ok` is false.
inline void check(bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
}

// Step s of a sequence runs at time t = step_time(s); its previous state is
// the one of time t -/+ 1, or the initial state when s == 0.
inline index_t step_time(index_t s, index_t T, bool reverse) {
    return reverse ? T - 1 - s : s;
}

}  // namespace rnn_fast
