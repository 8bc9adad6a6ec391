// Pieces shared by every recurrent cell: the input projection done for all
// time steps before the time loop, the fused time loop itself, and the
// weight gradients done for all time steps after the backward loop.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "gemm.h"

namespace rnn_fast {

// Elements of F in a cache line: the stride of software prefetches.
template <typename F>
constexpr index_t kLine = 64 / sizeof(F);

// The left operand of the time loop's GEMMs (h_{t-1} in a forward, dA of
// the step before in a backward): N rows of K in RowBlocks' layout, twice,
// so that step s reads a[s % 2] while its epilogue writes a[(s + 1) % 2].
template <typename T>
struct StepOperand {
    RowBlocks rows;
    Buffer<T> buffer;
    T* a[2];

    StepOperand(index_t N, index_t K, index_t mr) : rows(N, K, mr) {
        const index_t size = std::max<index_t>(1, rows.count * mr * K);
        buffer.reserve(static_cast<std::size_t>(2 * size));
        a[0] = buffer.data();
        a[1] = buffer.data() + size;
    }

    // Row n, columns [k0, k0 + count) of the next step's operand a_next := src.
    void put(T* a_next, index_t n, index_t k0, const T* src, index_t count) const {
        T* d = a_next + rows.packed(n, k0);
        for (index_t u = 0; u < count; ++u) d[u * rows.mr] = src[u];
    }
};

// A forward's set-up: Wh (H x gates*H) packed for the step GEMMs, each gate's
// columns padded to whole slivers so that a thread's chunk of units has all
// its gates' tiles; Wh^T packed for the backward when wh_t is given; h0 (N,H)
// packed as the first step's operand.
template <typename F>
void prepare_forward(PackedB<F>& wh, PackedB<F>* wh_t, StepOperand<F>& op, const F* Wh, const F* h0, index_t N,
                     index_t H, int gates, int nthreads) {
    wh.pack(H, gates * H, dense_rows(Wh, gates * H), false, nthreads, gates);
    if (wh_t != nullptr) pack_recurrent_transpose(*wh_t, Wh, H, gates * H, nthreads);
    pack_a_rows(op.a[0], dense_rows(h0, H), N, op.rows);
}

// How recurrent_loop shares a step's work among threads (see there).
enum class Partition { automatic = 0, rows = 1, columns = 2 };

// The partition recurrent_loop uses: `automatic`, unless a test forced one
// (a test hook; results are bitwise the same either way).
inline std::atomic<int>& partition_flag() {
    static std::atomic<int> flag{0};
    return flag;
}
inline Partition forced_partition() { return static_cast<Partition>(partition_flag().load(std::memory_order_relaxed)); }
inline void set_partition(Partition p) { partition_flag().store(static_cast<int>(p)); }

// Packed recurrent weights up to this size are read by every thread at every
// step when threads own rows (each core's L2 holds them); larger ones are
// split by columns, each thread keeping its share.
constexpr index_t kRowPartitionBytes = 384 * 1024;

// Row blocks whose tiles one pass of recurrent_loop keeps (their A rows,
// kc deep, stay in L2 while each B sliver, kc x nr, is reused from L1).
constexpr index_t kBlocksPerPass = 16;

// The time loop shared by the cells, one parallel region for all steps. At
// step s, for a row block b (op.rows) and a chunk c of nr hidden units (B's
// slivers per gate):
//   tiles[q] (mi x nr, row stride nr) = A_s[block b] · sliver (q, c) of B, q < gates
//   epilogue(s, row0, mi, c, tiles, a_next)
// where A_s = op.a[s % 2] is step s's left operand, and the epilogue writes
// A_{s+1} into a_next (at op.rows.packed(n, k)) for rows row0.. only. At step
// 0 with zero_first the tiles are zeros instead (no recurrent input yet).
// With `last` (gates = 1) one more step follows, whose product of the final
// operand with B is stored in last (rows x B.N(), dense) instead: a
// backward's dh0. The products run over K in blocks of the ISA's kc, every
// row block of a pass against one sliver at a time.
// Threads own either
//   - whole row blocks, and run every step of them with no barrier at all
//     (a row's step reads only its own row of the previous step), when there
//     are row blocks for every thread and B is small (kRowPartitionBytes);
//   - or contiguous ranges of chunks, all row blocks, one barrier per step.
// Either way each output is written by one thread, and a row's arithmetic is
// the same (row blocks and K blocks do not depend on the thread count):
// bitwise equal results for any thread count and either partition.
template <typename T, typename Epilogue>
void recurrent_loop(index_t steps, const StepOperand<T>& op, int gates, const PackedB<T>& B, bool zero_first,
                    int nthreads, Epilogue epilogue, T* last = nullptr) {
    const RowBlocks& rows = op.rows;
    const Kernels<T>& uk = kernels<T>();
    const index_t mr = uk.mr, nr = uk.nr, K = B.K(), kc = std::max<index_t>(1, uk.kc);
    const index_t chunks = B.slivers_per_group();
    const index_t total = steps + (last != nullptr ? 1 : 0);
    const index_t tile_size = mr * nr, pass_size = kBlocksPerPass * gates * tile_size;
    // Chunk c of step s for row blocks [b0, b1), at most kBlocksPerPass;
    // tiles holds pass_size values, block b's gate q at ((b - b0) * gates + q) * tile_size.
    auto pass = [&](index_t s, index_t c, index_t b0, index_t b1, T* tiles) {
        const T* as = op.a[s & 1];
        T* a_next = op.a[(s + 1) & 1];
        if (zero_first && s == 0) {
            std::fill(tiles, tiles + (b1 - b0) * gates * tile_size, T(0));
        } else {
            for (index_t k0 = 0; k0 < K; k0 += kc) {
                const index_t kn = std::min(kc, K - k0);
                for (int q = 0; q < gates; ++q) {
                    const T* bq = B.sliver(q * chunks + c) + k0 * nr;
                    for (index_t b = b0; b < b1; ++b)
                        uk.tile(static_cast<int>(rows.size(b)), kn, as + b * K * mr + k0 * mr, bq,
                                tiles + ((b - b0) * gates + q) * tile_size, nr, k0 > 0);
                }
            }
        }
        for (index_t b = b0; b < b1; ++b) {
            const int mi = static_cast<int>(rows.size(b));
            const T* tb = tiles + (b - b0) * gates * tile_size;
            if (s < steps) {
                epilogue(s, rows.start(b), mi, c, tb, a_next);
                continue;
            }
            for (int r = 0; r < mi; ++r)
                std::copy(tb + r * nr, tb + r * nr + B.width(c), last + (rows.start(b) + r) * B.N() + B.first_column(c));
        }
    };
    // Row blocks [b0, b1) of chunk c, in passes.
    auto blocks = [&](index_t s, index_t c, index_t b0, index_t b1, T* tiles) {
        for (index_t p = b0; p < b1; p += kBlocksPerPass) pass(s, c, p, std::min(b1, p + kBlocksPerPass), tiles);
    };
    Partition how = forced_partition();
    if (how == Partition::automatic)
        how = rows.count >= nthreads && B.slivers() * K * nr * index_t(sizeof(T)) <= kRowPartitionBytes
                  ? Partition::rows
                  : Partition::columns;
    const bool by_rows = how == Partition::rows;
    const int team = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, by_rows ? rows.count : chunks)));
    Buffer<T> scratch;  // each thread's tiles, allocated here: nothing may throw in the region
    scratch.reserve(static_cast<std::size_t>(team * pass_size));
#pragma omp parallel num_threads(team) if (team > 1)
    {
        const index_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        T* tiles = scratch.data() + tid * pass_size;
        if (by_rows) {
            const index_t b0 = rows.count * tid / nth, b1 = rows.count * (tid + 1) / nth;
            for (index_t s = 0; s < total; ++s)
                for (index_t c = 0; c < chunks; ++c) blocks(s, c, b0, b1, tiles);
        } else {
            const index_t c0 = chunks * tid / nth, c1 = chunks * (tid + 1) / nth;
            for (index_t s = 0; s < total; ++s) {
                for (index_t c = c0; c < c1; ++c) blocks(s, c, 0, rows.count, tiles);
#pragma omp barrier
            }
        }
    }
}

// a (N,T,G) = x (N,T,D) · Wx (D,G) + b (G), over all N*T rows in one GEMM.
template <typename F>
void input_projection(F* a, const F* x, const F* Wx, const F* b, index_t N, index_t T, index_t D,
                      index_t G, int nthreads) {
    prefault(a, sizeof(F) * N * T * G);
    fill_rows(a, N * T, G, G, b, nthreads);
    gemm<F>(N * T, G, D, dense_rows(x, D), false, dense_rows(Wx, G), false, true, a, G, nthreads);
}

// Given dA (N,T,G), the gradient of every step's pre-activations:
//   dx (N,T,D) = dA · Wx^T      dWx (D,G) = x^T · dA
//   dWh (H,G) = sum over (n,t) of h_prev[n,t]^T · dA[n,t], where h_prev is
//               h0 (N,H) at each sequence's first step and otherwise the
//               state h (N,T,H) of the time before it (after it when reverse)
//   db (G) = sum of dA over N and T
template <typename F>
void sequence_weight_grads(F* dx, F* dWx, F* dWh, F* db, const F* dA, const F* x, const F* h0,
                           const F* h, const F* Wx, index_t N, index_t T, index_t D, index_t H,
                           index_t G, bool reverse, int nthreads) {
    prefault(dx, sizeof(F) * N * T * D);
    gemm<F>(N * T, D, G, dense_rows(dA, G), false, dense_rows(Wx, G), true, false, dx, D, nthreads);
    gemm<F>(D, G, N * T, dense_rows(x, D), true, dense_rows(dA, G), false, false, dWx, G, nthreads);
    Rows<F> h_prev = grouped_rows(h, H, T, T * H);
    h_prev.shift = reverse ? H : -H;
    h_prev.alt = h0;
    h_prev.alt_ld = H;
    h_prev.alt_index = reverse ? T - 1 : 0;
    gemm<F>(H, G, N * T, h_prev, true, dense_rows(dA, G), false, false, dWh, G, nthreads);
    column_sums(db, dA, N * T, G, nthreads);
}

}  // namespace rnn_fast
