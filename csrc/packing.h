// Sequences of different lengths in one batch, as PyTorch's packed
// sequences (pack_padded_sequence with enforce_sorted=False): row n of a
// padded batch-first (N,T,...) array has steps 0 .. lengths[n]-1 only (times
// lengths[n]-1 down to 0 when reverse). The time loops run on them packed:
// rows sorted by length, longest first (ties in row order), and step s of
// every row that has it stored one after the other, so that step s's rows
// are the first rows[s] rows and every product over all steps (the input
// projection, the weight gradients) reads the valid rows alone: no padded
// step costs a flop.
#pragma once

#include <algorithm>
#include <vector>

#include "common.h"

namespace rnn_fast {

// Where row n's time t of a sequence array lives, in rows of the array:
// batch first (N,T,...), at n * T + t; or packed (offset given), at
// offset[t] + n, where only the rows n < rows[t] have time t.
struct SeqLayout {
    index_t T = 0;                    // steps
    const index_t* offset = nullptr;  // packed: T + 1 first positions (offset[T]: all)
    const index_t* rows = nullptr;    // packed: the rows of each step, non-increasing

    index_t at(index_t n, index_t t) const { return offset != nullptr ? offset[t] + n : n * T + t; }
    // Between the rows of one time, in rows of the array.
    index_t stride() const { return offset != nullptr ? 1 : T; }
    // The rows of [row0, row0 + mi) that have time t, counted from row0.
    int live(index_t t, index_t row0, int mi) const {
        if (rows == nullptr) return mi;
        return static_cast<int>(std::clamp<index_t>(rows[t] - row0, 0, mi));
    }
};

// A batch's lengths, sorted and packed (see the top of this file).
struct Packing {
    index_t N = 0, T = 0;  // the padded arrays' rows and times
    index_t steps = 0;     // the longest length
    index_t P = 0;         // the sum of the lengths: rows of a packed array
    bool reverse = false;  // the rows' steps run from their last time down
    std::vector<index_t> order;   // sorted row i is row order[i] of the padded arrays
    std::vector<index_t> length;  // of sorted row i
    std::vector<index_t> offset;  // steps + 1 values, see SeqLayout
    std::vector<index_t> rows;    // steps values, see SeqLayout

    // lengths: N values in [0, T] (checked by the caller).
    Packing(const std::int64_t* lengths, index_t N_, index_t T_, bool reverse_)
        : N(N_), T(T_), reverse(reverse_), order(N_), length(N_) {
        for (index_t n = 0; n < N; ++n) order[n] = n;
        std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return lengths[a] > lengths[b]; });
        for (index_t i = 0; i < N; ++i) length[i] = lengths[order[i]];
        steps = N > 0 ? length[0] : 0;
        rows.assign(steps, 0);
        offset.assign(steps + 1, 0);
        for (index_t i = 0; i < N; ++i)
            for (index_t s = 0; s < length[i]; ++s) ++rows[s];
        for (index_t s = 0; s < steps; ++s) offset[s + 1] = offset[s] + rows[s];
        P = offset[steps];
    }

    SeqLayout layout() const { return {steps, offset.data(), rows.data()}; }
    // The padded array's time of sorted row i's step s.
    index_t time(index_t i, index_t s) const { return reverse ? length[i] - 1 - s : s; }

    // (N,T,W) padded -> (P,W) packed.
    template <typename F>
    void pack(const F* src, index_t W, F* dst) const {
        for (index_t i = 0; i < N; ++i)
            for (index_t s = 0; s < length[i]; ++s)
                std::copy_n(src + (order[i] * T + time(i, s)) * W, W, dst + (offset[s] + i) * W);
    }
    // (P,W) packed -> (N,T,W) padded, zeros at the padded times.
    template <typename F>
    void unpack(const F* src, index_t W, F* dst) const {
        for (index_t i = 0; i < N; ++i) {
            F* row = dst + order[i] * T * W;
            const index_t L = length[i];
            // The valid times are [0, L) either way; the padding [L, T).
            std::fill(row + L * W, row + T * W, F(0));
            for (index_t s = 0; s < L; ++s)
                std::copy_n(src + (offset[s] + i) * W, W, row + time(i, s) * W);
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
            const F* src = length[i] > 0 ? seq + (offset[length[i] - 1] + i) * W : initial + i * W;
            std::copy_n(src, W, dst + order[i] * W);
        }
    }
    // (P,H) the state before each packed step: initial (sorted) at step 0,
    // else the row's step before in seq (P,H).
    template <typename F>
    void previous(const F* seq, const F* initial, index_t W, F* dst) const {
        if (steps == 0) return;
        std::copy_n(initial, rows[0] * W, dst);
        for (index_t s = 1; s < steps; ++s)
            std::copy_n(seq + offset[s - 1] * W, rows[s] * W, dst + offset[s] * W);
    }
};

}  // namespace rnn_fast
