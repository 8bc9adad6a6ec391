// Echo state networks' reservoir (rnn_fast.reservoir): a leaky cell with
// fixed random weights, most of them zero, run forward only (only the
// readout is trained, outside). For each sequence n and step t,
//   x[t] = (1 - lr) * x[t-1] + lr * f(W · x[t-1] + Win · u[t] + bias),
// x[-1] = x0, f = tanh, identity, relu or sigmoid (LeakyActivation).
// Dimensions (see common.h for the rest): U = units, N = sequences:
//   u (N,T,D), x0 (N,U); x (N,T,U) out; W (U,U), Win (U,D); bias, lr (U).
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"
#include "kernels.h"
#include "stop.h"

namespace rnn_fast {

enum class LeakyActivation { tanh = 0, identity = 1, relu = 2, sigmoid = 3 };

// A rows x cols matrix as compressed sparse rows: row r's entries are at
// [indptr[r], indptr[r + 1]) of indices (columns, each < cols; repeats add
// up) and data, indptr[0] = 0. The bindings check them.
template <typename T>
struct Csr {
    index_t rows = 0, cols = 0;
    const std::int64_t* indptr = nullptr;
    const std::int64_t* indices = nullptr;
    const T* data = nullptr;
    index_t nnz() const { return indptr[rows]; }
};

// A matrix in SELL-16 (sliced ELLPACK with 16-row slices; the layout is
// SellView's, kernels.h): each slice as wide as its longest row, shorter
// rows padded with zeros (in a column the row already has, so a padded
// entry multiplies a value the row reads anyway). Or dense (every column,
// zeros included: a broadcast operand instead of a gather), when that is
// the cheaper (dense_is_cheaper).
template <typename T>
class Sell {
public:
    Sell() = default;
    // a's rows in the order `row` (a permutation of 0 .. rows - 1; empty
    // for 0, 1, ...), dense or not.
    Sell(const Csr<T>& a, bool dense, std::vector<std::int32_t> row = {});

    // Rows longest first within windows of kWindow rows: slices of rows of
    // like lengths, so little padding (a 10%-full 1,000 x 1,000 matrix: 19%
    // more entries than nonzeros in the rows' order, 4% so), while each
    // window's rows, which one thread writes, stay apart from the next's.
    static constexpr index_t kWindow = 4 * kSellSlice;
    static std::vector<std::int32_t> by_length(const Csr<T>& a);
    // Whether a dense step is cheaper than a sparse one. A sparse entry
    // costs ~0.33 ns (its operand's load, whatever the matrix's size), a
    // dense one its bytes at the cache's bandwidth: a quarter of that
    // (double) or an eighth (float) from L2, half as fast beyond 512 KiB
    // (measured on this Zen 4: 1,000 units at 10%, 100 units at 100%).
    static bool dense_is_cheaper(const Csr<T>& a);

    SellView<T> view() const {
        return {rows_, start_.data(), col_.empty() ? nullptr : col_.data(), val_.data(),
                row_.empty() ? nullptr : row_.data()};
    }
    index_t rows() const { return rows_; }
    index_t cols() const { return cols_; }
    index_t slices() const { return (rows_ + kSellSlice - 1) / kSellSlice; }
    // Entries read a step, padding included.
    index_t stored() const { return static_cast<index_t>(val_.size()); }
    bool dense() const { return dense_; }
    const std::vector<std::int32_t>& row() const { return row_; }

private:
    index_t rows_ = 0, cols_ = 0;
    bool dense_ = false;
    std::vector<index_t> start_{0};
    std::vector<std::int32_t> col_, row_;
    std::vector<T> val_;
};

// A reservoir's weights, fixed at construction, and its run.
template <typename T>
class LeakyReservoir {
public:
    // W (U x U) and Win (U x D); bias, lr (U values each).
    LeakyReservoir(const Csr<T>& W, const Csr<T>& Win, const T* bias, const T* lr, LeakyActivation activation);

    index_t units() const { return W_.rows(); }
    index_t inputs() const { return Win_.cols(); }
    const Sell<T>& W() const { return W_; }
    const Sell<T>& Win() const { return Win_; }

    // x (N,T,U) = the states of the N sequences u (N,T,D) from x0 (N,U).
    // Sequences go to threads whole when there are several; one sequence's
    // steps are shared by slices among threads when its weights are many.
    void run(index_t N, index_t T_, const T* u, const T* x0, T* x, int nthreads) const;

private:
    LeakyArgs<T> args() const;
    void run_one(index_t T_, const T* u, const T* x0, T* x, int nthreads, Stop& stop) const;

    Sell<T> W_, Win_;
    std::vector<T> bias_, lr_, keep_;  // in the slices' order, padded to whole slices
    LeakyActivation activation_;
};

}  // namespace rnn_fast
