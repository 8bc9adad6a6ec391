// One instantiation of simd.h per instruction set. Each entry point carries a
// target attribute and inlines the generic body, so the body is compiled for
// that ISA only; the default build flags stay baseline x86-64.
#include "kernels.h"

#include <cstdlib>
#include <cstring>

#include "simd.h"

namespace rnn_fast {

namespace {

#define RNN_FAST_DEFINE_ISA(NS, TARGET, T, L, MR, NV)                                                          \
    namespace NS {                                                                                              \
    template <int MI>                                                                                           \
    TARGET void tile_mi(index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc) {                      \
        simd::tile<T, L, MR, NV, MI>(kc, a, b, c, ldc, acc);                                                    \
    }                                                                                                           \
    template <int... MI>                                                                                        \
    struct TileTable {                                                                                          \
        static constexpr void (*fns[])(index_t, const T*, const T*, T*, index_t, bool) = {tile_mi<MI + 1>...};  \
    };                                                                                                          \
    template <int... I>                                                                                         \
    constexpr auto make_table(std::integer_sequence<int, I...>) { return TileTable<I...>{}; }                   \
    void tile(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc) {                        \
        decltype(make_table(std::make_integer_sequence<int, MR>{}))::fns[mi - 1](kc, a, b, c, ldc, acc);        \
    }                                                                                                           \
    TARGET void lstm_fwd(index_t n, const T* acc, index_t as, T* a, index_t gs, const T* cp, T* c, T* h) {         \
        simd::lstm_forward_cell<T, L>(n, acc, as, a, gs, cp, c, h);                                             \
    }                                                                                                           \
    TARGET void lstm_bwd(index_t n, const T* dh, const T* acc, T* dc, const T* a, index_t gs, const T* c,       \
                         const T* cp, T* da) {                                                                  \
        simd::lstm_backward_cell<T, L>(n, dh, acc, dc, a, gs, c, cp, da);                                       \
    }                                                                                                           \
    TARGET void rnn_fwd(index_t n, Activation act, const T* acc, T* a) {                                        \
        simd::rnn_forward_cell<T, L>(n, act, acc, a);                                                           \
    }                                                                                                           \
    TARGET void rnn_bwd(index_t n, Activation act, const T* dh, const T* acc, const T* h, T* da) {              \
        simd::rnn_backward_cell<T, L>(n, act, dh, acc, h, da);                                                  \
    }                                                                                                           \
    TARGET void sigmoid(index_t n, const T* x, T* y) { simd::sigmoid_array<T, L>(n, x, y); }                    \
    TARGET void tanh(index_t n, const T* x, T* y) { simd::tanh_array<T, L>(n, x, y); }                          \
    const Kernels<T> table{#NS, MR, NV * L, L, tile, lstm_fwd, lstm_bwd, rnn_fwd, rnn_bwd, sigmoid, tanh};      \
    }

#define RNN_FAST_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#define RNN_FAST_AVX2 __attribute__((target("avx2,fma")))
#define RNN_FAST_BASE

// ISA namespaces hold float (f) and double (d) tables: 32 zmm registers fit a
// 14 x 2-vector tile, 16 ymm a 6 x 2-vector tile, 16 xmm a 4 x 2-vector tile.
RNN_FAST_DEFINE_ISA(avx512_f, RNN_FAST_AVX512, float, 16, 14, 2)
RNN_FAST_DEFINE_ISA(avx512_d, RNN_FAST_AVX512, double, 8, 14, 2)
RNN_FAST_DEFINE_ISA(avx2_f, RNN_FAST_AVX2, float, 8, 6, 2)
RNN_FAST_DEFINE_ISA(avx2_d, RNN_FAST_AVX2, double, 4, 6, 2)
RNN_FAST_DEFINE_ISA(portable_f, RNN_FAST_BASE, float, 4, 4, 2)
RNN_FAST_DEFINE_ISA(portable_d, RNN_FAST_BASE, double, 2, 4, 2)

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
        case Isa::avx512: return avx512_f::table;
        case Isa::avx2: return avx2_f::table;
        default: return portable_f::table;
    }
}

template <>
const Kernels<double>& kernels<double>() {
    switch (isa()) {
        case Isa::avx512: return avx512_d::table;
        case Isa::avx2: return avx2_d::table;
        default: return portable_d::table;
    }
}

}  // namespace rnn_fast
