// ISA-generic SIMD bodies, written once with GCC vector extensions. There is
// deliberately no include guard: kernels.cpp includes this file once per
// instruction set, each time inside its own namespace and under
// `#pragma GCC target(...)`, so that every function here is compiled with
// that ISA's target attribute (and may use its intrinsics), while the build
// flags stay baseline x86-64. Nothing here is called directly: use the table
// in kernels.h. The includes it needs (<immintrin.h>, <cstdint>, <cstring>,
// common.h) come before, outside the namespaces.
//
// Functions are templated on the element type T and the vector width L.

#define RNN_FAST_INLINE __attribute__((always_inline)) inline

template <typename T, int L>
struct Vec {
    typedef T type __attribute__((vector_size(L * sizeof(T))));
};

template <typename T>
struct IntOf;  // same-width integer type: bit casts of float lanes
template <>
struct IntOf<float> {
    using type = std::int32_t;
};
template <>
struct IntOf<double> {
    using type = std::int64_t;
};

template <typename T, int L>
using V = typename Vec<T, L>::type;
template <typename T, int L>
using VI = typename Vec<typename IntOf<T>::type, L>::type;

template <typename T, int L>
RNN_FAST_INLINE V<T, L> load(const T* p) {
    V<T, L> v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

template <typename T, int L>
RNN_FAST_INLINE void store(T* p, V<T, L> v) { std::memcpy(p, &v, sizeof(v)); }

template <typename T, int L>
RNN_FAST_INLINE V<T, L> splat(T x) { return V<T, L>{} + x; }

// AVX2 masks selecting lanes below m (used only where the target has AVX2).
template <typename I = int>
RNN_FAST_INLINE __m256i lane_mask32(index_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<I>(m)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
template <typename I = long long>
RNN_FAST_INLINE __m256i lane_mask64(index_t m) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<I>(m)), _mm256_setr_epi64x(0, 1, 2, 3));
}

// The first m <= L elements (zeros after them), and their store; nothing
// past element m is touched: masked loads and stores on AVX-512 (64-byte
// vectors); on AVX2 (32-byte vectors) masked loads, and stores of the 4-,
// 2- and 1-element pieces that make up m (vmaskmov stores are microcoded on
// AMD cores, measured ~10x slower than an element loop, which took a third
// of an LSTM cell's time at H = 50 with its tails stored lane by lane: the
// pieces made the cell 22% faster); element loops on the baseline.
template <typename T, int L>
RNN_FAST_INLINE V<T, L> load(const T* p, index_t m) {
    using VT = V<T, L>;
    if (m == L) return load<T, L>(p);
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) {
        return (VT)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << m) - 1), p);
    } else if constexpr (sizeof(VT) == 64) {
        return (VT)_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << m) - 1), p);
    } else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) {
        return (VT)_mm256_maskload_ps(p, lane_mask32(m));
    } else if constexpr (sizeof(VT) == 32) {
        return (VT)_mm256_maskload_pd(p, lane_mask64(m));
    } else {
        VT v = VT{};
        for (index_t i = 0; i < m; ++i) v[i] = p[i];
        return v;
    }
}

template <typename T, int L>
RNN_FAST_INLINE void store(T* p, V<T, L> v, index_t m) {
    using VT = V<T, L>;
    if (m == L) return store<T, L>(p, v);
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) {
        _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << m) - 1), (__m512)v);
    } else if constexpr (sizeof(VT) == 64) {
        _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << m) - 1), (__m512d)v);
    } else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) {
        __m128 part = _mm256_castps256_ps128((__m256)v);
        if (m & 4) {
            _mm_storeu_ps(p, part);
            p += 4;
            part = _mm256_extractf128_ps((__m256)v, 1);
        }
        if (m & 2) {
            _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
            p += 2;
            part = _mm_movehl_ps(part, part);
        }
        if (m & 1) _mm_store_ss(p, part);
    } else if constexpr (sizeof(VT) == 32) {
        __m128d part = _mm256_castpd256_pd128((__m256d)v);
        if (m & 2) {
            _mm_storeu_pd(p, part);
            p += 2;
            part = _mm256_extractf128_pd((__m256d)v, 1);
        }
        if (m & 1) _mm_store_sd(p, part);
    } else {
        for (index_t i = 0; i < m; ++i) p[i] = v[i];
    }
}

// Loads and stores of a whole vector (Full) or of its first m elements.
template <typename T, int L, bool Full>
RNN_FAST_INLINE V<T, L> ld(const T* p, index_t m) {
    if constexpr (Full) return load<T, L>(p);
    else return load<T, L>(p, m);
}
template <typename T, int L, bool Full>
RNN_FAST_INLINE void st(T* p, V<T, L> v, index_t m) {
    if constexpr (Full) store<T, L>(p, v);
    else store<T, L>(p, v, m);
}

// body(k, full, m) for the vectors k = 0, L, 2L, ... of n elements: whole
// ones with full = std::true_type (m = L), then at most one tail of m < L
// elements with std::false_type, so that the main loop has no tail checks.
template <typename T, int L, typename Body>
RNN_FAST_INLINE void for_vectors(index_t n, Body&& body) {
    index_t k = 0;
    for (; k + L <= n; k += L) body(k, std::true_type{}, index_t(L));
    if (k < n) body(k, std::false_type{}, n - k);
}

// Lane-wise min, max (either of equal values; the second operand where one
// is NaN, which callers put back) and floor: one instruction on AVX2 and
// AVX-512, compares and conversions on the baseline (SSE2 has no round).
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vmin(V<T, L> a, V<T, L> b) {
    using VT = V<T, L>;
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) return (VT)_mm512_min_ps((__m512)a, (__m512)b);
    else if constexpr (sizeof(VT) == 64) return (VT)_mm512_min_pd((__m512d)a, (__m512d)b);
    else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) return (VT)_mm256_min_ps((__m256)a, (__m256)b);
    else if constexpr (sizeof(VT) == 32) return (VT)_mm256_min_pd((__m256d)a, (__m256d)b);
    else return a < b ? a : b;
}
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vmax(V<T, L> a, V<T, L> b) {
    using VT = V<T, L>;
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) return (VT)_mm512_max_ps((__m512)a, (__m512)b);
    else if constexpr (sizeof(VT) == 64) return (VT)_mm512_max_pd((__m512d)a, (__m512d)b);
    else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) return (VT)_mm256_max_ps((__m256)a, (__m256)b);
    else if constexpr (sizeof(VT) == 32) return (VT)_mm256_max_pd((__m256d)a, (__m256d)b);
    else return a > b ? a : b;
}
// a * b + c: one rounding where the instruction set has fused multiply-adds
// (kFma), whatever the optimization level (at -O1, as the sanitizer build
// compiles, GCC does not fuse a * b + c itself), else two.
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vfma(V<T, L> a, V<T, L> b, V<T, L> c) {
    using VT = V<T, L>;
    if constexpr (!kFma) return a * b + c;
    else if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) return (VT)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
    else if constexpr (sizeof(VT) == 64) return (VT)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
    else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) return (VT)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
    else if constexpr (sizeof(VT) == 32) return (VT)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
    else return a * b + c;
}
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vfloor(V<T, L> x) {
    using VT = V<T, L>;
    constexpr int down = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
    if constexpr (sizeof(VT) == 64 && sizeof(T) == 4) return (VT)_mm512_roundscale_ps((__m512)x, down);
    else if constexpr (sizeof(VT) == 64) return (VT)_mm512_roundscale_pd((__m512d)x, down);
    else if constexpr (sizeof(VT) == 32 && sizeof(T) == 4) return (VT)_mm256_round_ps((__m256)x, down);
    else if constexpr (sizeof(VT) == 32) return (VT)_mm256_round_pd((__m256d)x, down);
    else {  // truncation, corrected for negative values (|x| is small enough for the integers)
        const VT n = __builtin_convertvector(__builtin_convertvector(x, VI<T, L>), VT);
        return n > x ? n - T(1) : n;
    }
}

// Constants of the exp approximation (Cephes expf / exp, the classic
// range reduction x = n ln2 + r, |r| <= ln2 / 2, then a polynomial in r).
template <typename T>
struct ExpConst;
template <>
struct ExpConst<float> {
    static constexpr float hi = 88.3762626647949f;   // above: +inf
    static constexpr float lo = -87.3365447504019f;  // below: 0 (ln of the smallest normal)
    static constexpr int bias = 127, mant = 23;
};
template <>
struct ExpConst<double> {
    static constexpr double hi = 709.782712893384;
    static constexpr double lo = -708.396418532264;
    static constexpr int bias = 1023, mant = 52;
};

// e^x in every lane: +inf above hi, 0 below lo, NaN stays NaN.
// Relative error: at most 2 ulp for float, 3 ulp for double (tested).
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vexp(V<T, L> x) {
    using C = ExpConst<T>;
    using VT = V<T, L>;
    using VIT = VI<T, L>;
    const VT xc = vmin<T, L>(vmax<T, L>(x, splat<T, L>(C::lo)), splat<T, L>(C::hi));
    // n = round(x / ln2) = floor(x / ln2 + 1/2).
    const VT n = vfloor<T, L>(xc * T(1.44269504088896341) + T(0.5));
    VT y;
    if constexpr (sizeof(T) == 4) {
        const VT r = xc - n * 0.693359375f + n * 2.12194440e-4f;
        const VT z = r * r;
        y = ((((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r + 4.1665795894E-2f) * r +
               1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r + 1.0f);
    } else {
        const VT r = xc - n * 6.93145751953125E-1 - n * 1.42860682030941723212E-6;
        const VT rr = r * r;
        const VT p = r * ((1.26177193074810590878E-4 * rr + 3.02994407707441961300E-2) * rr +
                          9.99999999999999999910E-1);
        const VT q = ((3.00198505138664455042E-6 * rr + 2.52448340349684104192E-3) * rr +
                      2.27265548208155028766E-1) * rr + 2.00000000000000000009E0;
        y = 1.0 + 2.0 * (p / (q - p));
    }
    // 2^n from its exponent bits.
    const VIT e = (__builtin_convertvector(n, VIT) + C::bias) << C::mant;
    VT r = y * (VT)e;
    r = x > C::hi ? splat<T, L>(T(__builtin_inf())) : r;
    r = x < C::lo ? splat<T, L>(T(0)) : r;
    return x != x ? x : r;
}

// c * times / 4^k, exactly (powers of two).
constexpr float quartered(float c, int k, float times) { return k == 0 ? c * times : quartered(c / 4, k - 1, times); }

// float tanh: a rational function, odd degree 13 over even degree 6 (the
// coefficients of Eigen's generic_fast_tanh_float, which TensorFlow uses),
// on x clamped to +-9, where tanh rounds to +-1 (the fit holds to 9.1), the
// result clamped to [-1, 1]. About 15 vector operations and one division,
// against an exp and a division for the formula below. (Eigen returns x
// itself below |x| = 4e-4, where the fit is within an ulp of it anyway: three
// more operations, 4% of an inference forward at H = 50, measured.)
// Error: at most 6 ulp (tested; 4.9 measured with FMA over every float of
// magnitude 1e-3 to 40, 5.3 without):
//   tanh(x) ~ x p(x^2) / q(x^2),  p(z) = sum_k P[k] z^k,  q(z) = sum_k Q[k] z^k.
// With FMA (kFma: the instruction sets that have it; their roundings are
// the same), x is clamped instead where the fit first reaches 1 exactly,
// with nothing past 1 below (every float to 40 checked): the result needs no
// clamp of its own (two operations of ~17: a 32 x 60 x 50 x 50 inference
// forward 5% faster, 32 x 60 x 1 x 50 1.6%; measured), saturates at
// exactly +-1 (and the sigmoid at exactly 0 and 1), and the error there,
// tanh(7.9988) ~ 1 - 3.9 ulp, stays within the bound.
struct TanhRational {
    static constexpr float P[7] = {4.89352455891786e-03f, 6.37261928875436e-04f, 1.48572235717979e-05f,
                                   5.12229709037114e-08f, -8.60467152213735e-11f, 2.00018790482477e-13f,
                                   -2.76076847742355e-16f};
    static constexpr float Q[4] = {4.89352518554385e-03f, 2.26843463243900e-03f, 1.18534705686654e-04f,
                                   1.19825839466702e-06f};
    // The sigmoid's twins (below): P[k] / 4^k and 4 Q[k] / 4^k.
    static constexpr float SP[7] = {quartered(P[0], 0, 1), quartered(P[1], 1, 1), quartered(P[2], 2, 1),
                                    quartered(P[3], 3, 1), quartered(P[4], 4, 1), quartered(P[5], 5, 1),
                                    quartered(P[6], 6, 1)};
    static constexpr float SQ[4] = {quartered(Q[0], 0, 4), quartered(Q[1], 1, 4), quartered(Q[2], 2, 4),
                                    quartered(Q[3], 3, 4)};
    // With FMA: the least x whose tanh (sigmoid) comes out as 1 exactly; no
    // x below it gives more than 1, and the sigmoid's -x gives 0 exactly,
    // nothing below 0 above it (the fit passes 1 from 8.127 and 16.95 on).
    static constexpr float kTanhOne = 7.9988117f, kSigmoidOne = 15.997623f;
};

// Of M vectors at once, x[j] -> tanh(x[j]) for j >= S and sigmoid(x[j]) =
// 1/2 + tanh(x[j]/2) / 2 for j < S, each step taken for all M before the
// next: one vector's steps form a chain of ~50 cycles' latency through the
// Horner steps and the division, too long for the out-of-order window of
// this hardware to overlap more than two or three such chains; written side
// by side the M chains overlap by program order (the same operations per
// vector for any M: the same bits). A sigmoid runs on x itself, clamped to
// +-18, with the coefficients scaled by powers of two (SP, SQ: the Horner
// steps in z = x^2 = 4 (x/2)^2 give exactly 4^-k times tanh(x/2)'s, and
// x p / 4q = (x/2) p / 2q) and its result clamped to +-1/2 before adding
// 1/2: bit for bit 1/2 + tanh(x/2) / 2 (checked against the previous build
// on 5 million inputs, subnormals, infinities and NaN among them), one
// multiplication fewer and an addition for a multiply-add (the LSTM forward's
// cell: a 32 x 60 x 1 x 50 forward 0.7% faster, measured; the cell is not
// bound by them).
template <typename T, int L, int M, int S = 0>
RNN_FAST_INLINE void vtanh_rational_n(V<T, L> (&x)[M]) {
    using VT = V<T, L>;
    using C = TanhRational;
    static_assert(sizeof(T) == 4, "a float32 approximation");
    auto lim = [](int j, float t, float s) { return splat<T, L>(j < S ? s : t); };
    VT xc[M], z[M], p[M], q[M];
    // Clamp with the bound first: min/max return their second operand where
    // one is NaN, so NaN stays NaN.
    constexpr float bt = kFma ? C::kTanhOne : 9.0f, bs = kFma ? C::kSigmoidOne : 18.0f;
    for (int j = 0; j < M; ++j) xc[j] = vmin<T, L>(lim(j, bt, bs), vmax<T, L>(lim(j, -bt, -bs), x[j]));
    for (int j = 0; j < M; ++j) z[j] = xc[j] * xc[j];
    // The Horner steps fused where they can be (vfma): the clamp points
    // above hold for those roundings only.
    auto pc = [](int j, int k) { return splat<T, L>(j < S ? C::SP[k] : C::P[k]); };
    auto qc = [](int j, int k) { return splat<T, L>(j < S ? C::SQ[k] : C::Q[k]); };
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(z[j], pc(j, 6), pc(j, 5));
    for (int j = 0; j < M; ++j) q[j] = vfma<T, L>(z[j], qc(j, 3), qc(j, 2));
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(p[j], z[j], pc(j, 4));
    for (int j = 0; j < M; ++j) q[j] = vfma<T, L>(q[j], z[j], qc(j, 1));
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(p[j], z[j], pc(j, 3));
    for (int j = 0; j < M; ++j) q[j] = vfma<T, L>(q[j], z[j], qc(j, 0));
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(p[j], z[j], pc(j, 2));
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(p[j], z[j], pc(j, 1));
    for (int j = 0; j < M; ++j) p[j] = vfma<T, L>(p[j], z[j], pc(j, 0));
    for (int j = 0; j < M; ++j) p[j] = p[j] * xc[j];
    if constexpr (kFma)
        for (int j = 0; j < M; ++j) x[j] = p[j] / q[j];
    else
        for (int j = 0; j < M; ++j)
            x[j] = vmin<T, L>(lim(j, 1.0f, 0.5f), vmax<T, L>(lim(j, -1.0f, -0.5f), p[j] / q[j]));
    for (int j = 0; j < S; ++j) x[j] = T(0.5) + x[j];
}

template <typename T, int L>
RNN_FAST_INLINE V<T, L> vtanh_rational(V<T, L> x) {
    V<T, L> one[1] = {x};
    vtanh_rational_n<T, L, 1>(one);
    return one[0];
}

// 1 / (1 + e^-x) (double), 1/2 + tanh(x/2) / 2 (float: the rational tanh,
// absolute error at most 3.5 ulp of 1/2 and relative at most 3.5 ulp for
// x >= 0, tested): exactly 0 or 1 where x is far from 0.
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vsigmoid(V<T, L> x) {
    if constexpr (sizeof(T) == 4) {
        V<T, L> one[1] = {x};
        vtanh_rational_n<T, L, 1, 1>(one);
        return one[0];
    } else {
        return T(1) / (T(1) + vexp<T, L>(-x));
    }
}

// tanh: the rational function above (float); for double a rational function
// near 0, where 1 - 2 / (e^2|x| + 1) would cancel, and that formula
// elsewhere (Cephes).
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vtanh(V<T, L> x) {
    using VT = V<T, L>;
    if constexpr (sizeof(T) == 4) {
        return vtanh_rational<T, L>(x);
    } else {
        const VT ax = x < T(0) ? -x : x;
        const VT z = x * x;
        const VT p = (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z - 1.61468768441708447952E3;
        const VT q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z + 4.84406305325125486048E3;
        const VT small = x + x * (z * p / q);
        VT big = T(1) - T(2) / (vexp<T, L>(ax + ax) + T(1));
        big = x < T(0) ? -big : big;
        return ax < T(0.625) ? small : big;
    }
}

// max(x, 0) that keeps NaN, as np.maximum does.
template <typename T, int L>
RNN_FAST_INLINE V<T, L> vrelu(V<T, L> x) {
    return x < T(0) ? splat<T, L>(T(0)) : x;
}

// ------------------------------------------------------------ GEMM tile

// c (MI x NU*L, row stride ldc) = [c +] a · b over kc:
//   a: packed A, element (i, k) at a[k * MR + i] (MI <= MR rows used)
//   b: packed B sliver, element (k, j) at b[k * NV * L + j], its first NU
//      of NV vectors used (NU < NV: a sliver with few real columns)
//   next (FETCH): a B block of kc rows laid out like b, fetched into L1
//      row by row as this tile's products read b's rows, so that the tile
//      after it (the first to read that block) does not wait on L2 or L3
//   ROWS: a is not packed but MI rows of A itself, element (i, k) at
//      a[i * lda + k] (a backward's step operand when threads own rows,
//      which its cell stores as it goes: see StepOperand; the same sums)
template <typename T, int L, int MR, int NV, int MI, int NU = NV, bool FETCH = false, bool ROWS = false>
RNN_FAST_INLINE void tile(index_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, index_t ldc,
                          bool accumulate, const T* bias, const T* next = nullptr, index_t lda = 0) {
    using VT = V<T, L>;
    // Element (i, k) of A.
    const T* row[MI];
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i) row[i] = a + i * lda;
    auto at = [&](int i, index_t k) -> T {
        if constexpr (ROWS) return row[i][k];
        else return a[k * MR + i];
    };
    // Bytes of a B row, and the cache lines fetched per row of next.
    constexpr int kRowBytes = NV * L * static_cast<int>(sizeof(T)), kLines = kRowBytes >= 64 ? kRowBytes / 64 : 1;
    auto fetch = [&](index_t k) {
        if constexpr (FETCH) {
            const char* q = reinterpret_cast<const char*>(next + k * NV * L);
#pragma GCC unroll 4
            for (int l = 0; l < kLines; ++l) __builtin_prefetch(q + l * 64, 0, 3);
        }
    };
    // With one or two rows, MI * NV chains of dependent FMAs cannot cover the
    // FMA latency: keep KS partial sums over k mod KS, added at the end.
    constexpr int KS = MI <= 2 ? 4 : 1;
    // C's rows are far apart (ldc) and long out of cache: fetch them while
    // the products run, so that the final update does not stall on them.
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i) {
        __builtin_prefetch(c + i * ldc, 1);
        __builtin_prefetch(c + i * ldc + NU * L - 1, 1);
    }
    VT acc[KS][MI][NU];
#pragma GCC unroll 4
    for (int p = 0; p < KS; ++p)
#pragma GCC unroll 16
        for (int i = 0; i < MI; ++i)
#pragma GCC unroll 4
            for (int v = 0; v < NU; ++v) acc[p][i][v] = VT{};
    index_t k = 0;
    // Unrolled four times: less loop overhead among the FMAs (products
    // 1.5% faster, 184 -> 187 GFLOP/s on 6400 x 512 x 2048; a 32 x 60 x 50 x
    // 50 LSTM backward 4%; eight times gained nothing more; measured).
#pragma GCC unroll 4
    for (; k + KS <= kc; k += KS) {
#pragma GCC unroll 4
        for (int p = 0; p < KS; ++p) {
            fetch(k + p);
            VT bv[NU];
#pragma GCC unroll 4
            for (int v = 0; v < NU; ++v) bv[v] = load<T, L>(b + ((k + p) * NV + v) * L);
#pragma GCC unroll 16
            for (int i = 0; i < MI; ++i) {
                const T ai = at(i, k + p);
#pragma GCC unroll 4
                for (int v = 0; v < NU; ++v) acc[p][i][v] += ai * bv[v];
            }
        }
    }
    for (; k < kc; ++k) {
        fetch(k);
#pragma GCC unroll 16
        for (int i = 0; i < MI; ++i) {
            const T ai = at(i, k);
#pragma GCC unroll 4
            for (int v = 0; v < NU; ++v) acc[0][i][v] += ai * load<T, L>(b + (k * NV + v) * L);
        }
    }
    // What the sums are added to when not accumulating: the bias, or nothing.
    VT base[NU];
#pragma GCC unroll 4
    for (int v = 0; v < NU; ++v) base[v] = bias != nullptr ? load<T, L>(bias + v * L) : VT{};
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i)
#pragma GCC unroll 4
        for (int v = 0; v < NU; ++v) {
            VT sum = acc[0][i][v];
#pragma GCC unroll 4
            for (int p = 1; p < KS; ++p) sum += acc[p][i][v];
            T* q = c + i * ldc + v * L;
            store<T, L>(q, accumulate ? load<T, L>(q) + sum : bias != nullptr ? base[v] + sum : sum);
        }
}

// ------------------------------------------------------------ cells
// Helpers of the cells' bodies (csrc/cells/*.h, compiled after this file
// for each instruction set). A body works element-wise over `rows` rows of n values each (any n: the last vector of
// a row is partial), so that one call covers a whole GEMM tile. Each array
// has its own row stride (*_rs); a gate block q of an array with gate stride
// gs is p[q * gs + k]; acc is the step's recurrent GEMM tile (row stride
// acc_rs, gate stride as), added to the input part; acc is read whole vectors
// at a time, tails included, so it must be readable up to a vector past each
// gate's last unit (the lanes past n are never stored).

// The cells fetch the operands of the row kAhead rows on while they work on
// a row: with large layers these come from L3 or memory (the input
// projection wrote the gates of every step before the time loop), and a
// fetch at the start of the tile's last products arrives too early for a
// tile of many rows, evicted again by the weights streaming through L1
// (large LSTM training forward 5%, inference 2-3% faster, measured; the
// forward cells only: the LSTM backward's gained nothing).
constexpr index_t kAhead = 2;

// Fetches the lines of n values at p (W = 1: lines about to be written).
template <int W, typename T>
RNN_FAST_INLINE void fetch_row(const T* p, index_t n) {
    for (index_t u = 0; u < n; u += 64 / index_t(sizeof(T))) __builtin_prefetch(p + u, W);
}

// Inverted dropout of the element pairs [j0, j1) (see layers.h): pair j's
// draw is splitmix64(seed, j), whose low 32 bits decide element 2j and high
// 32 bits element 2j + 1 (kept, times scale, below threshold <= 2^32; else
// 0). Lanes of 64-bit draws, multiplies and all, then the draws' 32-bit
// halves compared in place: in memory order they are the elements' order.
// (double, and SSE2's two-draw vectors, whose emulated 64-bit multiplies
// ran 15% slower than scalar code: the same draws, a pair at a time.)
// float on AVX2: 59 -> 39 us for 96,000 elements, measured.
template <typename T, int L>
RNN_FAST_INLINE void dropout_pairs(index_t j0, index_t j1, const T* x, T* y, T* mask, std::uint64_t threshold,
                                   T scale, std::uint64_t seed) {
    index_t j = j0;
    if constexpr (sizeof(T) == 4 && L >= 8) {
        constexpr int P = L / 2;  // pairs per vector
        using U64 = typename Vec<std::uint64_t, P>::type;
        using U32 = typename Vec<std::uint32_t, L>::type;
        U64 lane{};
        for (int i = 0; i < P; ++i) lane[i] = std::uint64_t(i + 1);
        const bool all = threshold >= (std::uint64_t(1) << 32);
        const U32 limit = U32{} + static_cast<std::uint32_t>(all ? 0 : threshold);
        const VI<T, L> keep_bits = (VI<T, L>)splat<T, L>(scale);
        for (; j + P <= j1; j += P) {
            U64 z = (U64{} + std::uint64_t(j)) + lane;
            z = (U64{} + seed) + z * 0x9E3779B97F4A7C15ull;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z = z ^ (z >> 31);
            const VI<T, L> kept = all ? VI<T, L>{} - 1 : (VI<T, L>)((U32)z < limit);
            const V<T, L> m = (V<T, L>)(kept & keep_bits);
            store<T, L>(mask + 2 * j, m);
            store<T, L>(y + 2 * j, load<T, L>(x + 2 * j) * m);
        }
    }
    for (; j < j1; ++j) {
        const std::uint64_t z = splitmix64(seed, static_cast<std::uint64_t>(j));
        const T m0 = keep_bit<T>(z & 0xFFFFFFFFull, threshold) * scale, m1 = keep_bit<T>(z >> 32, threshold) * scale;
        mask[2 * j] = m0;
        mask[2 * j + 1] = m1;
        y[2 * j] = x[2 * j] * m0;
        y[2 * j + 1] = x[2 * j + 1] * m1;
    }
}

// Sums of a backward's dA (see Kernels::loop_sums). The dot products keep
// one vector of partial sums (lane i takes the elements i mod L), added lane
// by lane in order at the end.
template <typename T, int L>
RNN_FAST_INLINE void loop_sums(index_t rows, index_t n, index_t d, const T* da, index_t da_rs, const T* x,
                                 index_t x_rs, const T* Wx, T* dx, T* part, T* db) {
    for (index_t r = 0; r < rows; ++r, da += da_rs, x += x_rs, dx += x_rs) {
        for (index_t j = 0; j < d; ++j) {
            const T* w = Wx + j * n;
            T* p = part + j * n;
            const V<T, L> xj = splat<T, L>(x[j]);
            V<T, L> sum = V<T, L>{};
            for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
                constexpr bool F = decltype(full)::value;
                const V<T, L> v = ld<T, L, F>(da + k, m);
                sum += v * ld<T, L, F>(w + k, m);
                st<T, L, F>(p + k, ld<T, L, F>(p + k, m) + xj * v, m);
            });
            T s = sum[0];
            for (int i = 1; i < L; ++i) s += sum[i];
            dx[j] = s;
        }
        if (db == nullptr) continue;
        for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
            constexpr bool F = decltype(full)::value;
            st<T, L, F>(db + k, ld<T, L, F>(db + k, m) + ld<T, L, F>(da + k, m), m);
        });
    }
}

template <typename T, int L>
RNN_FAST_INLINE void sigmoid_array(index_t n, const T* x, T* y) {
    for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
        constexpr bool F = decltype(full)::value;
        st<T, L, F>(y + k, vsigmoid<T, L>(ld<T, L, F>(x + k, m)), m);
    });
}

template <typename T, int L>
RNN_FAST_INLINE void tanh_array(index_t n, const T* x, T* y) {
    for_vectors<T, L>(n, [&](index_t k, auto full, index_t m) {
        constexpr bool F = decltype(full)::value;
        st<T, L, F>(y + k, vtanh<T, L>(ld<T, L, F>(x + k, m)), m);
    });
}

template <typename T, int L>
RNN_FAST_INLINE T fma_chains(index_t iters) {
    using VT = V<T, L>;
    VT acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = splat<T, L>(T(i) * T(1e-3));
    const VT m = splat<T, L>(T(0.999999)), c = splat<T, L>(T(1e-6));
    for (index_t k = 0; k < iters; ++k) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = acc[i] * m + c;
    }
    VT sum = acc[0];
#pragma GCC unroll 12
    for (int i = 1; i < 12; ++i) sum += acc[i];
    return sum[0];
}

