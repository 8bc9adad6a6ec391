// The bindings of the non-recurrent layers of cs231n's rnn_layers.py
// surface (affine, embedding, softmax loss), dropout and rnn_fast.nn's Adam
// step: check, convert, allocate, release the GIL, call the core (layers.h).
#include "bindings/common.h"
#include "layers.h"

namespace rnn_fast_py {
namespace {

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


template <typename F>
py::tuple affine_forward_t(py::array x_, py::array w_, py::array b_, AffineCache cache) {
    cache.is_double = std::is_same<F, double>::value;
    cache.x = owned<F>(x_);
    cache.w = owned<F>(w_);
    const Contiguous<F> b = contiguous<F>(b_);
    py::array out = empty<F>({cache.N, cache.T, cache.M});
    {
        KernelCall call;
        rnn_fast::temporal_affine_forward<F>(mptr<F>(out), cptr<F>(cache.x), cptr<F>(cache.w), b.data(), cache.N,
                                             cache.T, cache.D, cache.M, threads());
    }
    return py::make_tuple(out, std::move(cache));
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
    return with_dtype(any_double({&x, &w, &b}),
                      [&](auto zero) { return affine_forward_t<decltype(zero)>(x, w, b, c); });
}

template <typename F>
py::tuple affine_backward_t(const AffineCache& c, const py::array& dout_) {
    const Contiguous<F> dout = contiguous<F>(dout_), x = contiguous<F>(c.x), w = contiguous<F>(c.w);
    py::array dx = empty<F>({c.N, c.T, c.D}), dw = empty<F>({c.D, c.M}), db = empty<F>({c.M});
    {
        KernelCall call;
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
    return with_dtype(c.is_double || dout.itemsize() == 8,
                      [&](auto zero) { return affine_backward_t<decltype(zero)>(c, dout); });
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
        return with_dtype(W.itemsize() == 8,
                          [&](auto zero) { return embedding_forward_t<decltype(zero)>(W, std::move(c)); });
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
    return with_dtype(c.is_double || dout.itemsize() == 8,
                      [&](auto zero) { return embedding_backward_t<decltype(zero)>(c, dout); });
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
    return with_dtype(x.itemsize() == 8, [&](auto zero) { return dropout_t<decltype(zero)>(x, 1.0 - rate, seed); });
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
    return with_dtype(dy.itemsize() == 8 || mask.itemsize() == 8,
                      [&](auto zero) { return dropout_backward_t<decltype(zero)>(dy, mask); });
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
    const py::array mask = as_array(mask_, fn, "mask", "a boolean or real array");
    if (!(mask.dtype().kind() == 'b' || mask.dtype().kind() == 'i' || mask.dtype().kind() == 'u' ||
          mask.dtype().kind() == 'f'))
        throw py::type_error(std::string(fn) + "(): mask must be a boolean or real array, got dtype " +
                             dtype_of(mask));
    Dims d(fn);
    d.expect(x, "x", "N,T,V");
    d.expect(y, "y", "N,T");
    d.expect(mask, "mask", "N,T");
    if (verbose) py::print("dx_flat: ", py::make_tuple(d['N'] * d['T'], d['V']));
    try {
        return with_dtype(x.itemsize() == 8, [&](auto zero) {
            return softmax_loss_t<decltype(zero)>(x, y, mask, d['N'], d['T'], d['V']);
        });
    } catch (const std::invalid_argument& e) {
        throw py::value_error(std::string(fn) + "(): " + e.what());
    }
}

}  // namespace

void bind_layers(py::module_& m) {
    using namespace pybind11::literals;
    py::class_<AffineCache> affine(m, "AffineCache", "Opaque cache of temporal_affine_forward.");
    py::class_<EmbeddingCache> embedding(m, "EmbeddingCache", "Opaque cache of word_embedding_forward.");
    made_by_forwards_only(affine);
    made_by_forwards_only(embedding);
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
}

}  // namespace rnn_fast_py
