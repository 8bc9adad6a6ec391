// Pieces shared by every recurrent cell: the input projection done for all
// time steps before the time loop, the fused time loop itself, and the
// weight gradients done for all time steps after the backward loop.
#pragma once

#include <omp.h>

#include <algorithm>

#include "gemm.h"

namespace rnn_fast {

// Largest tile of any kernel table (kernels.cpp): rows x columns.
constexpr int kMaxTile = 14 * 32;

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

// The time loop shared by the cells, one parallel region for all steps.
// Threads own contiguous ranges of chunks of nr hidden units (B's slivers per
// gate). At step s, for each owned chunk c and each row block (rows):
//   tiles[q] (mi x nr, row stride nr) = A_s[block] · sliver (q, c) of B, q < gates
//   epilogue(s, row0, mi, c, tiles, a_next)
// where A_s = op.a[s % 2] is step s's left operand, and the epilogue writes
// A_{s+1} into a_next (at op.rows.packed(n, k)). At step 0 with zero_first the
// tiles are zeros instead (no recurrent input yet). With `last` (gates = 1)
// one more step follows, whose product of the final operand with B is stored
// in last (rows x B.N(), dense) instead: a backward's dh0. Every output is
// written by one thread, with one barrier per step.
template <typename T, typename Epilogue>
void recurrent_loop(index_t steps, const StepOperand<T>& op, int gates, const PackedB<T>& B, bool zero_first,
                    int nthreads, Epilogue epilogue, T* last = nullptr) {
    const RowBlocks& rows = op.rows;
    const Kernels<T>& uk = kernels<T>();
    const index_t mr = uk.mr, nr = uk.nr, K = B.K();
    const index_t chunks = B.slivers_per_group();
    const int team = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, chunks)));
#pragma omp parallel num_threads(team) if (team > 1)
    {
        alignas(64) T tiles[4 * kMaxTile];
        const index_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const index_t c0 = chunks * tid / nth, c1 = chunks * (tid + 1) / nth;
        for (index_t s = 0; s < steps + (last != nullptr ? 1 : 0); ++s) {
            const T* as = op.a[s & 1];
            T* a_next = op.a[(s + 1) & 1];
            for (index_t c = c0; c < c1; ++c) {
                for (index_t b = 0; b < rows.count; ++b) {
                    const int mi = static_cast<int>(rows.size(b));
                    for (int q = 0; q < gates; ++q) {
                        T* tq = tiles + q * mr * nr;
                        if (zero_first && s == 0) std::fill(tq, tq + mi * nr, T(0));
                        else uk.tile(mi, K, as + b * K * mr, B.sliver(q * chunks + c), tq, nr, false);
                    }
                    if (s < steps) {
                        epilogue(s, rows.start(b), mi, c, static_cast<const T*>(tiles), a_next);
                        continue;
                    }
                    for (int r = 0; r < mi; ++r)
                        std::copy(tiles + r * nr, tiles + r * nr + B.width(c),
                                  last + (rows.start(b) + r) * B.N() + B.first_column(c));
                }
            }
#pragma omp barrier
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
