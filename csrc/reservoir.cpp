// The leaky reservoir (reservoir.h): building SELL-16 matrices and the time
// loop. The per-slice math is the kernels' leaky_slices (reservoir-inl.h).
#include "reservoir.h"

#include <omp.h>

#include <algorithm>

namespace rnn_fast {

template <typename T>
std::vector<std::int32_t> Sell<T>::by_length(const Csr<T>& a) {
    std::vector<std::int32_t> row(static_cast<std::size_t>(a.rows));
    for (index_t r = 0; r < a.rows; ++r) row[r] = static_cast<std::int32_t>(r);
    auto length = [&](std::int32_t r) { return a.indptr[r + 1] - a.indptr[r]; };
    for (index_t w = 0; w < a.rows; w += kWindow)
        std::stable_sort(row.begin() + w, row.begin() + std::min(a.rows, w + kWindow),
                         [&](std::int32_t p, std::int32_t q) { return length(p) > length(q); });
    return row;
}

template <typename T>
bool Sell<T>::dense_is_cheaper(const Csr<T>& a) {
    const double entries = static_cast<double>(a.rows) * static_cast<double>(a.cols);
    const double per_entry = sizeof(T) / (entries * sizeof(T) <= 512 * 1024 ? 32.0 : 16.0);
    return entries * per_entry <= static_cast<double>(a.nnz());
}

template <typename T>
Sell<T>::Sell(const Csr<T>& a, bool dense, std::vector<std::int32_t> row)
    : rows_(a.rows), cols_(a.cols), dense_(dense && a.rows > 0 && a.cols > 0), row_(std::move(row)) {
    const index_t S = slices();
    start_.assign(static_cast<std::size_t>(S + 1), 0);
    if (rows_ == 0 || cols_ == 0) return;
    auto source = [&](index_t i) -> index_t { return row_.empty() ? i : row_[i]; };  // lane i's row
    if (dense_) {  // slice s holds every column k of its rows at start + 16k + lane
        for (index_t s = 0; s <= S; ++s) start_[s] = s * kSellSlice * cols_;
        val_.assign(static_cast<std::size_t>(start_[S]), T(0));
        for (index_t i = 0; i < rows_; ++i) {
            T* slice = val_.data() + start_[i / kSellSlice] + i % kSellSlice;
            const index_t r = source(i);
            for (std::int64_t e = a.indptr[r]; e < a.indptr[r + 1]; ++e) slice[a.indices[e] * kSellSlice] += a.data[e];
        }
        return;
    }
    for (index_t s = 0; s < S; ++s) {
        index_t width = 0;
        for (index_t i = s * kSellSlice; i < std::min(rows_, (s + 1) * kSellSlice); ++i)
            width = std::max<index_t>(width, a.indptr[source(i) + 1] - a.indptr[source(i)]);
        start_[s + 1] = start_[s] + width * kSellSlice;
    }
    val_.assign(static_cast<std::size_t>(start_[S]), T(0));
    col_.assign(static_cast<std::size_t>(start_[S]), 0);
    for (index_t i = 0; i < rows_; ++i) {
        const index_t s = i / kSellSlice, r = source(i), first = a.indptr[r], len = a.indptr[r + 1] - first;
        const index_t width = (start_[s + 1] - start_[s]) / kSellSlice;
        T* val = val_.data() + start_[s] + i % kSellSlice;
        std::int32_t* col = col_.data() + start_[s] + i % kSellSlice;
        for (index_t k = 0; k < width; ++k) {
            val[k * kSellSlice] = k < len ? a.data[first + k] : T(0);
            col[k * kSellSlice] = static_cast<std::int32_t>(
                k < len ? a.indices[first + k] : (len > 0 ? a.indices[first + len - 1] : 0));
        }
    }
    if (!row_.empty()) row_.resize(static_cast<std::size_t>(S * kSellSlice), 0);  // padding lanes: row 0
}

template <typename T>
LeakyReservoir<T>::LeakyReservoir(const Csr<T>& W, const Csr<T>& Win, const T* bias, const T* lr,
                                  LeakyActivation activation)
    : activation_(activation) {
    const bool dense = Sell<T>::dense_is_cheaper(W);
    W_ = Sell<T>(W, dense, dense ? std::vector<std::int32_t>() : Sell<T>::by_length(W));
    std::vector<std::int32_t> order(W_.row().begin(), W_.row().begin() + (W_.row().empty() ? 0 : W.rows));
    Win_ = Sell<T>(Win, Sell<T>::dense_is_cheaper(Win), std::move(order));
    const index_t U = W.rows, padded = W_.slices() * kSellSlice;
    bias_.assign(static_cast<std::size_t>(padded), T(0));
    lr_.assign(static_cast<std::size_t>(padded), T(0));
    keep_.assign(static_cast<std::size_t>(padded), T(0));
    for (index_t i = 0; i < U; ++i) {
        const index_t r = W_.row().empty() ? i : W_.row()[i];
        bias_[i] = bias[r];
        lr_[i] = lr[r];
        keep_[i] = T(1) - lr[r];
    }
}

template <typename T>
LeakyArgs<T> LeakyReservoir<T>::args() const {
    LeakyArgs<T> a;
    a.w = W_.view();
    a.win = Win_.view();
    if (Win_.cols() == 0) a.win.rows = 0;
    a.bias = bias_.data();
    a.lr = lr_.data();
    a.keep = keep_.data();
    a.activation = static_cast<int>(activation_);
    return a;
}

// Below this many stored entries a step (W's and Win's), one thread runs a
// sequence: the barrier that ends every step of a shared run costs more
// than the second thread saves.
constexpr index_t kThreadedWork = 16384;

template <typename T>
void LeakyReservoir<T>::run_one(index_t T_, const T* u, const T* x0, T* x, int nthreads, Stop& stop) const {
    const Kernels<T>& k = kernels<T>();
    const index_t U = units(), D = inputs(), S = W_.slices();
    const index_t work = W_.stored() + Win_.stored();
    const LeakyArgs<T> base = args();
    auto step = [&](LeakyArgs<T>& a, index_t t, index_t s0, index_t s1) {
        a.xp = t > 0 ? x + (t - 1) * U : x0;
        a.u = u + t * D;
        a.x = x + t * U;
        k.leaky_slices(a, s0, s1);
    };
    if (nthreads <= 1 || work < kThreadedWork || S < 2) {
        LeakyArgs<T> a = base;
        for (index_t t = 0; t < T_ && !stop.poll(); ++t) step(a, t, 0, S);
        return;
    }
    // Slices shared by their entries: cum[s] entries in slices before s.
    std::vector<index_t> cum(static_cast<std::size_t>(S + 1), 0);
    const SellView<T> w = base.w, win = Win_.view();
    for (index_t s = 0; s < S; ++s)
        cum[s + 1] = cum[s] + (w.start[s + 1] - w.start[s]) + (win.start[s + 1] - win.start[s]) + kSellSlice;
    const int team = static_cast<int>(std::min<index_t>(nthreads, S));
    // Each thread writes its own slices' rows of step t, and reads all of
    // step t - 1: the barrier ends every step. Stopped (stop.h), all threads
    // end after the step whose barrier follows the caller's finding it so.
    std::atomic<index_t> stop_at{T_};
#pragma omp parallel num_threads(team)
    {
        const index_t nt = omp_get_num_threads(), i = omp_get_thread_num();
        // At a window's first slice: the rows of a window, which its slices
        // hold in any order, are written by one thread (no shared lines).
        constexpr index_t window = Sell<T>::kWindow / kSellSlice;
        auto bound = [&](index_t j) {
            const index_t s = std::lower_bound(cum.begin(), cum.end(), cum[S] * j / nt) - cum.begin();
            return std::min(S, (s + window / 2) / window * window);
        };
        const index_t s0 = i == 0 ? 0 : bound(i), s1 = i + 1 == nt ? S : bound(i + 1);
        LeakyArgs<T> a = base;
        for (index_t t = 0; t < T_; ++t) {
            if (s0 < s1) step(a, t, s0, s1);
            if (stop.owner() && stop.poll()) stop_at.store(t, std::memory_order_relaxed);
#pragma omp barrier
            if (stop_at.load(std::memory_order_relaxed) <= t) break;
        }
    }
}

template <typename T>
void LeakyReservoir<T>::run(index_t N, index_t T_, const T* u, const T* x0, T* x, int nthreads) const {
    const index_t U = units(), D = inputs();
    if (N == 0 || T_ == 0 || U == 0) return;
    Stop stop;  // a copy for each thread: their polls' counts are their own
    if (N == 1 || nthreads <= 1) {
        for (index_t n = 0; n < N; ++n) run_one(T_, u + n * T_ * D, x0 + n * U, x + n * T_ * U, nthreads, stop);
        return stop.check();
    }
    // Whole sequences to threads: each writes only its own sequence's states.
#pragma omp parallel for num_threads(static_cast<int>(std::min<index_t>(nthreads, N))) schedule(dynamic, 1) \
    firstprivate(stop)
    for (index_t n = 0; n < N; ++n) run_one(T_, u + n * T_ * D, x0 + n * U, x + n * T_ * U, 1, stop);
    stop.check();
}

template class Sell<float>;
template class Sell<double>;
template class LeakyReservoir<float>;
template class LeakyReservoir<double>;

}  // namespace rnn_fast
