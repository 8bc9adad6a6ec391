// Pieces shared by every recurrent cell: the input projection done for all
// time steps before the time loop, the fused time loop itself, and the
// weight gradients done for all time steps after the backward loop.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>

#include "gemm.h"
#include "packing.h"
#include "stop.h"

namespace rnn_fast {

// Elements of F in a cache line: the stride of software prefetches.
template <typename F>
constexpr index_t kLine = 64 / sizeof(F);

// Up to this many rows a time loop's step operand is dense (see StepOperand)
// whatever the partition: a packed A of a few rows holds a cache line for
// every k or few (mr columns, 14 with AVX-512), which the B slivers
// streaming from L2 through L1 keep evicting. LSTM on AVX-512, measured on
// a Zen 4 EPYC (the same sums): 1 x 100 x 128 x 256 inference 24% faster
// (its products' B from L2 at 102 rather than 77 GB/s; AVX2 99 -> 100),
// 3 x 100 x 128 x 256 12%; 4 x 60 x 50 x 50 training forward 6%, 6 rows 2%,
// 8 rows 0.5%.
constexpr index_t kDenseRows = 8;

// The left operand of the time loop's GEMMs (h_{t-1} in a forward, dA of
// the step before in a backward), N rows of K, in one of three forms:
//   - packed: RowBlocks' layout, twice, so that step s reads a[s % 2] while
//     its epilogue packs a[(s + 1) % 2];
//   - dense (a forward of up to kDenseRows rows): N rows of stride ld,
//     twice likewise, read by Kernels::tile_rows (a forward of more rows
//     stays packed: dense, its training forward ran 1-4% slower, measured;
//     a tile of rows takes a few cycles more to start, which K = 51 or 100
//     does not hide);
//   - a view (a backward, when threads own rows or up to kDenseRows rows):
//     its dA (N,T,K, or packed: see packing.h) itself, step s >= 1 reading the
//     dA that the step before's cells have just written, nothing copied or
//     stored twice (the seed's Keras fit 3-5% faster than with a dense copy
//     that the cells stored beside dA, its 32 x 60 x 50 x 50 backward's
//     cells in half the time; measured on a Zen 4 EPYC).
// The sums are the same in every form.
template <typename T>
struct StepOperand {
    RowBlocks rows;
    bool dense;
    index_t ld;  // dense: the rows' stride (whole cache lines, or a view's T * K)
    Buffer<T> buffer;
    T* a[2];
    const T* view = nullptr;  // a view's dA, in the layout `layout`
    SeqLayout layout;
    bool reverse = false;

    StepOperand(index_t N, index_t K, index_t mr, bool dense_)
        : rows(N, K, mr), dense(dense_), ld((K + kLine<T> - 1) / kLine<T> * kLine<T>) {
        const index_t size = std::max<index_t>(1, dense ? N * ld : rows.count * mr * K);
        buffer.reserve(static_cast<std::size_t>(2 * size));
        a[0] = buffer.data();
        a[1] = buffer.data() + size;
    }

    // The view of dA (laid out as L says, K values a row) for a backward's
    // steps: step s >= 1 reads the dA of forward step T - s (time
    // step_time(T - s, T, reverse)).
    StepOperand(index_t N, const SeqLayout& L, index_t K, index_t mr, const T* dA, bool reverse_)
        : rows(N, K, mr), dense(true), ld(L.stride() * K), a{nullptr, nullptr}, view(dA), layout(L),
          reverse(reverse_) {}

    // Row block b of step s's operand (a view's block at step 0: any
    // pointer, never read), and the operand that step s's epilogue writes
    // (nullptr for a view: the cell's own dA is the next operand).
    const T* step_block(index_t s, index_t b) const {
        if (view != nullptr)
            return s == 0 ? view : view + layout.at(rows.start(b), step_time(layout.T - s, layout.T, reverse)) * rows.K;
        return dense ? a[s & 1] + rows.start(b) * ld : a[s & 1] + b * rows.K * rows.mr;
    }
    T* next(index_t s) const { return view == nullptr ? a[(s + 1) & 1] : nullptr; }

    // Rows row0 .. row0+mi-1 of a tile (one row block's), columns [k0, k0 +
    // count) of the next step's operand a_next := src (row i at src + i * src_ld).
    void put(T* a_next, index_t row0, int mi, index_t k0, const T* src, index_t src_ld, index_t count) const {
        if (!dense) return pack_block_rows(a_next + rows.packed(row0, k0), src, src_ld, mi, count, rows.mr);
        for (int i = 0; i < mi; ++i)
            std::copy(src + i * src_ld, src + i * src_ld + count, a_next + (row0 + i) * ld + k0);
    }
};

// How recurrent_loop shares a step's work among threads (see there).
enum class Partition { automatic = 0, rows = 1, columns = 2, row_passes = 3 };

// The partition recurrent_loop uses: `automatic`, unless a test forced one
// (a test hook; results are bitwise the same either way).
inline std::atomic<int>& partition_flag() {
    static std::atomic<int> flag{0};
    return flag;
}
inline Partition forced_partition() { return static_cast<Partition>(partition_flag().load(std::memory_order_relaxed)); }
inline void set_partition(Partition p) { partition_flag().store(static_cast<int>(p)); }

// Packed recurrent weights up to this size are read by every thread at every
// step of every row block when threads own rows; larger ones are split by
// columns, each thread keeping its share, or read in passes (row_passes, see
// choose_partition). Measured on a 512 KiB-L2 EPYC, 2 threads: rows win at
// 1 MiB (N=32, H=256: forward 25.7 against 31.9 ms; row_passes 20.8 against
// 19.7 ms for the inference), columns at 4 MiB (N=64, H=1024 RNN: 97 against
// 114 ms).
constexpr index_t kRowPartitionBytes = 1536 * 1024;

// The partition of a time loop over N rows whose recurrent weights are K x G.
// Weights too large for every thread to read at every step of every row
// block still go by rows when the rows share out within 1/32 among the
// threads (row_passes: their blocks pass through each B block from L1 as
// the columns' do): a step's barrier costs more than that on this shared
// host (256 x 25 x 512 x 512 LSTM: inference 4.6%, forward+backward 3.7%,
// 128 rows 2.5% faster, measured), but only from 64 rows a thread: with
// fewer, each thread's pass over all of B costs more than its share of the
// columns' barriers (64 x 25 x 1024 x 1024 LSTM, 32 rows a thread: inference
// and forward+backward 3% slower in row passes, measured on a 1 MiB-L2 EPYC).
template <typename T>
Partition choose_partition(index_t N, index_t K, index_t G, int nthreads) {
    const Partition forced = forced_partition();
    if (forced != Partition::automatic) return forced;
    const Kernels<T>& uk = kernels<T>();
    const RowBlocks blocks(N, K, uk.mr);
    const index_t bytes = K * ((G + uk.nr - 1) / uk.nr * uk.nr) * index_t(sizeof(T));
    if (blocks.count < nthreads) return Partition::columns;
    if (bytes > kRowPartitionBytes) {
        index_t most = 0;  // rows of the thread with the most (its blocks as recurrent_loop shares them)
        for (index_t t = 0; t < nthreads; ++t) {
            const index_t b0 = blocks.count * t / nthreads, b1 = blocks.count * (t + 1) / nthreads;
            most = std::max(most, blocks.start(b1) - blocks.start(b0));
        }
        return 32 * most * nthreads <= 33 * N && most >= 64 ? Partition::row_passes : Partition::columns;
    }
    // Rows need blocks that share out evenly: 3 blocks on 2 threads would
    // leave one thread waiting a third of every call.
    const bool even = blocks.count % nthreads == 0 || blocks.count >= 4 * index_t(nthreads);
    return even ? Partition::rows : Partition::columns;
}

// Inputs of at most this many features (a one-feature series) take their
// gradients from each step's dA while the time loop has it in L1: with D = 1
// the three products of dA below (dx, dWx, db) are passes over the whole of
// dA that do little arithmetic, re-read from L3 after the loop (a sixth of a
// 32 x 60 x 1 x 50 LSTM backward, measured by skipping them; taken in the
// loop, that backward runs 0.91 -> 0.81 ms). db is taken in the loop for
// every input (its pass was 4% of a 32 x 60 x 50 x 50 backward).
constexpr index_t kShallowInput = 4;

// Wider inputs of a small layer take dx = dA · Wx^T in the time loop too, as
// more columns of its products: the backward's B is [Wh^T Wx^T] (packed by
// the forward), and step s's products of dA of the step before give that
// step's dx as well as its recurrent gradient, from the packed operand the
// loop has anyway, rather than a GEMM after the loop that packs all of dA
// again (a 32 x 60 x 50 x 50 LSTM backward 6.5% faster, 256 x 20 x 50 x 50
// 9%, 13 x 100 x 32 x 32 1%; measured). Up to kFusedInputBytes of B, which
// every thread reads at every step of its rows; from 3 rows (tiles of one or
// two rows take longer than the GEMM: 1 x 100 x 50 x 50 7% slower). The
// choice depends on the shape alone, so that the bits do not depend on the
// thread count or partition.
constexpr index_t kFusedInputBytes = 256 * 1024;

// The forward of a small layer takes x·Wx in its time loop likewise: step
// s's operand is [x_t h_{t-1}] and B is [Wx; Wh] ((D + H) x G), so that one
// product gives x_t·Wx + h_{t-1}·Wh and the cell adds b, rather than a GEMM
// before the loop writing every step's x·Wx + b for the cell to read back
// (32 x 60 x 50 x 50 LSTM: inference 5%, training forward 3% faster; 32 x
// 60 x 1 x 50 11% and 5%; measured). x's terms come first, as in that GEMM
// (h's after them: with x of 1e4, h's terms summed first gave gradients 3x
// further from float64's). Up to kFusedInputBytes of B (stacked_fits: the
// weights alone decide whether an inference object packs them so), from 3
// rows, as above.
template <typename F>
bool stacked_fits(index_t D, index_t H, index_t G) {
    return D >= 1 && (H + D) * G * index_t(sizeof(F)) <= kFusedInputBytes;
}
template <typename F>
bool fused_input_projection(index_t N, index_t D, index_t H, index_t G) {
    return N >= 3 && stacked_fits<F>(D, H, G);
}
template <typename F>
bool fused_input_gradient(index_t N, index_t D, index_t H, index_t G) {
    return D > kShallowInput && fused_input_projection<F>(N, D, H, G);
}

// [Wx; Wh] ((D + H) x G) packed as B, in `groups` groups of columns.
template <typename F>
void pack_stacked(PackedB<F>& out, const F* Wh, const F* Wx, index_t D, index_t H, index_t G, int nthreads,
                  int groups) {
    Buffer<F> buf;
    out.pack(D + H, G, stacked_rows(buf, Wx, D, Wh, H, G), false, nthreads, groups);
}

// x (laid out as L says) at time t of rows row0 .. row0+mi-1 (those that
// have it) into the first D columns of a fused forward's step operand a
// (see fused_input_projection).
template <typename F>
void put_input(const StepOperand<F>& op, F* a, index_t row0, int mi, const F* x, index_t t, const SeqLayout& L,
               index_t D) {
    const int live = L.live(t, row0, mi);
    if (live > 0) op.put(a, row0, live, 0, x + L.at(row0, t) * D, L.stride() * D, D);
}

// Weights packed once for many forwards (an inference object's), in every
// layout a forward may want: Wx (D x G) for the input projection, Wh (H x G)
// in one group per gate (threads own columns; see prepare_forward) and in
// one group (threads own rows). When H is a whole number of slivers the two
// hold the same values and one gated packing serves both (its metadata
// gives the rows' loop the same slivers, widths and units).
template <typename F>
struct PackedWeights {
    PackedB<F> wx, wh, wh_rows;
    PackedB<F> whx, whx_rows;  // [Wx; Wh] likewise, when stacked_fits (see fused_input_projection)
    bool split = false;        // wh_rows (whx_rows) holds a layout of its own

    void pack(const F* Wx, const F* Wh, index_t D, index_t H, int gates, bool fusable, int nthreads) {
        const index_t G = gates * H;
        wx.pack(D, G, dense_rows(Wx, G), false, nthreads);
        wh.pack(H, G, dense_rows(Wh, G), false, nthreads, gates);
        split = gates > 1 && H % wh.nr() != 0;
        if (split) wh_rows.pack(H, G, dense_rows(Wh, G), false, nthreads);
        if (!fusable || !stacked_fits<F>(D, H, G)) return;
        pack_stacked(whx, Wh, Wx, D, H, G, nthreads, gates);
        if (split) pack_stacked(whx_rows, Wh, Wx, D, H, G, nthreads, 1);
    }
    const PackedB<F>& recurrent(Partition how, bool fused) const {
        const bool rows = how == Partition::rows && split;
        return fused ? (rows ? whx_rows : whx) : (rows ? wh_rows : wh);
    }
};

// A forward's set-up: Wh (H x gates*H) packed for the step GEMMs, and h0 (N,H)
// packed as the first step's operand ([Wx; Wh] and [x_t h0], t the first
// step's time, x laid out as L says, when fused: see fused_input_projection; op then holds D + H
// columns, h's from column D). When threads own columns, each gate's
// columns are padded to whole slivers, so that a thread's chunk of units has
// all its gates' tiles; when they own rows, the gates' columns follow each
// other unpadded (the cell runs on whole rows). Wh^T is packed for the
// backward when wh_t is given. Returns the packed Wh: pre's, when given
// (weights packed before the call), else wh.
template <typename F>
const PackedB<F>& prepare_forward(PackedB<F>& wh, PackedB<F>* wh_t, StepOperand<F>& op, const F* Wh, const F* h0,
                                  const F* Wx, const F* x, index_t N, const SeqLayout& L, index_t D, index_t H,
                                  int gates, bool reverse, bool fused, Partition how, int nthreads,
                                  const PackedWeights<F>* pre) {
    const index_t G = gates * H;
    const int groups = how == Partition::rows ? 1 : gates;
    if (pre == nullptr && fused) pack_stacked(wh, Wh, Wx, D, H, G, nthreads, groups);
    else if (pre == nullptr) wh.pack(H, G, dense_rows(Wh, G), false, nthreads, groups);
    if (wh_t != nullptr) {
        const bool fused_dx = fused && fused_input_gradient<F>(N, D, H, G);
        pack_recurrent_transpose(*wh_t, Wh, H, G, nthreads, fused_dx ? Wx : nullptr, fused_dx ? D : 0);
    }
    for (index_t b = 0; b < op.rows.count; ++b) {
        const index_t row0 = op.rows.start(b);
        const int mi = static_cast<int>(op.rows.size(b));
        op.put(op.a[0], row0, mi, fused ? D : 0, h0 + row0 * H, H, H);
        if (fused && L.T > 0) put_input(op, op.a[0], row0, mi, x, step_time(0, L.T, reverse), L, D);
    }
    return pre != nullptr ? pre->recurrent(how, fused) : wh;
}

// What recurrent_loop hands its epilogue: the recurrent products of rows
// row0 .. row0+mi-1 for hidden units j0 .. j0+units-1, gate q of unit j0+u of
// row r at acc[r * row_stride + q * gate_stride + u].
template <typename T>
struct StepTile {
    index_t row0;
    int mi;
    index_t j0, units;
    const T* acc;
    index_t row_stride, gate_stride;
};

// fn(n, o, u) for every row n of a tile (o = L.at(n, t), the row's index in
// a sequence array at time t) and the first unit u of each cache line of its
// units: the walk of the cells' prefetch hooks.
template <typename F, typename Fn>
void for_tile_lines(const StepTile<F>& tile, const SeqLayout& L, index_t t, Fn fn) {
    for (int r = 0; r < tile.mi; ++r) {
        const index_t n = tile.row0 + r;
        for (index_t u = tile.j0; u < tile.j0 + tile.units; u += kLine<F>) fn(n, L.at(n, t), u);
    }
}

// Row blocks whose tiles one pass of recurrent_loop keeps when threads own
// columns (their A rows, kc deep, stay in L2 while each B sliver, kc x nr, is
// reused from L1).
constexpr index_t kBlocksPerPass = 16;

// recurrent_loop's side when B has no side columns.
struct NoSide {
    template <typename Tile>
    void operator()(index_t, const Tile&) const {}
};

// The rows of each step of recurrent_loop when not every row has every step
// (packed sequences, see packing.h: rows sorted longest first): step s's
// tiles cover rows [0, tiles[s]) only, and of its operand the rows [0,
// fed[s]) hold values, the products of the others' rows being zeros (a
// backward's rows whose last step comes now: no gradient from a step after
// it). Null: every row (tiles); every tile's row (fed).
struct StepRows {
    const index_t* tiles = nullptr;
    const index_t* fed = nullptr;
    // Of block [row0, row0 + size) at step s: the rows of its tiles and
    // those with products, counted from row0.
    int tile_rows(index_t s, index_t row0, index_t size) const {
        return static_cast<int>(tiles == nullptr ? size : std::clamp<index_t>(tiles[s] - row0, 0, size));
    }
    int product_rows(index_t s, index_t row0, int mi) const {
        return fed == nullptr ? mi : static_cast<int>(std::clamp<index_t>(fed[s] - row0, 0, mi));
    }
};

// The time loop shared by the cells, one parallel region for all steps. At
// step s the recurrent products A_s · B (A_s = op.step_block(s, .), step s's left
// operand, N x K; B = K x gates*U, U units per gate) go to
//   epilogue(s, StepTile tile, a_next)
// for tiles covering every row and unit once; the epilogue applies the cell
// and writes A_{s+1} into a_next (op.next(s): packed at op.rows.packed(n, k),
// or dense; null for a view, whose cells' own dA is A_{s+1}) for the tile's
// rows only. prefetch(s, tile) (tile.acc null) is called for the same tiles
// when their last K block of products starts, so that the cell's other
// operands of step s (far out of cache with large N: x·Wx + b of every step
// is written before the loop) arrive while those products run. At step 0
// with zero_first the products are zeros instead (no recurrent input yet).
// With `last` (gates = 1) one more step follows, whose product of the final
// operand with B is stored in last (N x U, dense) instead: a backward's dh0.
// With side_cols (gates = 1), B's last side_cols columns are not the cell's:
// their products of step s >= 1 (operand A_s, the step before's) go to
//   side(s, StepTile tile)
// (tile.j0 and tile.units: side columns j0 .. j0+units-1, counted from the
// first; the final step's too), for every row and side column once. Products
// run over K in blocks of the ISA's kc.
// Threads own, as `how` says (choose_partition; B packed to match, see
// prepare_forward):
//   - rows: whole row blocks, every step of them with no barrier at all (a
//     row's step reads only its own row of the previous step); a tile is a
//     row block's whole rows (B packed in one group);
//   - columns: contiguous ranges of chunks of nr units (B packed per gate),
//     every row block, one barrier per step; a tile is a row block x chunk;
//   - row_passes: whole row blocks as with rows, no barrier, in tiles and
//     passes as with columns (each thread's blocks take every chunk).
// Either way each output is written by one thread, and an element's
// arithmetic is the same (row blocks and K blocks do not depend on the
// thread count or partition): bitwise equal results for any thread count.
// With step_rows (see StepRows; not with row_passes), tiles, products and
// side tiles have the rows that step_rows gives each step (the last one's:
// the final operand's products, zeros in the other rows of last); when
// threads own rows, they own blocks in turns back and forth (0 1 1 0 0 1
// ...), which share out rows sorted longest first evenly.
template <typename T, typename Epilogue, typename Prefetch, typename Side = NoSide>
void recurrent_loop(index_t steps, const StepOperand<T>& op, int gates, const PackedB<T>& B, bool zero_first,
                    Partition how, int nthreads, Epilogue epilogue, Prefetch prefetch, T* last = nullptr,
                    index_t side_cols = 0, Side side = {}, StepRows step_rows = {}) {
    const RowBlocks& rows = op.rows;
    const Kernels<T>& uk = kernels<T>();
    const index_t mr = uk.mr, nr = uk.nr, K = B.K(), kc = std::max<index_t>(1, uk.kc);
    const index_t total = steps + (last != nullptr ? 1 : 0);
    const index_t units = (B.N() - side_cols) / gates, cell_cols = B.N() - side_cols;
    const bool by_rows = how == Partition::rows, own_rows = by_rows || how == Partition::row_passes;
    // Rows: one block's products for all slivers, row stride wide.
    const index_t wide = B.slivers() * nr;
    // Columns: for each chunk, up to kBlocksPerPass blocks x gates tiles.
    const index_t chunks = B.slivers_per_group(), tile_size = mr * nr;
    // (Rows: plus one vector, which the cells' tail loads of the last row may
    // read past its units; those lanes are never stored.)
    const index_t scratch_size = by_rows ? mr * wide + uk.lanes : kBlocksPerPass * gates * tile_size;
    const index_t shares = own_rows ? rows.count : chunks;
    const int team = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, shares)));
    Buffer<T> scratch;  // each thread's, allocated here: nothing may throw in the region
    scratch.reserve(static_cast<std::size_t>(team * scratch_size));
    // A stopped call (stop.h) ends its steps early, and throws after the
    // region. With a barrier at every step, all threads end after the same
    // one: the step whose barrier follows the caller's thread finding it
    // stopped (stop_at, set by that thread only, before that barrier).
    Stop stop;
    std::atomic<index_t> stop_at{total};

    // Rows: block b of step s, all units.
    auto row_block = [&](index_t s, index_t b, T* acc) {
        const T* as = op.step_block(s, b);
        const index_t row0 = rows.start(b);
        const int mi = step_rows.tile_rows(s, row0, rows.size(b));
        if (mi == 0) return;
        const int mp = zero_first && s == 0 ? 0 : step_rows.product_rows(s, row0, mi);
        const StepTile<T> whole{row0, mi, 0, units, nullptr, wide, units};
        if (mp == 0 && s < steps) prefetch(s, whole);
        for (index_t k0 = 0; k0 < K && mp > 0; k0 += kc) {
            if (s < steps && k0 + kc >= K) prefetch(s, whole);
            for (index_t q = 0; q < B.slivers(); ++q) {
                const bool half = 2 * B.width(q) <= nr;  // see Kernels::tile_half
                const index_t kn = std::min(kc, K - k0);
                if (op.dense)
                    (half ? uk.tile_rows_half : uk.tile_rows)(mp, kn, as + k0, op.ld, B.sliver(q) + k0 * nr,
                                                              acc + q * nr, wide, k0 > 0, nullptr);
                else
                    (half ? uk.tile_half : uk.tile)(mp, kn, as + k0 * mr, B.sliver(q) + k0 * nr, acc + q * nr,
                                                    wide, k0 > 0, nullptr);
            }
        }
        std::fill(acc + mp * wide, acc + mi * wide, T(0));
        if (side_cols > 0 && s > 0 && mp > 0) side(s, StepTile<T>{row0, mp, 0, side_cols, acc + cell_cols, wide, 0});
        if (s < steps) {
            epilogue(s, StepTile<T>{row0, mi, 0, units, acc, wide, units}, op.next(s));
            return;
        }
        for (int r = 0; r < mi; ++r) std::copy(acc + r * wide, acc + r * wide + units, last + (row0 + r) * units);
    };
    // Columns: chunk c of step s for row blocks [b0, b1), at most kBlocksPerPass;
    // block b's gate q at tiles + ((b - b0) * gates + q) * tile_size.
    auto column_pass = [&](index_t s, index_t c, index_t b0, index_t b1, T* tiles) {
        // The chunk's columns: [c nr, c nr + cells) the cell's, the rest side columns.
        const index_t first = B.first_column(c), width = B.width(c);
        const index_t cells = std::max<index_t>(0, std::min(width, cell_cols - first));
        // Block b's rows of tiles and of products (see StepRows).
        auto tile_rows = [&](index_t b) { return step_rows.tile_rows(s, rows.start(b), rows.size(b)); };
        auto product_rows = [&](index_t b) {
            return zero_first && s == 0 ? 0 : step_rows.product_rows(s, rows.start(b), tile_rows(b));
        };
        bool products = false;
        for (index_t b = b0; b < b1 && !products; ++b) products = product_rows(b) > 0;
        auto prefetch_pass = [&] {
            if (s < steps && cells > 0)
                for (index_t b = b0; b < b1; ++b)
                    if (const int mi = tile_rows(b); mi > 0)
                        prefetch(s, StepTile<T>{rows.start(b), mi, c * nr, cells, nullptr, nr, tile_size});
        };
        if (!products) prefetch_pass();
        for (index_t k0 = 0; k0 < K && products; k0 += kc) {
            const index_t kn = std::min(kc, K - k0);
            if (k0 + kc >= K) prefetch_pass();
            for (int q = 0; q < gates; ++q) {
                const T* bq = B.sliver(q * chunks + c) + k0 * nr;
                const bool half = 2 * B.width(q * chunks + c) <= nr;
                const auto tile = half ? uk.tile_half : uk.tile;
                // The B block after this one, fetched by this block's last tile.
                const T* next = q + 1 < gates ? B.sliver((q + 1) * chunks + c) + k0 * nr
                                : k0 + kc < K ? B.sliver(c) + (k0 + kc) * nr
                                              : nullptr;
                for (index_t b = b0; b < b1; ++b) {
                    const int mp = product_rows(b);
                    if (mp == 0) continue;
                    T* out = tiles + ((b - b0) * gates + q) * tile_size;
                    const T* ab = op.step_block(s, b);
                    if (op.dense)
                        (half ? uk.tile_rows_half : uk.tile_rows)(mp, kn, ab + k0, op.ld, bq, out, nr, k0 > 0,
                                                                  nullptr);
                    else if (b + 1 == b1 && next != nullptr && !half && b > b0)
                        uk.tile_fetch(mp, kn, ab + k0 * mr, bq, out, nr, k0 > 0, nullptr, next);
                    else
                        tile(mp, kn, ab + k0 * mr, bq, out, nr, k0 > 0, nullptr);
                }
            }
        }
        for (index_t b = b0; b < b1; ++b) {
            const int mi = tile_rows(b), mp = product_rows(b);
            if (mi == 0) continue;
            T* tb = tiles + (b - b0) * gates * tile_size;
            for (int q = 0; q < gates; ++q) std::fill(tb + q * tile_size + mp * nr, tb + q * tile_size + mi * nr, T(0));
            if (cells < width && s > 0 && mp > 0)
                side(s, StepTile<T>{rows.start(b), mp, first + cells - cell_cols, width - cells, tb + cells, nr, 0});
            if (cells == 0) continue;
            if (s < steps) {
                epilogue(s, StepTile<T>{rows.start(b), mi, c * nr, cells, tb, nr, tile_size}, op.next(s));
                continue;
            }
            for (int r = 0; r < mi; ++r)
                std::copy(tb + r * nr, tb + r * nr + cells, last + (rows.start(b) + r) * units + c * nr);
        }
    };
#pragma omp parallel num_threads(team) if (team > 1)
    {
        const index_t tid = omp_get_thread_num(), nth = omp_get_num_threads();
        T* mine = scratch.data() + tid * scratch_size;
        if (by_rows && step_rows.tiles != nullptr) {
            // Blocks in turns back and forth: thread tid owns those b with b
            // mod 2 nth = tid or 2 nth - 1 - tid.
            for (index_t s = 0; s < total && !stop.poll(); ++s)
                for (index_t b = 0; b < rows.count; ++b) {
                    const index_t turn = b % (2 * nth);
                    if (turn == tid || turn == 2 * nth - 1 - tid) row_block(s, b, mine);
                }
        } else if (by_rows) {
            const index_t b0 = rows.count * tid / nth, b1 = rows.count * (tid + 1) / nth;
            for (index_t s = 0; s < total && !stop.poll(); ++s)
                for (index_t b = b0; b < b1; ++b) row_block(s, b, mine);
        } else if (own_rows) {
            // The thread's blocks in passes of equal size, at most kBlocksPerPass.
            const index_t b0 = rows.count * tid / nth, b1 = rows.count * (tid + 1) / nth, mine_count = b1 - b0;
            const index_t passes = (mine_count + kBlocksPerPass - 1) / kBlocksPerPass;
            for (index_t s = 0; s < total && !stop.poll(); ++s)
                for (index_t c = 0; c < chunks; ++c)
                    for (index_t q = 0; q < passes; ++q)
                        column_pass(s, c, b0 + mine_count * q / passes, b0 + mine_count * (q + 1) / passes, mine);
        } else {
            // The chunks with cell columns and those of side columns alone are
            // shared out apart: the cells' work would otherwise fall to some
            // threads only (a 13 x 100 x 32 x 32 LSTM backward 11% slower).
            const index_t cc = std::min(chunks, (cell_cols + nr - 1) / nr), sc = chunks - cc;
            const index_t c0 = cc * tid / nth, c1 = cc * (tid + 1) / nth;
            const index_t d0 = cc + sc * tid / nth, d1 = cc + sc * (tid + 1) / nth;
            auto chunk = [&](index_t s, index_t c) {
                for (index_t p = 0; p < rows.count; p += kBlocksPerPass)
                    column_pass(s, c, p, std::min(rows.count, p + kBlocksPerPass), mine);
            };
            for (index_t s = 0; s < total; ++s) {
                for (index_t c = c0; c < c1; ++c) chunk(s, c);
                for (index_t c = d0; c < d1; ++c) chunk(s, c);
                if (stop.owner() && stop.poll()) stop_at.store(s, std::memory_order_relaxed);
#pragma omp barrier
                if (stop_at.load(std::memory_order_relaxed) <= s) break;
            }
        }
    }
    stop.check();
}

// The side of a backward's time loop with a fused input gradient: step s's
// side products are dx (laid out as L says) of loop step s - 1 (forward
// step T - s).
template <typename F>
void store_input_gradient(F* dx, index_t s, const StepTile<F>& tile, const SeqLayout& L, index_t D, bool reverse) {
    const index_t t = step_time(L.T - s, L.T, reverse);
    for (int r = 0; r < tile.mi; ++r)
        std::copy(tile.acc + r * tile.row_stride, tile.acc + r * tile.row_stride + tile.units,
                  dx + L.at(tile.row0 + r, t) * D + tile.j0);
}

// a (N,T,G; row stride lda) = x (N,T,D) · Wx (D,G) + b (G), over all N*T
// rows in one GEMM (reading pre's packed Wx, when given).
template <typename F>
void input_projection(F* a, index_t lda, const F* x, const F* Wx, const F* b, index_t N, index_t T, index_t D,
                      index_t G, int nthreads, const PackedWeights<F>* pre = nullptr) {
    gemm<F>(N * T, G, D, dense_rows(x, D), false, dense_rows(Wx, G), false, false, a, lda, nthreads, b,
            pre != nullptr ? &pre->wx : nullptr);
}

// The sums of dA that a backward's time loop takes while it has each
// step's dA in L1 (dA (N,T,G), or packed: its layout L, as x's and dx's):
//   db (G), always;
//   for a shallow input (D <= kShallowInput), dx (N,T,D), dx[o, d] =
//     dA[o, :] · Wx[d, :], and dWx (D,G).
// db and dWx are sums of per-block partials, one per row block of the time
// loop (its RowBlocks: the same for any thread count or partition), each
// taking its rows step by step in the backward's order and in row order
// within a step; finish() adds the blocks in order. Its tiles call
// add_rows(b, t) when they are whole rows (threads own rows) and
// add_db(b, t, ...) for each column range otherwise; then a shallow input's
// dx and dWx are taken after the loop in the same order (add_inputs), so
// every partition and thread count gives the same bits. The kernel is the
// ISA's loop_sums.
template <typename F>
class LoopSums {
public:
    LoopSums(const RowBlocks& rows, const SeqLayout& L, index_t D, index_t G, const F* dA, const F* x, const F* Wx,
             F* dx)
        : rows_(rows), L_(L), D_(D <= kShallowInput ? D : 0), G_(G), dA_(dA), x_(x), Wx_(Wx), dx_(dx),
          shallow_(D <= kShallowInput) {
        const index_t size = rows.count * (D_ + 1) * G;
        part_.reserve(static_cast<std::size_t>(std::max<index_t>(1, size)));
        std::fill(part_.data(), part_.data() + size, F(0));
    }

    bool shallow() const { return shallow_; }

    // Block b's rows at time t, whole (those that have it): db, and dx and
    // dWx of a shallow input.
    void add_rows(index_t b, index_t t) { add(b, t, D_, 0, G_, true); }

    // db's columns [c0, c0 + count) of block b's rows at time t.
    void add_db(index_t b, index_t t, index_t c0, index_t count) { add(b, t, 0, c0, count, true); }

    // A shallow input's dx and dWx of every block, steps in the backward's
    // order (step s at forward time step_time(T - 1 - s)), when the loop's
    // tiles were not whole rows; blocks are independent.
    void add_inputs(bool reverse, int nthreads) {
        const index_t T = L_.T;
        const bool big = nthreads > 1 && rows_.count > 1 && rows_.M * T * D_ * G_ >= (1 << 15);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (big)
        for (index_t b = 0; b < rows_.count; ++b)
            for (index_t s = 0; s < T; ++s) add(b, step_time(T - 1 - s, T, reverse), D_, 0, G_, false);
    }

    // dWx (D,G; a shallow input's only) and db (G): the blocks' partials
    // added in block order.
    void finish(F* dWx, F* db) const {
        const index_t size = (D_ + 1) * G_;
        auto sum_blocks = [&](F* dst, index_t i0, index_t count) {
            std::fill(dst, dst + count, F(0));
            for (index_t b = 0; b < rows_.count; ++b) {
                const F* p = part_.data() + b * size + i0;
                for (index_t i = 0; i < count; ++i) dst[i] += p[i];
            }
        };
        if (shallow_) sum_blocks(dWx, 0, D_ * G_);
        sum_blocks(db, D_ * G_, G_);
    }

private:
    // Block b's rows at time t, columns [c0, c0 + count): d input features
    // (0 or D_), db if with_db. Block b's partials: D_ rows of dWx, then db.
    void add(index_t b, index_t t, index_t d, index_t c0, index_t count, bool with_db) {
        const index_t row0 = rows_.start(b), o = L_.at(row0, t), rs = L_.stride();
        const int mi = L_.live(t, row0, static_cast<int>(rows_.size(b)));
        if (mi == 0) return;
        F* part = part_.data() + b * (D_ + 1) * G_;
        kernels<F>().loop_sums(mi, count, d, dA_ + o * G_ + c0, rs * G_, x_ + o * D_, rs * D_, Wx_, dx_ + o * D_,
                               part, with_db ? part + D_ * G_ + c0 : nullptr);
    }

    RowBlocks rows_;
    SeqLayout L_;
    index_t D_, G_;  // D_: the input features taken here (0 unless shallow)
    const F* dA_;
    const F* x_;
    const F* Wx_;
    F* dx_;
    bool shallow_;
    Buffer<F> part_;  // rows_.count blocks of (D_ + 1) x G: dWx's rows, then db's
};

// Given dA (M rows of G: (N,T,G), M = N * T, or packed), the gradient of
// every step's pre-activations, and dAh, that of their recurrent part h_prev
// · Wh (+ bh), dA itself but for split cells (cell.h); x and dx laid out as
// dA, and h_prev likewise (previous_states):
//   dx (M,D) = dA · Wx^T      dWx (D,G) = x^T · dA
//   dWh (H,G) = sum over the M rows of h_prev^T · dAh
//   db (G) = sum of dA's rows;  dbh (G), split cells': of dAh
// db, dbh and a shallow input's dx and dWx come from sums and sums_h instead
// (their tiles' rows added by the time loop, whole when by_rows); dx from
// the time loop when dx_done (fused_input_gradient).
// The rows h_prev of sequence_weight_grads for a batch-first h (N,T,H): h0
// (N,H) at each sequence's first step and otherwise the state of the time
// before it (after it when reverse).
template <typename F>
Rows<F> previous_states(const F* h, const F* h0, index_t T, index_t H, bool reverse) {
    Rows<F> h_prev = grouped_rows(h, H, T, T * H);
    h_prev.shift = reverse ? H : -H;
    h_prev.alt = h0;
    h_prev.alt_ld = H;
    h_prev.alt_index = reverse ? T - 1 : 0;
    return h_prev;
}

template <typename F>
void sequence_weight_grads(F* dx, F* dWx, F* dWh, F* db, const F* dA, const F* x, Rows<F> h_prev, const F* Wx,
                           index_t M, index_t D, index_t H, index_t G, bool reverse, int nthreads,
                           LoopSums<F>& sums, bool by_rows, bool dx_done, const F* dAh = nullptr, F* dbh = nullptr,
                           LoopSums<F>* sums_h = nullptr) {
    const bool split = dAh != nullptr && dAh != dA;
    if (sums.shallow() && !by_rows) sums.add_inputs(reverse, nthreads);
    if (!sums.shallow() && !dx_done)
        gemm<F>(M, D, G, dense_rows(dA, G), false, dense_rows(Wx, G), true, false, dx, D, nthreads);
    if (split) {
        if (!sums.shallow())
            gemm<F>(D, G, M, dense_rows(x, D), true, dense_rows(dA, G), false, false, dWx, G, nthreads);
        gemm<F>(H, G, M, h_prev, true, dense_rows(dAh, G), false, false, dWh, G, nthreads);
        sums_h->finish(nullptr, dbh);
    } else if (sums.shallow()) {
        gemm<F>(H, G, M, h_prev, true, dense_rows(dA, G), false, false, dWh, G, nthreads);
    } else {
        gemm_pair<F>(D, H, G, M, dense_rows(x, D), h_prev, true, dense_rows(dA, G), false, dWx, G, dWh, G,
                     nthreads);
    }
    sums.finish(dWx, db);
}

}  // namespace rnn_fast
