// The recurrent kernels' bindings: one generic forward and backward over a
// cell description (cells/cell.h) that check and convert the arguments,
// allocate the outputs and caches, release the GIL and call the core; then,
// per cell, its public functions (their names, arguments and return values
// are cs231n's rnn_layers.py API, which differ from cell to cell) with their
// docstrings, and its inference object.
#include <omp.h>

#include "bindings/common.h"
#include "recurrent.h"
#include "sequence.h"

namespace rnn_fast_py {
namespace {

using rnn_fast::Carry;

// ------------------------------------------------------------------ caches

// What a recurrent backward needs, all owned by the cache: the forward's
// inputs and outputs in the dtype it ran in, and Wh^T already packed by the
// forward (one of wh_t_f, wh_t_d) rather than a copy of Wh. Never exposed to
// Python.
struct RecurrentCache {
    bool is_double = false;
    int option = 0;   // the cell's (its description's option)
    std::string tag;  // the option, for the repr ("" when the default)
    bool reverse = false;
    index_t N = 0, T = 0, D = 0, H = 0;
    py::array x, h0, c0, Wx, h, c, saved;
    std::shared_ptr<const rnn_fast::PackedB<float>> wh_t_f;
    std::shared_ptr<const rnn_fast::PackedB<double>> wh_t_d;
    // With lengths: how the sequences were packed. x, h, c and saved are
    // then packed, h0 and c0 sorted (see packing.h).
    std::shared_ptr<const rnn_fast::Packing> packing;
    // A step whose x, prev_h or prev_c came 1-D (bits 1, 2, 4), broadcast
    // over the rows as NumPy's would be (StepRows); out_1d: all of them did,
    // and the outputs (and the gradients the backward takes) are 1-D too.
    unsigned rows_1d = 0;
    bool out_1d = false;

    py::str repr(const char* cls) const {
        std::ostringstream s;
        s << "<rnn_fast." << cls << " N=" << N << " T=" << T << " D=" << D << " H=" << H
          << " dtype=" << (is_double ? "float64" : "float32") << tag << (reverse ? " reverse" : "")
          << (packing ? " lengths" : "") << ">";
        return s.str();
    }
};

// One Python class per cell and forward, so that a cache handed to the wrong
// backward is a TypeError.
template <typename Cell>
struct SeqCache : RecurrentCache {};
template <typename Cell>
struct StepCache : RecurrentCache {};

// A layer's weights copied and packed once for many inference forwards, as
// ONNX Runtime's session packs them once: the state of the cells' Inference
// objects. Immutable once made, so calls may share it across threads.
struct InferenceWeights {
    bool is_double = false;
    int option = 0;
    std::string tag;  // see RecurrentCache
    index_t D = 0, H = 0;
    py::array Wx, Wh, b, bh;  // owned copies, in the dtype of the packing (bh: cells that have one)
    std::shared_ptr<const rnn_fast::PackedWeights<float>> packed_f;
    std::shared_ptr<const rnn_fast::PackedWeights<double>> packed_d;

    // The packing for a forward in F (none for a forward promoted to float64).
    template <typename F>
    const rnn_fast::PackedWeights<F>* packed() const {
        if constexpr (std::is_same<F, double>::value) return packed_d.get();
        else return packed_f.get();
    }
};
template <typename Cell>
struct Inference : InferenceWeights {};

// The Python names of a cell's classes: "RNN" + "Cache", "LSTM" + "Inference".
template <typename Cell>
std::string class_name(const char* suffix) {
    std::string s = Cell::name;
    for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s + suffix;
}

// The shape spec of a cell's gate axis: "H", "4H".
template <typename Cell>
std::string gate_spec() {
    return Cell::gates == 1 ? std::string("H") : std::to_string(Cell::gates) + "H";
}

// ------------------------------------------------------ recurrent forward

struct RecurrentArgs {
    py::array x, h0, c0, Wx, Wh, b, bh;
    bool has_c0 = false;
    const InferenceWeights* pre = nullptr;  // the weights came packed
};

// lengths (N integers in [0, T], any integer dtype) as a packing, checked as
// the reference checks them; none when every length is T (the plain loops
// then, and their bits: a packing would only add its copies).
std::shared_ptr<const rnn_fast::Packing> parse_lengths(const char* fn, py::handle lengths, index_t N, index_t T,
                                                       bool reverse) {
    const py::array a = py::module_::import("numpy").attr("asarray")(lengths);
    const std::string where = std::string(fn) + "(): lengths must ";
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
        throw py::type_error(where + "be an integer array, got dtype " + py::str(a.dtype()).cast<std::string>());
    if (a.ndim() != 1 || a.shape(0) != N) {
        std::ostringstream shape;
        shape << "(";
        for (py::ssize_t k = 0; k < a.ndim(); ++k) shape << (k ? ", " : "") << a.shape(k);
        shape << (a.ndim() == 1 ? ",)" : ")");
        throw py::value_error(where + "have shape (N,) = (" + std::to_string(N) + ",), got " + shape.str());
    }
    if (kind == 'u' && a.itemsize() == 8 && N > 0) {  // beyond int64: named, not wrapped to a negative
        const py::int_ top = a.attr("max")();
        if (top.cast<unsigned long long>() > static_cast<unsigned long long>(T))
            throw py::value_error(where + "be in [0, T] = [0, " + std::to_string(T) + "], got values up to " +
                                  py::str(top).cast<std::string>());
    }
    // C-contiguous and aligned (an unaligned int64 view is copied: UBSan caught the reads of one).
    const Contiguous<std::int64_t> v = contiguous<std::int64_t>(a);
    const std::int64_t* p = v.data();
    if (N > 0) {
        const auto [lo, hi] = std::minmax_element(p, p + N);
        if (*lo < 0 || *hi > T)
            throw py::value_error(where + "be in [0, T] = [0, " + std::to_string(T) + "], got values from " +
                                  std::to_string(*lo) + " to " + std::to_string(*hi));
        if (*lo == T) return nullptr;
    }
    return std::make_shared<const rnn_fast::Packing>(p, N, T, reverse, rnn_fast::kernels<float>().mr);
}

// Runs the forward and fills cache (N,T,D,H, flags set). keep: the cache is
// for a backward, so it owns copies of the inputs (unless borrow: it refers
// to them, see lstm_forward's _borrow), its saved gates and Wh^T packed;
// otherwise (an inference forward) it only views the inputs and is dropped
// after the call.
// With cache.packing, the cache gets x packed and h0 (c0) sorted instead, its
// own arrays whatever keep and borrow say, and its h, c and saved packed.
template <typename Cell, typename F>
void run_forward(const Cell& cell, RecurrentCache& cache, const RecurrentArgs& in, bool keep, bool borrow) {
    const index_t N = cache.N, T = cache.T, D = cache.D, H = cache.H;
    const rnn_fast::Packing* pk = cache.packing.get();
    const bool copy = keep && !borrow;
    // (N,T,W) and (N,W) arrays as the time loop takes them: packed and sorted.
    auto packed = [&](const py::array& a, index_t W) -> py::array {
        const Contiguous<F> src = contiguous<F>(a);
        py::array_t<F> out = empty<F>({pk->P, W});
        F* dst = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            pk->pack(src.data(), W, dst, threads());
        }
        return out;
    };
    auto sorted = [&](const py::array& a, index_t W) -> py::array {
        const Contiguous<F> src = contiguous<F>(a);
        py::array_t<F> out = empty<F>({N, W});
        pk->sort_rows(src.data(), W, out.mutable_data());
        return out;
    };
    auto input = [&](const py::array& a) -> py::array { return copy ? owned<F>(a) : contiguous<F>(a); };
    const index_t rows = pk != nullptr ? pk->P : N * T;  // of h, c and saved
    cache.is_double = std::is_same<F, double>::value;
    cache.x = pk != nullptr ? packed(in.x, D) : input(in.x);
    cache.h0 = pk != nullptr ? sorted(in.h0, H) : input(in.h0);
    cache.Wx = input(in.Wx);
    const Contiguous<F> Wh = contiguous<F>(in.Wh), b = contiguous<F>(in.b);
    const Contiguous<F> bh = Cell::recurrent_bias ? contiguous<F>(in.bh) : Contiguous<F>();
    auto wh_t = keep ? std::make_shared<rnn_fast::PackedB<F>>() : nullptr;
    const rnn_fast::PackedWeights<F>* pre = in.pre != nullptr ? in.pre->packed<F>() : nullptr;
    cache.h = pk != nullptr ? empty<F>({rows, H}) : empty<F>({N, T, H});
    rnn_fast::ForwardArrays<F> a;
    a.h = mptr<F>(cache.h);
    a.x = cptr<F>(cache.x);
    a.h0 = cptr<F>(cache.h0);
    a.Wx = cptr<F>(cache.Wx);
    a.Wh = Wh.data();
    a.b = b.data();
    if (Cell::recurrent_bias) a.bh = bh.data();
    if (Cell::carry == Carry::cell_state) {
        if (in.has_c0) {
            cache.c0 = pk != nullptr ? sorted(in.c0, H) : input(in.c0);
        } else {
            py::array_t<F> zeros = empty<F>({N, H});
            std::fill(zeros.mutable_data(), zeros.mutable_data() + zeros.size(), F(0));
            cache.c0 = zeros;
        }
        cache.c = pk != nullptr ? empty<F>({rows, H}) : empty<F>({N, T, H});
        a.c = mptr<F>(cache.c);
        a.c0 = cptr<F>(cache.c0);
    }
    if (keep && Cell::saved > 0) {  // else (an inference) none kept
        cache.saved = pk != nullptr ? empty<F>({rows, Cell::saved * H}) : empty<F>({N, T, Cell::saved * H});
        a.saved = mptr<F>(cache.saved);
    }
    {
        KernelCall call;
        rnn_fast::seq_forward(cell, a, N, T, D, H, cache.reverse, threads(), wh_t.get(), pre, pk);
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

// The arguments of a forward, as the caller passed them (None for those the
// cell does not take).
struct ForwardInputs {
    py::handle x, h0, c0, Wx, Wh, b, bh;
    py::handle lengths = py::none();  // a sequence forward's (None: every row of length T)
};

// Checks and converts the arguments of a recurrent forward, runs it, and
// returns the cache. step: x is (N,D) and there is one time step. pre: the
// weights come from an inference object (in.Wx, in.Wh, in.b, in.bh are its
// copies, and its option is the cell's).
template <typename Cell, typename Cache>
Cache forward(const char* fn, Cell cell, bool step, const ForwardInputs& args, bool reverse, bool keep = true,
              const InferenceWeights* pre = nullptr, bool borrow = false, const std::string& tag = "") {
    constexpr bool has_c = Cell::carry == Carry::cell_state;
    const char* h0_name = step ? "prev_h" : "h0";
    const char* c0_name = step ? "prev_c" : "c0";
    const std::string G = gate_spec<Cell>();
    RecurrentArgs in;
    in.pre = pre;
    in.x = float_array(args.x, fn, "x");
    in.h0 = float_array(args.h0, fn, h0_name);
    in.has_c0 = has_c && !args.c0.is_none();
    if (in.has_c0) in.c0 = float_array(args.c0, fn, c0_name);
    in.Wx = float_array(args.Wx, fn, "Wx");
    in.Wh = float_array(args.Wh, fn, "Wh");
    in.b = float_array(args.b, fn, "b");
    if (Cell::recurrent_bias) in.bh = float_array(args.bh, fn, "bh");
    Dims d(fn);
    if (pre != nullptr) {
        d.set('D', pre->D, "the weights");
        d.set('H', pre->H, "the weights");
    }
    d.expect(in.x, "x", step ? "N,D" : "N,T,D");
    d.expect(in.h0, h0_name, "N,H");
    if (in.has_c0) d.expect(in.c0, c0_name, "N,H");
    d.expect(in.Wx, "Wx", "D," + G);
    d.expect(in.Wh, "Wh", "H," + G);
    d.expect(in.b, "b", G);
    if (Cell::recurrent_bias) d.expect(in.bh, "bh", G);
    if (step) check_size(fn, "next_h", "N, H", {d['N'], d['H']});
    else check_size(fn, "h", "N, T, H", {d['N'], d['T'], d['H']});
    if (Cell::saved > 0) {
        const std::string spec = "N, T, " + std::to_string(Cell::saved) + "H";
        check_size(fn, "the saved gates", spec.c_str(), {d['N'], step ? 1 : d['T'], Cell::saved, d['H']});
    }
    if (pre != nullptr) cell.option = pre->option;
    Cache cache;
    cache.option = cell.option;
    cache.tag = pre != nullptr ? pre->tag : tag;
    cache.reverse = reverse;
    cache.N = d['N'];
    cache.T = step ? 1 : d['T'];
    cache.D = d['D'];
    cache.H = d['H'];
    if (!args.lengths.is_none()) cache.packing = parse_lengths(fn, args.lengths, cache.N, cache.T, reverse);
    const bool dbl = any_double({&in.x, &in.h0, &in.Wx, &in.Wh, &in.b}) || (in.has_c0 && in.c0.itemsize() == 8) ||
                     (Cell::recurrent_bias && in.bh.itemsize() == 8);
    with_dtype(dbl, [&](auto zero) { run_forward<Cell, decltype(zero)>(cell, cache, in, keep, borrow); });
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
// the initial state. With lengths, each row's after its last step (its
// initial state when of length 0).
py::array final_state(const RecurrentCache& c, const py::array& seq, const py::array& initial) {
    if (c.packing) {
        return with_dtype(seq.itemsize() == 8, [&](auto zero) -> py::array {
            using F = decltype(zero);
            py::array_t<F> out = empty<F>({c.N, c.H});
            c.packing->final_rows(cptr<F>(seq), cptr<F>(initial), c.H, out.mutable_data());
            return out;
        });
    }
    if (c.T == 0) return copy_of(initial, {c.N, c.H});
    return time_slice(seq, c.reverse ? 0 : c.T - 1);
}

// ------------------------------------------------------ recurrent backward

struct RecurrentGrads {
    py::array dx, dh0, dc0, dWx, dWh, db, dbh;
};

// With c.packing, the time loop's sequence gradients are packed and its
// states' sorted (in arrays of their own, unpacked after it).
template <typename Cell, typename F>
RecurrentGrads run_backward(const RecurrentCache& c, const py::array& dh_, const py::array* dcT_, bool step) {
    const index_t N = c.N, T = c.T, D = c.D, H = c.H, G = Cell::gates * H;
    const rnn_fast::Packing* pk = c.packing.get();
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
    rnn_fast::BackwardArrays<F> a;
    a.dx = mptr<F>(g.dx);
    a.dh0 = mptr<F>(g.dh0);
    a.dWx = mptr<F>(g.dWx);
    a.dWh = mptr<F>(g.dWh);
    a.db = mptr<F>(g.db);
    a.dh = dh.data();
    a.x = x.data();
    a.h0 = h0.data();
    a.Wx = Wx.data();
    a.h = h.data();
    if (Cell::recurrent_bias) {
        g.dbh = empty<F>({G});
        a.dbh = mptr<F>(g.dbh);
    }
    Contiguous<F> c0, cs, dcT, saved;
    if (Cell::carry == Carry::cell_state) {
        c0 = contiguous<F>(c.c0);
        cs = contiguous<F>(c.c);
        if (dcT_ != nullptr) dcT = contiguous<F>(*dcT_);
        g.dc0 = empty<F>({N, H});
        a.dc0 = mptr<F>(g.dc0);
        a.dcT = dcT_ != nullptr ? dcT.data() : nullptr;
        a.c0 = c0.data();
        a.c = cs.data();
    }
    if (Cell::saved > 0) {
        saved = contiguous<F>(c.saved);
        a.saved = saved.data();
    }
    py::array_t<F> dx_p, dh0_s, dc0_s, dh_p, dcT_s;  // packed and sorted (pk)
    F* dh_packed = nullptr;                           // filled once the GIL is released
    if (pk != nullptr) {
        dx_p = empty<F>({pk->P, D});
        dh0_s = empty<F>({N, H});
        dh_p = empty<F>({pk->P, H});
        dh_packed = dh_p.mutable_data();
        a.dx = dx_p.mutable_data();
        a.dh0 = dh0_s.mutable_data();
        a.dh = dh_p.data();
        if (Cell::carry == Carry::cell_state) {
            dc0_s = empty<F>({N, H});
            a.dc0 = dc0_s.mutable_data();
            if (dcT_ != nullptr) {
                dcT_s = empty<F>({N, H});
                pk->sort_rows(dcT.data(), H, dcT_s.mutable_data());
                a.dcT = dcT_s.data();
            }
        }
    }
    KernelCall call;
    if (pk != nullptr) pk->pack(dh.data(), H, dh_packed, threads());
    rnn_fast::seq_backward(Cell{c.option}, a, N, T, D, H, c.reverse, threads(), *wh_t, pk);
    if (pk != nullptr) {
        pk->unpack(a.dx, D, mptr<F>(g.dx), threads());
        pk->unsort_rows(a.dh0, H, mptr<F>(g.dh0));
        if (Cell::carry == Carry::cell_state) pk->unsort_rows(a.dc0, H, mptr<F>(g.dc0));
    }
    return g;
}

// Checks dh (and dcT) against the cache, then runs the backward.
template <typename Cell>
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
    return with_dtype(dbl, [&](auto zero) {
        return run_backward<Cell, decltype(zero)>(c, dh, has_dcT ? &dcT : nullptr, step);
    });
}

// The cache of a training forward, or None after an inference forward
// (cache=False), whose outputs then are the kernel's own arrays, not copies.
template <typename Cache>
py::object cache_or_none(Cache&& c, bool keep) {
    return keep ? py::cast(std::move(c)) : py::object(py::none());
}

py::array output(py::array a, std::vector<py::ssize_t> shape, bool keep) {
    return keep ? copy_of(a, std::move(shape)) : a.reshape(shape);
}

// A sequence forward's h (N,T,H) for the caller: the cache's (copied when
// copy), or with lengths, unpacked (zeros at the padded steps).
py::array sequence_output(const RecurrentCache& c, bool copy) {
    if (!c.packing) return output(c.h, {c.N, c.T, c.H}, copy);
    return with_dtype(c.h.itemsize() == 8, [&](auto zero) -> py::array {
        using F = decltype(zero);
        py::array_t<F> out = empty<F>({c.N, c.T, c.H});
        const F* src = cptr<F>(c.h);
        F* dst = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            c.packing->unpack(src, c.H, dst, threads());
        }
        return out;
    });
}

// ------------------------------------------------------ inference objects

// Checks the weights of an inference object, copies and packs them.
template <typename Cell>
Inference<Cell> make_inference(const char* fn, int option, const std::string& tag, py::handle Wx_, py::handle Wh_,
                               py::handle b_, py::handle bh_ = py::none()) {
    const std::string G = gate_spec<Cell>();
    const py::array Wx = float_array(Wx_, fn, "Wx"), Wh = float_array(Wh_, fn, "Wh"), b = float_array(b_, fn, "b");
    const py::array bh = Cell::recurrent_bias ? float_array(bh_, fn, "bh") : b;
    Dims d(fn);
    d.expect(Wx, "Wx", "D," + G);
    d.expect(Wh, "Wh", "H," + G);
    d.expect(b, "b", G);
    if (Cell::recurrent_bias) d.expect(bh, "bh", G);
    Inference<Cell> w;
    w.option = option;
    w.tag = tag;
    w.D = d['D'];
    w.H = d['H'];
    with_dtype(any_double({&Wx, &Wh, &b, &bh}), [&](auto zero) {
        using F = decltype(zero);
        w.is_double = std::is_same<F, double>::value;
        w.Wx = owned<F>(Wx);
        w.Wh = owned<F>(Wh);
        w.b = owned<F>(b);
        if (Cell::recurrent_bias) w.bh = owned<F>(bh);
        auto p = std::make_shared<rnn_fast::PackedWeights<F>>();
        {
            py::gil_scoped_release nogil;
            p->pack(cptr<F>(w.Wx), cptr<F>(w.Wh), w.D, w.H, Cell::gates, Cell::fusable, threads());
        }
        if constexpr (std::is_same<F, double>::value) w.packed_d = std::move(p);
        else w.packed_f = std::move(p);
    });
    return w;
}

// Calls an inference object: h, or (h, h_T[, c_T]) with return_state.
template <typename Cell>
py::object call_inference(py::handle self, py::handle x, py::handle h0, py::handle c0, bool reverse,
                          bool return_state, py::handle lengths) {
    static const std::string fn = class_name<Cell>("Inference");
    const Inference<Cell>& w = initialized<Inference<Cell>>(self, fn.c_str());
    SeqCache<Cell> c = forward<Cell, SeqCache<Cell>>(fn.c_str(), Cell{w.option}, false,
                                                     {x, h0, c0, w.Wx, w.Wh, w.b, w.bh, lengths}, reverse, false, &w);
    py::array h = sequence_output(c, false);
    if (!return_state) return std::move(h);
    if (Cell::carry == Carry::cell_state)
        return py::make_tuple(h, final_state(c, c.h, c.h0), final_state(c, c.c, c.c0));
    return py::make_tuple(h, final_state(c, c.h, c.h0));
}

// A cell's cache classes and the class of its inference object (whose
// constructor and __call__ the cell's binding adds).
template <typename Cell>
py::class_<Inference<Cell>, InferenceWeights> register_classes(py::module_& m, const char* doc) {
    static const std::string seq = class_name<Cell>("Cache"), step = class_name<Cell>("StepCache");
    static const std::string inference = class_name<Cell>("Inference");
    static const std::string fwd = std::string(Cell::name) + "_forward";
    static const std::string sfwd = std::string(Cell::name) + "_step_forward";
    static const std::string seq_doc = "Opaque cache of " + fwd + ", for " + Cell::name + "_backward.";
    static const std::string step_doc = "Opaque cache of " + sfwd + ", for " + Cell::name + "_step_backward.";
    register_cache<StepCache<Cell>>(m, step.c_str(), step_doc.c_str());
    register_cache<SeqCache<Cell>>(m, seq.c_str(), seq_doc.c_str());
    return py::class_<Inference<Cell>, InferenceWeights>(m, inference.c_str(), doc);
}

// --------------------------------------------- steps, broadcast as NumPy's

// cs231n's NumPy step (x.dot(Wx) + prev_h.dot(Wh) + b) broadcasts its row
// arguments: a 1-D x (D,) or state (H,) is one row, the same for every row
// of the 2-D ones (of the N of theirs), and when all are 1-D the outputs are
// 1-D: a sampling loop's np.squeeze'd x gives what NumPy gives. StepRows
// makes the 2-D arguments the kernels take and remembers which were 1-D, so
// that the backward returns their gradients 1-D (summed over the rows that
// shared them).
struct StepRows {
    py::object args[3];  // x, prev_h, prev_c (None when the cell has none)
    unsigned rows_1d = 0;
    bool out_1d = false;

    StepRows(const char* fn, py::handle x, py::handle h, py::handle c)
        : args{py::reinterpret_borrow<py::object>(x), py::reinterpret_borrow<py::object>(h),
               py::reinterpret_borrow<py::object>(c)} {
        static const char* const names[3] = {"x", "prev_h", "prev_c"};
        py::ssize_t rows = -1;
        int present = 0, one_d = 0;
        for (int k = 0; k < 3; ++k) {
            if (args[k].is_none()) continue;
            ++present;
            py::array a = as_array(args[k], fn, names[k], "a float32 or float64 array");
            args[k] = a;  // converted once (a list), not again by float_array
            if (a.ndim() == 1) {
                rows_1d |= 1u << k;
                ++one_d;
            } else if (a.ndim() == 2 && rows < 0) {
                rows = a.shape(0);
            }
        }
        if (one_d == 0) return;
        out_1d = one_d == present;
        if (rows < 0) rows = 1;
        const py::object broadcast_to = py::module_::import("numpy").attr("broadcast_to");
        for (int k = 0; k < 3; ++k)  // (L,) to (rows, L) always broadcasts: a zero-stride view
            if (rows_1d & (1u << k)) args[k] = broadcast_to(args[k], py::make_tuple(rows, py::len(args[k])));
    }

    // Puts the rows' shapes into the forward's cache, for its backward.
    void remember(RecurrentCache& c) const {
        c.rows_1d = rows_1d;
        c.out_1d = out_1d;
    }

    // The outputs of a forward, 1-D when every row argument was.
    py::array out(py::array a) const { return out_1d ? a.reshape({a.shape(1)}) : a; }
};

// A 1-D gradient (of a 1-D output) as the (1, H) rows the backward takes.
py::object step_grad_rows(const RecurrentCache& c, py::handle g) {
    if (!c.out_1d || g.is_none()) return py::reinterpret_borrow<py::object>(g);
    py::array a = as_array(g, "step_backward", "the gradient", "a float32 or float64 array");
    if (a.ndim() == 1) return a.reshape({py::ssize_t(1), a.shape(0)});
    return py::reinterpret_borrow<py::object>(g);
}

// The gradient of an argument the forward took 1-D: summed over the rows it was broadcast to.
py::array step_grad_out(const RecurrentCache& c, unsigned bit, py::array g) {
    if (!(c.rows_1d & bit)) return g;
    return g.attr("sum")(0).cast<py::array>();
}

// ------------------------------------------------------------------ RNN

using rnn_fast::Rnn;

Activation parse_activation(const char* fn, const std::string& name) {
    if (name == "tanh") return Activation::tanh;
    if (name == "relu") return Activation::relu;
    throw py::value_error(std::string(fn) + "(): activation must be 'tanh' or 'relu', got '" + name + "'");
}

Rnn rnn_cell(const char* fn, const std::string& activation) {
    return Rnn{static_cast<int>(parse_activation(fn, activation))};
}

py::tuple rnn_step_forward(py::handle x, py::handle prev_h, py::handle Wx, py::handle Wh, py::handle b,
                           const std::string& activation, bool keep) {
    const char* fn = "rnn_step_forward";
    const StepRows r(fn, x, prev_h, py::none());
    StepCache<Rnn> c = forward<Rnn, StepCache<Rnn>>(fn, rnn_cell(fn, activation), true,
                                                    {r.args[0], r.args[1], py::none(), Wx, Wh, b, py::none()}, false,
                                                    keep);
    r.remember(c);
    py::array next_h = r.out(output(c.h, {c.N, c.H}, keep));
    return py::make_tuple(next_h, cache_or_none(std::move(c), keep));
}

py::tuple rnn_step_backward(py::handle dnext_h, py::handle cache) {
    const char* fn = "rnn_step_backward";
    const auto& c = cache_arg<StepCache<Rnn>>(cache, fn, "rnn_step_forward");
    const RecurrentGrads g = backward<Rnn>(fn, c, step_grad_rows(c, dnext_h), py::none(), true);
    return py::make_tuple(step_grad_out(c, 1, g.dx), step_grad_out(c, 2, g.dh0), g.dWx, g.dWh, g.db);
}

py::tuple rnn_forward(py::handle x, py::handle h0, py::handle Wx, py::handle Wh, py::handle b,
                      const std::string& activation, bool reverse, bool return_state, bool keep, bool borrow,
                      py::handle lengths) {
    const char* fn = "rnn_forward";
    SeqCache<Rnn> c = forward<Rnn, SeqCache<Rnn>>(fn, rnn_cell(fn, activation), false,
                                                  {x, h0, py::none(), Wx, Wh, b, py::none(), lengths}, reverse, keep,
                                                  nullptr, borrow);
    py::array h = sequence_output(c, keep && !borrow);
    if (!return_state) return py::make_tuple(h, cache_or_none(std::move(c), keep));
    py::array hT = final_state(c, c.h, c.h0);
    return py::make_tuple(h, hT, cache_or_none(std::move(c), keep));
}

py::tuple rnn_backward(py::handle dh, py::handle cache) {
    const char* fn = "rnn_backward";
    const RecurrentGrads g = backward<Rnn>(fn, cache_arg<SeqCache<Rnn>>(cache, fn, "rnn_forward"), dh, py::none(),
                                           false);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db);
}

void bind_rnn(py::module_& m) {
    using namespace pybind11::literals;
    auto inference = register_classes<Rnn>(m, R"doc(A vanilla RNN layer's weights, copied and packed once for many inference forwards.

RNNInference(Wx, Wh, b, *, activation='tanh'): Wx (D, H), Wh (H, H), b (H,);
float32, or float64 if any of them is. The object keeps its own copy: later
changes to the arrays do not reach it (make a new one). Calling it,
  f(x, h0, *, reverse=False, return_state=False),
returns what rnn_forward(x, h0, Wx, Wh, b, activation=..., reverse=reverse,
return_state=return_state, cache=False) returns, without the cache: h, or
(h, h_T). Bitwise the same values, minus the packing of Wx and Wh that every
rnn_forward call does.)doc");
    m.def("rnn_step_forward", &rnn_step_forward, "x"_a, "prev_h"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(),
          "activation"_a = "tanh", "cache"_a = true, R"doc(One vanilla RNN step: next_h = tanh(x @ Wx + prev_h @ Wh + b).

x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,): float32 or float64;
mixed dtypes compute in float64. Returns (next_h (N, H), cache).
As in NumPy, x and the states may be 1-D rows, shared by every row of the
2-D ones (1-D outputs when all are), and integer arrays are promoted.
Keyword-only: activation='tanh' or 'relu'; cache=False for inference (no
cache is kept: None in its place, and no copies of the inputs).)doc");
    m.def("rnn_step_backward", &rnn_step_backward, "dnext_h"_a, "cache"_a,
          R"doc(Backward of rnn_step_forward. dnext_h (N, H).
Returns (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,)).)doc");
    m.def("rnn_forward", &rnn_forward, "x"_a, "h0"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "activation"_a = "tanh",
          "reverse"_a = false, "return_state"_a = false, "cache"_a = true, "_borrow"_a = false,
          "lengths"_a = py::none(), R"doc(Vanilla RNN over a sequence (batch first).

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
  lengths (N,) integers in [0, T]: sequences of those lengths padded to T,
    as PyTorch's packed sequences (pack_padded_sequence(...,
    enforce_sorted=False)): row n runs its steps t < lengths[n] only (from
    lengths[n]-1 down to 0 when reverse), its h past them is 0, h_T is its
    state after its last step (h0 when of length 0); the backward ignores dh
    at the padded steps and gives them dx = 0. Padded steps cost nothing;
  _borrow=True (internal, rnn_fast.nn's): the cache refers to x, h0 and Wx
    instead of copying them, and h is the cache's own array: nothing may
    write them before the backward.)doc");
    m.def("rnn_backward", &rnn_backward, "dh"_a, "cache"_a,
          R"doc(Backward of rnn_forward. dh (N, T, H) is the upstream gradient of
each step's h only. Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db).)doc");
    inference
        .def(py::init([](py::handle Wx, py::handle Wh, py::handle b, const std::string& activation) {
                 const Activation act = parse_activation("RNNInference", activation);
                 return make_inference<Rnn>("RNNInference", static_cast<int>(act),
                                            act == Activation::tanh ? " activation=tanh" : " activation=relu", Wx,
                                            Wh, b);
             }), "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "activation"_a = "tanh")
        .def("__call__", [](py::handle self, py::handle x, py::handle h0, bool reverse, bool return_state,
                            py::handle lengths) {
                 return call_inference<Rnn>(self, x, h0, py::none(), reverse, return_state, lengths);
             }, "x"_a, "h0"_a, py::kw_only(), "reverse"_a = false, "return_state"_a = false,
             "lengths"_a = py::none());
}

// ----------------------------------------------------------------- LSTM

using rnn_fast::Lstm;

// gate_order: cs231n's i, f, o, g ('ifog', option 0), or Keras's and
// PyTorch's i, f, g, o ('ifgo', option 1).
Lstm lstm_cell(const char* fn, const std::string& order) {
    if (order == "ifog") return Lstm{0};
    if (order == "ifgo") return Lstm{1};
    throw py::value_error(std::string(fn) + "(): gate_order must be 'ifog' (cs231n's) or 'ifgo' (Keras's and "
                          "PyTorch's), got '" + order + "'");
}

const char* lstm_tag(const Lstm& cell) { return cell.option ? " gate_order=ifgo" : ""; }

py::tuple lstm_step_forward(py::handle x, py::handle prev_h, py::handle prev_c, py::handle Wx, py::handle Wh,
                            py::handle b, bool keep, const std::string& gate_order) {
    const char* fn = "lstm_step_forward";
    not_none(prev_c, fn, "prev_c");
    const Lstm cell = lstm_cell(fn, gate_order);
    const StepRows r(fn, x, prev_h, prev_c);
    StepCache<Lstm> c = forward<Lstm, StepCache<Lstm>>(fn, cell, true,
                                                       {r.args[0], r.args[1], r.args[2], Wx, Wh, b, py::none()},
                                                       false, keep, nullptr, false, lstm_tag(cell));
    r.remember(c);
    py::array next_h = r.out(output(c.h, {c.N, c.H}, keep));
    py::array next_c = r.out(output(c.c, {c.N, c.H}, keep));
    return py::make_tuple(next_h, next_c, cache_or_none(std::move(c), keep));
}

py::tuple lstm_step_backward(py::handle dnext_h, py::handle dnext_c, py::handle cache) {
    const char* fn = "lstm_step_backward";
    not_none(dnext_c, fn, "dnext_c");
    const auto& c = cache_arg<StepCache<Lstm>>(cache, fn, "lstm_step_forward");
    const RecurrentGrads g = backward<Lstm>(fn, c, step_grad_rows(c, dnext_h), step_grad_rows(c, dnext_c), true);
    return py::make_tuple(step_grad_out(c, 1, g.dx), step_grad_out(c, 2, g.dh0), step_grad_out(c, 4, g.dc0), g.dWx,
                          g.dWh, g.db);
}

py::tuple lstm_forward(py::handle x, py::handle h0, py::handle Wx, py::handle Wh, py::handle b, py::handle c0,
                       bool reverse, bool return_state, bool keep, bool borrow, const std::string& gate_order,
                       py::handle lengths) {
    const char* fn = "lstm_forward";
    const Lstm cell = lstm_cell(fn, gate_order);
    SeqCache<Lstm> c = forward<Lstm, SeqCache<Lstm>>(fn, cell, false, {x, h0, c0, Wx, Wh, b, py::none(), lengths},
                                                     reverse, keep, nullptr, borrow, lstm_tag(cell));
    py::array h = sequence_output(c, keep && !borrow);
    if (!return_state) return py::make_tuple(h, cache_or_none(std::move(c), keep));
    py::array hT = final_state(c, c.h, c.h0);
    py::array cT = final_state(c, c.c, c.c0);
    return py::make_tuple(h, hT, cT, cache_or_none(std::move(c), keep));
}

py::tuple lstm_backward(py::handle dh, py::handle cache, py::handle dcT, bool return_dc0) {
    const char* fn = "lstm_backward";
    const RecurrentGrads g = backward<Lstm>(fn, cache_arg<SeqCache<Lstm>>(cache, fn, "lstm_forward"), dh, dcT, false);
    if (return_dc0) return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db, g.dc0);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db);
}

void bind_lstm(py::module_& m) {
    using namespace pybind11::literals;
    auto inference = register_classes<Lstm>(m, R"doc(An LSTM layer's weights, copied and packed once for many inference forwards.

LSTMInference(Wx, Wh, b, *, gate_order='ifog'): Wx (D, 4H), Wh (H, 4H), b (4H,),
gates ordered i, f, o, g (or i, f, g, o with gate_order='ifgo', as in
lstm_forward); float32, or float64 if any of them is. The object keeps its own copy: later
changes to the arrays do not reach it (make a new one). Calling it,
  f(x, h0, *, c0=None, reverse=False, return_state=False),
returns what lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=reverse,
return_state=return_state, cache=False, gate_order=gate_order) returns, without the cache: h, or
(h, h_T, c_T). Bitwise the same values, minus the packing of Wx and Wh that
every lstm_forward call does (as ONNX Runtime packs a model's weights once
per session). Inputs of another dtype follow lstm_forward's promotion.)doc");
    m.def("lstm_step_forward", &lstm_step_forward, "x"_a, "prev_h"_a, "prev_c"_a, "Wx"_a, "Wh"_a, "b"_a,
          py::kw_only(), "cache"_a = true, "gate_order"_a = "ifog",
          R"doc(One LSTM step, gates ordered i, f, o, g.

x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
Returns (next_h (N, H), next_c (N, H), cache).
As in NumPy, x and the states may be 1-D rows, shared by every row of the
2-D ones (1-D outputs when all are), and integer arrays are promoted.
Keyword-only: cache=False for inference (None in the cache's place);
gate_order='ifgo' for weights whose gate blocks come i, f, g, o (Keras's
and PyTorch's order; their gradients come in the same order).)doc");
    m.def("lstm_step_backward", &lstm_step_backward, "dnext_h"_a, "dnext_c"_a, "cache"_a,
          R"doc(Backward of lstm_step_forward. dnext_h, dnext_c (N, H).
Returns (dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)).)doc");
    m.def("lstm_forward", &lstm_forward, "x"_a, "h0"_a, "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "c0"_a = py::none(),
          "reverse"_a = false, "return_state"_a = false, "cache"_a = true, "_borrow"_a = false, "gate_order"_a = "ifog",
          "lengths"_a = py::none(), R"doc(LSTM over a sequence (batch first), gates ordered i, f, o, g.

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
  lengths (N,): as rnn_forward's (c_T likewise: c0 when of length 0);
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
    inference
        .def(py::init([](py::handle Wx, py::handle Wh, py::handle b, const std::string& gate_order) {
                 const Lstm cell = lstm_cell("LSTMInference", gate_order);
                 return make_inference<Lstm>("LSTMInference", cell.option, lstm_tag(cell), Wx, Wh, b);
             }), "Wx"_a, "Wh"_a, "b"_a, py::kw_only(), "gate_order"_a = "ifog")
        .def_property_readonly("gate_order", [](py::handle self) {
            return initialized<Inference<Lstm>>(self, "LSTMInference").option ? "ifgo" : "ifog";
        })
        .def("__call__", &call_inference<Lstm>, "x"_a, "h0"_a, py::kw_only(), "c0"_a = py::none(),
             "reverse"_a = false, "return_state"_a = false, "lengths"_a = py::none());
}

// ------------------------------------------------------------------ GRU

using rnn_fast::Gru;

// gate_order: PyTorch's r, z, n ('rzn', option 0), or Keras's z, r, n
// ('zrn', option 1).
Gru gru_cell(const char* fn, const std::string& order) {
    if (order == "rzn") return Gru{0};
    if (order == "zrn") return Gru{1};
    throw py::value_error(std::string(fn) + "(): gate_order must be 'rzn' (PyTorch's) or 'zrn' (Keras's), got '" +
                          order + "'");
}

const char* gru_tag(const Gru& cell) { return cell.option ? " gate_order=zrn" : ""; }

py::tuple gru_step_forward(py::handle x, py::handle prev_h, py::handle Wx, py::handle Wh, py::handle b, py::handle bh,
                           bool keep, const std::string& gate_order) {
    const char* fn = "gru_step_forward";
    const Gru cell = gru_cell(fn, gate_order);
    const StepRows r(fn, x, prev_h, py::none());
    StepCache<Gru> c = forward<Gru, StepCache<Gru>>(fn, cell, true, {r.args[0], r.args[1], py::none(), Wx, Wh, b, bh},
                                                    false, keep, nullptr, false, gru_tag(cell));
    r.remember(c);
    py::array next_h = r.out(output(c.h, {c.N, c.H}, keep));
    return py::make_tuple(next_h, cache_or_none(std::move(c), keep));
}

py::tuple gru_step_backward(py::handle dnext_h, py::handle cache) {
    const char* fn = "gru_step_backward";
    const auto& c = cache_arg<StepCache<Gru>>(cache, fn, "gru_step_forward");
    const RecurrentGrads g = backward<Gru>(fn, c, step_grad_rows(c, dnext_h), py::none(), true);
    return py::make_tuple(step_grad_out(c, 1, g.dx), step_grad_out(c, 2, g.dh0), g.dWx, g.dWh, g.db, g.dbh);
}

py::tuple gru_forward(py::handle x, py::handle h0, py::handle Wx, py::handle Wh, py::handle b, py::handle bh,
                      bool reverse, bool return_state, bool keep, bool borrow, const std::string& gate_order,
                      py::handle lengths) {
    const char* fn = "gru_forward";
    const Gru cell = gru_cell(fn, gate_order);
    SeqCache<Gru> c = forward<Gru, SeqCache<Gru>>(fn, cell, false, {x, h0, py::none(), Wx, Wh, b, bh, lengths},
                                                  reverse, keep, nullptr, borrow, gru_tag(cell));
    py::array h = sequence_output(c, keep && !borrow);
    if (!return_state) return py::make_tuple(h, cache_or_none(std::move(c), keep));
    py::array hT = final_state(c, c.h, c.h0);
    return py::make_tuple(h, hT, cache_or_none(std::move(c), keep));
}

py::tuple gru_backward(py::handle dh, py::handle cache) {
    const char* fn = "gru_backward";
    const RecurrentGrads g = backward<Gru>(fn, cache_arg<SeqCache<Gru>>(cache, fn, "gru_forward"), dh, py::none(),
                                           false);
    return py::make_tuple(g.dx, g.dh0, g.dWx, g.dWh, g.db, g.dbh);
}

void bind_gru(py::module_& m) {
    using namespace pybind11::literals;
    auto inference = register_classes<Gru>(m, R"doc(A GRU layer's weights, copied and packed once for many inference forwards.

GRUInference(Wx, Wh, b, bh, *, gate_order='rzn'): Wx (D, 3H), Wh (H, 3H),
b and bh (3H,), gate blocks r, z, n (or z, r, n with gate_order='zrn', as in
gru_forward); float32, or float64 if any of them is. The object keeps its
own copy: later changes to the arrays do not reach it (make a new one).
Calling it,
  f(x, h0, *, reverse=False, return_state=False),
returns what gru_forward(x, h0, Wx, Wh, b, bh, reverse=reverse,
return_state=return_state, cache=False, gate_order=gate_order) returns, without the cache: h, or
(h, h_T). Bitwise the same values, minus the packing of Wx and Wh that every
gru_forward call does.)doc");
    m.def("gru_step_forward", &gru_step_forward, "x"_a, "prev_h"_a, "Wx"_a, "Wh"_a, "b"_a, "bh"_a, py::kw_only(),
          "cache"_a = true, "gate_order"_a = "rzn", R"doc(One GRU step, PyTorch's equations and gate order r, z, n.

r = sigmoid(x Wx_r + b_r + prev_h Wh_r + bh_r), z likewise,
n = tanh(x Wx_n + b_n + r * (prev_h Wh_n + bh_n)),
next_h = (1 - z) * n + z * prev_h.
x (N, D), prev_h (N, H), Wx (D, 3H), Wh (H, 3H), b and bh (3H,): float32 or
float64; mixed dtypes compute in float64. Returns (next_h (N, H), cache).
As in NumPy, x and the states may be 1-D rows, shared by every row of the
2-D ones (1-D outputs when all are), and integer arrays are promoted.
Keyword-only: cache=False for inference (None in the cache's place);
gate_order='zrn' for weights whose gate blocks come z, r, n (Keras's order;
their gradients come in the same order).)doc");
    m.def("gru_step_backward", &gru_step_backward, "dnext_h"_a, "cache"_a,
          R"doc(Backward of gru_step_forward. dnext_h (N, H).
Returns (dx (N, D), dprev_h (N, H), dWx (D, 3H), dWh (H, 3H), db (3H,), dbh (3H,)).)doc");
    m.def("gru_forward", &gru_forward, "x"_a, "h0"_a, "Wx"_a, "Wh"_a, "b"_a, "bh"_a, py::kw_only(),
          "reverse"_a = false, "return_state"_a = false, "cache"_a = true, "_borrow"_a = false,
          "gate_order"_a = "rzn", "lengths"_a = py::none(),
          R"doc(GRU over a sequence (batch first), PyTorch's equations and gate order r, z, n.

x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,) the input's bias,
bh (3H,) the recurrent product's (inside r * (h Wh_n + bh_n)).
Returns (h (N, T, H), cache).
Keyword-only extras:
  reverse=True runs time from T-1 down to 0; h[:, t] is still time t;
  return_state=True returns (h, h_T, cache), h_T (N, H) the state after the
    last step (time 0 when reverse; h0 when T = 0);
  cache=False: an inference forward, which keeps no cache (None is returned
    in its place) and so copies no input and packs nothing for a backward;
  gate_order='zrn': Wx, Wh, b and bh hold their gate blocks in the order z,
    r, n (Keras's; the default 'rzn' is PyTorch's), and the backward returns
    their gradients in that order too; no copy of the weights permuted;
  lengths (N,): as rnn_forward's;
  _borrow=True (internal, rnn_fast.nn's): the cache refers to x, h0 and Wx
    instead of copying them, and h is the cache's own array: nothing may
    write them before the backward.)doc");
    m.def("gru_backward", &gru_backward, "dh"_a, "cache"_a,
          R"doc(Backward of gru_forward. dh (N, T, H) is the upstream gradient of
each step's h only. Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db, dbh).)doc");
    inference
        .def(py::init([](py::handle Wx, py::handle Wh, py::handle b, py::handle bh, const std::string& gate_order) {
                 const Gru cell = gru_cell("GRUInference", gate_order);
                 return make_inference<Gru>("GRUInference", cell.option, gru_tag(cell), Wx, Wh, b, bh);
             }), "Wx"_a, "Wh"_a, "b"_a, "bh"_a, py::kw_only(), "gate_order"_a = "rzn")
        .def_property_readonly("gate_order", [](py::handle self) {
            return initialized<Inference<Gru>>(self, "GRUInference").option ? "zrn" : "rzn";
        })
        .def("__call__", [](py::handle self, py::handle x, py::handle h0, bool reverse, bool return_state,
                            py::handle lengths) {
                 return call_inference<Gru>(self, x, h0, py::none(), reverse, return_state, lengths);
             }, "x"_a, "h0"_a, py::kw_only(), "reverse"_a = false, "return_state"_a = false,
             "lengths"_a = py::none());
}

const InferenceWeights& weights_of(py::handle self) {
    return initialized<InferenceWeights>(self, "InferenceWeights");
}

}  // namespace

// The recurrent kernels and classes of every cell: one line per cell.
void bind_recurrent(py::module_& m) {
    py::class_<InferenceWeights>(m, "InferenceWeights",
                                 "A layer's weights packed once: the base of each cell's Inference class.")
        .def_property_readonly("D", [](py::handle self) { return weights_of(self).D; })
        .def_property_readonly("H", [](py::handle self) { return weights_of(self).H; })
        .def_property_readonly("dtype", [](py::handle self) { return weights_of(self).Wx.dtype(); })
        .def("__repr__", [](py::handle self) {
            const InferenceWeights& w = weights_of(self);
            std::ostringstream s;
            s << "<rnn_fast." << type_name(self) << " D=" << w.D << " H=" << w.H
              << " dtype=" << (w.is_double ? "float64" : "float32") << w.tag << ">";
            return s.str();
        });
    bind_rnn(m);
    bind_lstm(m);
    bind_gru(m);
}

}  // namespace rnn_fast_py
