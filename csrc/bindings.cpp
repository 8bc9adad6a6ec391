// Python bindings: the only file that knows pybind11. Every function follows
// one pattern: check dtypes and shapes (naming the argument, the expected and
// the received), convert to contiguous arrays of the computation dtype,
// allocate the outputs, release the GIL, call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kernels.h"
#include "layers.h"
#include "lstm.h"
#include "rnn.h"
#include "sequence.h"

namespace py = pybind11;
using rnn_fast::Activation;
using rnn_fast::index_t;

namespace {

std::atomic<int> g_threads{1};

int threads() { return g_threads.load(std::memory_order_relaxed); }

// ---------------------------------------------------------------- checking

std::string shape_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string type_name(py::handle obj) { return py::type::of(obj).attr("__name__").cast<std::string>(); }

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

// np.asarray(obj), which must hold float32 or float64 values.
py::array float_array(py::handle obj, const char* fn, const char* name) {
    py::array a = py::array::ensure(obj);
    if (!a) throw py::type_error(std::string(fn) + "(): " + name + " must be a float32 or float64 array, got " +
                                 type_name(obj));
    const char kind = a.dtype().kind();
    if (kind != 'f' || (a.itemsize() != 4 && a.itemsize() != 8))
        throw py::type_error(std::string(fn) + "(): " + name + " must be a float32 or float64 array, got dtype " +
                             dtype_of(a));
    return a;
}

// np.asarray(obj), which must hold integers (converted to int64 after the
// shape checks: no copy of a broadcast view before check_size).
py::array index_array(py::handle obj, const char* fn, const char* name) {
    py::array a = py::array::ensure(obj);
    if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
        throw py::type_error(std::string(fn) + "(): " + name + " must be an integer array, got " +
                             (a ? "dtype " + dtype_of(a) : type_name(obj)));
    return a;
}

// Refuses, before anything is allocated, an output whose element count does
// not fit in 64 bits (with 8-byte elements): sizes that only broadcast views,
// whose strides are zero, can describe.
void check_size(const char* fn, const char* name, const char* spec, std::initializer_list<index_t> dims) {
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
void not_none(py::handle obj, const char* fn, const char* name) {
    if (obj.is_none())
        throw py::type_error(std::string(fn) + "(): " + name + " must be a float32 or float64 array, got None");
}

bool any_double(std::initializer_list<const py::array*> arrays) {
    for (const py::array* a : arrays)
        if (a->itemsize() == 8) return true;
    return false;
}

// A C-contiguous, aligned array of T with a's values; a itself when it already is one.
constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED
template <typename T>
using Contiguous = py::array_t<T, py::array::c_style | py::array::forcecast | kAligned>;

// The converting constructor raises NumPy's error (MemoryError when a copy
// cannot be allocated); array_t::ensure() would clear it.
template <typename T>
Contiguous<T> contiguous(const py::array& a) {
    return Contiguous<T>(static_cast<const py::object&>(a));
}

// Arrays of at least this many bytes that the kernels return take their
// memory from the calling thread's BlockCache, as the core's scratch does
// (up to the largest block it keeps).
constexpr std::size_t kPooledBytes = std::size_t(64) << 10;

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
        py::gil_scoped_release nogil;
        rnn_fast::prefault(a.mutable_data(), bytes);
        return a;
    }
    auto buffer = std::make_unique<rnn_fast::Buffer<F>>();
    {
        py::gil_scoped_release nogil;
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

Activation parse_activation(const char* fn, const std::string& name) {
    if (name == "tanh") return Activation::tanh;
    if (name == "relu") return Activation::relu;
    throw py::value_error(std::string(fn) + "(): activation must be 'tanh' or 'relu', got '" + name + "'");
}

// gate_order: false for cs231n's i, f, o, g ('ifog'), true for Keras's and
// PyTorch's i, f, g, o ('ifgo').
bool parse_gate_order(const char* fn, const std::string& order) {
    if (order == "ifog") return false;
    if (order == "ifgo") return true;
    throw py::value_error(std::string(fn) + "(): gate_order must be 'ifog' (cs231n's) or 'ifgo' (Keras's and "
                          "PyTorch's), got '" + order + "'");
}

// ------------------------------------------------------------------ caches

// What a recurrent backward needs, all owned by the cache: the forward's
// inputs and outputs in the dtype it ran in, and Wh^T already packed by the
// forward (one of wh_t_f, wh_t_d) rather than a copy of Wh. Never exposed to
// Python.
struct RecurrentCache {
    bool is_double = false;
    bool lstm = false;
    bool ifgo = false;  // an LSTM's gates in Keras's and PyTorch's order (gate_order='ifgo')
    bool reverse = false;
    Activation act = Activation::tanh;
    index_t N = 0, T = 0, D = 0, H = 0;
    py::array x, h0, c0, Wx, h, c, gates;
    std::shared_ptr<const rnn_fast::PackedB<float>> wh_t_f;
    std::shared_ptr<const rnn_fast::PackedB<double>> wh_t_d;

    py::str repr(const char* cls) const {
        std::ostringstream s;
        s << "<rnn_fast." << cls << " N=" << N << " T=" << T << " D=" << D << " H=" << H
          << " dtype=" << (is_double ? "float64" : "float32") << (ifgo ? " gate_order=ifgo" : "")
          << (reverse ? " reverse" : "") << ">";
        return s.str();
    }
};

// One Python class per forward, so that a cache handed to the wrong backward
// is a TypeError.
struct RNNStepCache : RecurrentCache {};
struct RNNCache : RecurrentCache {};
struct LSTMStepCache : RecurrentCache {};
struct LSTMCache : RecurrentCache {};

struct AffineCache {
    bool is_double = false;
    index_t N = 0, T = 0, D = 0, M = 0;
    py::array x, w;
};

struct EmbeddingCache {
    bool is_double = false;
    index_t N = 0, T = 0, V = 0, D = 0;
    py::array_t<std::int64_t> x;
};

template <typename Cache>
const Cache& cache_arg(py::handle obj, const char* fn, const char* expected) {
    if (!py::isinstance<Cache>(obj))
        throw py::type_error(std::string(fn) + "(): cache must be the cache returned by " + expected +
                             ", got " + type_name(obj));
    return obj.cast<const Cache&>();
}

// ------------------------------------------------------ recurrent forward

// A layer's weights copied and packed once for many inference forwards, as
// ONNX Runtime's session packs them once: the state of LSTMInference and
// RNNInference. Immutable once made, so calls may share it across threads.
struct InferenceWeights {
    bool lstm = false;
    bool ifgo = false;  // see RecurrentCache
    bool is_double = false;
    Activation act = Activation::tanh;
    index_t D = 0, H = 0;
    py::array Wx, Wh, b;  // owned copies, in the dtype of the packing
    std::shared_ptr<const rnn_fast::PackedWeights<float>> packed_f;
    std::shared_ptr<const rnn_fast::PackedWeights<double>> packed_d;

    // The packing for a forward in F (none for a forward promoted to float64).
    template <typename F>
    const rnn_fast::PackedWeights<F>* packed() const {
        if constexpr (std::is_same<F, double>::value) return packed_d.get();
        else return packed_f.get();
    }
};
struct LSTMInference : InferenceWeights {};
struct RNNInference : InferenceWeights {};

struct RecurrentArgs {
    py::array x, h0, c0, Wx, Wh, b;
    bool has_c0 = false;
    const InferenceWeights* pre = nullptr;  // the weights came packed
};

// Runs the forward of cache.lstm ? LSTM : RNN and fills cache (N,T,D,H, flags set).
// keep: the cache is for a backward, so it owns copies of the inputs (unless
// borrow: it refers to them, see lstm_forward's _borrow) and gets Wh^T
// packed; otherwise (an inference forward) it only views the inputs and is
// dropped after the call.
template <typename F>
void run_forward(RecurrentCache& cache, const RecurrentArgs& in, bool keep, bool borrow) {
    const index_t N = cache.N, T = cache.T, D = cache.D, H = cache.H;
    const bool copy = keep && !borrow;
    cache.is_double = std::is_same<F, double>::value;
    cache.x = copy ? owned<F>(in.x) : contiguous<F>(in.x);
    cache.h0 = copy ? owned<F>(in.h0) : contiguous<F>(in.h0);
    cache.Wx = copy ? owned<F>(in.Wx) : contiguous<F>(in.Wx);
    const Contiguous<F> Wh = contiguous<F>(in.Wh);
    const Contiguous<F> b = contiguous<F>(in.b);
    auto wh_t = keep ? std::make_shared<rnn_fast::PackedB<F>>() : nullptr;
    const rnn_fast::PackedWeights<F>* pre = in.pre != nullptr ? in.pre->packed<F>() : nullptr;
    cache.h = empty<F>({N, T, H});
    if (!cache.lstm) {
        py::gil_scoped_release nogil;
        rnn_fast::rnn_seq_forward<F>(mptr<F>(cache.h), cptr<F>(cache.x), cptr<F>(cache.h0), cptr<F>(cache.Wx),
                                     Wh.data(), b.data(), N, T, D, H, cache.act, cache.reverse, threads(), wh_t.get(),
                                     pre);
    } else {
        if (in.has_c0) {
            cache.c0 = copy ? owned<F>(in.c0) : contiguous<F>(in.c0);
        } else {
            py::array_t<F> zeros = empty<F>({N, H});
            std::fill(zeros.mutable_data(), zeros.mutable_data() + zeros.size(), F(0));
            cache.c0 = zeros;
        }
        cache.c = empty<F>({N, T, H});
        // The gates: the cache's array, or (inference) none kept.
        F* gates = nullptr;
        if (keep) {
            cache.gates = empty<F>({N, T, 4 * H});
            gates = mptr<F>(cache.gates);
        }
        py::gil_scoped_release nogil;
        rnn_fast::lstm_seq_forward<F>(mptr<F>(cache.h), mptr<F>(cache.c), gates, cptr<F>(cache.x), cptr<F>(cache.h0),
                                      cptr<F>(cache.c0), cptr<F>(cache.Wx), Wh.data(), b.data(), N, T, D, H,
                                      cache.reverse, threads(), wh_t.get(), pre, cache.ifgo);
    }
    if constexpr (std::is_same<F, double>::value) cache.wh_t_d = std::move(wh_t);
    else cache.wh_t_f = std::move(wh_t);
}

// The cache's packed Wh^T as F: itself, or (a float32 cache meeting a float64
// gradient) unpacked, widened and packed again.
template <typename F>
std::shared_ptr<const rnn_fast::PackedB<F>> packed_wh_t(const RecurrentCache& c) {
    if constexpr (std::is_same<F, double>::value) {
        if (c.is_double) return c.wh_t_d;
        const rnn_fast::PackedB<float>& src = *c.wh_t_f;
        std::vector<float> narrow(static_cast<std::size_t>(src.K() * src.N()));
        src.unpack(narrow.data());
        const std::vector<double> wide(narrow.begin(), narrow.end());
        auto out = std::make_shared<rnn_fast::PackedB<double>>();
        out->pack(src.K(), src.N(), rnn_fast::dense_rows(wide.data(), src.N()), false, threads());
        return out;
    } else {
        return c.wh_t_f;
    }
}

// Checks and converts the arguments of a recurrent forward, runs it, and
// returns the cache. step: x is (N,D) and there is one time step. pre: the
// weights come from an inference object (Wx_, Wh_, b_ are its copies).
template <typename Cache>
Cache forward(const char* fn, bool lstm, bool step, py::handle x_, py::handle h0_, py::handle c0_,
              py::handle Wx_, py::handle Wh_, py::handle b_, Activation act, bool reverse, bool keep = true,
              const InferenceWeights* pre = nullptr, bool borrow = false, bool ifgo = false) {
    const char* h0_name = step ? "prev_h" : "h0";
    const char* c0_name = step ? "prev_c" : "c0";
    RecurrentArgs in;
    in.pre = pre;
    in.x = float_array(x_, fn, "x");
    in.h0 = float_array(h0_, fn, h0_name);
    in.has_c0 = !c0_.is_none();
    if (in.has_c0) in.c0 = float_array(c0_, fn, c0_name);
    in.Wx = float_array(Wx_, fn, "Wx");
    in.Wh = float_array(Wh_, fn, "Wh");
    in.b = float_array(b_, fn, "b");
    Dims d(fn);
    if (pre != nullptr) {
        d.set('D', pre->D, "the weights");
        d.set('H', pre->H, "the weights");
    }
    d.expect(in.x, "x", step ? "N,D" : "N,T,D");
    d.expect(in.h0, h0_name, "N,H");
    if (in.has_c0) d.expect(in.c0, c0_name, "N,H");
    d.expect(in.Wx, "Wx", lstm ? "D,4H" : "D,H");
    d.expect(in.Wh, "Wh", lstm ? "H,4H" : "H,H");
    d.expect(in.b, "b", lstm ? "4H" : "H");
    if (step) check_size(fn, "next_h", "N, H", {d['N'], d['H']});
    else check_size(fn, "h", "N, T, H", {d['N'], d['T'], d['H']});
    if (lstm) check_size(fn, "the saved gates", "N, T, 4H", {d['N'], step ? 1 : d['T'], 4, d['H']});
    Cache cache;
    cache.lstm = lstm;
    cache.ifgo = pre != nullptr ? pre->ifgo : ifgo;
    cache.act = act;
    cache.reverse = reverse;
    cache.N = d['N'];
    cache.T = step ? 1 : d['T'];
    cache.D = d['D'];
    cache.H = d['H'];
    const bool dbl = any_double({&in.x, &in.h0, &in.Wx, &in.Wh, &in.b}) || (in.has_c0 && in.c0.itemsize() == 8);
    if (dbl) run_forward<double>(cache, in, keep, borrow);
    else run_forward<float>(cache, in, keep, borrow);
    return cache;
}

// A copy of the cache's h (N,T,H) for the caller, (N,H) for a step (a
// float32 or float64 array), from empty() like the copies of owned().
py::array copy_of(const py::array& a, std::vector<py::ssize_t> shape) {
    py::array out = a.itemsize() == 8 ? py::array(empty<double>(shape)) : py::array(empty<float>(shape));
    void* dst = out.mutable_data();
    const void* src = a.data();
    const std::size_t bytes = static_cast<std::size_t>(a.nbytes());
    {
        py::gil_scoped_release nogil;
        rnn_fast::copy_bytes(dst, src, bytes, threads());
    }
    return out;
}

// h[:, t] of a (N,T,H) array, as a new (N,H) array.
py::array time_slice(const py::array& a, index_t t) {
    const index_t N = a.shape(0), T = a.shape(1), H = a.shape(2), item = a.itemsize();
    py::array out(a.dtype(), std::vector<py::ssize_t>{N, H});
    const char* src = static_cast<const char*>(a.data());
    char* dst = static_cast<char*>(out.mutable_data());
    for (index_t n = 0; n < N; ++n) std::memcpy(dst + n * H * item, src + (n * T + t) * H * item, H * item);
    return out;
}

// The last state: time T-1, or 0 when the sequence ran in reverse. For T = 0,
// the initial state.
py::array final_state(const RecurrentCache& c, const py::array& seq, const py::array& initial) {
    if (c.T == 0) return copy_of(initial, {c.N, c.H});
    return time_slice(seq, c.reverse ? 0 : c.T - 1);
}

// ------------------------------------------------------ recurrent backward

struct RecurrentGrads {
    py::array dx, dh0, dc0, dWx, dWh, db;
};

template <typename F>
RecurrentGrads run_backward(const RecurrentCache& c, const py::array& dh_, const py::array* dcT_, bool step) {
    const index_t N = c.N, T = c.T, D = c.D, H = c.H, G = c.lstm ? 4 * H : H;
    // A float32 cache meets a float64 gradient: promote the cache, as NumPy would.
    const Contiguous<F> x = contiguous<F>(c.x), h0 = contiguous<F>(c.h0), Wx = contiguous<F>(c.Wx),
                        h = contiguous<F>(c.h), dh = contiguous<F>(dh_);
    const std::shared_ptr<const rnn_fast::PackedB<F>> wh_t = packed_wh_t<F>(c);
    RecurrentGrads g;
    g.dx = step ? empty<F>({N, D}) : empty<F>({N, T, D});
    g.dh0 = empty<F>({N, H});
    g.dWx = empty<F>({D, G});
    g.dWh = empty<F>({H, G});
    g.db = empty<F>({G});
    if (!c.lstm) {
        py::gil_scoped_release nogil;
        rnn_fast::rnn_seq_backward<F>(mptr<F>(g.dx), mptr<F>(g.dh0), mptr<F>(g.dWx), mptr<F>(g.dWh), mptr<F>(g.db),
                                      dh.data(), x.data(), h0.data(), Wx.data(), *wh_t, h.data(), N, T, D, H,
                                      c.act, c.reverse, threads());
        return g;
    }
    const Contiguous<F> c0 = contiguous<F>(c.c0), cs = contiguous<F>(c.c), gates = contiguous<F>(c.gates);
    Contiguous<F> dcT;
    if (dcT_ != nullptr) dcT = contiguous<F>(*dcT_);
    g.dc0 = empty<F>({N, H});
    py::gil_scoped_release nogil;
    rnn_fast::lstm_seq_backward<F>(mptr<F>(g.dx), mptr<F>(g.dh0), mptr<F>(g.dc0), mptr<F>(g.dWx), mptr<F>(g.dWh),
                                   mptr<F>(g.db), dh.data(), dcT_ ? dcT.data() : nullptr, x.data(), h0.data(),
                                   c0.data(), Wx.data(), *wh_t, h.data(), cs.data(), gates.data(), N, T, D,
                                   H, c.reverse, threads(), c.ifgo);
    return g;
}

// Checks dh (and dcT) against the cache, then runs the backward.
RecurrentGrads backward(const char* fn, const RecurrentCache& c, py::handle dh_, py::handle dcT_, bool step) {
    const char* dh_name = step ? "dnext_h" : "dh";
    const char* dc_name = step ? "dnext_c" : "dcT";
    const py::array dh = float_array(dh_, fn, dh_name);
    Dims d(fn);
    d.set('N', c.N, "the cache");
    d.set('T', c.T, "the cache");
    d.set('H', c.H, "the cache");
    d.expect(dh, dh_name, step ? "N,H" : "N,T,H");
    py::array dcT;
    const bool has_dcT = !dcT_.is_none();
    if (has_dcT) {
        dcT = float_array(dcT_, fn, dc_name);
        d.expect(dcT, dc_name, "N,H");
    }
    const bool dbl = c.is_double || dh.itemsize() == 8 || (has_dcT && dcT.itemsize() == 8);
    return dbl ? run_backward<double>(c, dh, has_dcT ? &dcT : nullptr, step)
               : run_backward<float>(c, dh, has_dcT ? &dcT : nullptr, step);
}

// ------------------------------------------------------ public functions

// The cache of a training forward, or None after an inference forward
// (cache=False), whose outputs then are the kernel's own arrays, not copies.
template <typename Cache>
py::object cache_or_none(Cache&& c, bool keep) {
    return keep ? py::cast(std::move(c)) : py::object(py::none());
}

py::array output(py::array a, std::vector<py::ssize_t> shape, bool keep) {
    return keep ? copy_of(a, std::move(shape)) : a.reshape(shape);
}

py::tuple rnn_step_forward(py::handle x, py::handle prev_h, py::handle Wx, py::handle Wh, py::handle b,
                           const std::string& activation, bool keep) {
    const char* fn = "rnn_step_forward";
    RNNStepCache c = forward<RNNStepCache>(fn, false, true, x, prev_h, py::none(), Wx, Wh, b,
                                           parse_activation(fn, activation), false, keep);
    py::array next_h = output(c.h, {c.N, c.H}, keep);
    return py::make_tuple(next_h, cache_or_none(std::move(c), keep));
}

py::tuple rnn_step_backward(py::handle dnext_h, py::handle cache) {
    const char* fn = "rnn_step_backward";
    const RecurrentGrads g = backward(fn, cache_arg<RNNStepCache>(cache, fn, "rnn_step_forward"), dnext_h,
                                      py::none(), true);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db);
}

py::tuple rnn_forward(py::handle x, py::handle h0, py::handle Wx, py::handle Wh, py::handle b,
                      const std::string& activation, bool reverse, bool return_state, bool keep, bool borrow) {
    const char* fn = "rnn_forward";
    RNNCache c = forward<RNNCache>(fn, false, false, x, h0, py::none(), Wx, Wh, b,
                                   parse_activation(fn, activation), reverse, keep, nullptr, borrow);
    py::array h = output(c.h, {c.N, c.T, c.H}, keep && !borrow);
    if (!return_state) return py::make_tuple(h, cache_or_none(std::move(c), keep));
    py::array hT = final_state(c, c.h, c.h0);
    return py::make_tuple(h, hT, cache_or_none(std::move(c), keep));
}

py::tuple rnn_backward(py::handle dh, py::handle cache) {
    const char* fn = "rnn_backward";
    const RecurrentGrads g = backward(fn, cache_arg<RNNCache>(cache, fn, "rnn_forward"), dh, py::none(), false);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db);
}

py::tuple lstm_step_forward(py::handle x, py::handle prev_h, py::handle prev_c, py::handle Wx, py::handle Wh,
                            py::handle b, bool keep, const std::string& gate_order) {
    const char* fn = "lstm_step_forward";
    not_none(prev_c, fn, "prev_c");
    const bool ifgo = parse_gate_order(fn, gate_order);
    LSTMStepCache c = forward<LSTMStepCache>(fn, true, true, x, prev_h, prev_c, Wx, Wh, b, Activation::tanh, false,
                                             keep, nullptr, false, ifgo);
    py::array next_h = output(c.h, {c.N, c.H}, keep);
    py::array next_c = output(c.c, {c.N, c.H}, keep);
    return py::make_tuple(next_h, next_c, cache_or_none(std::move(c), keep));
}

py::tuple lstm_step_backward(py::handle dnext_h, py::handle dnext_c, py::handle cache) {
    const char* fn = "lstm_step_backward";
    not_none(dnext_c, fn, "dnext_c");
    const RecurrentGrads g =
        backward(fn, cache_arg<LSTMStepCache>(cache, fn, "lstm_step_forward"), dnext_h, dnext_c, true);
    return py::make_tuple(g.dx, g.dh0, g.dc0, g.dWx, g.dWh, g.db);
}

py::tuple lstm_forward(py::handle x, py::handle h0, py::handle Wx, py::handle Wh, py::handle b, py::handle c0,
                       bool reverse, bool return_state, bool keep, bool borrow, const std::string& gate_order) {
    const char* fn = "lstm_forward";
    const bool ifgo = parse_gate_order(fn, gate_order);
    LSTMCache c = forward<LSTMCache>(fn, true, false, x, h0, c0, Wx, Wh, b, Activation::tanh, reverse, keep, nullptr,
                                     borrow, ifgo);
    py::array h = output(c.h, {c.N, c.T, c.H}, keep && !borrow);
    if (!return_state) return py::make_tuple(h, cache_or_none(std::move(c), keep));
    py::array hT = final_state(c, c.h, c.h0);
    py::array cT = final_state(c, c.c, c.c0);
    return py::make_tuple(h, hT, cT, cache_or_none(std::move(c), keep));
}

py::tuple lstm_backward(py::handle dh, py::handle cache, py::handle dcT, bool return_dc0) {
    const char* fn = "lstm_backward";
    const RecurrentGrads g = backward(fn, cache_arg<LSTMCache>(cache, fn, "lstm_forward"), dh, dcT, false);
    if (return_dc0) return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db, g.dc0);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db);
}

// ------------------------------------------------------ inference objects

template <typename F>
void pack_inference(InferenceWeights& w, const py::array& Wx, const py::array& Wh, const py::array& b) {
    w.is_double = std::is_same<F, double>::value;
    w.Wx = owned<F>(Wx);
    w.Wh = owned<F>(Wh);
    w.b = owned<F>(b);
    auto p = std::make_shared<rnn_fast::PackedWeights<F>>();
    {
        py::gil_scoped_release nogil;
        p->pack(cptr<F>(w.Wx), cptr<F>(w.Wh), w.D, w.H, w.lstm ? 4 : 1, threads());
    }
    if constexpr (std::is_same<F, double>::value) w.packed_d = std::move(p);
    else w.packed_f = std::move(p);
}

// Checks the weights of an inference object, copies and packs them.
template <typename W>
W make_inference(const char* fn, bool lstm, py::handle Wx_, py::handle Wh_, py::handle b_, Activation act,
                 bool ifgo = false) {
    const py::array Wx = float_array(Wx_, fn, "Wx"), Wh = float_array(Wh_, fn, "Wh"), b = float_array(b_, fn, "b");
    Dims d(fn);
    d.expect(Wx, "Wx", lstm ? "D,4H" : "D,H");
    d.expect(Wh, "Wh", lstm ? "H,4H" : "H,H");
    d.expect(b, "b", lstm ? "4H" : "H");
    W w;
    w.lstm = lstm;
    w.ifgo = ifgo;
    w.act = act;
    w.D = d['D'];
    w.H = d['H'];
    if (any_double({&Wx, &Wh, &b})) pack_inference<double>(w, Wx, Wh, b);
    else pack_inference<float>(w, Wx, Wh, b);
    return w;
}

py::object rnn_inference_call(const RNNInference& w, py::handle x, py::handle h0, bool reverse, bool return_state) {
    const char* fn = "RNNInference";
    RNNCache c = forward<RNNCache>(fn, false, false, x, h0, py::none(), w.Wx, w.Wh, w.b, w.act, reverse, false, &w);
    py::array h = output(c.h, {c.N, c.T, c.H}, false);
    if (!return_state) return std::move(h);
    return py::make_tuple(h, final_state(c, c.h, c.h0));
}

py::object lstm_inference_call(const LSTMInference& w, py::handle x, py::handle h0, py::handle c0, bool reverse,
                               bool return_state) {
    const char* fn = "LSTMInference";
    LSTMCache c = forward<LSTMCache>(fn, true, false, x, h0, c0, w.Wx, w.Wh, w.b, Activation::tanh, reverse, false, &w);
    py::array h = output(c.h, {c.N, c.T, c.H}, false);
    if (!return_state) return std::move(h);
    return py::make_tuple(h, final_state(c, c.h, c.h0), final_state(c, c.c, c.c0));
}

// The Python base class of the inference objects: what both kinds share.
void register_inference_base(py::module_& m) {
    py::class_<InferenceWeights>(m, "InferenceWeights", "A layer's weights packed once: LSTMInference or RNNInference.")
        .def_property_readonly("D", [](const InferenceWeights& w) { return w.D; })
        .def_property_readonly("H", [](const InferenceWeights& w) { return w.H; })
        .def_property_readonly("dtype", [](const InferenceWeights& w) { return w.Wx.dtype(); })
        .def("__repr__", [](py::object self) {
            const InferenceWeights& w = self.cast<const InferenceWeights&>();
            std::ostringstream s;
            s << "<rnn_fast." << type_name(self) << " D=" << w.D << " H=" << w.H
              << " dtype=" << (w.is_double ? "float64" : "float32");
            if (!w.lstm) s << " activation=" << (w.act == Activation::tanh ? "tanh" : "relu");
            if (w.ifgo) s << " gate_order=ifgo";
            return s.str() + ">";
        });
}

// ------------------------------------------------ non-recurrent layers

template <typename F>
py::tuple affine_forward_t(py::array x_, py::array w_, py::array b_, AffineCache cache) {
    cache.is_double = std::is_same<F, double>::value;
    cache.x = owned<F>(x_);
    cache.w = owned<F>(w_);
    const Contiguous<F> b = contiguous<F>(b_);
    py::array out = empty<F>({cache.N, cache.T, cache.M});
    {
        py::gil_scoped_release nogil;
        rnn_fast::temporal_affine_forward<F>(mptr<F>(out), cptr<F>(cache.x), cptr<F>(cache.w), b.data(), cache.N,
                                             cache.T, cache.D, cache.M, threads());
    }
    return py::make_tuple(out, std::move(cache));
}

template <typename F>
py::array matmul_t(const py::array& a_, const py::array& b_, const py::array* bias_, index_t M, index_t K, index_t N) {
    const Contiguous<F> a = contiguous<F>(a_), b = contiguous<F>(b_);
    const Contiguous<F> bias = bias_ != nullptr ? contiguous<F>(*bias_) : Contiguous<F>();
    py::array out = empty<F>({M, N});
    py::gil_scoped_release nogil;
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
    return any_double({&a, &b, &bias}) ? matmul_t<double>(a, b, bp, d['M'], d['K'], d['N'])
                                       : matmul_t<float>(a, b, bp, d['M'], d['K'], d['N']);
}

py::tuple temporal_affine_forward(py::handle x_, py::handle w_, py::handle b_) {
    const char* fn = "temporal_affine_forward";
    const py::array x = float_array(x_, fn, "x"), w = float_array(w_, fn, "w"), b = float_array(b_, fn, "b");
    Dims d(fn);
    d.expect(x, "x", "N,T,D");
    d.expect(w, "w", "D,M");
    d.expect(b, "b", "M");
    check_size(fn, "out", "N, T, M", {d['N'], d['T'], d['M']});
    AffineCache c;
    c.N = d['N'], c.T = d['T'], c.D = d['D'], c.M = d['M'];
    return any_double({&x, &w, &b}) ? affine_forward_t<double>(x, w, b, c) : affine_forward_t<float>(x, w, b, c);
}

template <typename F>
py::tuple affine_backward_t(const AffineCache& c, const py::array& dout_) {
    const Contiguous<F> dout = contiguous<F>(dout_), x = contiguous<F>(c.x), w = contiguous<F>(c.w);
    py::array dx = empty<F>({c.N, c.T, c.D}), dw = empty<F>({c.D, c.M}), db = empty<F>({c.M});
    {
        py::gil_scoped_release nogil;
        rnn_fast::temporal_affine_backward<F>(mptr<F>(dx), mptr<F>(dw), mptr<F>(db), dout.data(), x.data(),
                                              w.data(), c.N, c.T, c.D, c.M, threads());
    }
    return py::make_tuple(dx, dw, db);
}

py::tuple temporal_affine_backward(py::handle dout_, py::handle cache) {
    const char* fn = "temporal_affine_backward";
    const AffineCache& c = cache_arg<AffineCache>(cache, fn, "temporal_affine_forward");
    const py::array dout = float_array(dout_, fn, "dout");
    Dims d(fn);
    d.set('N', c.N, "the cache");
    d.set('T', c.T, "the cache");
    d.set('M', c.M, "the cache");
    d.expect(dout, "dout", "N,T,M");
    return c.is_double || dout.itemsize() == 8 ? affine_backward_t<double>(c, dout) : affine_backward_t<float>(c, dout);
}

template <typename F>
py::tuple embedding_forward_t(const py::array& W_, EmbeddingCache cache) {
    cache.is_double = std::is_same<F, double>::value;
    const Contiguous<F> W = contiguous<F>(W_);
    py::array out = empty<F>({cache.N, cache.T, cache.D});
    {
        py::gil_scoped_release nogil;
        rnn_fast::word_embedding_forward<F>(mptr<F>(out), cache.x.data(), W.data(), cache.N, cache.T, cache.V,
                                            cache.D, threads());
    }
    return py::make_tuple(out, std::move(cache));
}

py::tuple word_embedding_forward(py::handle x_, py::handle W_) {
    const char* fn = "word_embedding_forward";
    const py::array x = index_array(x_, fn, "x");
    const py::array W = float_array(W_, fn, "W");
    Dims d(fn);
    d.expect(x, "x", "N,T");
    d.expect(W, "W", "V,D");
    check_size(fn, "out", "N, T, D", {d['N'], d['T'], d['D']});
    EmbeddingCache c;
    c.N = d['N'], c.T = d['T'], c.V = d['V'], c.D = d['D'];
    c.x = owned<std::int64_t>(x);
    try {
        return W.itemsize() == 8 ? embedding_forward_t<double>(W, std::move(c))
                                 : embedding_forward_t<float>(W, std::move(c));
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string(fn) + "(): " + e.what());
    }
}

template <typename F>
py::array embedding_backward_t(const EmbeddingCache& c, const py::array& dout_) {
    const Contiguous<F> dout = contiguous<F>(dout_);
    py::array dW = empty<F>({c.V, c.D});
    py::gil_scoped_release nogil;
    rnn_fast::word_embedding_backward<F>(mptr<F>(dW), dout.data(), c.x.data(), c.N, c.T, c.V, c.D, threads());
    return dW;
}

py::array word_embedding_backward(py::handle dout_, py::handle cache) {
    const char* fn = "word_embedding_backward";
    const EmbeddingCache& c = cache_arg<EmbeddingCache>(cache, fn, "word_embedding_forward");
    const py::array dout = float_array(dout_, fn, "dout");
    Dims d(fn);
    d.set('N', c.N, "the cache");
    d.set('T', c.T, "the cache");
    d.set('D', c.D, "the cache");
    d.expect(dout, "dout", "N,T,D");
    return c.is_double || dout.itemsize() == 8 ? embedding_backward_t<double>(c, dout)
                                               : embedding_backward_t<float>(c, dout);
}

template <typename F>
py::tuple dropout_t(const py::array& x_, double keep, std::uint64_t seed) {
    const Contiguous<F> x = contiguous<F>(x_);
    const std::vector<py::ssize_t> shape(x_.shape(), x_.shape() + x_.ndim());
    py::array_t<F> y = empty<F>(shape), mask = empty<F>(shape);
    {
        py::gil_scoped_release nogil;
        rnn_fast::dropout_forward<F>(y.mutable_data(), mask.mutable_data(), x.data(), x.size(), keep, seed, threads());
    }
    return py::make_tuple(y, mask);
}

py::tuple dropout_forward(py::handle x_, double rate, py::handle seed_) {
    const char* fn = "dropout_forward";
    const py::array x = float_array(x_, fn, "x");
    if (!(rate >= 0.0 && rate < 1.0))
        throw py::value_error(std::string(fn) + "(): rate must be in [0, 1), got " + py::repr(py::float_(rate)).cast<std::string>());
    std::uint64_t seed = 0;
    try {
        seed = seed_.cast<std::uint64_t>();
    } catch (const py::cast_error&) {
        throw py::type_error(std::string(fn) + "(): seed must be an integer in [0, 2**64), got " +
                             py::repr(seed_).cast<std::string>());
    }
    return x.itemsize() == 8 ? dropout_t<double>(x, 1.0 - rate, seed) : dropout_t<float>(x, 1.0 - rate, seed);
}

template <typename F>
py::array dropout_backward_t(const py::array& dy_, const py::array& mask_) {
    const Contiguous<F> dy = contiguous<F>(dy_), mask = contiguous<F>(mask_);
    py::array_t<F> dx = empty<F>(std::vector<py::ssize_t>(dy_.shape(), dy_.shape() + dy_.ndim()));
    py::gil_scoped_release nogil;
    rnn_fast::dropout_backward<F>(dx.mutable_data(), dy.data(), mask.data(), dy_.size(), threads());
    return dx;
}

py::array dropout_backward(py::handle dy_, py::handle mask_) {
    const char* fn = "dropout_backward";
    const py::array dy = float_array(dy_, fn, "dy");
    const py::array mask = float_array(mask_, fn, "mask");
    if (!dy.attr("shape").equal(mask.attr("shape")))
        throw py::value_error(std::string(fn) + "(): mask must have dy's shape " +
                              py::str(dy.attr("shape")).cast<std::string>() + ", got " +
                              py::str(mask.attr("shape")).cast<std::string>());
    return dy.itemsize() == 8 || mask.itemsize() == 8 ? dropout_backward_t<double>(dy, mask)
                                                      : dropout_backward_t<float>(dy, mask);
}

// An array the optimizer step writes in place: an ndarray (never a converted
// copy), C-contiguous and writeable, with the parameters' dtype and shape
// when `w` is given.
py::array state_array(py::handle obj, const char* fn, const char* name, const py::array* w) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(fn) + "(): " + name + " must be a NumPy array (updated in place), got " +
                             type_name(obj));
    py::array a = float_array(obj, fn, name);
    if (!(a.flags() & py::array::c_style) || !a.writeable())
        throw py::value_error(std::string(fn) + "(): " + name +
                              " must be C-contiguous and writeable (it is updated in place)");
    if (w == nullptr) return a;
    if (!a.dtype().is(w->dtype()) || a.ndim() != w->ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), w->shape()))
        throw py::value_error(std::string(fn) + "(): " + name + " must have w's dtype and shape, " + dtype_of(*w) +
                              " " + shape_of(*w) + ", got " + dtype_of(a) + " " + shape_of(a));
    return a;
}

// Whether two contiguous arrays' memory overlaps.
bool overlap(const py::array& a, const py::array& b) {
    const char* p = static_cast<const char*>(a.data());
    const char* q = static_cast<const char*>(b.data());
    return a.nbytes() > 0 && b.nbytes() > 0 && p < q + b.nbytes() && q < p + a.nbytes();
}

// One array set of an Adam step, checked: w, m, v (and vhat) updated in
// place, g converted to w's dtype (names: "w", or "w[i]" in a list).
struct AdamArrays {
    py::array w, g, m, v, vhat;
    bool amsgrad = false;
};

AdamArrays adam_arrays(const char* fn, py::handle w_, py::handle g_, py::handle m_, py::handle v_, py::handle vhat_,
                       const std::string& suffix) {
    auto name = [&](const char* base) { return std::string(base) + suffix; };
    AdamArrays a;
    a.w = state_array(w_, fn, name("w").c_str(), nullptr);
    a.g = float_array(g_, fn, name("g").c_str());
    if (a.g.ndim() != a.w.ndim() || !std::equal(a.g.shape(), a.g.shape() + a.g.ndim(), a.w.shape()))
        throw py::value_error(std::string(fn) + "(): " + name("g") + " must have " + name("w") + "'s shape " +
                              shape_of(a.w) + ", got " + shape_of(a.g));
    a.m = state_array(m_, fn, name("m").c_str(), &a.w);
    a.v = state_array(v_, fn, name("v").c_str(), &a.w);
    a.amsgrad = !vhat_.is_none();
    if (a.amsgrad) a.vhat = state_array(vhat_, fn, name("vhat").c_str(), &a.w);
    const std::pair<const py::array*, const char*> arrays[] = {
        {&a.w, "w"}, {&a.m, "m"}, {&a.v, "v"}, {a.amsgrad ? &a.vhat : nullptr, "vhat"}};
    for (int i = 0; i < 4; ++i)
        for (int j = i + 1; j < 4; ++j)
            if (arrays[i].first != nullptr && arrays[j].first != nullptr && overlap(*arrays[i].first, *arrays[j].first))
                throw py::value_error(std::string(fn) + "(): " + name(arrays[i].second) + " and " +
                                      name(arrays[j].second) + " must not share memory");
    if (a.w.itemsize() == 8) a.g = contiguous<double>(a.g);
    else a.g = contiguous<float>(a.g);
    return a;
}

// The step over the sets of one dtype F (is_double) among `sets`.
template <typename F>
void adam_t(std::vector<AdamArrays>& sets, double alpha, double beta_1, double beta_2, double epsilon) {
    std::vector<F*> w, m, v, vh;
    std::vector<const F*> g;
    std::vector<index_t> n;
    bool amsgrad = false;
    for (AdamArrays& a : sets) {
        if ((a.w.itemsize() == 8) != std::is_same<F, double>::value) continue;
        w.push_back(mptr<F>(a.w));
        g.push_back(static_cast<const F*>(a.g.data()));
        m.push_back(mptr<F>(a.m));
        v.push_back(mptr<F>(a.v));
        vh.push_back(a.amsgrad ? mptr<F>(a.vhat) : nullptr);
        n.push_back(static_cast<index_t>(a.w.size()));
        amsgrad = a.amsgrad;
    }
    if (w.empty()) return;
    py::gil_scoped_release nogil;
    rnn_fast::adam_update<F>(static_cast<index_t>(w.size()), w.data(), g.data(), m.data(), v.data(),
                             amsgrad ? vh.data() : nullptr, n.data(), static_cast<F>(alpha), static_cast<F>(1.0 - beta_1),
                             static_cast<F>(1.0 - beta_2), static_cast<F>(epsilon), threads());
}

void adam_update(py::handle w_, py::handle g_, py::handle m_, py::handle v_, py::handle vhat_, double alpha,
                 double beta_1, double beta_2, double epsilon) {
    const char* fn = "_adam_update";
    std::vector<AdamArrays> sets;
    if (py::isinstance<py::list>(w_) || py::isinstance<py::tuple>(w_)) {
        // Lists of arrays: one step over all of them in one call.
        const py::sequence ws = py::reinterpret_borrow<py::sequence>(w_);
        const std::size_t count = ws.size();
        const std::pair<py::handle, const char*> others[] = {{g_, "g"}, {m_, "m"}, {v_, "v"}, {vhat_, "vhat"}};
        for (const auto& o : others) {
            if (o.first.is_none() && std::strcmp(o.second, "vhat") == 0) continue;
            if (!(py::isinstance<py::list>(o.first) || py::isinstance<py::tuple>(o.first)) ||
                py::len(o.first) != count)
                throw py::value_error(std::string(fn) + "(): with w a list of " + std::to_string(count) +
                                      " arrays, " + o.second + " must be a list of as many" +
                                      (std::strcmp(o.second, "vhat") == 0 ? " (or None)" : "") + ", got " +
                                      type_name(o.first) +
                                      (py::isinstance<py::sequence>(o.first) && !py::isinstance<py::str>(o.first)
                                           ? " of " + std::to_string(py::len(o.first))
                                           : std::string()));
        }
        sets.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const py::handle vh = vhat_.is_none() ? py::handle(py::none()) : py::handle(vhat_[py::int_(i)]);
            sets.push_back(adam_arrays(fn, ws[i], g_[py::int_(i)], m_[py::int_(i)], v_[py::int_(i)], vh,
                                       "[" + std::to_string(i) + "]"));
        }
        for (std::size_t i = 0; i < count; ++i)
            for (std::size_t j = i + 1; j < count; ++j)
                for (const py::array* p : {&sets[i].w, &sets[i].m, &sets[i].v})
                    for (const py::array* q : {&sets[j].w, &sets[j].m, &sets[j].v})
                        if (overlap(*p, *q))
                            throw py::value_error(std::string(fn) + "(): the arrays of entries " + std::to_string(i) +
                                                  " and " + std::to_string(j) + " must not share memory");
    } else {
        sets.push_back(adam_arrays(fn, w_, g_, m_, v_, vhat_, ""));
    }
    adam_t<float>(sets, alpha, beta_1, beta_2, epsilon);
    adam_t<double>(sets, alpha, beta_1, beta_2, epsilon);
}

template <typename F>
py::tuple softmax_loss_t(const py::array& x_, const py::array& y_, const py::array& mask_, index_t N, index_t T,
                         index_t V) {
    const Contiguous<F> x = contiguous<F>(x_), mask = contiguous<F>(mask_);
    const Contiguous<std::int64_t> y = contiguous<std::int64_t>(y_);
    py::array dx = empty<F>({N, T, V});
    double loss;
    {
        py::gil_scoped_release nogil;
        loss = rnn_fast::temporal_softmax_loss<F>(mptr<F>(dx), x.data(), y.data(), mask.data(), N, T, V, threads());
    }
    return py::make_tuple(py::float_(loss), dx);
}

py::tuple temporal_softmax_loss(py::handle x_, py::handle y_, py::handle mask_, bool verbose) {
    const char* fn = "temporal_softmax_loss";
    const py::array x = float_array(x_, fn, "x");
    const py::array y = index_array(y_, fn, "y");
    const py::array mask = py::array::ensure(mask_);
    if (!mask || !(mask.dtype().kind() == 'b' || mask.dtype().kind() == 'i' || mask.dtype().kind() == 'u' ||
                   mask.dtype().kind() == 'f'))
        throw py::type_error(std::string(fn) + "(): mask must be a boolean or real array, got " +
                             (mask ? "dtype " + dtype_of(mask) : type_name(mask_)));
    Dims d(fn);
    d.expect(x, "x", "N,T,V");
    d.expect(y, "y", "N,T");
    d.expect(mask, "mask", "N,T");
    if (verbose) py::print("dx_flat: ", py::make_tuple(d['N'] * d['T'], d['V']));
    try {
        return x.itemsize() == 8 ? softmax_loss_t<double>(x, y, mask, d['N'], d['T'], d['V'])
                                 : softmax_loss_t<float>(x, y, mask, d['N'], d['T'], d['V']);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string(fn) + "(): " + e.what());
    }
}

// ------------------------------------------------------- test hooks

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
    return x.itemsize() == 8 ? simd_map<double>(x, name == "sigmoid") : simd_map<float>(x, name == "sigmoid");
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

// GNU OpenMP's thread pool does not survive fork(): a forked child's first
// parallel region would wait forever for threads that live only in the
// parent. A forked child therefore runs the kernels on one thread, as
// PyTorch's do; the results are the same (they do not depend on the count).
std::atomic<bool> g_forked{false};

void after_fork_in_child() {
    g_forked.store(true);
    g_threads.store(1);
}

void set_num_threads(int n) {
    if (n < 1) throw py::value_error("set_num_threads(): n must be >= 1, got " + std::to_string(n));
    g_threads.store(g_forked.load() ? 1 : n);
}

template <typename Cache>
void register_cache(py::module_& m, const char* name, const char* doc) {
    py::class_<Cache>(m, name, doc).def("__repr__", [name](const Cache& c) { return c.repr(name); });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "rnn_fast's compiled kernels. Use the functions re-exported by the rnn_fast package.";
    g_threads.store(omp_get_max_threads());
    // Start the OpenMP thread pool now, at import, rather than in a user's first call.
#pragma omp parallel num_threads(g_threads.load())
    { (void)0; }
    pthread_atfork(nullptr, nullptr, after_fork_in_child);
    // The core's own workspaces (packed weights, GEMM panels) throw
    // std::bad_alloc when they cannot be had: a MemoryError that says so.
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::bad_alloc&) {
            PyErr_SetString(PyExc_MemoryError, "rnn_fast: out of memory for a kernel's workspace");
        }
    });

    register_cache<RNNStepCache>(m, "RNNStepCache", "Opaque cache of rnn_step_forward, for rnn_step_backward.");
    register_cache<RNNCache>(m, "RNNCache", "Opaque cache of rnn_forward, for rnn_backward.");
    register_cache<LSTMStepCache>(m, "LSTMStepCache", "Opaque cache of lstm_step_forward, for lstm_step_backward.");
    register_cache<LSTMCache>(m, "LSTMCache", "Opaque cache of lstm_forward, for lstm_backward.");
    py::class_<AffineCache>(m, "AffineCache", "Opaque cache of temporal_affine_forward.");
    py::class_<EmbeddingCache>(m, "EmbeddingCache", "Opaque cache of word_embedding_forward.");

    using namespace pybind11::literals;
    m.def("rnn_step_forward", &rnn_step_forward, "x"_a, "prev_h"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(),
          "activation"_a = "tanh", "cache"_a = true, R"doc(One vanilla RNN step: next_h = tanh(x @ Wx + prev_h @ Wh + b).

x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,): float32 or float64;
mixed dtypes compute in float64. Returns (next_h (N, H), cache).
Keyword-only: activation='tanh' or 'relu'; cache=False for inference (no
cache is kept: None in its place, and no copies of the inputs).)doc");
    m.def("rnn_step_backward", &rnn_step_backward, "dnext_h"_a, "cache"_a,
          R"doc(Backward of rnn_step_forward. dnext_h (N, H).
Returns (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,)).)doc");
    m.def("rnn_forward", &rnn_forward, "x"_a, "h0"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "activation"_a = "tanh",
          "reverse"_a = false, "return_state"_a = false, "cache"_a = true, "_borrow"_a = false,
          R"doc(Vanilla RNN over a sequence (batch first).

x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,).
Returns (h (N, T, H), cache).
Keyword-only extras:
  activation='tanh' or 'relu';
  reverse=True runs time from T-1 down to 0 (the backward half of a
    bidirectional RNN); h[:, t] is still the state at time t;
  return_state=True returns (h, h_T, cache), h_T (N, H) the state after the
    last step (time 0 when reverse; h0 when T = 0);
  cache=False: an inference forward, which keeps no cache (None is returned
    in its place) and so copies no input and packs nothing for a backward;
  _borrow=True (internal, rnn_fast.nn's): the cache refers to x, h0 and Wx
    instead of copying them, and h is the cache's own array: nothing may
    write them before the backward.)doc");
    m.def("rnn_backward", &rnn_backward, "dh"_a, "cache"_a,
          R"doc(Backward of rnn_forward. dh (N, T, H) is the upstream gradient of
each step's h only. Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db).)doc");
    m.def("lstm_step_forward", &lstm_step_forward, "x"_a, "prev_h"_a, "prev_c"_a, "Wx"_a, "Wh"_a, "b"_a,
          py::kw_only(), "cache"_a = true, "gate_order"_a = "ifog",
          R"doc(One LSTM step, gates ordered i, f, o, g.

x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
Returns (next_h (N, H), next_c (N, H), cache).
Keyword-only: cache=False for inference (None in the cache's place);
gate_order='ifgo' for weights whose gate blocks come i, f, g, o (Keras's
and PyTorch's order; their gradients come in the same order).)doc");
    m.def("lstm_step_backward", &lstm_step_backward, "dnext_h"_a, "dnext_c"_a, "cache"_a,
          R"doc(Backward of lstm_step_forward. dnext_h, dnext_c (N, H).
Returns (dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)).)doc");
    m.def("lstm_forward", &lstm_forward, "x"_a, "h0"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "c0"_a = py::none(),
          "reverse"_a = false, "return_state"_a = false, "cache"_a = true, "_borrow"_a = false, "gate_order"_a = "ifog",
          R"doc(LSTM over a sequence (batch first), gates ordered i, f, o, g.

x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,). The cell state
starts at zero. Returns (h (N, T, H), cache).
Keyword-only extras:
  c0 (N, H): initial cell state instead of zeros;
  reverse=True runs time from T-1 down to 0; h[:, t] is still time t;
  return_state=True returns (h, h_T, c_T, cache), the states after the last
    step (time 0 when reverse; h0 and c0 when T = 0);
  cache=False: an inference forward, which keeps no cache (None is returned
    in its place) and so copies no input and packs nothing for a backward;
  gate_order='ifgo': Wx, Wh and b hold their gate blocks in the order i, f,
    g, o (Keras's and PyTorch's; the default 'ifog' is cs231n's), and the
    backward returns dWx, dWh and db in that order too; the same values, no
    copy of the weights permuted;
  _borrow=True (internal, rnn_fast.nn's): the cache refers to x, h0, c0 and
    Wx instead of copying them, and h is the cache's own array: nothing may
    write them before the backward.)doc");
    m.def("lstm_backward", &lstm_backward, "dh"_a, "cache"_a, py::kw_only(), "dcT"_a = py::none(),
          "return_dc0"_a = false,
          R"doc(Backward of lstm_forward. dh (N, T, H) is the upstream gradient of
each step's h only. Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db).
Keyword-only extras:
  dcT (N, H): upstream gradient of the final cell state c_T (a gradient of
    h_T belongs in dh at the last step);
  return_dc0=True appends dc0 (N, H), the gradient of the initial cell state.)doc");
    register_inference_base(m);
    py::class_<LSTMInference, InferenceWeights>(m, "LSTMInference", R"doc(An LSTM layer's weights, copied and packed once for many inference forwards.

LSTMInference(Wx, Wh, b, *, gate_order='ifog'): Wx (D, 4H), Wh (H, 4H), b (4H,),
gates ordered i, f, o, g (or i, f, g, o with gate_order='ifgo', as in
lstm_forward); float32, or float64 if any of them is. The object keeps its own copy: later
changes to the arrays do not reach it (make a new one). Calling it,
  f(x, h0, *, c0=None, reverse=False, return_state=False),
returns what lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=reverse,
return_state=return_state, cache=False, gate_order=gate_order) returns, without the cache: h, or
(h, h_T, c_T). Bitwise the same values, minus the packing of Wx and Wh that
every lstm_forward call does (as ONNX Runtime packs a model's weights once
per session). Inputs of another dtype follow lstm_forward's promotion.)doc")
        .def(py::init([](py::handle Wx, py::handle Wh, py::handle b, const std::string& gate_order) {
                 const bool ifgo = parse_gate_order("LSTMInference", gate_order);
                 return make_inference<LSTMInference>("LSTMInference", true, Wx, Wh, b, Activation::tanh, ifgo);
             }), "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "gate_order"_a = "ifog")
        .def_property_readonly("gate_order", [](const LSTMInference& w) { return w.ifgo ? "ifgo" : "ifog"; })
        .def("__call__", &lstm_inference_call, "x"_a, "h0"_a, py::kw_only(), "c0"_a = py::none(), "reverse"_a = false,
             "return_state"_a = false);
    py::class_<RNNInference, InferenceWeights>(m, "RNNInference", R"doc(A vanilla RNN layer's weights, copied and packed once for many inference forwards.

RNNInference(Wx, Wh, b, *, activation='tanh'): Wx (D, H), Wh (H, H), b (H,);
float32, or float64 if any of them is. The object keeps its own copy: later
changes to the arrays do not reach it (make a new one). Calling it,
  f(x, h0, *, reverse=False, return_state=False),
returns what rnn_forward(x, h0, Wx, Wh, b, activation=..., reverse=reverse,
return_state=return_state, cache=False) returns, without the cache: h, or
(h, h_T). Bitwise the same values, minus the packing of Wx and Wh that every
rnn_forward call does.)doc")
        .def(py::init([](py::handle Wx, py::handle Wh, py::handle b, const std::string& activation) {
                 return make_inference<RNNInference>("RNNInference", false, Wx, Wh, b,
                                                     parse_activation("RNNInference", activation));
             }), "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "activation"_a = "tanh")
        .def("__call__", &rnn_inference_call, "x"_a, "h0"_a, py::kw_only(), "reverse"_a = false,
             "return_state"_a = false);
    m.def("temporal_affine_forward", &temporal_affine_forward, "x"_a, "w"_a, "b"_a,
          R"doc(out (N, T, M) = x (N, T, D) @ w (D, M) + b (M,). Returns (out, cache).)doc");
    m.def("temporal_affine_backward", &temporal_affine_backward, "dout"_a, "cache"_a,
          R"doc(Backward of temporal_affine_forward. Returns (dx, dw, db).)doc");
    m.def("word_embedding_forward", &word_embedding_forward, "x"_a, "W"_a,
          R"doc(out (N, T, D) = W[x] for integer x (N, T) in [0, V) and W (V, D).
Returns (out, cache). An index outside [0, V) is a ValueError.)doc");
    m.def("word_embedding_backward", &word_embedding_backward, "dout"_a, "cache"_a,
          R"doc(Backward of word_embedding_forward: dW (V, D), dout summed into the rows read.)doc");
    m.def("temporal_softmax_loss", &temporal_softmax_loss, "x"_a, "y"_a, "mask"_a, "verbose"_a = false,
          R"doc(Softmax cross-entropy at every time step, summed where mask is set and
divided by N. x (N, T, V) scores, y (N, T) integer targets in [0, V),
mask (N, T) booleans (or real weights). Returns (loss: float, dx (N, T, V)).)doc");
    m.def("dropout_forward", &dropout_forward, "x"_a, "rate"_a, "seed"_a,
          R"doc(Inverted dropout of x (any shape): returns (y, mask), mask holding 1 / (1 - rate)
where an element is kept (probability 1 - rate) and 0 elsewhere, y = x * mask.
The mask is a function of seed (an integer in [0, 2**64)) and the element's
flat index only: the same for any thread count. Backward: dropout_backward.)doc");
    m.def("dropout_backward", &dropout_backward, "dy"_a, "mask"_a,
          R"doc(The backward of dropout_forward: dy * mask, dy and mask of one shape (a new
array, float64 if either is).)doc");
    m.def("_adam_update", &adam_update, "w"_a, "g"_a, "m"_a, "v"_a, "vhat"_a, py::kw_only(), "alpha"_a, "beta_1"_a,
          "beta_2"_a, "epsilon"_a,
          R"doc(rnn_fast.nn's Adam step, in place, in one pass: m += (g - m)(1 - beta_1);
v += (g^2 - v)(1 - beta_2); vhat = max(vhat, v) if vhat is not None;
w -= alpha m / (sqrt(vhat or v) + epsilon), in w's dtype (float32 or float64),
the values of the NumPy expressions. w, m, v, vhat: C-contiguous, writeable,
one dtype and shape; g is converted to w's dtype. Or lists of as many arrays
each (vhat None or a list): one step over all of them in one call (a model's
weights).)doc");
    m.def("set_num_threads", &set_num_threads, "n"_a,
          R"doc(Number of OpenMP threads the kernels use (default: OMP_NUM_THREADS, or
all cores). Results are bitwise identical whatever the count. In a child
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
    m.def("get_num_threads", &threads, "Number of OpenMP threads the kernels use.");
}
