// The Kernels table (kernels.h) of one instruction set, filled by field
// name. No include guard: kernels.cpp includes it once per instruction set,
// inside its namespace, after simd.h, the cells' bodies (cells/cells.h) and
// the reservoir's (reservoir-inl.h).
// T: element type, L: vector width, an MR x (NV * L) GEMM tile.
template <typename T, int L, int MR, int NV>
struct Table {
    // Tiles of MI rows and NU of the sliver's NV vectors (FETCH: streaming
    // next into L1; ROWS: A unpacked, row stride lda), MI chosen at run time.
    template <int NU, bool FETCH, bool ROWS, int MI>
    static void tile_of(index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias, const T* next,
                        index_t lda) {
        tile<T, L, MR, NV, MI, NU, FETCH, ROWS>(kc, a, b, c, ldc, acc, bias, next, lda);
    }
    template <int NU, bool FETCH, bool ROWS, int... I>
    static void dispatch(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias,
                         const T* next, index_t lda, std::integer_sequence<int, I...>) {
        static void (*const fns[])(index_t, const T*, const T*, T*, index_t, bool, const T*, const T*, index_t) = {
            tile_of<NU, FETCH, ROWS, I + 1>...};
        fns[mi - 1](kc, a, b, c, ldc, acc, bias, next, lda);
    }
    using Rows = std::make_integer_sequence<int, MR>;
    static void full(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias) {
        dispatch<NV, false, false>(mi, kc, a, b, c, ldc, acc, bias, nullptr, 0, Rows{});
    }
    static void half(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias) {
        dispatch<NV / 2, false, false>(mi, kc, a, b, c, ldc, acc, bias, nullptr, 0, Rows{});
    }
    static void fetch(int mi, index_t kc, const T* a, const T* b, T* c, index_t ldc, bool acc, const T* bias,
                      const T* next) {
        dispatch<NV, true, false>(mi, kc, a, b, c, ldc, acc, bias, next, 0, Rows{});
    }
    static void rows(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc, bool acc,
                     const T* bias) {
        dispatch<NV, false, true>(mi, kc, a, b, c, ldc, acc, bias, nullptr, lda, Rows{});
    }
    static void half_rows(int mi, index_t kc, const T* a, index_t lda, const T* b, T* c, index_t ldc, bool acc,
                          const T* bias) {
        dispatch<NV / 2, false, true>(mi, kc, a, b, c, ldc, acc, bias, nullptr, lda, Rows{});
    }
    static void sums(index_t rows, index_t n, index_t d, const T* da, index_t da_rs, const T* x, index_t x_rs,
                     const T* Wx, T* dx, T* part, T* db) {
        loop_sums<T, L>(rows, n, d, da, da_rs, x, x_rs, Wx, dx, part, db);
    }
    static void drop(index_t j0, index_t j1, const T* x, T* y, T* mask, std::uint64_t threshold, T scale,
                     std::uint64_t seed) {
        dropout_pairs<T, L>(j0, j1, x, y, mask, threshold, scale, seed);
    }
    static void leaky(const LeakyArgs<T>& a, index_t s0, index_t s1) { leaky_slices<T, L>(a, s0, s1); }
    static void sigmoid(index_t n, const T* x, T* y) { sigmoid_array<T, L>(n, x, y); }
    static void tanh(index_t n, const T* x, T* y) { tanh_array<T, L>(n, x, y); }
    static T fma(index_t iters) { return fma_chains<T, L>(iters); }

    static constexpr Kernels<T> make(const char* isa, index_t kc, index_t mc) {
        Kernels<T> k{};
        k.isa = isa;
        k.mr = MR;
        k.nr = NV * L;
        k.lanes = L;
        k.kc = kc;
        k.mc = mc;
        k.tile = full;
        k.tile_half = half;
        k.tile_fetch = fetch;
        k.tile_rows = rows;
        k.tile_rows_half = half_rows;
        k.rnn = {rnn_forward_body<T, L>, rnn_backward_body<T, L>};
        k.lstm = {lstm_forward_body<T, L>, lstm_backward_body<T, L>};
        k.gru = {gru_forward_body<T, L>, gru_backward_body<T, L>};
        k.loop_sums = sums;
        k.dropout = drop;
        k.leaky_slices = leaky;
        k.sigmoid = sigmoid;
        k.tanh = tanh;
        k.fma_chains = fma;
        return k;
    }
};
