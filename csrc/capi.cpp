// The C table of capi.h over the generic time loops (recurrent.h): checks,
// the cell's dispatch, and exceptions turned into return codes.
#include "capi.h"

#include <algorithm>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "recurrent.h"
#include "sequence.h"
#include "threads.h"

namespace rnn_fast {
namespace {

thread_local std::string last_error;

int fail(int code, const char* message) {
    last_error = message != nullptr ? message : "";
    return code;
}

const char* error() { return last_error.c_str(); }

// fn(cell) for the cell of capi.h's number, with its option: one line per cell.
template <typename Fn>
int with_cell(int cell, int option, Fn fn) {
    if (option != 0 && option != 1) return fail(RNN_FAST_EVALUE, "option must be 0 or 1");
    switch (cell) {
        case 0: return fn(Rnn{option});
        case 1: return fn(Lstm{option});
        case 2: return fn(Gru{option});
        default: return fail(RNN_FAST_EVALUE, "cell must be 0 (RNN), 1 (LSTM) or 2 (GRU)");
    }
}

// The core's exceptions as return codes.
template <typename Fn>
int guarded(Fn fn) {
    try {
        fn();
        return RNN_FAST_OK;
    } catch (const std::bad_alloc&) {
        return fail(RNN_FAST_ENOMEM, "out of memory");
    } catch (const std::invalid_argument& e) {
        return fail(RNN_FAST_EVALUE, e.what());
    } catch (const std::exception& e) {
        return fail(RNN_FAST_EINTERNAL, e.what());
    } catch (...) {
        return fail(RNN_FAST_EINTERNAL, "unknown error");
    }
}

// The sizes and the thread count (1 in a forked child, see threads.h).
int check_sizes(int64_t N, int64_t T, int64_t D, int64_t H, int& nthreads) {
    if (N < 0 || T < 0 || D < 0 || H < 0) return fail(RNN_FAST_ESHAPE, "N, T, D and H must be >= 0");
    if (nthreads < 1) return fail(RNN_FAST_EVALUE, "nthreads must be >= 1");
    if (nthreads > max_threads()) {
        const std::string message = "nthreads must be at most " + std::to_string(max_threads()) +
                                    " (four per core, within OpenMP's thread limit), got " + std::to_string(nthreads);
        return fail(RNN_FAST_EVALUE, message.c_str());
    }
    if (in_forked_child()) nthreads = 1;
    if (!ensure_team(nthreads))
        return fail(RNN_FAST_ENOMEM, ("the system cannot start " + std::to_string(nthreads) +
                                      " threads now (memory or its thread limit)").c_str());
    return RNN_FAST_OK;
}

// Where work's arrays start: the LSTM's cell states (N,T,H), then the saved values (N,T,S).
template <typename Cell>
int64_t states_size(int64_t N, int64_t T, int64_t H) {
    return Cell::carry == Carry::cell_state ? N * T * H : 0;
}

template <typename Cell>
int64_t work_size(int64_t N, int64_t T, int64_t H) {
    return states_size<Cell>(N, T, H) + N * T * Cell::saved * H;
}

// Rows of time t of a (N,T,H) array into (N,H); T = 0: the initial states.
template <typename F>
void final_rows(const F* seq, const F* initial, F* out, index_t N, index_t T, index_t H, bool reverse) {
    if (out == nullptr) return;
    for (index_t n = 0; n < N; ++n) {
        const F* src = T == 0 ? initial + n * H : seq + (n * T + (reverse ? 0 : T - 1)) * H;
        std::copy(src, src + H, out + n * H);
    }
}

template <typename F>
int forward(int cell_id, int option, const F* x, const F* h0, const F* c0, const F* Wx, const F* Wh, const F* b,
            const F* bh, F* h, F* hT, F* cT, F* work, int64_t N, int64_t T, int64_t D, int64_t H, int reverse,
            int nthreads) {
    if (const int code = check_sizes(N, T, D, H, nthreads)) return code;
    return with_cell(cell_id, option, [&](auto cell) {
        using Cell = decltype(cell);
        constexpr bool has_c = Cell::carry == Carry::cell_state;
        return guarded([&] {
            std::vector<F> zeros(has_c && c0 == nullptr ? static_cast<std::size_t>(N * H) : 0, F(0));
            // Without work, an inference: the cell states in a buffer of the call's, nothing saved.
            std::vector<F> states(has_c && work == nullptr ? static_cast<std::size_t>(N * T * H) : 0);
            ForwardArrays<F> a;
            a.h = h;
            a.x = x;
            a.h0 = h0;
            a.Wx = Wx;
            a.Wh = Wh;
            a.b = b;
            if (Cell::recurrent_bias) a.bh = bh;
            if (has_c) {
                a.c = work != nullptr ? work : states.data();
                a.c0 = c0 != nullptr ? c0 : zeros.data();
            }
            if (Cell::saved > 0 && work != nullptr) a.saved = work + states_size<Cell>(N, T, H);
            seq_forward(cell, a, N, T, D, H, reverse != 0, nthreads);
            final_rows<F>(h, h0, hT, N, T, H, reverse != 0);
            if (has_c) final_rows<F>(a.c, a.c0, cT, N, T, H, reverse != 0);
        });
    });
}

template <typename F>
int backward(int cell_id, int option, const F* dh, const F* dcT, const F* x, const F* h0, const F* c0, const F* Wx,
             const F* Wh, const F* h, const F* work, F* dx, F* dh0, F* dc0, F* dWx, F* dWh, F* db, F* dbh, int64_t N,
             int64_t T, int64_t D, int64_t H, int reverse, int nthreads) {
    if (const int code = check_sizes(N, T, D, H, nthreads)) return code;
    return with_cell(cell_id, option, [&](auto cell) {
        using Cell = decltype(cell);
        constexpr bool has_c = Cell::carry == Carry::cell_state;
        return guarded([&] {
            std::vector<F> zeros(has_c && c0 == nullptr ? static_cast<std::size_t>(N * H) : 0, F(0));
            BackwardArrays<F> a;
            a.dx = dx;
            a.dh0 = dh0;
            a.dWx = dWx;
            a.dWh = dWh;
            a.db = db;
            if (Cell::recurrent_bias) a.dbh = dbh;
            a.dh = dh;
            a.x = x;
            a.h0 = h0;
            a.Wx = Wx;
            a.h = h;
            if (has_c) {
                a.dc0 = dc0;
                a.dcT = dcT;
                a.c0 = c0 != nullptr ? c0 : zeros.data();
                a.c = work;
            }
            if (Cell::saved > 0) a.saved = work + states_size<Cell>(N, T, H);
            // Wh^T packed as the forward of the Python functions packs it for
            // their backward ([Wh^T Wx^T] where that takes dx in the time
            // loop): the same sums, bit for bit.
            const index_t G = Cell::gates * H;
            const bool fused_dx = Cell::fusable && fused_input_gradient<F>(N, D, H, G);
            PackedB<F> wh_t;
            pack_recurrent_transpose(wh_t, Wh, H, G, nthreads, fused_dx ? Wx : nullptr, fused_dx ? D : 0);
            seq_backward(cell, a, N, T, D, H, reverse != 0, nthreads, wh_t);
        });
    });
}

int64_t workspace(int cell_id, int64_t N, int64_t T, int64_t H) {
    int64_t size = -1;
    with_cell(cell_id, 0, [&](auto cell) {
        size = work_size<decltype(cell)>(N, T, H);
        return RNN_FAST_OK;
    });
    return size;
}

const rnn_fast_capi table = {
    RNN_FAST_CAPI_VERSION, forward<float>, forward<double>, backward<float>, backward<double>, workspace, error, fail,
};

}  // namespace
}  // namespace rnn_fast

extern "C" const rnn_fast_capi* rnn_fast_capi_table(void) { return &rnn_fast::table; }
