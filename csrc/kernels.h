// The SIMD kernels of one instruction set, chosen once at run time:
// AVX-512 where the CPU has it, else AVX2+FMA, else the x86-64 baseline.
// The environment variable RNN_FAST_ISA=avx512|avx2|portable caps the choice
// (to test or compare the paths on one machine).
#pragma once

#include "common.h"

namespace rnn_fast {

template <typename T>
struct Kernels {
    const char* isa;
    int mr;     // rows of a GEMM tile (packed-A width)
    int nr;     // columns of a GEMM tile (packed-B sliver width), a multiple of lanes
    int lanes;  // elements per SIMD vector

    // c (mi x nr, row stride ldc) = [c +] a · b, 1 <= mi <= mr:
    //   a: packed A block, element (i, k) at a[k * mr + i]
    //   b: packed B sliver, element (k, j) at b[k * nr + j]
    void (*tile)(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool accumulate);

    // Element-wise cell math over n values, n a multiple of lanes, dense arrays
    // (see simd.h for the formulas).
    void (*lstm_forward_cell)(index_t n, T* ai, T* af, T* ao, T* ag, const T* cp, T* c, T* h);
    void (*lstm_backward_cell)(index_t n, const T* dh, T* dc, const T* i, const T* f, const T* o, const T* g,
                               const T* c, const T* cp, T* dai, T* daf, T* dao, T* dag);
    void (*rnn_forward_cell)(index_t n, Activation act, T* a);
    void (*rnn_backward_cell)(index_t n, Activation act, const T* dh, const T* h, T* da);
    void (*sigmoid)(index_t n, const T* x, T* y);
    void (*tanh)(index_t n, const T* x, T* y);
};

// The kernels for this CPU (and RNN_FAST_ISA), chosen on first use.
template <typename T>
const Kernels<T>& kernels();

}  // namespace rnn_fast
