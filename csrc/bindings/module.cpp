// The extension module rnn_fast._core: its set-up (threads, fork, errors),
// the families of bindings (recurrent.cpp, layers.cpp, reservoir.cpp) and the test hooks.
#include <omp.h>
#include <pthread.h>

#include <algorithm>

#include "bindings/common.h"
#include "capi.h"
#include "kernels.h"
#include "sequence.h"
#include "threads.h"

namespace rnn_fast_py {

void bind_recurrent(py::module_& m);
void bind_layers(py::module_& m);
void bind_reservoir(py::module_& m);

namespace {

// a @ b [+ bias] by the kernels' GEMM (the _matmul test hook).
template <typename F>
py::array matmul_t(const py::array& a_, const py::array& b_, const py::array* bias_, index_t M, index_t K, index_t N) {
    const Contiguous<F> a = contiguous<F>(a_), b = contiguous<F>(b_);
    const Contiguous<F> bias = bias_ != nullptr ? contiguous<F>(*bias_) : Contiguous<F>();
    py::array out = empty<F>({M, N});
    KernelCall call;
    rnn_fast::gemm<F>(M, N, K, rnn_fast::dense_rows(a.data(), K), false, rnn_fast::dense_rows(b.data(), N), false,
                      false, mptr<F>(out), N, threads(), bias_ != nullptr ? bias.data() : nullptr);
    return out;
}

py::array matmul(py::handle a_, py::handle b_, py::handle bias_) {
    const char* fn = "_matmul";
    const py::array a = float_array(a_, fn, "a"), b = float_array(b_, fn, "b");
    Dims d(fn);
    d.expect(a, "a", "M,K");
    d.expect(b, "b", "K,N");
    const bool has_bias = !bias_.is_none();
    const py::array bias = has_bias ? float_array(bias_, fn, "bias") : a;
    if (has_bias) d.expect(bias, "bias", "N");
    const py::array* bp = has_bias ? &bias : nullptr;
    return with_dtype(any_double({&a, &b, &bias}),
                      [&](auto zero) { return matmul_t<decltype(zero)>(a, b, bp, d['M'], d['K'], d['N']); });
}

// y = f(x) elementwise through the SIMD sigmoid or tanh of the active ISA, so
// that tests can check their stated error bounds.
template <typename F>
py::array simd_map(const py::array& x_, bool sigmoid) {
    const Contiguous<F> x = contiguous<F>(x_);
    const rnn_fast::Kernels<F>& k = rnn_fast::kernels<F>();
    const index_t n = x.size(), padded = (n + k.lanes - 1) / k.lanes * k.lanes;
    std::vector<F> in(static_cast<std::size_t>(padded), F(0)), out(static_cast<std::size_t>(padded));
    std::copy(x.data(), x.data() + n, in.begin());
    (sigmoid ? k.sigmoid : k.tanh)(padded, in.data(), out.data());
    py::array_t<F> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    std::copy(out.begin(), out.begin() + n, y.mutable_data());
    return y;
}

py::array simd_function(py::handle x_, const std::string& name) {
    const py::array x = float_array(x_, "_simd", "x");
    if (name != "sigmoid" && name != "tanh") throw py::value_error("_simd(): name must be 'sigmoid' or 'tanh'");
    return with_dtype(x.itemsize() == 8, [&](auto zero) { return simd_map<decltype(zero)>(x, name == "sigmoid"); });
}

// The FMA throughput of `threads()` threads running the active ISA's widest
// multiply-adds for about `seconds`, in GFLOP/s (F = float32 or float64).
template <typename F>
double peak_gflops(double seconds) {
    const rnn_fast::Kernels<F>& k = rnn_fast::kernels<F>();
    const int team = threads();
    const double per_iter = 2.0 * k.lanes * 12;
    py::gil_scoped_release nogil;
    index_t iters = 1 << 16;
    double elapsed = 0, sink = 0;
    for (;;) {  // grow the count until one run lasts a tenth of the budget
        const double t0 = omp_get_wtime();
        sink += k.fma_chains(iters);
        elapsed = omp_get_wtime() - t0;
        if (elapsed > seconds / 10) break;
        iters *= 4;
    }
    iters = static_cast<index_t>(iters * (seconds / 3) / elapsed) + 1;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        const double t0 = omp_get_wtime();
#pragma omp parallel num_threads(team) reduction(+ : sink)
        sink += k.fma_chains(iters);
        const double rate = per_iter * iters * team / (omp_get_wtime() - t0) / 1e9;
        best = rate > best ? rate : best;
    }
    return sink == 12345.678 ? 0 : best;  // sink is read: the loops are not dropped
}

// ---------------------------------------------------------------- threads

// A forked child runs the kernels on one thread (rnn_fast::in_forked_child).
void after_fork_in_child() {
    thread_count().store(1);
    signal_thread().store(PyThread_get_thread_ident());  // Python's signal thread in the child
}

void set_num_threads(int n) {
    const int cap = rnn_fast::max_threads();
    if (n < 1 || n > cap)
        throw py::value_error("set_num_threads(): n must be in [1, " + std::to_string(cap) +
                              "] (four per core, within OpenMP's thread limit), got " + std::to_string(n));
    if (rnn_fast::in_forked_child()) {
        thread_count().store(1);
        return;
    }
    if (!rnn_fast::ensure_team(n)) {
        PyErr_Format(PyExc_MemoryError, "set_num_threads(%d): the system cannot start %d threads now (memory "
                     "or its thread limit); the kernels keep %d", n, n, thread_count().load());
        throw py::error_already_set();
    }
    thread_count().store(n);
}

}  // namespace
}  // namespace rnn_fast_py

using namespace rnn_fast_py;

PYBIND11_MODULE(_core, m) {
    m.doc() = "rnn_fast's compiled kernels. Use the functions re-exported by the rnn_fast package.";
    // OMP_NUM_THREADS (or all cores) within max_threads(), the pool started now, at import, rather than in a
    // user's first call; a count the system cannot start now falls back to one thread (with a warning).
    int want = omp_get_max_threads();
    const int cap = rnn_fast::max_threads();
    if (want > cap) {
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "rnn_fast: OMP_NUM_THREADS=%d is more than the kernels "
                             "take (%d: four per core); using %d", want, cap, cap) < 0)
            throw py::error_already_set();
        want = cap;
    }
    if (!rnn_fast::ensure_team(want)) {
        if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1, "rnn_fast: the system cannot start %d threads now; the "
                             "kernels use one (set_num_threads raises it later)", want) < 0)
            throw py::error_already_set();
        want = 1;
    }
    thread_count().store(want);
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
    // The kernels' C table (capi.h), for rnn_fast.cython_kernels.
    m.attr("_c_api") = py::capsule(static_cast<const void*>(rnn_fast_capi_table()), "rnn_fast._core._c_api");
    // The core's own workspaces (packed weights, GEMM panels) throw
    // std::bad_alloc when they cannot be had: a MemoryError that says so.
    // A kernel stopped by a signal handler that raised (KernelCall) raises
    // the handler's exception, left set by the hook.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::bad_alloc&) {
            PyErr_SetString(PyExc_MemoryError, "rnn_fast: out of memory for a kernel's workspace");
        } catch (const rnn_fast::Interrupted&) {
            if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        } catch (const rnn_fast::ThreadStartError& e) {  // a thread's first call with more threads (threads())
            PyErr_Format(PyExc_MemoryError, "rnn_fast: %s; set_num_threads lowers the count", e.what());
        }
    });
    signal_thread().store(py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>());

    bind_recurrent(m);
    bind_layers(m);
    bind_reservoir(m);
    using namespace pybind11::literals;
    m.def("set_num_threads", &set_num_threads, "n"_a,
          R"doc(Number of OpenMP threads the kernels use (default: OMP_NUM_THREADS, or
all cores), from 1 to four per core (within OpenMP's thread limit): more is
a ValueError, and a count the system cannot start now (memory, its thread
limit) a MemoryError, checked before OpenMP is asked. Results are bitwise
identical whatever the count. In a child
made by fork() the kernels use one thread whatever is asked (OpenMP's
thread pool does not survive fork); the 'spawn' and 'forkserver' start
methods give children their full thread count.)doc");
    m.def("_isa", [] { return std::string(rnn_fast::kernels<float>().isa); },
          "The SIMD instruction set in use: 'avx512', 'avx2' or 'portable' (RNN_FAST_ISA caps it).");
    m.def("_peak_gflops", [](double seconds, const std::string& dtype) {
              if (dtype != "float32" && dtype != "float64")
                  throw py::value_error("_peak_gflops(): dtype must be 'float32' or 'float64'");
              return dtype == "float32" ? peak_gflops<float>(seconds) : peak_gflops<double>(seconds);
          }, "seconds"_a = 0.5, "dtype"_a = "float32",
          "GFLOP/s of the active ISA's multiply-adds on get_num_threads() threads (the benchmark's FMA peak).");
    m.def("_set_partition", [](const std::string& how) {
              if (how == "auto") rnn_fast::set_partition(rnn_fast::Partition::automatic);
              else if (how == "rows") rnn_fast::set_partition(rnn_fast::Partition::rows);
              else if (how == "columns") rnn_fast::set_partition(rnn_fast::Partition::columns);
              else if (how == "row_passes") rnn_fast::set_partition(rnn_fast::Partition::row_passes);
              else throw py::value_error("_set_partition(): how must be 'auto', 'rows', 'columns' or 'row_passes', "
                                         "got '" + how + "'");
          }, "how"_a,
          "Test hook: force how the recurrent time loops share a step among threads (results are the same).");
    m.def("_fused_inputs", [](index_t N, index_t D, index_t H, int gates, const std::string& dtype) {
              if (dtype != "float32" && dtype != "float64")
                  throw py::value_error("_fused_inputs(): dtype must be 'float32' or 'float64'");
              const index_t G = gates * H;
              return dtype == "float32" ? py::make_tuple(rnn_fast::fused_input_projection<float>(N, D, H, G),
                                                         rnn_fast::fused_input_gradient<float>(N, D, H, G))
                                        : py::make_tuple(rnn_fast::fused_input_projection<double>(N, D, H, G),
                                                         rnn_fast::fused_input_gradient<double>(N, D, H, G));
          }, "N"_a, "D"_a, "H"_a, "gates"_a, "dtype"_a,
          "Test hook: whether a recurrent layer of this shape takes x·Wx in its forward's time loop and dx in its "
          "backward's (forward, backward).");
    m.def("_matmul", &matmul, "a"_a, "b"_a, "bias"_a = py::none(),
          "Test hook: a (M,K) @ b (K,N) [+ bias (N,)] by the kernels' GEMM, float32 or float64, into a new array.");
    m.def("_simd", &simd_function, "x"_a, "name"_a, "Test hook: the SIMD 'sigmoid' or 'tanh' of the active ISA.");
    m.def("get_num_threads", [] { return thread_count().load(); }, "Number of OpenMP threads the kernels use.");
    m.def("_max_threads", &rnn_fast::max_threads,
          "The most threads set_num_threads takes: four per core, within OpenMP's thread limit.");
}
