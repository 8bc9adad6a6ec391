// One compilation of simd.h per instruction set. Each is included inside its
// own namespace under `#pragma GCC target(...)`, which gives every function
// in it that target attribute, so the default build flags stay baseline
// x86-64 and the AVX code only runs where the CPU supports it.
#include "kernels.h"

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

namespace rnn_fast {

// Tiles: 32 zmm registers fit 14 x 2 vectors of accumulators, 16 ymm or xmm
// registers 6 x 2 or 4 x 2. Blocking (KC, MC): a B sliver of KC x nr is 32 KiB
// with AVX-512 (512 x 16 floats: 512 measured 15% faster than 256 on a
// 1600x4096x1024 product on a 48 KiB-L1 Xeon) and 16 KiB with AVX2 (256 x 16
// floats, half a 32 KiB L1).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
namespace avx512 {
constexpr bool kFma = true;  // multiply-adds fused: see TanhRational
#include "simd.h"
#define RNN_FAST_CELL_BODIES
#include "cells/cells.h"
#undef RNN_FAST_CELL_BODIES
#include "reservoir-inl.h"
#include "table-inl.h"
constexpr Kernels<float> f = Table<float, 16, 14, 2>::make("avx512", 512, 112);
constexpr Kernels<double> d = Table<double, 8, 14, 2>::make("avx512", 512, 112);
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr bool kFma = true;
#include "simd.h"
#define RNN_FAST_CELL_BODIES
#include "cells/cells.h"
#undef RNN_FAST_CELL_BODIES
#include "reservoir-inl.h"
#include "table-inl.h"
constexpr Kernels<float> f = Table<float, 8, 6, 2>::make("avx2", 256, 144);
constexpr Kernels<double> d = Table<double, 4, 6, 2>::make("avx2", 256, 144);
}  // namespace avx2
#pragma GCC pop_options

namespace portable {
constexpr bool kFma = false;
#include "simd.h"
#define RNN_FAST_CELL_BODIES
#include "cells/cells.h"
#undef RNN_FAST_CELL_BODIES
#include "reservoir-inl.h"
#include "table-inl.h"
constexpr Kernels<float> f = Table<float, 4, 4, 2>::make("portable", 256, 112);
constexpr Kernels<double> d = Table<double, 2, 4, 2>::make("portable", 256, 112);
}  // namespace portable

namespace {

enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

Isa detect() {
    __builtin_cpu_init();
    Isa best = Isa::portable;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::avx2;
    if (best == Isa::avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        best = Isa::avx512;
    const char* cap = std::getenv("RNN_FAST_ISA");
    if (cap != nullptr) {
        Isa want = best;
        if (std::strcmp(cap, "portable") == 0) want = Isa::portable;
        if (std::strcmp(cap, "avx2") == 0) want = Isa::avx2;
        if (static_cast<int>(want) < static_cast<int>(best)) best = want;
    }
    return best;
}

Isa isa() {
    static const Isa chosen = detect();
    return chosen;
}

}  // namespace

template <>
const Kernels<float>& kernels<float>() {
    switch (isa()) {
        case Isa::avx512: return avx512::f;
        case Isa::avx2: return avx2::f;
        default: return portable::f;
    }
}

template <>
const Kernels<double>& kernels<double>() {
    switch (isa()) {
        case Isa::avx512: return avx512::d;
        case Isa::avx2: return avx2::d;
        default: return portable::d;
    }
}

}  // namespace rnn_fast
