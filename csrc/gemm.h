// Matrix products for the cell kernels: a packed, cache-blocked GEMM
// (BLIS-style loops around an MR x NR register-blocked micro-kernel).
//
// Determinism: threads split only the output C into tiles; every element of
// C is accumulated over K in the same order whatever the thread count, so
// results are bitwise identical for any nthreads.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>

#include "common.h"
#include "kernels.h"

namespace rnn_fast {

// Rows of a stored row-major matrix. With g = r / group and i = r % group,
// row r starts at
//   alt + g * alt_ld                          if alt and i == alt_index,
//   p + g * group_stride + i * ld + shift     otherwise.
// So one view can walk rows that skip a gap every `group` rows, or take one
// row of each group from elsewhere: "the previous hidden state of every
// (n, t)" of a batch-first (N,T,H) array h is
//   {h, H, T, T*H, -H, h0, H, 0}   (h[n, t-1], and h0[n] at t = 0).
// A dense matrix has group = "infinity".
template <typename T>
struct Rows {
    const T* p;
    index_t ld;
    index_t group;
    index_t group_stride;
    index_t shift = 0;
    const T* alt = nullptr;
    index_t alt_ld = 0;
    index_t alt_index = 0;

    const T* row(index_t r) const {
        if (group == std::numeric_limits<index_t>::max()) return p + r * ld;  // dense: no division
        const index_t g = r / group, i = r % group;
        if (alt != nullptr && i == alt_index) return alt + g * alt_ld;
        return p + (g * group_stride + i * ld + shift);
    }
};

template <typename T>
Rows<T> dense_rows(const T* p, index_t ld) {
    return {p, ld, std::numeric_limits<index_t>::max(), 0};
}

template <typename T>
Rows<T> grouped_rows(const T* p, index_t ld, index_t group, index_t group_stride) {
    return {p, ld, group < 1 ? 1 : group, group_stride};
}

// Maps the pages of [p, p + bytes) for writing in one system call before a
// kernel writes them from several threads (Linux 5.14+; elsewhere a no-op).
// Fresh pages cost a fault each either way, but faults taken inside a
// parallel time loop cost ~5x more (threads fault on the same pages and
// every step's barrier waits for the slowest). Pages that are mapped already
// would cost a page-table walk, 50-80 us per MB measured here: a region
// whose first, middle and last pages are mapped is left alone (mincore), and
// only memory that may be fresh is passed: a Buffer's new block, an array
// NumPy has just allocated, never a reused scratch block. Throws Interrupted
// (stop.h) if the caller's stop ends it: the caller frees the memory.
void prefault(void* p, std::size_t bytes);

// The size of a transparent huge page on x86-64; Buffers of at least twice
// this are aligned to it, so that prefault can map them in huge pages.
constexpr std::size_t kHugePage = std::size_t(2) << 20;

// Scratch blocks the calling thread has freed, kept for its next kernel
// call: a block obtained from the system again costs its pages' faults and
// zeroing every call (~250 us for 1.5 MB here, the whole compute of a small
// LSTM layer, when the heap top is trimmed between calls; for the 13 MB
// gate buffer of a 32 x 100 x 256 LSTM inference forward, 5% of the call,
// measured alternating builds). Blocks of at most kMaxBlock bytes are kept,
// at most kMaxTotal per thread, the oldest given back first; larger ones go
// back at once. Not kept under AddressSanitizer, which must see every block
// freed.
class BlockCache {
public:
    static constexpr std::size_t kMaxBlock = std::size_t(64) << 20;
    static constexpr std::size_t kMaxTotal = std::size_t(128) << 20;
    // A block more than twice a request (plus this) is not spent on it.
    static constexpr std::size_t kSlack = std::size_t(64) << 10;

    // A kept block of at least `bytes` and at most 2 * bytes + kSlack (the
    // smallest such; among equals the last given back, the likeliest still
    // in cache: a model's layers free and take blocks of the same sizes, and
    // the oldest one made the seed model's LSTM calls 5-7% slower inside fit
    // than alone, measured), or nullptr; *got is set to its size.
    void* take(std::size_t bytes, std::size_t* got);
    // Keeps p (of `bytes`, from std::aligned_alloc) or frees it.
    void give(void* p, std::size_t bytes);
    ~BlockCache();

    // The calling thread's, or nullptr once that thread's cache is gone (an
    // array freed during the thread's exit, after its thread_locals).
    static BlockCache* mine();

private:
    struct Block {
        void* p;
        std::size_t bytes;
    };
    // Block i, taken out of the list.
    Block remove(int i);
    Block blocks_[64] = {};
    int count_ = 0;
    std::size_t total_ = 0;
};

// A 64-byte aligned scratch array that keeps its memory when shrunk; its
// memory comes from and goes back to the calling thread's BlockCache.
template <typename T>
class Buffer {
public:
    Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release(); }

    T* data() { return ptr_; }
    const T* data() const { return ptr_; }
    void reserve(std::size_t n) {
        if (n <= capacity_) return;
        const std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
        std::size_t got = 0;
        BlockCache* cache = BlockCache::mine();
        void* p = cache != nullptr ? cache->take(bytes, &got) : nullptr;
        if (p == nullptr) {
            const std::size_t align = bytes >= 2 * kHugePage ? kHugePage : 64;
            p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
            if (p == nullptr) throw std::bad_alloc();
            try {
                prefault(p, bytes);
            } catch (...) {  // stopped (Interrupted)
                std::free(p);
                throw;
            }
            got = bytes;
        }
        release();
        ptr_ = static_cast<T*>(p);
        bytes_ = got;
        capacity_ = got / sizeof(T);
    }

private:
    void release() {
        if (ptr_ == nullptr) return;
        if (BlockCache* cache = BlockCache::mine()) cache->give(ptr_, bytes_);
        else std::free(ptr_);
        ptr_ = nullptr;
        bytes_ = capacity_ = 0;
    }
    T* ptr_ = nullptr;
    std::size_t bytes_ = 0;
    std::size_t capacity_ = 0;
};

// op(B) (K x N), packed once and reused by many products with different A:
// the recurrent weights of a whole sequence, read by recurrent_loop. Columns
// come in `groups` groups of N / groups (an LSTM's four gates); each group is
// padded to a whole number of slivers of nr columns, so no sliver straddles
// two groups. Each sliver is K x nr values, zero-padded.
template <typename T>
class PackedB {
public:
    // op(B) = B (K x N, transB = false) or B^T (B stored N x K, transB = true).
    void pack(index_t K, index_t N, Rows<T> B, bool transB, int nthreads, int groups = 1);

    index_t K() const { return K_; }
    index_t N() const { return N_; }
    index_t nr() const { return nr_; }
    index_t slivers_per_group() const { return spg_; }
    index_t slivers() const { return spg_ * groups_; }
    // First column of op(B) in sliver s, and how many of its nr columns are real.
    index_t first_column(index_t s) const { return (s / spg_) * group_cols_ + (s % spg_) * nr_; }
    index_t width(index_t s) const {
        const index_t left = group_cols_ - (s % spg_) * nr_;
        return left < nr_ ? left : nr_;
    }
    // Sliver s: element (k, j) at sliver(s)[k * nr + j].
    const T* sliver(index_t s) const { return data_.data() + s * K_ * nr_; }
    // op(B) back out, dense row-major (K x N).
    void unpack(T* out) const {
        for (index_t s = 0; s < slivers(); ++s)
            for (index_t k = 0; k < K_; ++k)
                for (index_t j = 0; j < width(s); ++j) out[k * N_ + first_column(s) + j] = sliver(s)[k * nr_ + j];
    }

private:
    index_t K_ = 0, N_ = 0, nr_ = 1, groups_ = 1, group_cols_ = 0, spg_ = 0;
    Buffer<T> data_;
};

// A layer's weights packed once for many forwards (sequence.h).
template <typename F>
struct PackedWeights;

// [top; bottom] (top_rows + bottom_rows rows of `cols`, both dense), copied
// into buf, as rows for PackedB::pack.
template <typename T>
Rows<T> stacked_rows(Buffer<T>& buf, const T* top, index_t top_rows, const T* bottom, index_t bottom_rows,
                     index_t cols) {
    buf.reserve(static_cast<std::size_t>(std::max<index_t>(1, (top_rows + bottom_rows) * cols)));
    std::copy(top, top + top_rows * cols, buf.data());
    std::copy(bottom, bottom + bottom_rows * cols, buf.data() + top_rows * cols);
    return dense_rows(static_cast<const T*>(buf.data()), cols);
}

// Wh^T for a recurrent backward's dA · Wh^T (G x H), from Wh (H x G); with
// Wx (D x G), [Wh^T Wx^T] (G x (H + D)), whose last D columns give dA · Wx^T,
// the input's gradient, in the same products (see fused_input_gradient).
template <typename T>
void pack_recurrent_transpose(PackedB<T>& out, const T* Wh, index_t H, index_t G, int nthreads,
                              const T* Wx = nullptr, index_t D = 0) {
    if (Wx == nullptr || D == 0) return out.pack(G, H, dense_rows(Wh, G), true, nthreads);
    Buffer<T> buf;
    out.pack(G, H + D, stacked_rows(buf, Wh, H, Wx, D, G), true, nthreads);
}

// Rows [0, M) cut into blocks of at most mr rows, as even as possible, the
// larger ones spread evenly: block b is rows [b M / count, (b+1) M / count).
// (32 rows with mr = 6: 5, 6, 5, 5, 6, 5, so that halves of the blocks hold
// 16 rows each, rather than 6, 6, 6, 6, 6, 2, whose last tile would run at a
// third of the speed.) The count is even where the rows allow it, so that
// the blocks share out evenly between two threads (choose_partition): 32
// rows with mr = 14 go in 8, 8, 8, 8, not 10, 11, 11, which two threads
// could not own (a 32 x 60 x 50 x 50 LSTM inference on AVX-512 3x slower
// in columns, measured), but never in blocks of fewer than 3 rows, whose
// tiles sum their products in another order (simd.h's tile, KS). The count
// depends on M and mr only, never on the thread count. Block b is packed as
// one mr-wide sliver of all K: element (r, k) of the operand at packed(r, k).
struct RowBlocks {
    index_t M, K, mr, count;

    static index_t blocks(index_t M, index_t mr) {
        const index_t n = (M + mr - 1) / mr;
        return n % 2 == 1 && M >= 3 * (n + 1) ? n + 1 : n;
    }
    RowBlocks(index_t M_, index_t K_, index_t mr_) : M(M_), K(K_), mr(mr_), count(blocks(M_, mr_)) {}
    index_t start(index_t b) const { return b * M / count; }
    index_t size(index_t b) const { return start(b + 1) - start(b); }
    index_t block(index_t r) const { return ((r + 1) * count - 1) / M; }  // the last b with start(b) <= r
    index_t packed(index_t r, index_t k) const {
        const index_t b = block(r);
        return b * K * mr + k * mr + (r - start(b));
    }
};

// dst[k * mr + i] = src[i * ld + k] for the rows i < mi <= 16 and columns
// k < count: part of one row block in RowBlocks' layout (dst at its row 0,
// column 0).
template <typename T>
void pack_block_rows(T* dst, const T* src, index_t ld, index_t mi, index_t count, index_t mr);

// C (M x N, row stride ldc) = [C +] op(A) · op(B), where op(A) is A (M x K)
// or A^T (A stored K x M, transA), and op(B) is B (K x N) or B^T (B stored
// N x K, transB). C must not alias A or B. B is packed panel by panel as the
// product goes, never whole.
// With bias (N values; not with accumulate): C = bias (every row) + op(A) · op(B),
// the same sums as fill_rows followed by gemm with accumulate, in one pass.
// With packed_b (op(B) packed whole, in one group, for the current ISA's
// nr): the packed path reads its slivers instead of packing panels of B (the
// same sums; the shapes that take other paths still read B).
template <typename T>
void gemm(index_t M, index_t N, index_t K, Rows<T> A, bool transA, Rows<T> B, bool transB,
          bool accumulate, T* C, index_t ldc, int nthreads, const T* bias = nullptr,
          const PackedB<T>* packed_b = nullptr);

// C1 (M1 x N, row stride ldc1) = op(A1) · op(B) and C2 (M2 x N) = op(A2) ·
// op(B): gemm's general path over the two left operands stacked (C2's rows
// after C1's, padded to whole row slivers), each panel of op(B) packed once
// for both; two gemm calls where either shape takes a special path. A
// layer's dWx = x^T · dA and dWh = h_prev^T · dA so pack dA once, not twice
// (a 32 x 60 x 50 x 50 LSTM backward 3% faster, measured). Each element is
// summed over K as gemm sums the stacked shape.
template <typename T>
void gemm_pair(index_t M1, index_t M2, index_t N, index_t K, Rows<T> A1, Rows<T> A2, bool transA, Rows<T> B,
               bool transB, T* C1, index_t ldc1, T* C2, index_t ldc2, int nthreads);

// Every row of C (rows x cols, row stride ldc) set to the vector b (cols).
template <typename T>
void fill_rows(T* C, index_t rows, index_t cols, index_t ldc, const T* b, int nthreads);

// out (cols) = sum over the rows of A (rows x cols, dense, row stride cols),
// summed in row order for every column.
template <typename T>
void column_sums(T* out, const T* A, index_t rows, index_t cols, int nthreads);

// memcpy, shared among the threads when it is long enough to gain by it
// (the caches' copies of their inputs, 384 KB for a 32 x 60 x 50 x: 33 us
// from memory on one thread, 20 us on two; 6 MB: 596 against 341 us).
void copy_bytes(void* dst, const void* src, std::size_t bytes, int nthreads);

}  // namespace rnn_fast
