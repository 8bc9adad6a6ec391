#include "gemm.h"

#include <emmintrin.h>  // SSE2, part of the x86-64 baseline: the transposing copies
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "stop.h"

namespace rnn_fast {

void prefault(void* p, std::size_t bytes) {
    constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE, missing from older headers
    constexpr std::size_t kMin = std::size_t(256) << 10;  // below this, faults are cheap enough
    if (bytes < kMin) return;
    const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    const std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
    const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + bytes) / page * page;
    if (end <= begin) return;
    // Memory the allocator hands out again is mapped already, and populating
    // it would walk every page (50-80 us per MB): look at three pages first.
    // Fresh memory is fresh throughout (a new mapping) or at its end (the
    // heap grown), so a mapped first, middle and last page mean "reused".
    auto mapped = [&](std::uintptr_t at) {
        unsigned char resident = 0;
        return mincore(reinterpret_cast<void*>(at), page, &resident) == 0 && (resident & 1) != 0;
    };
    const std::uintptr_t last = end - page, middle = begin + (last - begin) / 2 / page * page;
    if (mapped(begin) && mapped(middle) && mapped(last)) return;
    // Fresh: ask for 2 MiB pages where the region covers them (transparent
    // huge pages, where the system allows them for advised regions): 512x
    // fewer faults here and TLB entries in the time loop.
    if (bytes >= kHugePage) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
    // A hint, in pieces between which a stopped call (stop.h) ends: fresh
    // pages took 0.5 to 3 ms per MB here (the outputs of a large layer's
    // forward, 1 GB: half a second or more; 32 MB pieces, up to 100 ms).
    constexpr std::uintptr_t kPiece = std::uintptr_t(4) << 20;
    Stop stop;
    for (std::uintptr_t at = begin; at < end && !stop.poll(); at += kPiece)
        madvise(reinterpret_cast<void*>(at), std::min(kPiece, end - at), kPopulateWrite);
    stop.check();
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kKeepBlocks = false;
#else
constexpr bool kKeepBlocks = true;
#endif

namespace {
thread_local bool t_cache_gone = false;  // trivially destructible: readable to the thread's very end
}  // namespace

BlockCache* BlockCache::mine() {
    if (t_cache_gone) return nullptr;
    thread_local BlockCache cache;
    return &cache;
}

void* BlockCache::take(std::size_t bytes, std::size_t* got) {
    int best = -1;
    for (int i = 0; i < count_; ++i)
        if (blocks_[i].bytes >= bytes && blocks_[i].bytes <= 2 * bytes + kSlack &&
            (best < 0 || blocks_[i].bytes <= blocks_[best].bytes))
            best = i;
    if (best < 0) return nullptr;
    const Block b = remove(best);
    *got = b.bytes;
    return b.p;
}

void BlockCache::give(void* p, std::size_t bytes) {
    constexpr int slots = static_cast<int>(sizeof(blocks_) / sizeof(blocks_[0]));
    if (!kKeepBlocks || bytes > kMaxBlock) {
        std::free(p);
        return;
    }
    while (count_ > 0 && (count_ == slots || total_ + bytes > kMaxTotal)) std::free(remove(0).p);
    blocks_[count_++] = {p, bytes};
    total_ += bytes;
}

BlockCache::Block BlockCache::remove(int i) {
    const Block b = blocks_[i];
    std::copy(blocks_ + i + 1, blocks_ + count_, blocks_ + i);  // keeps the oldest first
    --count_;
    total_ -= b.bytes;
    return b;
}

BlockCache::~BlockCache() {
    for (int i = 0; i < count_; ++i) std::free(blocks_[i].p);
    t_cache_gone = true;
}

namespace {


// Below this many multiply-adds a product runs on the calling thread alone:
// waking a team costs more than it saves.
constexpr index_t kParallelWork = 1 << 15;

// gemm cuts K in two (see there) when C has at most kSplitOutput elements
// and each half at least kSplitDepth rows.
constexpr index_t kSplitOutput = 1 << 16, kSplitDepth = 256;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// c[i * ldc + j] (+)= s[j * lds + i] for i < rows, j < cols: 4 x 4 blocks
// of floats transposed in registers, the rest one by one.
template <typename T>
void transpose_into(T* c, index_t ldc, const T* s, index_t lds, index_t rows, index_t cols, bool accumulate) {
    index_t i = 0;
    if constexpr (sizeof(T) == 4) {
        for (; i + 4 <= rows; i += 4) {
            index_t j = 0;
            for (; j + 4 <= cols; j += 4) {
                __m128 r0 = _mm_loadu_ps(s + j * lds + i), r1 = _mm_loadu_ps(s + (j + 1) * lds + i);
                __m128 r2 = _mm_loadu_ps(s + (j + 2) * lds + i), r3 = _mm_loadu_ps(s + (j + 3) * lds + i);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                T* o = c + i * ldc + j;
                if (accumulate) {
                    r0 = _mm_add_ps(_mm_loadu_ps(o), r0);
                    r1 = _mm_add_ps(_mm_loadu_ps(o + ldc), r1);
                    r2 = _mm_add_ps(_mm_loadu_ps(o + 2 * ldc), r2);
                    r3 = _mm_add_ps(_mm_loadu_ps(o + 3 * ldc), r3);
                }
                _mm_storeu_ps(o, r0);
                _mm_storeu_ps(o + ldc, r1);
                _mm_storeu_ps(o + 2 * ldc, r2);
                _mm_storeu_ps(o + 3 * ldc, r3);
            }
            for (; j < cols; ++j)
                for (index_t k = i; k < i + 4; ++k)
                    c[k * ldc + j] = (accumulate ? c[k * ldc + j] : T(0)) + s[j * lds + k];
        }
    }
    for (; i < rows; ++i)
        for (index_t j = 0; j < cols; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : T(0)) + s[j * lds + i];
}

// Whether C (M x N) is better computed as C^T and transposed: C's columns
// come in nr-wide slivers, the last padded, so an N of 50 with nr = 16
// computes 64 columns; C^T pads M instead. When that is an eighth less
// work (1920 x 50 x 200, the dx of a 50-unit LSTM: 19% less time with the
// transposition, measured).
bool narrow(index_t M, index_t N, index_t nr) {
    return M >= 2 * nr && 8 * ceil_div(N, nr) * nr * M > 9 * ceil_div(M, nr) * nr * N;
}

// fn(std::integral_constant<index_t, W>{}) for the W among Ws equal to w, and
// true; false if none is: a sliver width (the ISAs' mr or nr) made a
// compile-time constant, so that the packing copies become fixed-size moves.
template <index_t... Ws, typename Fn>
bool with_width(index_t w, Fn&& fn) {
    return ((w == Ws && (fn(std::integral_constant<index_t, Ws>{}), true)) || ...);
}

// MI rows of a sliver of width mr (d[k * mr + i] = rows[i][k], k < kc): the
// row pointers held in registers and the row loop unrolled, k outer so that
// the stores run along d (the general loop reloads a pointer per element;
// this is ~2x faster, measured on the backward's dA packing; row by row,
// each store went mr values from the one before: the time loops' epilogues
// 1-4% slower, measured). With mr a constant (a whole sliver of the ISAs'
// mr), the copies become fixed-size moves.
template <int MI, typename T>
void pack_sliver(T* d, const T* const* rows, index_t kc, index_t mr = MI) {
    const T* r[MI];
#pragma GCC unroll 16
    for (int i = 0; i < MI; ++i) r[i] = rows[i];
    index_t k = 0;
    if constexpr (sizeof(T) == 4 && MI >= 2) {
        // Four k at a time: rows four at a time transposed in registers and
        // stored four values at a time, two more as pairs (64-bit stores),
        // the last one value by value.
        for (; k + 4 <= kc; k += 4, d += 4 * mr) {
            int i = 0;
#pragma GCC unroll 4
            for (; i + 4 <= MI; i += 4) {
                __m128 a = _mm_loadu_ps(r[i] + k), b = _mm_loadu_ps(r[i + 1] + k);
                __m128 c = _mm_loadu_ps(r[i + 2] + k), e = _mm_loadu_ps(r[i + 3] + k);
                _MM_TRANSPOSE4_PS(a, b, c, e);
                _mm_storeu_ps(d + i, a);
                _mm_storeu_ps(d + mr + i, b);
                _mm_storeu_ps(d + 2 * mr + i, c);
                _mm_storeu_ps(d + 3 * mr + i, e);
            }
            if (i + 2 <= MI) {
                const __m128 a = _mm_loadu_ps(r[i] + k), b = _mm_loadu_ps(r[i + 1] + k);
                const __m128 lo = _mm_unpacklo_ps(a, b), hi = _mm_unpackhi_ps(a, b);
                _mm_storel_pi(reinterpret_cast<__m64*>(d + i), lo);
                _mm_storeh_pi(reinterpret_cast<__m64*>(d + mr + i), lo);
                _mm_storel_pi(reinterpret_cast<__m64*>(d + 2 * mr + i), hi);
                _mm_storeh_pi(reinterpret_cast<__m64*>(d + 3 * mr + i), hi);
                i += 2;
            }
            if (i < MI)
                for (int q = 0; q < 4; ++q) d[q * mr + i] = r[i][k + q];
        }
    }
    for (; k < kc; ++k, d += mr)
#pragma GCC unroll 16
        for (int i = 0; i < MI; ++i) d[i] = r[i][k];
}

template <typename T, int... I>
void pack_rows_dispatch(T* d, const T* const* rows, index_t mi, index_t kc, index_t mr,
                        std::integer_sequence<int, I...>) {
    static void (*const fns[])(T*, const T* const*, index_t, index_t) = {pack_sliver<I + 1, T>...};
    fns[mi - 1](d, rows, kc, mr);
}

// pack_sliver for 0 <= mi <= 16 rows chosen at run time.
template <typename T>
void pack_rows(T* d, const T* const* rows, index_t mi, index_t kc, index_t mr) {
    if (mi > 0) pack_rows_dispatch(d, rows, mi, kc, mr, std::make_integer_sequence<int, 16>{});
}

// op(A)[ic:ic+mc, pc:pc+kc] into mr-row slivers (kc x mr each), zero-padded.
template <typename T>
void pack_a(T* dst, Rows<T> A, bool transA, index_t ic, index_t mc, index_t pc, index_t kc, index_t mr) {
    const index_t padded = ceil_div(mc, mr) * mr;
    if (padded != mc) std::fill(dst, dst + padded * kc, T(0));
    if (!transA) {
        // Sliver by sliver, k outer: contiguous stores, mr row streams read in step.
        const T* rows[64];
        for (index_t i0 = 0; i0 < mc; i0 += mr) {
            const index_t n = std::min(mr, mc - i0);
            for (index_t i = 0; i < n; ++i) rows[i] = A.row(ic + i0 + i) + pc;
            T* d = dst + i0 * kc;
            auto sliver = [&](auto width) { pack_sliver<decltype(width)::value>(d, rows, kc); };
            if (n != mr || !with_width<4, 6, 14>(mr, sliver)) pack_rows(d, rows, n, kc, mr);
        }
    } else {
        // Row k of the stored A holds element k of every row of op(A): each
        // whole sliver's mr values are one copy of a size known here.
        const index_t whole = mc / mr * mr;
        auto slivers = [&](auto width) {
            constexpr index_t R = decltype(width)::value;
            for (index_t k = 0; k < kc; ++k) {
                const T* src = A.row(pc + k) + ic;
                for (index_t i0 = 0; i0 < whole; i0 += R) std::memcpy(dst + i0 * kc + k * R, src + i0, R * sizeof(T));
            }
        };
        const index_t first = with_width<4, 6, 14>(mr, slivers) ? whole : 0;
        for (index_t k = 0; k < kc && first < mc; ++k) {
            const T* src = A.row(pc + k) + ic;
            for (index_t i0 = first; i0 < mc; i0 += mr) {
                T* d = dst + i0 * kc + k * mr;
                const index_t n = std::min(mr, mc - i0);
                for (index_t i = 0; i < n; ++i) d[i] = src[i0 + i];
            }
        }
    }
}

}  // namespace

template <typename T>
void pack_block_rows(T* dst, const T* src, index_t ld, index_t mi, index_t count, index_t mr) {
    const T* rows[16];
    for (index_t i = 0; i < mi; ++i) rows[i] = src + i * ld;
    pack_rows(dst, rows, mi, count, mr);
}

// Columns [j0, j0 + nj) of rows [pc, pc + kc) of op(B), as one nr-wide sliver
// (kc x nr, zero-padded) at d, element by element: pack_b_panel's way for
// the slivers its whole-row copies do not cover.
template <typename T>
void pack_b_sliver(T* d, Rows<T> B, bool transB, index_t pc, index_t kc, index_t j0, index_t nj, index_t nr) {
    if (nj < nr) std::fill(d, d + kc * nr, T(0));
    if (!transB) {
        for (index_t k = 0; k < kc; ++k) {
            const T* src = B.row(pc + k) + j0;
            for (index_t j = 0; j < nj; ++j) d[k * nr + j] = src[j];
        }
        return;
    }
    // Stored rows j of B become columns of the sliver. Row by row, each
    // value went to its own line of the sliver, kc lines apart from the
    // last (a whole Wh^T sliver is 2048 lines for H = 512: out of L1 at
    // every store; packing Wh^T for a backward took ~8% of a 16 x 25 x 512
    // training forward so). Instead: 64 values of k at a time, the sliver's
    // 64 lines staying in L1 while all nj rows are read into them, in W x W
    // blocks transposed in registers and written W values at a time.
    constexpr index_t W = sizeof(T) == 4 ? 4 : 2, kBand = 64;
    const T* rows[64];  // nj <= nr, at most 32 (AVX-512 floats)
    for (index_t j = 0; j < nj; ++j) rows[j] = B.row(j0 + j) + pc;
    for (index_t k0 = 0; k0 < kc; k0 += kBand) {
        const index_t k1 = std::min(kc, k0 + kBand);
        index_t j = 0;
        for (; j + W <= nj; j += W) {
            const T* const* r = rows + j;
            index_t k = k0;
            for (; k + W <= k1; k += W) {
                T* o = d + k * nr + j;
                if constexpr (sizeof(T) == 4) {
                    __m128 a = _mm_loadu_ps(r[0] + k), b = _mm_loadu_ps(r[1] + k);
                    __m128 c = _mm_loadu_ps(r[2] + k), e = _mm_loadu_ps(r[3] + k);
                    _MM_TRANSPOSE4_PS(a, b, c, e);
                    _mm_storeu_ps(o, a);
                    _mm_storeu_ps(o + nr, b);
                    _mm_storeu_ps(o + 2 * nr, c);
                    _mm_storeu_ps(o + 3 * nr, e);
                } else {
                    const __m128d a = _mm_loadu_pd(r[0] + k), b = _mm_loadu_pd(r[1] + k);
                    _mm_storeu_pd(o, _mm_unpacklo_pd(a, b));
                    _mm_storeu_pd(o + nr, _mm_unpackhi_pd(a, b));
                }
            }
            for (; k < k1; ++k)
                for (index_t i = 0; i < W; ++i) d[k * nr + j + i] = r[i][k];
        }
        for (; j < nj; ++j)
            for (index_t k = k0; k < k1; ++k) d[k * nr + j] = rows[j][k];
    }
}

// Slivers s = 0 .. count-1 of rows [pc, pc + kc) of op(B), sliver s of
// columns [j0 + s * nr, ...) (the last may be partial: N columns in all), at
// d + s * kc * nr. With B not transposed, whole sliver rows are copied eight
// rows of k at a time across the panel: each row of B is read in one pass
// along its length, not one line per sliver (a sliver at a time reads one
// line of each of kc rows, a page apart with wide B: ~3.7 GB/s measured),
// each copy of a size known here (a few vector moves, not a memcpy call).
template <typename T>
void pack_b_panel(T* d, Rows<T> B, bool transB, index_t pc, index_t kc, index_t j0, index_t N, index_t count,
                  index_t nr) {
    index_t whole = 0;  // slivers of nr real columns
    while (whole < count && j0 + (whole + 1) * nr <= N) ++whole;
    auto rows = [&](auto width) {
        constexpr index_t W = decltype(width)::value;
        constexpr index_t kBand = 8;
        const T* src[kBand];
        for (index_t k0 = 0; k0 < kc; k0 += kBand) {
            const index_t kn = std::min(kBand, kc - k0);
            for (index_t k = 0; k < kn; ++k) src[k] = B.row(pc + k0 + k) + j0;
            for (index_t s = 0; s < whole; ++s) {
                T* out = d + s * kc * W + k0 * W;
                for (index_t k = 0; k < kn; ++k) std::memcpy(out + k * W, src[k] + s * W, W * sizeof(T));
            }
        }
    };
    if (transB || !with_width<4, 8, 16, 32>(nr, rows)) whole = 0;
    for (index_t s = whole; s < count; ++s)
        pack_b_sliver(d + s * kc * nr, B, transB, pc, kc, j0 + s * nr, std::min(nr, N - j0 - s * nr), nr);
}

template <typename T>
void PackedB<T>::pack(index_t K, index_t N, Rows<T> B, bool transB, int nthreads, int groups) {
    nr_ = kernels<T>().nr;
    K_ = K;
    N_ = N;
    groups_ = groups;
    group_cols_ = N / groups;
    spg_ = ceil_div(group_cols_, nr_);
    const index_t slivers = spg_ * groups_;
    data_.reserve(static_cast<std::size_t>(std::max<index_t>(1, K * slivers * nr_)));
    T* out = data_.data();
    // Items of up to 8 slivers of one group; each sliver is written by
    // exactly one thread.
    constexpr index_t kPer = 8;
    const index_t per_group = ceil_div(spg_, kPer);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && K * N >= kParallelWork)
    for (index_t item = 0; item < groups_ * per_group; ++item) {
        const index_t g = item / per_group, s0 = g * spg_ + (item % per_group) * kPer;
        const index_t count = std::min(kPer, (g + 1) * spg_ - s0);
        pack_b_panel(out + s0 * K * nr_, B, transB, 0, K, first_column(s0), (g + 1) * group_cols_, count, nr_);
    }
}

namespace {

// gemm's split of C into col_items panels of slivers x row_items ranges of
// mr-row blocks: the one whose busiest thread has the least work, its
// products and its packing (omp for schedule(static) gives thread t a
// contiguous range of items). Searched once per shape and thread count on
// each calling thread (a few thousand divisions), then remembered.
void choose_split(index_t M, index_t N, index_t mr, index_t nr, index_t slivers, index_t units, index_t min_cols,
                  index_t chunks, int nthreads, index_t* col_items, index_t* row_items) {
    struct Memo {
        index_t M = -1, N = -1, mr = 0, nr = 0, min_cols = 0, chunks = 0;
        int nthreads = 0;
        index_t ci = 1, ri = 1;
    };
    thread_local Memo memo[8];
    thread_local int next = 0;
    for (const Memo& m : memo)
        if (m.M == M && m.N == N && m.mr == mr && m.nr == nr && m.min_cols == min_cols && m.chunks == chunks &&
            m.nthreads == nthreads) {
            *col_items = m.ci;
            *row_items = m.ri;
            return;
        }
    auto cols_of = [&](index_t c, index_t per) { return std::min(N, (c + 1) * per * nr) - std::min(N, c * per * nr); };
    auto rows_of = [&](index_t r, index_t n) { return std::min(M, (r + 1) * units / n * mr) - std::min(M, r * units / n * mr); };
    index_t best = -1, best_ci = min_cols, best_ri = 1;
    const index_t span = 2 * index_t(nthreads);
    for (index_t ci = min_cols; ci <= std::min(slivers, min_cols + span); ++ci) {
        const index_t per = ceil_div(slivers, ci);
        if (ceil_div(slivers, per) != ci) continue;  // the same panels as a smaller ci
        for (index_t ri = 1; ri <= std::min(units, span); ++ri) {
            const index_t n_items = ci * ri * chunks, team = std::max<index_t>(1, std::min<index_t>(nthreads, n_items));
            index_t busiest = 0, item = 0;
            for (index_t t = 0; t < team; ++t) {
                const index_t count = n_items / team + (t < n_items % team ? 1 : 0);
                index_t work = 0;
                for (index_t e = 0; e < count; ++e, ++item) {
                    // Per k: a multiply-add per element, 16 to a cycle; packing
                    // about half a cycle per B column and one per A row.
                    const index_t cols = cols_of(item % ci, per), rows = rows_of(item / ci % ri, ri);
                    work += cols * rows + 8 * cols + 16 * rows;
                }
                busiest = std::max(busiest, work);
            }
            // Splitting rows packs B again per row range and re-reads it from
            // memory, which the count above undervalues: only for a clear gain.
            if (ri > 1) busiest += busiest / 8;
            if (best < 0 || busiest < best) {
                best = busiest;
                best_ci = ci;
                best_ri = ri;
            }
        }
    }
    memo[next] = {M, N, mr, nr, min_cols, chunks, nthreads, best_ci, best_ri};
    next = (next + 1) % 8;
    *col_items = best_ci;
    *row_items = best_ri;
}

// One left operand of gemm_pieces and the rows of C it gives: op(A) (M x K)
// as rows [first, first + M) of the stacked product, first a multiple of mr.
template <typename T>
struct Piece {
    Rows<T> A;
    T* C;
    index_t ldc;
    index_t M, first;
};

// gemm's general path, for one or more left operands stacked (each padded
// to whole mr-row slivers) against one op(B): C_p (+)= op(A_p) · op(B) for
// every piece p, B's panels packed once for all of them.
template <typename T>
void gemm_pieces(const Piece<T>* pieces, int count, index_t N, index_t K, bool transA, Rows<T> B, bool transB,
                 bool accumulate, int nthreads, const T* bias, const PackedB<T>* packed_b) {
    const Kernels<T>& uk = kernels<T>();
    const index_t mr = uk.mr, nr = uk.nr;
    const index_t M = pieces[count - 1].first + pieces[count - 1].M;  // rows of the stack, padding included
    // The piece holding stacked row v.
    auto piece_of = [&](index_t v) -> const Piece<T>& {
        int p = count - 1;
        while (p > 0 && pieces[p].first > v) --p;
        return pieces[p];
    };
    // Work items: a panel of whole slivers (at most about 1 MiB packed,
    // streamed from L2/L3 while every row block of the item runs through it)
    // times a range of rows, split as choose_split finds best for the threads
    // (columns past N and rows past M not counted; the fewest panels, then
    // row ranges, among equals), so that 13 slivers on 2 threads do not leave
    // one thread idle a seventh of the product. Each item packs its own B
    // panel and A blocks as it goes.
    const index_t KC = std::min(uk.kc, K), MC = uk.mc;
    const index_t slivers = ceil_div(N, nr);
    const index_t units = ceil_div(M, mr);  // rows are split in whole mr-row blocks
    const index_t panel = std::max<index_t>(1, (index_t(1) << 20) / (KC * nr * index_t(sizeof(T))));
    const index_t min_cols = ceil_div(slivers, panel);
    // A long sum into a small C (a small layer's weight gradient: 50 x 200
    // over 1,920 rows) has too few tiles to share evenly, and each thread
    // packs all of A or all of B again: its K is cut in two halves, summed
    // apart and added, the second into `part`. The cut depends on the shape
    // alone, so that the values do not depend on the thread count.
    const index_t chunks = M * N <= kSplitOutput && K >= 2 * kSplitDepth ? 2 : 1;
    index_t col_items = min_cols, row_items = 1;
    if (nthreads > 1 && M * N * K >= kParallelWork)
        choose_split(M, N, mr, nr, slivers, units, min_cols, chunks, nthreads, &col_items, &row_items);
    const index_t per_col = ceil_div(slivers, col_items);
    const index_t items = col_items * row_items * chunks;
    const bool parallel = nthreads > 1 && items > 1 && M * N * K >= kParallelWork;
    // Packing buffers for each thread, allocated here: nothing may throw
    // inside the parallel region.
    const index_t team = parallel ? std::min<index_t>(nthreads, items) : 1;
    const index_t a_size = ceil_div(MC, mr) * mr * KC, b_size = packed_b != nullptr ? 0 : per_col * nr * KC;
    Buffer<T> buffers, part;
    buffers.reserve(static_cast<std::size_t>(team * (a_size + b_size)));
    if (chunks > 1) part.reserve(static_cast<std::size_t>(M * N));
    // Items write disjoint tiles of C (or of part); each tile sums over its
    // K range in block order. A stopped call (stop.h) skips the blocks left.
    Stop stop;
#pragma omp parallel num_threads(static_cast<int>(team)) if (parallel)
    {
        T* apack = buffers.data() + omp_get_thread_num() * (a_size + b_size);
        T* bpack = apack + a_size;
        alignas(64) T edge[16 * 64];  // one tile whose sliver is not all real columns
#pragma omp for schedule(static)
        for (index_t item = 0; item < items; ++item) {
            const index_t s0 = (item % col_items) * per_col, s1 = std::min(slivers, s0 + per_col);
            const index_t r = item / col_items % row_items, chunk = item / (col_items * row_items);
            const index_t m0 = std::min(M, r * units / row_items * mr), m1 = std::min(M, (r + 1) * units / row_items * mr);
            const index_t k0 = chunk * (K / 2), k1 = chunks == 1 || chunk == 1 ? K : K / 2;
            for (index_t pc = k0; pc < k1 && !stop.requested(); pc += KC) {
                const index_t kc = std::min(KC, k1 - pc);
                const bool acc = (chunk == 0 && accumulate) || pc > k0;
                if (packed_b == nullptr) pack_b_panel(bpack, B, transB, pc, kc, s0 * nr, N, s1 - s0, nr);
                for (index_t ic = m0; ic < m1 && !stop.poll(); ic += MC) {
                    const index_t mc = std::min(MC, m1 - ic);
                    // Each piece's slivers of the block (pieces start on whole slivers).
                    for (int p = 0; p < count; ++p) {
                        const Piece<T>& q = pieces[p];
                        const index_t lo = std::max(ic, q.first), hi = std::min(ic + mc, q.first + q.M);
                        if (lo < hi) pack_a(apack + (lo - ic) * kc, q.A, transA, lo - q.first, hi - lo, pc, kc, mr);
                    }
                    for (index_t s = s0; s < s1; ++s) {
                        const T* bp = packed_b != nullptr ? packed_b->sliver(s) + pc * nr : bpack + (s - s0) * kc * nr;
                        const index_t j0 = s * nr, nj = std::min(nr, N - j0);
                        // Weights packed beforehand (an inference's Wx, 16 MB for a
                        // 1024 x 4096 layer) come from L3 or memory: the next sliver's
                        // block is fetched into L1 by this one's last tile (the large
                        // LSTM's inference forward 2% faster; a panel packed here by
                        // the thread itself gains nothing, measured).
                        const T* next = s + 1 < s1 && packed_b != nullptr ? packed_b->sliver(s + 1) + pc * nr : nullptr;
                        for (index_t ir = 0; ir < mc; ir += mr) {
                            const T* ap = apack + ir * kc;
                            const index_t v = ic + ir;
                            const Piece<T>& q = piece_of(v);
                            T* c = chunk == 0 ? q.C + (v - q.first) * q.ldc + j0 : part.data() + v * N + j0;
                            const index_t ldo = chunk == 0 ? q.ldc : N;
                            const int mi = static_cast<int>(std::min(mr, q.first + q.M - v));
                            // The first K block of C adds the bias, if any.
                            const T* base = acc || chunk > 0 || bias == nullptr ? nullptr : bias + j0;
                            // A sliver of at most nr / 2 real columns takes half a tile.
                            const auto tile = 2 * nj <= nr ? uk.tile_half : uk.tile;
                            if (nj == nr && ir + mr >= mc && ir > 0 && next != nullptr) {
                                uk.tile_fetch(mi, kc, ap, bp, c, ldo, acc, base, next);
                                continue;
                            }
                            if (nj == nr || 2 * nj == nr) {
                                tile(mi, kc, ap, bp, c, ldo, acc, base);
                                continue;
                            }
                            tile(mi, kc, ap, bp, edge, nr, false, nullptr);
                            for (index_t i = 0; i < mi; ++i)
                                for (index_t j = 0; j < nj; ++j)
                                    c[i * ldo + j] = acc    ? c[i * ldo + j] + edge[i * nr + j]
                                                     : base ? base[j] + edge[i * nr + j]
                                                            : edge[i * nr + j];
                        }
                    }
                }
            }
        }
        if (chunks > 1) {
            // C += part, rows shared out (after the loop's barrier).
#pragma omp for schedule(static)
            for (index_t v = 0; v < M; ++v) {
                const Piece<T>& q = piece_of(v);
                if (v >= q.first + q.M) continue;  // a piece's padding
                T* c = q.C + (v - q.first) * q.ldc;
                for (index_t j = 0; j < N; ++j) c[j] += part.data()[v * N + j];
            }
        }
    }
    stop.check();
}

// Whether gemm takes its general (packed) path for this shape, rather than
// one of its special ones.
bool general_shape(index_t M, index_t N, index_t K, bool transA, bool transB, index_t nr) {
    const bool shallow = !transA && !transB && K <= 4;
    return M > 0 && N > 0 && K > 0 && !shallow && !(!transA && transB && N <= 4) && !(transA && !transB && M <= 4) &&
           !narrow(M, N, nr);
}

}  // namespace

template <typename T>
void gemm(index_t M, index_t N, index_t K, Rows<T> A, bool transA, Rows<T> B, bool transB,
          bool accumulate, T* C, index_t ldc, int nthreads, const T* bias, const PackedB<T>* packed_b) {
    if (M == 0 || N == 0) return;
    // The shallow path and the packed one add a bias themselves; the other
    // special shapes below set C := bias, then accumulate.
    const bool shallow = !transA && !transB && K <= 4 && K > 0;
    const bool special = !shallow && !general_shape(M, N, K, transA, transB, kernels<T>().nr);
    if (bias != nullptr && !shallow && special) {
        fill_rows(C, M, N, ldc, bias, nthreads);
        return gemm(M, N, K, A, transA, B, transB, true, C, ldc, nthreads);
    }
    if (K == 0) {
        if (!accumulate)
            for (index_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
        return;
    }
    const index_t nr = kernels<T>().nr;
    const bool big = nthreads > 1 && M * N * K >= kParallelWork;
    Stop stop;  // the special paths' rows (columns) left are skipped once stopped
    if (!transA && transB && N <= 4) {
        // A few output columns (dx when D is tiny): dot products of contiguous
        // rows, no packing. Eight partial sums, added in a fixed order.
        // Rows of C are disjoint.
#pragma omp parallel for schedule(static) num_threads(nthreads) if (big)
        for (index_t i = 0; i < M; ++i) {
            if (stop.poll()) continue;
            const T* a = A.row(i);
            for (index_t j = 0; j < N; ++j) {
                const T* b = B.row(j);
                T part[8] = {};
                index_t k = 0;
                for (; k + 8 <= K; k += 8)
                    for (int u = 0; u < 8; ++u) part[u] += a[k + u] * b[k + u];
                T sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
                for (; k < K; ++k) sum += a[k] * b[k];
                C[i * ldc + j] = accumulate ? C[i * ldc + j] + sum : sum;
            }
        }
        return stop.check();
    }
    if (shallow) {
        // A shallow product (x·Wx of a one-feature series): C[i, :] (+)= A[i, k] * B[k, :]
        // for k in order, onto the bias or zeros, row by row in L1, no
        // packing. Rows of C are disjoint.
#pragma omp parallel for schedule(static) num_threads(nthreads) if (big)
        for (index_t i = 0; i < M; ++i) {
            if (stop.poll()) continue;
            T* c = C + i * ldc;
            const T* a = A.row(i);
            if (!accumulate) {
                if (bias != nullptr) std::copy(bias, bias + N, c);
                else std::fill(c, c + N, T(0));
            }
            for (index_t k = 0; k < K; ++k) {
                const T ak = a[k];
                const T* b = B.row(k);
                for (index_t j = 0; j < N; ++j) c[j] += ak * b[j];
            }
        }
        return stop.check();
    }
    if (transA && !transB && M <= 4) {
        // A few output rows (dWx when D is tiny): C[i, :] += A[k, i] * B[k, :]
        // for k in order, no packing. Threads own disjoint column ranges (an
        // element's sum does not depend on them), one per thread, at most 256.
        const index_t kChunk = std::min<index_t>(256, std::max<index_t>(16, ceil_div(ceil_div(N, nthreads), 16) * 16));
        const index_t chunks = ceil_div(N, kChunk);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (big && chunks > 1)
        for (index_t q = 0; q < chunks; ++q) {
            const index_t j0 = q * kChunk, j1 = std::min(N, j0 + kChunk);
            for (index_t i = 0; i < M; ++i) {
                T* c = C + i * ldc;
                if (!accumulate) std::fill(c + j0, c + j1, T(0));
                for (index_t k = 0; k < K; ++k) {
                    if (k % 64 == 0 && stop.poll()) break;
                    const T a = A.row(k)[i];
                    const T* b = B.row(k);
                    for (index_t j = j0; j < j1; ++j) c[j] += a * b[j];
                }
            }
        }
        return stop.check();
    }
    if (narrow(M, N, nr)) {
        // Tall and narrow: compute C^T (N x M) = op(B)^T · op(A)^T and
        // transpose it into C, a block of rows per thread.
        Buffer<T> ct;
        ct.reserve(static_cast<std::size_t>(N * M));
        gemm(N, M, K, B, !transB, A, !transA, false, ct.data(), M, nthreads);
        constexpr index_t kRows = 64;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (big)
        for (index_t i0 = 0; i0 < M; i0 += kRows)
            transpose_into(C + i0 * ldc, ldc, ct.data() + i0, M, std::min(kRows, M - i0), N, accumulate);
        return;
    }
    const Piece<T> one{A, C, ldc, M, 0};
    gemm_pieces(&one, 1, N, K, transA, B, transB, accumulate, nthreads, bias, packed_b);
}

template <typename T>
void gemm_pair(index_t M1, index_t M2, index_t N, index_t K, Rows<T> A1, Rows<T> A2, bool transA, Rows<T> B,
               bool transB, T* C1, index_t ldc1, T* C2, index_t ldc2, int nthreads) {
    const index_t mr = kernels<T>().mr, nr = kernels<T>().nr;
    if (!general_shape(M1, N, K, transA, transB, nr) || !general_shape(M2, N, K, transA, transB, nr)) {
        gemm(M1, N, K, A1, transA, B, transB, false, C1, ldc1, nthreads);
        gemm(M2, N, K, A2, transA, B, transB, false, C2, ldc2, nthreads);
        return;
    }
    const Piece<T> pieces[2] = {{A1, C1, ldc1, M1, 0}, {A2, C2, ldc2, M2, ceil_div(M1, mr) * mr}};
    gemm_pieces(pieces, 2, N, K, transA, B, transB, false, nthreads, static_cast<const T*>(nullptr),
                static_cast<const PackedB<T>*>(nullptr));
}

template <typename T>
void fill_rows(T* C, index_t rows, index_t cols, index_t ldc, const T* b, int nthreads) {
    // Rows are disjoint.
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && rows * cols >= kParallelWork)
    for (index_t i = 0; i < rows; ++i) std::memcpy(C + i * ldc, b, sizeof(T) * cols);
}

template <typename T>
void column_sums(T* out, const T* A, index_t rows, index_t cols, int nthreads) {
    std::fill(out, out + cols, T(0));
    if (cols == 0) return;
    // Threads own disjoint column ranges, one per thread (at most 256 columns
    // wide, at least 16); each column is summed in row order, whatever the ranges.
    const index_t kChunk = std::min<index_t>(256, std::max<index_t>(16, ceil_div(ceil_div(cols, nthreads), 16) * 16));
    const index_t chunks = ceil_div(cols, kChunk);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && chunks > 1 && rows * cols >= kParallelWork)
    for (index_t q = 0; q < chunks; ++q) {
        const index_t j0 = q * kChunk, j1 = std::min(cols, j0 + kChunk);
        for (index_t i = 0; i < rows; ++i) {
            const T* a = A + i * cols;
            for (index_t j = j0; j < j1; ++j) out[j] += a[j];
        }
    }
}

void copy_bytes(void* dst, const void* src, std::size_t bytes, int nthreads) {
    constexpr std::size_t kParallelBytes = std::size_t(128) << 10, kChunk = std::size_t(64) << 10;
    const std::size_t chunks = (bytes + kChunk - 1) / kChunk;
    const bool parallel = nthreads > 1 && bytes >= kParallelBytes;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (parallel)
    for (std::size_t i = 0; i < chunks; ++i) {
        const std::size_t at = i * kChunk;
        std::memcpy(static_cast<char*>(dst) + at, static_cast<const char*>(src) + at, std::min(kChunk, bytes - at));
    }
}

#define RNN_FAST_INSTANTIATE(T)                                                                  \
    template class PackedB<T>;                                                                   \
    template void pack_block_rows<T>(T*, const T*, index_t, index_t, index_t, index_t);          \
    template void gemm<T>(index_t, index_t, index_t, Rows<T>, bool, Rows<T>, bool, bool, T*, index_t, int, const T*, \
                          const PackedB<T>*);                                                    \
    template void gemm_pair<T>(index_t, index_t, index_t, index_t, Rows<T>, Rows<T>, bool, Rows<T>, bool, T*, \
                               index_t, T*, index_t, int);                                               \
    template void fill_rows<T>(T*, index_t, index_t, index_t, const T*, int);                    \
    template void column_sums<T>(T*, const T*, index_t, index_t, int);

RNN_FAST_INSTANTIATE(float)
RNN_FAST_INSTANTIATE(double)

}  // namespace rnn_fast
