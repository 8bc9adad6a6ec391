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

// The table entries of one ISA for element type T, vector width L and an
// MR x (NV * L) GEMM tile, defined where simd.h's templates are visible.
#define RNN_FAST_TABLE(NAME, ISA, T, L, MR, NV, KC, MC)                                                                         \
    /* tiles of MI rows and NU of the sliver's NV vectors (FETCH: streaming next into L1; ROWS: A unpacked, row   \
       stride lda), MI at run time */                                                                              \
    template <int NU, bool FETCH, bool ROWS, int MI>                                                               \
    void tile_##NAME(index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias,               \
                     const T* next, index_t lda) {                                                                 \
        tile<T, L, MR, NV, MI, NU, FETCH, ROWS>(kc, a, b, c, ldc, acc, bias, next, lda);                           \
    }                                                                                                              \
    template <int NU, bool FETCH, bool ROWS = false, int... I>                                                     \
    void tile_dispatch_##NAME(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc,             \
                              const T* bias, const T* next, index_t lda, std::integer_sequence<int, I...>) {       \
        static void (*const fns[])(index_t, const T*, const T*, T*, index_t, bool, const T*, const T*, index_t) = {\
            tile_##NAME<NU, FETCH, ROWS, I + 1>...};                                                               \
        fns[mi - 1](kc, a, b, c, ldc, acc, bias, next, lda);                                                       \
    }                                                                                                              \
    void tile_##NAME(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias) {     \
        tile_dispatch_##NAME<NV, false>(mi, kc, a, b, c, ldc, acc, bias, nullptr, 0,                               \
                                        std::make_integer_sequence<int, MR>{});                                    \
    }                                                                                                              \
    void half_##NAME(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias) {     \
        tile_dispatch_##NAME<NV / 2, false>(mi, kc, a, b, c, ldc, acc, bias, nullptr, 0,                           \
                                            std::make_integer_sequence<int, MR>{});                                \
    }                                                                                                              \
    void fetch_##NAME(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias,      \
                      const T* next) {                                                                             \
        tile_dispatch_##NAME<NV, true>(mi, kc, a, b, c, ldc, acc, bias, next, 0,                                   \
                                       std::make_integer_sequence<int, MR>{});                                     \
    }                                                                                                              \
    void tile_rows_##NAME(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc, bool acc,    \
                          const T* bias) {                                                                         \
        tile_dispatch_##NAME<NV, false, true>(mi, kc, a, b, c, ldc, acc, bias, nullptr, lda,                       \
                                              std::make_integer_sequence<int, MR>{});                              \
    }                                                                                                              \
    void half_rows_##NAME(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc, bool acc,    \
                          const T* bias) {                                                                         \
        tile_dispatch_##NAME<NV / 2, false, true>(mi, kc, a, b, c, ldc, acc, bias, nullptr, lda,                   \
                                                  std::make_integer_sequence<int, MR>{});                          \
    }                                                                                                              \
    void lstm_fwd_##NAME(index_t rows, index_t n, const T* acc, index_t acc_rs, index_t as, T* a, index_t a_rs,    \
                         index_t gs, const T* cp, index_t cp_rs, T* c, T* h, index_t ch_rs, bool ifgo,             \
                         const T* bias) {                                                                          \
        lstm_forward_cell<T, L>(rows, n, acc, acc_rs, as, a, a_rs, gs, cp, cp_rs, c, h, ch_rs, ifgo, bias);        \
    }                                                                                                              \
    void lstm_bwd_##NAME(index_t rows, index_t n, const T* dh, index_t ch_rs, const T* acc, index_t acc_rs, T* dc, \
                         index_t dc_rs, const T* a, index_t a_rs, index_t gs, const T* c, const T* cp,             \
                         index_t cp_rs, T* da, bool ifgo) {                                                        \
        lstm_backward_cell<T, L>(rows, n, dh, ch_rs, acc, acc_rs, dc, dc_rs, a, a_rs, gs, c, cp, cp_rs, da, ifgo); \
    }                                                                                                              \
    void rnn_fwd_##NAME(index_t rows, index_t n, Activation act, const T* acc, index_t acc_rs, T* a,               \
                        index_t a_rs, const T* bias) {                                                             \
        rnn_forward_cell<T, L>(rows, n, act, acc, acc_rs, a, a_rs, bias);                                          \
    }                                                                                                              \
    void rnn_bwd_##NAME(index_t rows, index_t n, Activation act, const T* dh, const T* acc, index_t acc_rs,        \
                        const T* h, T* da, index_t rs) {                                                           \
        rnn_backward_cell<T, L>(rows, n, act, dh, acc, acc_rs, h, da, rs);                                         \
    }                                                                                                              \
    void loop_sums_##NAME(index_t rows, index_t n, index_t d, const T* da, index_t da_rs, const T* x,             \
                          index_t x_rs, const T* Wx, T* dx, T* part, T* db) {                                      \
        loop_sums<T, L>(rows, n, d, da, da_rs, x, x_rs, Wx, dx, part, db);                                         \
    }                                                                                                              \
    void dropout_##NAME(index_t j0, index_t j1, const T* x, T* y, T* mask, std::uint64_t threshold, T scale,        \
                        std::uint64_t seed) {                                                                      \
        dropout_pairs<T, L>(j0, j1, x, y, mask, threshold, scale, seed);                                           \
    }                                                                                                              \
    void sigmoid_##NAME(index_t n, const T* x, T* y) { sigmoid_array<T, L>(n, x, y); }                             \
    void tanh_##NAME(index_t n, const T* x, T* y) { tanh_array<T, L>(n, x, y); }                                   \
    T fma_##NAME(index_t iters) { return fma_chains<T, L>(iters); }                                                \
    const Kernels<T> NAME{ISA,   MR,          NV * L,      L,     KC,          MC,      tile_##NAME, half_##NAME,     \
                          fetch_##NAME,            tile_rows_##NAME, half_rows_##NAME,                             \
                          lstm_fwd_##NAME,                                                                         \
                          lstm_bwd_##NAME, rnn_fwd_##NAME, rnn_bwd_##NAME, loop_sums_##NAME, dropout_##NAME,      \
                          sigmoid_##NAME,                                                                          \
                          tanh_##NAME,                                                                             \
                          fma_##NAME};

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
RNN_FAST_TABLE(f, "avx512", float, 16, 14, 2, 512, 112)
RNN_FAST_TABLE(d, "avx512", double, 8, 14, 2, 512, 112)
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr bool kFma = true;
#include "simd.h"
RNN_FAST_TABLE(f, "avx2", float, 8, 6, 2, 256, 144)
RNN_FAST_TABLE(d, "avx2", double, 4, 6, 2, 256, 144)
}  // namespace avx2
#pragma GCC pop_options

namespace portable {
constexpr bool kFma = false;
#include "simd.h"
RNN_FAST_TABLE(f, "portable", float, 4, 4, 2, 256, 112)
RNN_FAST_TABLE(d, "portable", double, 2, 4, 2, 256, 112)
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
