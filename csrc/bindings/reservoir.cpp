// Bindings of the leaky reservoir (reservoir.h): the class
// rnn_fast._core.LeakyReservoir, which rnn_fast.reservoir's Reservoir holds.
#include <memory>

#include "bindings/common.h"
#include "reservoir.h"

namespace rnn_fast_py {

namespace {

using rnn_fast::LeakyActivation;

rnn_fast::LeakyActivation leaky_activation(const std::string& name) {
    if (name == "tanh") return LeakyActivation::tanh;
    if (name == "identity") return LeakyActivation::identity;
    if (name == "relu") return LeakyActivation::relu;
    if (name == "sigmoid") return LeakyActivation::sigmoid;
    throw py::value_error("LeakyReservoir(): activation must be 'tanh', 'identity', 'relu' or 'sigmoid', got '" +
                          name + "'");
}

// A rows x cols matrix given as compressed sparse rows (data, indices,
// indptr), checked (every failure names the argument): the arrays, and the
// core's view of them.
template <typename F>
struct CsrArg {
    Contiguous<std::int64_t> indptr, indices;
    Contiguous<F> data;
    rnn_fast::Csr<F> view;
};

template <typename F>
CsrArg<F> csr_arg(py::handle csr, index_t rows, index_t cols, const std::string& name) {
    const std::string fn = "LeakyReservoir(): " + name;
    if (!py::isinstance<py::tuple>(csr) || py::len(csr) != 3)
        throw py::type_error(fn + " must be a tuple (data, indices, indptr), got " + type_name(csr));
    const py::tuple t = csr.cast<py::tuple>();
    const py::array data_ = float_array(t[0], "LeakyReservoir", (name + " data").c_str());
    const py::array indices_ = index_array(t[1], "LeakyReservoir", (name + " indices").c_str());
    const py::array indptr_ = index_array(t[2], "LeakyReservoir", (name + " indptr").c_str());
    if (cols >= (index_t(1) << 31))
        throw py::value_error(fn + " has " + std::to_string(cols) + " columns, more than 2**31 - 1");
    if (indptr_.ndim() != 1 || indptr_.shape(0) != rows + 1)
        throw py::value_error(fn + " indptr must have shape (" + std::to_string(rows + 1) + ",), got " +
                              shape_of(indptr_));
    if (data_.ndim() != 1 || indices_.ndim() != 1 || data_.shape(0) != indices_.shape(0))
        throw py::value_error(fn + " data and indices must be 1-D of one length, got " + shape_of(data_) +
                              " and " + shape_of(indices_));
    const Contiguous<std::int64_t> indptr(py::module_::import("numpy").attr("asarray")(indptr_, "int64"));
    const Contiguous<std::int64_t> indices(py::module_::import("numpy").attr("asarray")(indices_, "int64"));
    const Contiguous<F> data = contiguous<F>(data_);
    const std::int64_t* p = indptr.data();
    const index_t nnz = data.shape(0);
    if (p[0] != 0 || p[rows] != nnz)
        throw py::value_error(fn + " indptr must run from 0 to " + std::to_string(nnz) + " (the entries), got " +
                              std::to_string(p[0]) + " to " + std::to_string(p[rows]));
    for (index_t r = 0; r < rows; ++r)
        if (p[r + 1] < p[r])
            throw py::value_error(fn + " indptr must not decrease, got indptr[" + std::to_string(r + 1) + "] = " +
                                  std::to_string(p[r + 1]) + " < indptr[" + std::to_string(r) + "] = " +
                                  std::to_string(p[r]));
    const std::int64_t* c = indices.data();
    for (index_t e = 0; e < nnz; ++e)
        if (c[e] < 0 || c[e] >= cols)
            throw py::value_error(fn + " indices must be in [0, " + std::to_string(cols) + "), got " +
                                  std::to_string(c[e]) + " at position " + std::to_string(e));
    return {indptr, indices, data, {rows, cols, p, c, data.data()}};
}

// The reservoir of one dtype, behind one Python class.
class Reservoir {
public:
    Reservoir(index_t units, index_t inputs, py::handle W, py::handle Win, py::handle bias_, py::handle lr_,
              const std::string& activation, const std::string& dtype)
        : units_(units), inputs_(inputs), dbl_(dtype == "float64") {
        if (dtype != "float32" && dtype != "float64")
            throw py::value_error("LeakyReservoir(): dtype must be 'float32' or 'float64', got '" + dtype + "'");
        if (units < 0 || inputs < 0)
            throw py::value_error("LeakyReservoir(): units and input_dim must be >= 0, got " +
                                  std::to_string(units) + " and " + std::to_string(inputs));
        const LeakyActivation act = leaky_activation(activation);
        Dims d("LeakyReservoir");
        d.set('U', units, "units");
        const py::array bias = float_array(bias_, "LeakyReservoir", "bias");
        const py::array lr = float_array(lr_, "LeakyReservoir", "lr");
        d.expect(bias, "bias", "U");
        d.expect(lr, "lr", "U");
        with_dtype(dbl_, [&](auto zero) {
            using F = decltype(zero);
            const CsrArg<F> w = csr_arg<F>(W, units, units, "W"), win = csr_arg<F>(Win, units, inputs, "Win");
            const Contiguous<F> b = contiguous<F>(bias), l = contiguous<F>(lr);
            std::shared_ptr<rnn_fast::LeakyReservoir<F>> r;
            {
                py::gil_scoped_release nogil;
                r = std::make_shared<rnn_fast::LeakyReservoir<F>>(w.view, win.view, b.data(), l.data(), act);
            }
            if constexpr (sizeof(F) == 8) d_ = std::move(r);
            else f_ = std::move(r);
            return 0;
        });
    }

    // x (N,T,U) from u (N,T,D) and x0 (N,U), in the reservoir's dtype.
    py::array run(py::handle u_, py::handle x0_) const {
        const char* fn = "LeakyReservoir.run";
        const py::array u = float_array(u_, fn, "u"), x0 = float_array(x0_, fn, "x0");
        Dims d(fn);
        d.set('U', units_, "the reservoir's units");
        d.set('D', inputs_, "the reservoir's input_dim");
        d.expect(u, "u", "N,T,D");
        d.expect(x0, "x0", "N,U");
        const index_t N = d['N'], T = d['T'];
        check_size(fn, "x", "N, T, U", {N, T, units_});
        return with_dtype(dbl_, [&](auto zero) -> py::array {
            using F = decltype(zero);
            const Contiguous<F> uc = contiguous<F>(u), xc = contiguous<F>(x0);
            py::array x = empty<F>({N, T, units_});
            F* out = mptr<F>(x);
            const auto& core = reservoir<F>();
            KernelCall call;
            core.run(N, T, uc.data(), xc.data(), out, threads());
            return x;
        });
    }

    std::string dtype() const { return dbl_ ? "float64" : "float32"; }
    index_t units() const { return units_; }
    index_t inputs() const { return inputs_; }
    // Entries read a step (padding included), and whether W is stored dense.
    index_t stored() const {
        return dbl_ ? d_->W().stored() + d_->Win().stored() : f_->W().stored() + f_->Win().stored();
    }
    bool dense() const { return dbl_ ? d_->W().dense() : f_->W().dense(); }

private:
    template <typename F>
    const rnn_fast::LeakyReservoir<F>& reservoir() const {
        if constexpr (sizeof(F) == 8) return *d_;
        else return *f_;
    }

    index_t units_, inputs_;
    bool dbl_;
    std::shared_ptr<rnn_fast::LeakyReservoir<float>> f_;
    std::shared_ptr<rnn_fast::LeakyReservoir<double>> d_;
};

const Reservoir& of(py::handle self) { return initialized<Reservoir>(self, "LeakyReservoir"); }

}  // namespace

void bind_reservoir(py::module_& m) {
    using namespace pybind11::literals;
    py::class_<Reservoir>(m, "LeakyReservoir", R"doc(A leaky reservoir's fixed weights, laid out once for many runs
(rnn_fast.reservoir.Reservoir holds one).

LeakyReservoir(units, input_dim, W, Win, bias, lr, *, activation='tanh',
dtype='float64'): W (units x units) and Win (units x input_dim) as
compressed sparse rows (data, indices, indptr); bias and lr (units,);
activation 'tanh', 'identity', 'relu' or 'sigmoid'. Matrices at least a
quarter full, or small, are stored dense.)doc")
        .def(py::init<index_t, index_t, py::handle, py::handle, py::handle, py::handle, const std::string&,
                      const std::string&>(),
             "units"_a, "input_dim"_a, "W"_a, "Win"_a, "bias"_a, "lr"_a, py::kw_only(), "activation"_a = "tanh",
             "dtype"_a = "float64")
        .def("run", [](py::handle self, py::handle u, py::handle x0) { return of(self).run(u, x0); }, "u"_a, "x0"_a,
             R"doc(States x (N, T, units) of the sequences u (N, T, input_dim) from the states x0
(N, units), in the reservoir's dtype (inputs are converted to it):
x[:, t] = (1 - lr) * x[:, t-1] + lr * f(x[:, t-1] @ W.T + u[:, t] @ Win.T + bias),
x[:, -1] = x0.)doc")
        .def_property_readonly("dtype", [](py::handle self) { return of(self).dtype(); })
        .def_property_readonly("units", [](py::handle self) { return of(self).units(); })
        .def_property_readonly("input_dim", [](py::handle self) { return of(self).inputs(); })
        .def_property_readonly("stored", [](py::handle self) { return of(self).stored(); },
                               "Entries of W and Win read a step, padding included.")
        .def_property_readonly("dense", [](py::handle self) { return of(self).dense(); }, "Whether W is stored dense.");
}

}  // namespace rnn_fast_py
