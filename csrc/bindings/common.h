// What every binding shares: argument checks that name the argument, the
// expected and the received; conversion to contiguous arrays of the
// computation dtype; the kernels' output arrays; the thread count. Only the
// files of this directory include pybind11 (the core knows no Python).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common.h"
#include "gemm.h"
#include "stop.h"
#include "threads.h"

namespace rnn_fast_py {

namespace py = pybind11;
using rnn_fast::Activation;
using rnn_fast::index_t;

// The kernels' thread count (set_num_threads).
inline std::atomic<int>& thread_count() {
    static std::atomic<int> n{1};
    return n;
}

// The thread count for a kernel call from this thread, its team made sure
// of (rnn_fast::ensure_team: OpenMP keeps a pool per calling thread, so a
// Python thread's first call starts one): ThreadStartError, a MemoryError,
// if the system cannot start it now.
inline int threads() {
    const int n = thread_count().load(std::memory_order_relaxed);
    if (n > 1 && !rnn_fast::ensure_team(n)) throw rnn_fast::ThreadStartError(n);
    return n;
}

// ------------------------------------------------------------ interruption

// The ident of the thread Python runs signal handlers on (the main thread;
// after a fork, the forking one): set at import and in a forked child.
inline std::atomic<unsigned long>& signal_thread() {
    static std::atomic<unsigned long> ident{0};
    return ident;
}

// The core's stop hook (stop.h): Python's pending signal handlers, run with
// the GIL taken back for the moment. True when one raised: its exception
// (KeyboardInterrupt for Ctrl-C) stays set, and the call raises it (the
// translator of rnn_fast::Interrupted, module.cpp).
inline bool run_signal_handlers(void*) {
    const PyGILState_STATE gil = PyGILState_Ensure();
    const bool raised = PyErr_CheckSignals() != 0;
    PyGILState_Release(gil);
    return raised;
}

// A kernel call: the GIL released and, on the signal thread, the core's
// loops running Python's signal handlers every 10 ms or so (stop.h), so that
// Ctrl-C ends a long call with KeyboardInterrupt. Elsewhere Python runs no
// handlers, and nothing is polled.
class KernelCall {
public:
    KernelCall() {
        if (PyThread_get_thread_ident() == signal_thread().load(std::memory_order_relaxed))
            stop_.emplace(&run_signal_handlers, nullptr);
        nogil_.emplace();
    }

private:
    std::optional<rnn_fast::ScopedStop> stop_;
    std::optional<py::gil_scoped_release> nogil_;  // taken back before stop_ goes
};

// fn(F()) for the computation dtype F: double when dbl (any argument is
// float64, as NumPy promotes), else float. The one place a binding picks it.
template <typename Fn>
decltype(auto) with_dtype(bool dbl, Fn&& fn) {
    return dbl ? fn(double()) : fn(float());
}

// ---------------------------------------------------------------- checking

inline std::string shape_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

inline std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline std::string type_name(py::handle obj) { return py::type::of(obj).attr("__name__").cast<std::string>(); }

// The dimension letters of one call (N, T, D, H, ...) and which argument fixed
// each, so that a disagreement names both sides.
class Dims {
public:
    explicit Dims(const char* fn) : fn_(fn) {}

    void set(char letter, index_t value, const std::string& source) { dims_[letter] = {value, source}; }
    index_t operator[](char letter) const { return dims_.at(letter).first; }

    // `spec` is the expected shape, e.g. "N,T,D" or "D,4H" (a multiple of a letter).
    // Every kernel call checks several arguments: the passing case builds no
    // strings (it was ~60k instructions a call); the messages are made only
    // for a failure.
    void expect(const py::array& a, const char* name, const std::string& spec) {
        struct Axis {
            index_t mult;
            char letter;
        };
        Axis axes[8];
        std::size_t count = 0;
        for (std::size_t p = 0; p < spec.size() && count < 8;) {
            const std::size_t end = std::min(spec.find(',', p), spec.size());
            index_t mult = 1;
            if (end - p > 1) mult = std::stol(spec.substr(p, end - p - 1));
            axes[count++] = {mult, spec[end - 1]};
            p = end + 1;
        }
        auto pretty = [&] { return "(" + replace_all(spec, ",", ", ") + (count == 1 ? ",)" : ")"); };
        if (a.ndim() != static_cast<py::ssize_t>(count))
            throw py::value_error(std::string(fn_) + "(): " + name + " must be " + std::to_string(count) +
                                  "-D with shape " + pretty() + ", got " + std::to_string(a.ndim()) + "-D shape " +
                                  shape_of(a));
        // Letters first seen here take their value from this argument.
        bool ok = true;
        for (std::size_t i = 0; i < count; ++i) {
            const auto [mult, letter] = axes[i];
            auto it = dims_.find(letter);
            if (it == dims_.end()) {
                if (a.shape(i) % mult != 0)
                    throw py::value_error(std::string(fn_) + "(): " + name + " has shape " + shape_of(a) +
                                          "; axis " + std::to_string(i) + " must be " + std::to_string(mult) +
                                          letter + ", a multiple of " + std::to_string(mult));
                it = dims_.emplace(letter, std::make_pair(index_t(a.shape(i) / mult), std::string(name))).first;
            }
            ok = ok && a.shape(i) == mult * it->second.first;
        }
        if (ok) return;
        std::ostringstream expected, sources;
        std::string told;  // letters whose source is already in the message
        for (std::size_t i = 0; i < count; ++i) {
            const auto [mult, letter] = axes[i];
            const auto& [value, source] = dims_.at(letter);
            expected << (i ? ", " : "") << mult * value;
            if (source != name && told.find(letter) == std::string::npos) {
                sources << ", " << letter << "=" << value << " from " << source;
                told += letter;
            }
        }
        throw py::value_error(std::string(fn_) + "(): " + name + " must have shape " + pretty() + " = (" +
                              expected.str() + (count == 1 ? ",)" : ")") + ", got " + shape_of(a) +
                              sources.str());
    }

private:
    static std::string replace_all(std::string s, const std::string& from, const std::string& to) {
        for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
            s.replace(p, from.size(), to);
        return s;
    }

    const char* fn_;
    std::map<char, std::pair<index_t, std::string>> dims_;
};

// A C-contiguous, aligned (NPY_ARRAY_ALIGNED) array of T.
template <typename T>
using Contiguous = py::array_t<T, py::array::c_style | py::array::forcecast | 0x0100>;

// np.asarray(obj). A conversion that fails keeps its cause: MemoryError and
// any exception but a TypeError or ValueError (an __array__'s own, SystemExit,
// KeyboardInterrupt, ...) propagate as they are; a TypeError or ValueError
// (a ragged list, say) becomes a TypeError naming the argument, raised from it.
inline py::array as_array(py::handle obj, const char* fn, const char* name, const char* want) {
    PyObject* raw = py::detail::npy_api::get().PyArray_FromAny_(
        obj.ptr(), nullptr, 0, 0, py::detail::npy_api::NPY_ARRAY_ENSUREARRAY_, nullptr);
    if (raw != nullptr) return py::reinterpret_steal<py::array>(raw);
    if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError))
        py::raise_from(PyExc_TypeError, (std::string(fn) + "(): " + name + " must be " + want + ", got a " +
                                         type_name(obj) + " NumPy cannot convert").c_str());
    throw py::error_already_set();
}

// np.asarray(obj) as float32 or float64 values. Booleans, integers and
// float16 are promoted as NumPy promotes them against float32 weights
// (np.promote_types(dtype, float32): float32 up to 16-bit integers, float64
// beyond), so that an int64 x gives what NumPy's x.dot(Wx) would: float64.
// Complex, object and longer floats are refused.
inline py::array float_array(py::handle obj, const char* fn, const char* name) {
    py::array a = as_array(obj, fn, name, "a float32 or float64 array");
    const char kind = a.dtype().kind();
    if (kind == 'f' && (a.itemsize() == 4 || a.itemsize() == 8)) return a;
    if (kind == 'b' || ((kind == 'i' || kind == 'u') && a.itemsize() <= 2) || (kind == 'f' && a.itemsize() == 2))
        return Contiguous<float>(static_cast<const py::object&>(a));
    if (kind == 'i' || kind == 'u') return Contiguous<double>(static_cast<const py::object&>(a));
    throw py::type_error(std::string(fn) + "(): " + name + " must be a float32 or float64 array (or of integers, "
                         "promoted as NumPy promotes them), got dtype " + dtype_of(a));
}

// np.asarray(obj), which must hold integers (converted to int64 after the
// shape checks: no copy of a broadcast view before check_size).
inline py::array index_array(py::handle obj, const char* fn, const char* name) {
    py::array a = as_array(obj, fn, name, "an integer array");
    if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
        throw py::type_error(std::string(fn) + "(): " + name + " must be an integer array, got dtype " + dtype_of(a));
    if (a.dtype().kind() == 'u' && a.itemsize() == 8 && a.size() > 0) {  // beyond int64: not wrapped to negatives
        const py::int_ top = a.attr("max")();
        if (top.cast<unsigned long long>() > static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max()))
            throw py::value_error(std::string(fn) + "(): " + name + " holds " + py::str(top).cast<std::string>() +
                                  ", larger than any index");
    }
    return a;
}

// Refuses, before anything is allocated, an output whose element count does
// not fit in 64 bits (with 8-byte elements): sizes that only broadcast views,
// whose strides are zero, can describe.
inline void check_size(const char* fn, const char* name, const char* spec, std::initializer_list<index_t> dims) {
    index_t n = 1;
    bool over = false;
    std::string shape;
    for (index_t d : dims) {
        if (d == 0) return;
        over = over || __builtin_mul_overflow(n, d, &n);
        shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    }
    if (over || n > std::numeric_limits<std::int64_t>::max() / 8)
        throw py::value_error(std::string(fn) + "(): " + name + " would have shape (" + spec + ") = (" + shape +
                              "), more elements than any array can hold");
}

// An LSTM step's cell-state argument, which has no default: None is refused
// (elsewhere the bindings take None for an absent optional argument).
inline void not_none(py::handle obj, const char* fn, const char* name) {
    if (obj.is_none())
        throw py::type_error(std::string(fn) + "(): " + name + " must be a float32 or float64 array, got None");
}

inline bool any_double(std::initializer_list<const py::array*> arrays) {
    for (const py::array* a : arrays)
        if (a->itemsize() == 8) return true;
    return false;
}

// A C-contiguous, aligned array of T with a's values; a itself when it already is one.
// The converting constructor raises NumPy's error (MemoryError when a copy
// cannot be allocated); array_t::ensure() would clear it.
template <typename T>
Contiguous<T> contiguous(const py::array& a) {
    return Contiguous<T>(static_cast<const py::object&>(a));
}

// Arrays of at least this many bytes that the kernels return take their
// memory from the calling thread's BlockCache, as the core's scratch does
// (up to the largest block it keeps).
inline constexpr std::size_t kPooledBytes = std::size_t(64) << 10;

// A new C-contiguous array for a kernel to fill. A training loop allocates the
// same outputs and caches every call and frees them between calls; glibc
// hands blocks of this size back to the system, so from NumPy's allocator
// they were fresh pages every time, each call paying their faults and zeroing
// on its own thread (clear_page and the page-fault path were ~8% of a small
// model's forward+backward in perf). Large ones are therefore a Buffer owned
// by the array's base (a capsule): the block goes back to the BlockCache of
// the thread that frees the array, for the next call to reuse, mapped. Small
// ones come from NumPy, mapped here in one call rather than faulted in by the
// kernel's threads, and so do those the cache would not keep (past
// BlockCache::kMaxBlock), whose faults are small beside the work they serve
// (and whose failure NumPy reports with the size and shape asked for).
template <typename F>
py::array_t<F> empty(const std::vector<py::ssize_t>& dims) {
    std::size_t n = 1;
    for (py::ssize_t d : dims) n *= static_cast<std::size_t>(d);  // sizes were checked (check_size)
    const std::size_t bytes = n * sizeof(F);
    if (bytes < kPooledBytes || bytes > rnn_fast::BlockCache::kMaxBlock) {
        py::array_t<F> a(dims);
        {
            KernelCall call;  // (a stop frees a, throwing)
            rnn_fast::prefault(a.mutable_data(), bytes);
        }
        return a;
    }
    auto buffer = std::make_unique<rnn_fast::Buffer<F>>();
    {
        KernelCall call;
        buffer->reserve(n);
    }
    py::capsule owner(buffer.get(), [](void* b) { delete static_cast<rnn_fast::Buffer<F>*>(b); });
    F* data = buffer.release()->data();
    return py::array_t<F>(dims, data, owner);
}

template <typename F>
py::array_t<F> empty(std::initializer_list<index_t> shape) {
    return empty<F>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// Like contiguous(), but never shares memory with `a`: the caches own their
// arrays, so a caller who later writes into an input cannot corrupt them.
// The copy comes from empty(), as the kernels' outputs do: from NumPy, a
// copy of x (384 KB) was fresh pages at every call once glibc's allocator
// had trimmed its heap, faulted in by the copy (a 32x60x50x50 LSTM forward
// took 0.3 ms longer so, measured, and more in a model's training loop).
template <typename T>
Contiguous<T> owned(const py::array& a) {
    Contiguous<T> c = contiguous<T>(a);
    if (c.ptr() != a.ptr() && c.owndata()) return c;
    Contiguous<T> copy = empty<T>(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
    T* dst = copy.mutable_data();
    const T* src = c.data();
    const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(c.size());
    {
        py::gil_scoped_release nogil;
        rnn_fast::copy_bytes(dst, src, bytes, threads());
    }
    return copy;
}

template <typename F>
const F* cptr(const py::array& a) { return static_cast<const F*>(a.data()); }
template <typename F>
F* mptr(py::array& a) { return static_cast<F*>(a.mutable_data()); }

template <typename Cache>
const Cache& cache_arg(py::handle obj, const char* fn, const char* expected) {
    if (!py::isinstance<Cache>(obj))
        throw py::type_error(std::string(fn) + "(): cache must be the cache returned by " + expected +
                             ", got " + type_name(obj));
    return obj.cast<const Cache&>();
}


// Caches are made by the forwards only. C.__new__(C) (or copy.copy, which
// calls it) would give an object holding no cache, which a backward would
// read as one (pybind11's hole, pybind/pybind11#6153): the class's __new__
// refuses instead (pybind11 makes the forwards' instances without it).
template <typename Class>
void made_by_forwards_only(Class& cls) {
    const std::string name = py::str(cls.attr("__name__")).cast<std::string>();
    cls.attr("__new__") = py::staticmethod(py::cpp_function([name](py::args, py::kwargs) -> py::object {
        throw py::type_error(name + " objects are made by the forward functions only; they cannot be constructed "
                             "or copied");
    }));
}

// The C++ object of self, an instance of a class constructed by py::init
// (the inference objects, LeakyReservoir). C.__new__(C) makes an instance
// that no __init__ filled, which pybind11 would hand to the methods as
// uninitialized memory (pybind/pybind11#6153): refused here by name, as is
// a self of another type (a method called through the class).
template <typename T>
const T& initialized(py::handle self, const char* cls) {
    if (!py::isinstance<T>(self))
        throw py::type_error(std::string(cls) + " method called on an object of type " + type_name(self));
    auto* inst = reinterpret_cast<py::detail::instance*>(self.ptr());
    if (!inst->get_value_and_holder(nullptr, false).holder_constructed())
        throw py::type_error(type_name(self) + " object was never initialized (made by __new__ without __init__): "
                             "construct it by calling the class");
    return self.cast<const T&>();
}

template <typename Cache>
void register_cache(py::module_& m, const char* name, const char* doc) {
    py::class_<Cache> cls(m, name, doc);
    cls.def("__repr__", [name](const Cache& c) { return c.repr(name); });
    made_by_forwards_only(cls);
}

}  // namespace rnn_fast_py
