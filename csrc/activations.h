// Activations and their derivatives, written in terms of the activation's
// output y (haste's convention), so that backward needs only saved outputs.
#pragma once

#include <cmath>

#include "common.h"

namespace rnn_fast {

// 1 / (1 + e^-x): exp overflow gives exactly 0 or 1, never NaN; NaN stays NaN.
template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

template <typename T>
inline T d_sigmoid(T y) { return y * (T(1) - y); }

template <typename T>
inline T d_tanh(T y) { return T(1) - y * y; }

// max(x, 0) that lets NaN through, as np.maximum(x, 0) does.
template <typename T>
inline T relu(T x) { return x < T(0) ? T(0) : x; }

template <typename T>
inline T d_relu(T y) { return y > T(0) ? T(1) : T(0); }

template <typename T>
inline T activate(Activation a, T x) { return a == Activation::tanh ? std::tanh(x) : relu(x); }

template <typename T>
inline T d_activate(Activation a, T y) { return a == Activation::tanh ? d_tanh(y) : d_relu(y); }

}  // namespace rnn_fast
