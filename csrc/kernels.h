// The SIMD kernels of one instruction set, chosen once at run time:
// AVX-512 where the CPU has it, else AVX2+FMA, else the x86-64 baseline.
// The environment variable RNN_FAST_ISA=avx512|avx2|portable caps the choice
// (to test or compare the paths on one machine).
#pragma once

#include <cstdint>

#include "common.h"

namespace rnn_fast {

// Dropout's draws (layers.h), shared by the kernels and their scalar tails:
// SplitMix64's output for the j-th step of its sequence from seed.
inline std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t j) {
    std::uint64_t z = seed + (j + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// 1 if u < threshold (both below 2^33), else 0, without a branch: the
// draws are random, so a branch would be mispredicted a fifth of the time
// at rate 0.2 (3.4 ns an element measured, with the branches).
template <typename F>
inline F keep_bit(std::uint64_t u, std::uint64_t threshold) {
    return static_cast<F>(static_cast<std::int64_t>((u - threshold) >> 63));
}

// The arrays of one cell call: a tile of one time step, `rows` rows of `n`
// hidden units (from some unit j0, which every pointer already includes).
// Row r of an array p with row stride rs is at p + r * rs, and gate q of an
// array of gates (gate stride gs) at + q * gs. Each cell's file says which
// of these it reads and writes; the time loops (recurrent.cpp) fill them all.
template <typename T>
struct CellArgs {
    index_t rows = 0, n = 0;
    int option = 0;                  // the cell's option (its description's `option`)
    const T* acc = nullptr;          // the step's recurrent products; read whole vectors at a
    index_t acc_rs = 0, acc_gs = 0;  // time, tails included (lanes past n never stored)
    const T* bias = nullptr;         // forward with x·Wx in acc (fused): b, gate stride gs; else nullptr
    const T* rbias = nullptr;        // the recurrent bias bh, gate stride gs (cells that have one)
    T* gates = nullptr;              // what the forward saves for the backward (gate stride gs); in a
    index_t gates_rs = 0, gs = 0;    // forward that is not fused, x·Wx + b on entry
    T* h = nullptr;                  // this step's states (row stride rs); with no saved gates (RNN)
    T* c = nullptr;                  // h holds x·Wx + b on entry
    index_t rs = 0;
    const T* hp = nullptr;           // the step before's states (row stride prs: h0 and c0 at the
    const T* cp = nullptr;           // first step)
    index_t prs = 0;
    const T* dh = nullptr;           // backward: upstream gradient of this step's h (row stride rs)
    T* carry = nullptr;              // the gradient carried back from step to step (row stride
    index_t carry_rs = 0;            // carry_rs; see the cell's `carry`)
    T* da = nullptr;                 // gradient of the pre-activations (gate stride gs)
    index_t da_rs = 0;
    T* dah = nullptr;                // of the recurrent pre-activations, like da (split cells)
};

// A sparse matrix of `rows` rows in SELL-16 (sliced ELLPACK, reservoir.h),
// as the SIMD bodies read it: slice s holds the rows row[16s .. 16s + 15]
// (row[i] = i when row is null), w_s entries each, w_s = (start[s + 1] -
// start[s]) / 16; entry k of its lane r is val[start[s] + 16k + r], in
// column col[start[s] + 16k + r], or in column k when col is null (a dense
// matrix). Lanes past the last row are padding (row 0, values 0).
inline constexpr index_t kSellSlice = 16;
template <typename T>
struct SellView {
    index_t rows = 0;
    const index_t* start = nullptr;
    const std::int32_t* col = nullptr;
    const T* val = nullptr;
    const std::int32_t* row = nullptr;
};

// One step of a leaky reservoir (reservoir.h) for whole slices of its units:
//   x = keep * xp + lr * f(W · xp + Win · u + bias),  keep = 1 - lr.
// bias, lr and keep have one value per lane of W's slices, in its slices'
// order (padded to 16s); x and xp have `w.rows` values, in the rows' order
// (x is written for those rows only). Win's slices hold W's rows.
template <typename T>
struct LeakyArgs {
    SellView<T> w, win;  // win.rows == 0: no input
    const T* xp = nullptr;
    const T* u = nullptr;
    const T *bias = nullptr, *lr = nullptr, *keep = nullptr;
    T* x = nullptr;
    int activation = 0;  // a LeakyActivation (reservoir.h)
};

// A cell's element-wise math over one CellArgs, for one instruction set.
template <typename T>
struct CellBody {
    void (*forward)(const CellArgs<T>&);
    void (*backward)(const CellArgs<T>&);
};

template <typename T>
struct Kernels {
    const char* isa;  // "avx512", "avx2" or "portable"
    int mr;     // rows of a GEMM tile (packed-A width)
    int nr;     // columns of a GEMM tile (packed-B sliver width), a multiple of lanes
    int lanes;  // elements per SIMD vector
    // GEMM cache blocking: rows of K per packed block (one B sliver, kc x nr,
    // stays in L1 while the row tiles of an A block stream through it) and
    // rows of A per packed block (a multiple of mr; mc x kc stays in L2).
    index_t kc;
    index_t mc;

    // c (mi x nr, row stride ldc) = [c +] a · b, 1 <= mi <= mr:
    //   a: packed A block, element (i, k) at a[k * mr + i]
    //   b: packed B sliver, element (k, j) at b[k * nr + j]
    // Without accumulate and with bias (nr values), c = bias + a · b, the
    // bias added to every row.
    void (*tile)(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool accumulate, const T* bias);
    // The same for the first nr / 2 columns of c and of the sliver b (half
    // the work, for a sliver with no more real columns than that).
    void (*tile_half)(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool accumulate, const T* bias);
    // tile, which also fetches into L1 the B block `next` (kc rows laid out
    // like b) as it reads b: for the last tile that reads a B block, so that
    // the first tile on the next one finds it in L1.
    void (*tile_fetch)(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool accumulate, const T* bias,
                       const T* next);
    // tile and tile_half with A unpacked: element (i, k) at a[i * lda + k].
    void (*tile_rows)(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc, bool accumulate,
                      const T* bias);
    void (*tile_rows_half)(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc,
                           bool accumulate, const T* bias);

    // Each cell's element-wise bodies (csrc/cells/), one field per cell.
    CellBody<T> rnn, lstm, gru;
    // Sums of a backward's dA for `rows` rows (n values each, row stride
    // da_rs), rows r in order: for a shallow input (x and dx rows of d
    // values, row stride x_rs; d may be 0) dx[r, j] = da[r, :] · Wx[j, :] (Wx
    // d x n, dense) and part (d rows of n, dense) += x[r, j] * da[r, :] in
    // its row j; and, when db is given, db (n) += da[r, :].
    void (*loop_sums)(index_t rows, index_t n, index_t d, const T* da, index_t da_rs, const T* x, index_t x_rs,
                      const T* Wx, T* dx, T* part, T* db);
    // Inverted dropout of the element pairs [j0, j1) of x into y and mask
    // (see dropout_forward in layers.h; threshold <= 2^32).
    void (*dropout)(index_t j0, index_t j1, const T* x, T* y, T* mask, std::uint64_t threshold, T scale,
                    std::uint64_t seed);
    // The leaky reservoir's step (LeakyArgs) for its slices [s0, s1).
    void (*leaky_slices)(const LeakyArgs<T>& a, index_t s0, index_t s1);
    void (*sigmoid)(index_t n, const T* x, T* y);
    void (*tanh)(index_t n, const T* x, T* y);
    // 2 * lanes * 12 * iters flops of independent multiply-adds: the peak
    // that the benchmark reports beside the GEMM's.
    T (*fma_chains)(index_t iters);
};

// The kernels for this CPU (and RNN_FAST_ISA), chosen on first use.
template <typename T>
const Kernels<T>& kernels();

}  // namespace rnn_fast
