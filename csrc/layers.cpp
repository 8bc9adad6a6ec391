#include "layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"

namespace rnn_fast {

namespace {

void check_indices(const std::int64_t* idx, index_t count, index_t V, const char* name) {
    for (index_t k = 0; k < count; ++k)
        check(idx[k] >= 0 && idx[k] < V,
              std::string(name) + " holds index " + std::to_string(idx[k]) + " at flat position " +
                  std::to_string(k) + ", outside [0, " + std::to_string(V) + ")");
}

}  // namespace

template <typename F>
void temporal_affine_forward(F* out, const F* x, const F* w, const F* b, index_t N, index_t T,
                             index_t D, index_t M, int nthreads) {
    fill_rows(out, N * T, M, M, b, nthreads);
    gemm<F>(N * T, M, D, dense_rows(x, D), false, dense_rows(w, M), false, true, out, M, nthreads);
}

template <typename F>
void temporal_affine_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                              index_t N, index_t T, index_t D, index_t M, int nthreads) {
    gemm<F>(N * T, D, M, dense_rows(dout, M), false, dense_rows(w, M), true, false, dx, D, nthreads);
    gemm<F>(D, M, N * T, dense_rows(x, D), true, dense_rows(dout, M), false, false, dw, M, nthreads);
    column_sums(db, dout, N * T, M, nthreads);
}

template <typename F>
void word_embedding_forward(F* out, const std::int64_t* x, const F* W, index_t N, index_t T,
                            index_t V, index_t D, int nthreads) {
    check_indices(x, N * T, V, "x");
    // Each (n,t) writes its own output row.
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && N * T * D >= (1 << 15))
    for (index_t k = 0; k < N * T; ++k) std::memcpy(out + k * D, W + x[k] * D, sizeof(F) * D);
}

template <typename F>
void word_embedding_backward(F* dW, const F* dout, const std::int64_t* x, index_t N, index_t T,
                             index_t V, index_t D, int nthreads) {
    check_indices(x, N * T, V, "x");
    std::fill(dW, dW + V * D, F(0));
    // Threads own disjoint column ranges of dW, so repeated indices never
    // race, and every element sums its rows in (n,t) order.
    constexpr index_t kChunk = 64;
    const index_t chunks = (D + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && chunks > 1 && N * T * D >= (1 << 15))
    for (index_t q = 0; q < chunks; ++q) {
        const index_t j0 = q * kChunk, j1 = std::min(D, j0 + kChunk);
        for (index_t k = 0; k < N * T; ++k) {
            F* row = dW + x[k] * D;
            const F* g = dout + k * D;
            for (index_t j = j0; j < j1; ++j) row[j] += g[j];
        }
    }
}

template <typename F>
double temporal_softmax_loss(F* dx, const F* x, const std::int64_t* y, const F* mask, index_t N,
                             index_t T, index_t V, int nthreads) {
    check_indices(y, N * T, V, "y");
    std::vector<double> row_loss(static_cast<std::size_t>(N * T));
    // Rows are independent; their losses are summed afterwards in row order.
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && N * T * V >= (1 << 15))
    for (index_t k = 0; k < N * T; ++k) {
        const F* s = x + k * V;
        F* d = dx + k * V;
        F mx = -INFINITY;
        for (index_t v = 0; v < V; ++v) mx = std::max(mx, s[v]);
        if (std::isnan(mx) || V == 0) mx = 0;
        F sum = 0;
        for (index_t v = 0; v < V; ++v) sum += (d[v] = std::exp(s[v] - mx));
        // log p[y] = s[y] - max - log(sum): finite even where p[y] underflows.
        const F log_py = s[y[k]] - mx - std::log(sum);
        row_loss[k] = -static_cast<double>(mask[k]) * static_cast<double>(log_py);
        const F scale = mask[k] / static_cast<F>(N);
        for (index_t v = 0; v < V; ++v) d[v] = d[v] / sum * scale;
        d[y[k]] -= scale;
    }
    double loss = 0;
    for (double l : row_loss) loss += l;
    // An empty batch (N = 0) has no mean: NaN, as NumPy's 0 / 0.
    return N > 0 ? loss / static_cast<double>(N) : std::numeric_limits<double>::quiet_NaN();
}

template <typename F>
void dropout_forward(F* y, F* mask, const F* x, index_t n, double keep, std::uint64_t seed, int nthreads) {
    const std::uint64_t threshold = static_cast<std::uint64_t>(std::llround(keep * 4294967296.0));
    const F scale = F(1) / static_cast<F>(keep);
    const index_t pairs = n / 2;
    const Kernels<F>& uk = kernels<F>();
    // Each pair of elements is one 64-bit draw, written by one thread; a
    // thread takes whole blocks of pairs (the draws do not depend on them).
    constexpr index_t kBlock = 4096;
    const index_t blocks = (pairs + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && n >= (1 << 16))
    for (index_t q = 0; q < blocks; ++q)
        uk.dropout(q * kBlock, std::min(pairs, (q + 1) * kBlock), x, y, mask, threshold, scale, seed);
    if (n % 2 != 0) {
        const std::uint64_t z = splitmix64(seed, static_cast<std::uint64_t>(pairs));
        mask[n - 1] = keep_bit<F>(z & 0xFFFFFFFFull, threshold) * scale;
        y[n - 1] = x[n - 1] * mask[n - 1];
    }
}

template <typename F>
void dropout_backward(F* dx, const F* dy, const F* mask, index_t n, int nthreads) {
    // Blocks of whole cache lines, each written by one thread.
    constexpr index_t kBlock = 8192;
    const index_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && n >= (1 << 16))
    for (index_t q = 0; q < blocks; ++q) {
        const index_t end = std::min(n, (q + 1) * kBlock);
        for (index_t i = q * kBlock; i < end; ++i) dx[i] = dy[i] * mask[i];
    }
}

namespace {

// The step over [0, n) (restrict: the arrays are distinct, checked by the
// caller; with possible aliasing, or sqrt setting errno (-fno-math-errno in
// setup.py), the loop would not use vector square roots: ~3x slower).
template <typename F, bool kAmsgrad>
void adam_range(F* __restrict w, const F* __restrict g, F* __restrict m, F* __restrict v, F* __restrict vhat,
                index_t n, F alpha, F c1, F c2, F epsilon) {
    for (index_t i = 0; i < n; ++i) {
        const F gi = g[i];
        const F mi = m[i] + (gi - m[i]) * c1;
        F vi = v[i] + (gi * gi - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        if constexpr (kAmsgrad) {  // np.maximum: NaN if either is
            const F h = vhat[i];
            vi = h != h || vi != vi ? h + vi : (h > vi ? h : vi);
            vhat[i] = vi;
        }
        w[i] -= alpha * mi / (std::sqrt(vi) + epsilon);
    }
}

}  // namespace

template <typename F>
void adam_update(index_t count, F* const* w, const F* const* g, F* const* m, F* const* v, F* const* vhat,
                 const index_t* n, F alpha, F one_minus_beta_1, F one_minus_beta_2, F epsilon, int nthreads) {
    // Elements are independent: any split gives the same values. Work items:
    // chunks of up to kChunk elements of one array, shared out in one region.
    constexpr index_t kChunk = 1 << 14;
    index_t items = 0;
    for (index_t s = 0; s < count; ++s) items += (n[s] + kChunk - 1) / kChunk;
    std::vector<std::pair<index_t, index_t>> work;  // (array, first element)
    work.reserve(static_cast<std::size_t>(items));
    for (index_t s = 0; s < count; ++s)
        for (index_t i = 0; i < n[s]; i += kChunk) work.emplace_back(s, i);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && items > 3)
    for (index_t q = 0; q < items; ++q) {
        const index_t s = work[q].first, i = work[q].second, k = std::min(kChunk, n[s] - i);
        if (vhat != nullptr)
            adam_range<F, true>(w[s] + i, g[s] + i, m[s] + i, v[s] + i, vhat[s] + i, k, alpha, one_minus_beta_1,
                                one_minus_beta_2, epsilon);
        else
            adam_range<F, false>(w[s] + i, g[s] + i, m[s] + i, v[s] + i, nullptr, k, alpha, one_minus_beta_1,
                                 one_minus_beta_2, epsilon);
    }
}

#define RNN_FAST_INSTANTIATE(F)                                                                         \
    template void temporal_affine_forward<F>(F*, const F*, const F*, const F*, index_t, index_t, index_t, \
                                             index_t, int);                                             \
    template void temporal_affine_backward<F>(F*, F*, F*, const F*, const F*, const F*, index_t, index_t, \
                                              index_t, index_t, int);                                   \
    template void word_embedding_forward<F>(F*, const std::int64_t*, const F*, index_t, index_t, index_t, \
                                            index_t, int);                                              \
    template void word_embedding_backward<F>(F*, const F*, const std::int64_t*, index_t, index_t,       \
                                             index_t, index_t, int);                                    \
    template double temporal_softmax_loss<F>(F*, const F*, const std::int64_t*, const F*, index_t,      \
                                             index_t, index_t, int);                                    \
    template void dropout_forward<F>(F*, F*, const F*, index_t, double, std::uint64_t, int);             \
    template void dropout_backward<F>(F*, const F*, const F*, index_t, int);                            \
    template void adam_update<F>(index_t, F* const*, const F* const*, F* const*, F* const*, F* const*,      \
                                 const index_t*, F, F, F, F, int);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
