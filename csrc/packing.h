// Sequences of different lengths in one batch, as PyTorch's packed
// sequences (pack_padded_sequence with enforce_sorted=False): row n of a
// padded batch-first (N,T,...) array has steps 0 .. lengths[n]-1 only (times
// lengths[n]-1 down to 0 when reverse). The time loops run on them packed:
// rows sorted by length, longest first (ties in row order), so that step
// s's rows are the first rows[s] rows; the valid steps alone stored, so that
// every product over all steps (the input projection, the weight gradients)
// reads the valid rows alone: no padded step costs a flop. They are stored
// by the time loop's row blocks (RowBlocks of the ISA's mr): block b's
// steps one after the other, and in each step the block's rows that have it,
// so that a thread's blocks keep to their own memory as in a batch-first
// array (stored step-major, two threads' rows of a step side by side, a 32 x
// 60 x 50 x 50 LSTM inference with every length T ran 14% slower than
// without lengths, on 2 threads; 5% on one, measured).
#pragma once

#include <omp.h>

#include <algorithm>
#include <vector>

#include "gemm.h"

namespace rnn_fast {

// Where row n's time t of a sequence array lives, in rows of the array:
// batch first (N,T,...), at n * T + t; or packed (base given): row blocks
// (block_start, count + 1 values; block_of, N), block b's time t from
// base[b * T + t] on, where only the rows n < rows[t] have time t.
struct SeqLayout {
    index_t T = 0;                         // steps
    const index_t* base = nullptr;         // packed: (blocks, T) first positions
    const index_t* rows = nullptr;         // packed: the rows of each step, non-increasing
    const index_t* block_of = nullptr;     // packed: each row's block
    const index_t* block_start = nullptr;  // packed: each block's first row

    index_t at(index_t n, index_t t) const {
        if (base == nullptr) return n * T + t;
        const index_t b = block_of[n];
        return base[b * T + t] + n - block_start[b];
    }
    // Between the rows of one time in one row block, in rows of the array.
    index_t stride() const { return base != nullptr ? 1 : T; }
    // The rows of [row0, row0 + mi) that have time t, counted from row0.
    int live(index_t t, index_t row0, int mi) const {
        if (rows == nullptr) return mi;
        return static_cast<int>(std::clamp<index_t>(rows[t] - row0, 0, mi));
    }
};

// A batch's lengths, sorted and packed (see the top of this file).
struct Packing {
    index_t N = 0, T = 0;  // the padded arrays' rows and times
    index_t mr = 0;        // the time loops' row blocks are RowBlocks(N, ., mr)
    index_t steps = 0;     // the longest length
    index_t P = 0;         // the sum of the lengths: rows of a packed array
    bool reverse = false;  // the rows' steps run from their last time down
    std::vector<index_t> order;   // sorted row i is row order[i] of the padded arrays
    std::vector<index_t> length;  // of sorted row i
    std::vector<index_t> rows;    // steps values; base, block_of, block_start: see SeqLayout
    std::vector<index_t> base, block_of, block_start;

    // lengths: N values in [0, T] (checked by the caller); mr: the ISA's.
    Packing(const std::int64_t* lengths, index_t N_, index_t T_, bool reverse_, index_t mr_)
        : N(N_), T(T_), mr(mr_), reverse(reverse_), order(N_), length(N_), block_of(N_) {
        for (index_t n = 0; n < N; ++n) order[n] = n;
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return lengths[a] > lengths[b]; });
        for (index_t i = 0; i < N; ++i) length[i] = lengths[order[i]];
        steps = N > 0 ? length[0] : 0;
        rows.assign(steps, 0);
        for (index_t i = 0; i < N; ++i)
            for (index_t s = 0; s < length[i]; ++s) ++rows[s];
        if (N == 0) {
            block_start.push_back(0);
            return;
        }
        const RowBlocks blocks(N, 0, mr);
        base.assign(blocks.count * steps, 0);
        for (index_t b = 0; b <= blocks.count; ++b) block_start.push_back(blocks.start(b));
        for (index_t b = 0; b < blocks.count; ++b) {
            for (index_t n = blocks.start(b); n < blocks.start(b + 1); ++n) block_of[n] = b;
            for (index_t s = 0; s < steps; ++s) {
                base[b * steps + s] = P;
                P += std::clamp<index_t>(rows[s] - blocks.start(b), 0, blocks.size(b));
            }
        }
    }

    SeqLayout layout() const { return {steps, base.data(), rows.data(), block_of.data(), block_start.data()}; }
    index_t at(index_t i, index_t s) const { return layout().at(i, s); }
    // The padded array's time of sorted row i's step s.
    index_t time(index_t i, index_t s) const { return reverse ? length[i] - 1 - s : s; }

    // The copies below share the rows among nthreads when they move at
    // least kParallelCopy values in all.
    static constexpr index_t kParallelCopy = index_t(1) << 16;
    int team(index_t values, int nthreads) const { return values >= kParallelCopy && N > 1 ? nthreads : 1; }

    // (N,T,W) padded -> (P,W) packed.
    template <typename F>
    void pack(const F* src, index_t W, F* dst, int nthreads = 1) const {
#pragma omp parallel for schedule(static) num_threads(team(P * W, nthreads))
        for (index_t i = 0; i < N; ++i)
            for (index_t s = 0; s < length[i]; ++s)
                std::copy_n(src + (order[i] * T + time(i, s)) * W, W, dst + at(i, s) * W);
    }
    // (P,W) packed -> (N,T,W) padded, zeros at the padded times.
    template <typename F>
    void unpack(const F* src, index_t W, F* dst, int nthreads = 1) const {
#pragma omp parallel for schedule(static) num_threads(team(N * T * W, nthreads))
        for (index_t i = 0; i < N; ++i) {
            F* row = dst + order[i] * T * W;
            const index_t L = length[i];
            // The valid times are [0, L) either way; the padding [L, T).
            std::fill(row + L * W, row + T * W, F(0));
            for (index_t s = 0; s < L; ++s) std::copy_n(src + at(i, s) * W, W, row + time(i, s) * W);
        }
    }
    // (N,W) in padded row order -> sorted, and back.
    template <typename F>
    void sort_rows(const F* src, index_t W, F* dst) const {
        for (index_t i = 0; i < N; ++i) std::copy_n(src + order[i] * W, W, dst + i * W);
    }
    template <typename F>
    void unsort_rows(const F* src, index_t W, F* dst) const {
        for (index_t i = 0; i < N; ++i) std::copy_n(src + i * W, W, dst + order[i] * W);
    }
    // (N,W) in padded row order: each row's state after its last step (the
    // packed seq's, (P,W)), or its initial state (sorted, (N,W)) when its
    // length is 0.
    template <typename F>
    void final_rows(const F* seq, const F* initial, index_t W, F* dst) const {
        for (index_t i = 0; i < N; ++i) {
            const F* src = length[i] > 0 ? seq + at(i, length[i] - 1) * W : initial + i * W;
            std::copy_n(src, W, dst + order[i] * W);
        }
    }
    // (P,W) the state before each packed step: initial (sorted) at step 0,
    // else the row's step before in seq (P,W).
    template <typename F>
    void previous(const F* seq, const F* initial, index_t W, F* dst, int nthreads = 1) const {
        const index_t count = static_cast<index_t>(block_start.size()) - 1;
#pragma omp parallel for schedule(static) num_threads(team(P * W, nthreads))
        for (index_t b = 0; b < count; ++b) {
            const index_t row0 = block_start[b], size = block_start[b + 1] - row0;
            for (index_t s = 0; s < steps; ++s) {
                const index_t live = std::clamp<index_t>(rows[s] - row0, 0, size);
                const F* src = s == 0 ? initial + row0 * W : seq + base[b * steps + s - 1] * W;
                std::copy_n(src, live * W, dst + base[b * steps + s] * W);
            }
        }
    }
};

}  // namespace rnn_fast
