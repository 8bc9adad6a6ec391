// The leaky reservoir's SIMD body (LeakyArgs in kernels.h). No include
// guard: kernels.cpp includes it once per instruction set, after simd.h.
//
// A slice's 16 rows are 16 / L vectors, each entry k of the slice one
// multiply-add per vector: the entries' values are contiguous, the
// operands gathered from x by the entries' columns, or broadcast (x[k]) for
// a dense matrix. Rows never
// need a horizontal sum, whatever their length (a row's padding is zeros).

#define RNN_FAST_INLINE_LAMBDA __attribute__((always_inline))

// x[col[i]] for the L lanes i, from element loads put together: on Zen 4
// ~1.5x as fast as the gather instructions (vgatherdpd, vgatherdps), which
// cost about a cycle an element (measured in the 1,000-unit reservoir).
template <typename T, int L>
RNN_FAST_INLINE V<T, L> gather(const T* x, const std::int32_t* col) {
    using VT = V<T, L>;
    // (Generic lambdas: instantiated only where called, for their own T and ISA.)
    auto pair = [x](auto c) { return _mm_loadh_pd(_mm_load_sd(x + c[0]), x + c[1]); };
    auto quad = [x](auto c) {
        __m128 q = _mm_load_ss(x + c[0]);
        q = _mm_insert_ps(q, _mm_load_ss(x + c[1]), 0x10);
        q = _mm_insert_ps(q, _mm_load_ss(x + c[2]), 0x20);
        return _mm_insert_ps(q, _mm_load_ss(x + c[3]), 0x30);
    };
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) {
        const __m256 lo = _mm256_insertf128_ps(_mm256_castps128_ps256(quad(col)), quad(col + 4), 1);
        const __m256 hi = _mm256_insertf128_ps(_mm256_castps128_ps256(quad(col + 8)), quad(col + 12), 1);
        return (VT)_mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    } else if constexpr (sizeof(VT) == 64) {
        const __m256d lo = _mm256_insertf128_pd(_mm256_castpd128_pd256(pair(col)), pair(col + 2), 1);
        const __m256d hi = _mm256_insertf128_pd(_mm256_castpd128_pd256(pair(col + 4)), pair(col + 6), 1);
        return (VT)_mm512_insertf64x4(_mm512_castpd256_pd512(lo), hi, 1);
    } else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) {
        return (VT)_mm256_insertf128_ps(_mm256_castps128_ps256(quad(col)), quad(col + 4), 1);
    } else if constexpr (sizeof(VT) == 32) {
        return (VT)_mm256_insertf128_pd(_mm256_castpd128_pd256(pair(col)), pair(col + 2), 1);
    } else {
        VT v;
        for (int i = 0; i < L; ++i) v[i] = x[col[i]];
        return v;
    }
}

// Independent sums a slice's products go to, so that the multiply-adds of
// consecutive entries do not wait on each other: 4 chains in flight (an
// entry takes ~1.2 cycles, a multiply-add 4).
template <int NV>
inline constexpr int kSums = NV >= 4 ? 1 : 4 / NV;

// acc[k % S] += the products of a slice's entries k (values val, width a
// row) with their operands, operand(k, v) for vector v (gathered or broadcast).
template <typename T, int L, int NV, int S, typename Operand>
RNN_FAST_INLINE void sell_entries(const T* val, index_t width, Operand&& operand, V<T, L> (&acc)[S][NV]) {
    index_t k = 0;
    for (; k + S <= width; k += S) {
#pragma GCC unroll 8
        for (int j = 0; j < S; ++j) {
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v)
                acc[j][v] += load<T, L>(val + (k + j) * kSellSlice + v * L) * operand(k + j, v);
        }
    }
    for (; k < width; ++k) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[0][v] += load<T, L>(val + k * kSellSlice + v * L) * operand(k, v);
    }
}

template <typename T, int L, int NV, int S>
RNN_FAST_INLINE void sell_slice(const SellView<T>& m, index_t s, const T* x, V<T, L> (&acc)[S][NV]) {
    const index_t off = m.start[s], width = (m.start[s + 1] - off) / kSellSlice;
    if (m.col != nullptr) {
        const std::int32_t* col = m.col + off;
        sell_entries<T, L, NV, S>(m.val + off, width, [&](index_t k, int v) RNN_FAST_INLINE_LAMBDA {
            return gather<T, L>(x, col + k * kSellSlice + v * L);
        }, acc);
    } else {
        sell_entries<T, L, NV, S>(m.val + off, width,
                                  [&](index_t k, int) RNN_FAST_INLINE_LAMBDA { return splat<T, L>(x[k]); }, acc);
    }
}

template <typename T, int L, int Act>
RNN_FAST_INLINE V<T, L> leaky_activation(V<T, L> a) {
    if constexpr (Act == 0) return vtanh<T, L>(a);
    else if constexpr (Act == 1) return a;
    else if constexpr (Act == 2) return a < T(0) ? V<T, L>{} : a;  // NaN stays NaN, as np.maximum(a, 0)
    else return vsigmoid<T, L>(a);
}

template <typename T, int L, int Act>
void leaky_slices_act(const LeakyArgs<T>& a, index_t s0, index_t s1) {
    static_assert(kSellSlice % L == 0, "a slice is whole vectors");
    constexpr int NV = static_cast<int>(kSellSlice / L);
    const index_t rows = a.w.rows;
    for (index_t s = s0; s < s1; ++s) {
        constexpr int S = kSums<NV>;
        V<T, L> acc[S][NV] = {};
        sell_slice<T, L, NV, S>(a.w, s, a.xp, acc);
        if (a.win.rows > 0) sell_slice<T, L, NV, S>(a.win, s, a.u, acc);
#pragma GCC unroll 8
        for (int j = 1; j < S; ++j) {
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[0][v] += acc[j][v];
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            const index_t i = s * kSellSlice + v * L, m = rows - i;  // lanes i.. of the slices
            if (m <= 0) break;
            const index_t ml = m < L ? m : L;
            const std::int32_t* row = a.w.row != nullptr ? a.w.row + i : nullptr;
            const V<T, L> xp = row != nullptr ? gather<T, L>(a.xp, row) : load<T, L>(a.xp + i, ml);
            const V<T, L> f = leaky_activation<T, L, Act>(acc[0][v] + load<T, L>(a.bias + i));
            const V<T, L> next = load<T, L>(a.keep + i) * xp + load<T, L>(a.lr + i) * f;
            if (row == nullptr) {
                store<T, L>(a.x + i, next, ml);
            } else {
                for (index_t j = 0; j < ml; ++j) a.x[row[j]] = next[j];
            }
        }
    }
}

template <typename T, int L>
void leaky_slices(const LeakyArgs<T>& a, index_t s0, index_t s1) {
    switch (a.activation) {
        case 0: return leaky_slices_act<T, L, 0>(a, s0, s1);
        case 1: return leaky_slices_act<T, L, 1>(a, s0, s1);
        case 2: return leaky_slices_act<T, L, 2>(a, s0, s1);
        default: return leaky_slices_act<T, L, 3>(a, s0, s1);
    }
}
