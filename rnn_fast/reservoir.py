"""Echo state networks: a fixed random recurrent reservoir whose states a
linear readout, the only thing trained, maps to the targets (no
backpropagation through time at all).

The names, arguments and meanings are reservoirpy's (0.4), so that its
users can switch by changing an import::

    from rnn_fast.reservoir import ESN, Reservoir, Ridge
    esn = ESN(units=100, sr=1.25, lr=0.3, ridge=1e-5, seed=0)
    esn.fit(X_train, Y_train, warmup=100)
    Y_pred = esn.run(X_test)

A Reservoir's states follow the leaky update, for each step t,

    x[t] = (1 - lr) * x[t-1] + lr * f(W @ x[t-1] + Win @ u[t] + bias)

with W (units, units) random, sparse (``rc_connectivity`` of it nonzero, from
a standard normal) and rescaled to spectral radius ``sr``, and Win (units,
features) sparse too (``input_connectivity``, values +-``input_scaling``).
The time loop runs in C++ (rnn_fast._core.LeakyReservoir: sparse rows
gathered, or dense where that is faster, float32 or float64, threads over
sequences or over units); activations other than tanh, identity, relu and
sigmoid (a callable, or reservoirpy's 'softmax' and 'softplus') run on the
NumPy twin, rnn_fast.reference.reservoir_forward, step by step.

Inputs are a sequence (T, D), a batch of sequences (N, T, D), or a list of
sequences (T_i, D); outputs have the same form. As in reservoirpy, a
Reservoir keeps its state from one call to the next (``reset()`` zeroes it),
and every sequence of a batch starts from that state (the state after the
call is the last sequence's).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple, Optional

import numpy as np

from . import _core, reference

__all__ = ["Reservoir", "Ridge", "ESN", "spectral_radius"]

# The activations the compiled loop has; the rest run on the NumPy twin.
_COMPILED = ("tanh", "identity", "relu", "sigmoid")
def _softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


_NUMPY_ONLY = {"softplus": lambda a: np.logaddexp(0, a), "softmax": _softmax}

# Above this many units, the spectral radius comes from ARPACK (SciPy, when
# installed) rather than from all the eigenvalues of a dense copy of W.
_DENSE_EIGEN_UNITS = 2000


# ------------------------------------------------------------------ helpers

def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _rng(seed) -> np.random.Generator:
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    raise TypeError(f"seed must be None, an int or a numpy.random.Generator, got {type(seed).__name__}")


def _fraction(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


class _CSR(NamedTuple):
    """A matrix as compressed sparse rows, as the compiled reservoir takes it."""
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray


def _csr(matrix, shape, name, dtype) -> _CSR:
    """A dense array, a SciPy sparse matrix or a _CSR of this shape, as a _CSR of dtype."""
    if isinstance(matrix, _CSR):
        return _CSR(matrix.data.astype(dtype), matrix.indices, matrix.indptr)
    if hasattr(matrix, "tocsr"):  # SciPy sparse
        m = matrix.tocsr()
        if m.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {m.shape}")
        m.sum_duplicates()
        return _CSR(np.asarray(m.data, dtype), np.asarray(m.indices, np.int64), np.asarray(m.indptr, np.int64))
    a = np.asarray(matrix)
    if a.dtype.kind not in "fiu" or a.dtype == np.float16:
        raise TypeError(f"{name} must be a float array or a SciPy sparse matrix, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    rows, cols = np.nonzero(a)
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return _CSR(a[rows, cols].astype(dtype), cols.astype(np.int64), indptr)


def _dense(csr, shape, dtype):
    data, indices, indptr = csr
    out = np.zeros(shape, dtype)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    np.add.at(out, (rows, indices), data)
    return out


def _random_sparse(rows, cols, connectivity, rng, values, dtype):
    """A rows x cols CSR matrix with round(connectivity * rows * cols)
    nonzeros at distinct random places, their values drawn by values(rng, n)."""
    size = rows * cols
    n = int(round(connectivity * size))
    if size <= 1 << 24:
        places = np.sort(rng.choice(size, n, replace=False))
    else:  # without an array of every place: draw, keep the distinct ones, top up
        places = np.unique(rng.integers(0, size, n + n // 8 + 16))
        while len(places) < n:
            places = np.unique(np.concatenate([places, rng.integers(0, size, n - len(places) + 16)]))
        places = np.sort(rng.choice(places, n, replace=False))
    r, c = np.divmod(places, cols)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
    return _CSR(values(rng, n).astype(dtype), c.astype(np.int64), indptr)


def spectral_radius(W) -> float:
    """The largest absolute eigenvalue of W (a square array, a SciPy sparse
    matrix, or a Reservoir, whose W is meant)."""
    if isinstance(W, Reservoir):
        W._ensure_weights()
        return _spectral_radius(W._W, W.units)
    if hasattr(W, "tocsr"):
        m = W.tocsr()
        return _spectral_radius(_csr(m, m.shape, "W", np.float64), m.shape[0])
    a = np.asarray(W, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"W must be a square matrix, got shape {a.shape}")
    return _spectral_radius(_csr(a, a.shape, "W", np.float64), a.shape[0])


def _spectral_radius(csr, units) -> float:
    if units == 0:
        return 0.0
    if units > _DENSE_EIGEN_UNITS:
        try:
            from scipy.sparse import csr_matrix
            from scipy.sparse.linalg import eigs
        except ImportError:
            pass
        else:
            m = csr_matrix((np.asarray(csr[0], np.float64), csr[1], csr[2]), shape=(units, units))
            # A fixed start vector: the same W gives the same radius, bit for bit.
            return float(np.abs(eigs(m, k=1, which="LM", v0=np.ones(units), return_eigenvectors=False)).max())
    return float(np.abs(np.linalg.eigvals(_dense(csr, (units, units), np.float64))).max())


def _series(x, name, dim=None):
    """(list of (T_i, D) arrays, form) of a sequence (T, D), a batch (N, T, D)
    or a list of sequences; form says which, to give outputs the same one."""
    if isinstance(x, (list, tuple)):
        seqs = [np.asarray(s) for s in x]
        form = "list"
    else:
        a = np.asarray(x)
        if a.ndim == 3:
            seqs, form = list(a), "batch"
        elif a.ndim == 2:
            seqs, form = [a], "single"
        else:
            raise ValueError(f"{name} must be a sequence (T, D), a batch (N, T, D) or a list of sequences (T, D), "
                             f"got shape {a.shape}")
    for i, s in enumerate(seqs):
        where = f"{name}[{i}]" if form == "list" else name
        if s.ndim != 2:
            raise ValueError(f"{where} must be 2-D (T, D), got shape {s.shape}")
        if s.dtype.kind not in "fiub":
            raise TypeError(f"{where} must hold numbers, got dtype {s.dtype}")
        if dim is not None and s.shape[1] != dim:
            raise ValueError(f"{where} must have {dim} features (its last axis), got shape {s.shape}")
    return seqs, form


def _form(outputs, form):
    if form == "single":
        return outputs[0]
    if form == "batch":
        return np.stack(outputs) if outputs else np.zeros((0, 0, 0))
    return outputs


# ---------------------------------------------------------------- Reservoir

class Reservoir:
    """A pool of leaky neurons with fixed random recurrent connections
    (reservoirpy.nodes.Reservoir's arguments and meanings):

        x[t+1] = (1 - lr) * x[t] + lr * f(W @ x[t] + Win @ u[t+1] + bias)

    units: neurons (or None with W given as an array).
    lr: leak rate, a number or one per unit.
    sr: spectral radius W is rescaled to (None: W's normal draws as they are).
    input_scaling: Win's values are +-input_scaling (a number, or one per
        input feature).
    input_connectivity, rc_connectivity: the fraction of Win's and W's
        entries that are nonzero, in (0, 1].
    W, Win: arrays (dense, or SciPy sparse matrices) to use instead of
        random ones (sr, input_scaling and the connectivities then do not
        apply to them), or reservoirpy-style initializers: callables taking
        (rows, cols) and keywords (sr=, input_scaling=, connectivity=,
        dtype=, seed=).
    bias: a number, one value per unit, or an initializer (called with
        (units,), connectivity=1.0, dtype=, seed=).
    activation: 'tanh', 'identity', 'relu' or 'sigmoid' (compiled), or
        'softmax', 'softplus' or a callable on arrays (NumPy, step by step).
    input_dim: input features (else taken from the first input).
    dtype: float64 (reservoirpy's default) or float32; inputs are converted.
    seed: an int or a numpy.random.Generator: the same seed gives the same
        weights and states, bit for bit.

    The weights are drawn at the first run (or ``initialize``), when the
    input's features are known: W from the first of three generators
    spawned from the seed's, Win from the second, bias from the third.
    """

    def __init__(self, units: Optional[int] = None, lr=1.0, sr: Optional[float] = 1.0, input_scaling=1.0,
                 input_connectivity: float = 0.1, rc_connectivity: float = 0.1, W=None, Win=None, bias=0.0,
                 activation="tanh", input_dim: Optional[int] = None, dtype=np.float64, seed=None,
                 name: Optional[str] = None):
        if units is None:
            if W is None or callable(W):
                raise ValueError("Reservoir(): units must be given unless W is a matrix")
            units = np.shape(W)[-1]
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
            raise ValueError(f"Reservoir(): units must be an integer >= 1, got {units!r}")
        if W is not None and not callable(W) and tuple(np.shape(W)) != (units, units):
            raise ValueError(f"Reservoir(): W must have shape ({units}, {units}) (units, units), "
                             f"got {tuple(np.shape(W))}")
        if input_dim is not None and (isinstance(input_dim, bool) or not isinstance(input_dim, numbers.Integral)
                                      or input_dim < 0):
            raise ValueError(f"Reservoir(): input_dim must be an integer >= 0, got {input_dim!r}")
        if Win is not None and not callable(Win):
            shape = tuple(np.shape(Win))
            if len(shape) != 2 or shape[0] != units or (input_dim is not None and shape[1] != input_dim):
                raise ValueError(f"Reservoir(): Win must have shape ({units}, input_dim), got {shape}")
            input_dim = shape[1]
        if sr is not None and (isinstance(sr, bool) or not isinstance(sr, numbers.Real) or not np.isfinite(sr)
                               or sr < 0):
            raise ValueError(f"Reservoir(): sr must be a finite number >= 0 or None, got {sr!r}")
        if not (isinstance(activation, str) and activation in _COMPILED + tuple(_NUMPY_ONLY)) \
                and not callable(activation):
            raise ValueError(f"Reservoir(): activation must be one of {_COMPILED + tuple(_NUMPY_ONLY)} or a "
                             f"callable, got {activation!r}")
        self.units = int(units)
        self.dtype = _dtype(dtype)
        self.lr = self._per_unit(lr, "lr")
        self.sr = sr
        self.input_scaling = input_scaling
        self.input_connectivity = _fraction(input_connectivity, "Reservoir(): input_connectivity")
        self.rc_connectivity = _fraction(rc_connectivity, "Reservoir(): rc_connectivity")
        self.activation = activation
        self.input_dim = None if input_dim is None else int(input_dim)
        self.name = name
        self._W_init, self._Win_init, self._bias_init = W, Win, bias
        self._seed_rng = _rng(seed)
        self._W = self._Win = self._bias = None
        self._core = None
        self._state = np.zeros(self.units, self.dtype)

    def _per_unit(self, value, name):
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 0:
            a = np.full(self.units, float(a))
        if a.shape != (self.units,) or not np.all(np.isfinite(a)):
            raise ValueError(f"Reservoir(): {name} must be a finite number or {self.units} (units) of them, "
                             f"got {value!r}")
        return a

    # The weights -------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self._W is not None

    def _compiled(self):
        return isinstance(self.activation, str) and self.activation in _COMPILED

    def initialize(self, x=None):
        """Draws the weights (once): input_dim from x (a sequence, batch or
        list of sequences) if it was not given."""
        if self._W is not None:
            return self
        if self.input_dim is None:
            if x is None:
                raise ValueError("Reservoir.initialize(): input_dim is unknown: give x or input_dim")
            seqs, _ = _series(x, "x")
            self.input_dim = seqs[0].shape[1] if seqs else 0
        self._ensure_weights()
        return self

    def _ensure_weights(self):
        if self._W is not None:
            return
        if self.input_dim is None:
            raise ValueError("Reservoir: the weights are drawn at the first run (input_dim is unknown until then)")
        U, D, dt = self.units, self.input_dim, self.dtype
        # Three generators, as reservoirpy spawns them: W's, Win's, bias's.
        seeds = self._seed_rng.integers(0, 2**63, size=3)
        W_rng, Win_rng, bias_rng = (np.random.default_rng(int(s)) for s in seeds)

        W = self._W_init
        if W is None:
            W = _random_sparse(U, U, self.rc_connectivity, W_rng, lambda g, n: g.standard_normal(n), np.float64)
            if self.sr is not None:
                radius = _spectral_radius(W, U)
                W = W._replace(data=W.data * (self.sr / max(radius, 1e-8)))
        elif callable(W):
            W = W(U, U, sr=self.sr, connectivity=self.rc_connectivity, dtype=np.float64, seed=W_rng)
        self._W = _csr(W, (U, U), "W", dt)

        Win = self._Win_init
        if Win is None:
            scale = np.broadcast_to(np.asarray(self.input_scaling, np.float64), (D,)) if D else np.zeros(0)
            Win = _random_sparse(U, D, self.input_connectivity, Win_rng,
                                 lambda g, n: g.choice([1.0, -1.0], size=n), np.float64)
            Win = Win._replace(data=Win.data * scale[Win.indices])
        elif callable(Win):
            Win = Win(U, D, input_scaling=self.input_scaling, connectivity=self.input_connectivity,
                      dtype=np.float64, seed=Win_rng)
        self._Win = _csr(Win, (U, D), "Win", dt)
        bias = self._bias_init
        if callable(bias):
            bias = bias(U, connectivity=1.0, dtype=np.float64, seed=bias_rng)
        self._bias = self._per_unit(np.ravel(np.asarray(bias, np.float64)) if np.ndim(bias) else bias, "bias")
        if self._compiled():
            self._core = _core.LeakyReservoir(U, D, self._W, self._Win, self._bias, self.lr,
                                              activation=self.activation, dtype=str(dt))

    @property
    def W(self) -> np.ndarray:
        """The recurrent weights (units, units), a dense copy (W_csr: as stored)."""
        self._ensure_weights()
        return _dense(self._W, (self.units, self.units), self.dtype)

    @property
    def W_csr(self):
        """The recurrent weights as compressed sparse rows (data, indices, indptr)."""
        self._ensure_weights()
        return self._W

    @property
    def Win(self) -> np.ndarray:
        """The input weights (units, input_dim), a dense copy."""
        self._ensure_weights()
        return _dense(self._Win, (self.units, self.input_dim), self.dtype)

    @property
    def bias(self) -> np.ndarray:
        self._ensure_weights()
        return self._bias.astype(self.dtype)

    # The states ---------------------------------------------------------

    @property
    def state(self) -> np.ndarray:
        """The state (units,) the next run starts from."""
        return self._state.copy()

    def reset(self, to_state=None) -> np.ndarray:
        """Sets the state to zeros (or to_state); returns the one before."""
        before = self._state
        if to_state is None:
            self._state = np.zeros(self.units, self.dtype)
        else:
            s = np.asarray(to_state, dtype=self.dtype)
            if s.shape != (self.units,):
                raise ValueError(f"Reservoir.reset(): to_state must have shape ({self.units},), got {s.shape}")
            self._state = s.copy()
        return before

    def run(self, x=None, iters: Optional[int] = None):
        """States of the sequence x (T, D), of each of a batch (N, T, D) or of
        a list of sequences, each from the current state; x None: iters steps
        with no input. Returns the states in x's form ((T, units), ...)."""
        if x is None:
            if iters is None:
                raise ValueError("Reservoir.run(): give x, or iters for a run without input")
            x = np.zeros((int(iters), 0 if self.input_dim is None else self.input_dim))
        seqs, form = _series(x, "x", self.input_dim)
        if self.input_dim is None:
            self.input_dim = seqs[0].shape[1] if seqs else 0
        self._ensure_weights()
        outputs = [None] * len(seqs)
        # Sequences of one length run as one batch (threads over sequences).
        by_length = {}
        for i, s in enumerate(seqs):
            by_length.setdefault(len(s), []).append(i)
        for length, idx in by_length.items():
            u = np.stack([seqs[i] for i in idx]).astype(self.dtype, copy=False)
            x0 = np.broadcast_to(self._state, (len(idx), self.units))
            states = self._run(u, x0)
            for j, i in enumerate(idx):
                outputs[i] = states[j]
        if seqs:
            last = outputs[-1]
            self._state = (last[-1] if len(last) else self._state).astype(self.dtype, copy=True)
        return _form(outputs, form)

    __call__ = run

    def _run(self, u, x0):
        if self._core is not None:
            return self._core.run(u, x0)
        f = _NUMPY_ONLY.get(self.activation, self.activation)
        return reference.reservoir_forward(u, x0, self.W, self.Win, self.bias, self.lr.astype(self.dtype),
                                           activation=f).astype(self.dtype, copy=False)

    def __repr__(self):
        return (f"Reservoir(units={self.units}, lr={self.lr[0] if np.all(self.lr == self.lr[0]) else 'per unit'}, "
                f"sr={self.sr}, activation={self.activation!r}, dtype={self.dtype})")


# -------------------------------------------------------------------- Ridge

class Ridge:
    """A linear readout trained in closed form (reservoirpy.nodes.Ridge):
    Wout = (X^T X + ridge I)^-1 X^T Y on centred X and Y, and bias =
    mean(Y) - mean(X) @ Wout (fit_bias=True; else no centring and bias 0).
    Outputs are X @ Wout + bias. The sums are taken in float64."""

    def __init__(self, ridge: float = 0.0, fit_bias: bool = True, Wout=None, bias=None, input_dim=None,
                 output_dim=None, name=None):
        if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not np.isfinite(ridge) or ridge < 0:
            raise ValueError(f"Ridge(): ridge must be a finite number >= 0, got {ridge!r}")
        self.ridge = float(ridge)
        self.fit_bias = bool(fit_bias)
        self.Wout = None if Wout is None else np.asarray(Wout, np.float64)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        if self.Wout is not None and self.Wout.ndim != 2:
            raise ValueError(f"Ridge(): Wout must be 2-D (input_dim, output_dim), got shape {self.Wout.shape}")
        self.input_dim = input_dim if self.Wout is None else self.Wout.shape[0]
        self.output_dim = output_dim if self.Wout is None else self.Wout.shape[1]
        if self.Wout is not None and self.bias is None:
            self.bias = np.zeros(self.output_dim)
        self.name = name

    @property
    def initialized(self) -> bool:
        return self.Wout is not None

    def fit(self, x, y, warmup: int = 0):
        """Fits Wout and bias to the inputs x and targets y (each a sequence
        (T, features), a batch or a list of them, matching), the first
        warmup steps of each sequence left out."""
        xs, _ = _series(x, "x")
        ys, _ = _series(y, "y")
        if len(xs) != len(ys):
            raise ValueError(f"Ridge.fit(): x has {len(xs)} sequences and y {len(ys)}")
        if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
            raise ValueError(f"Ridge.fit(): warmup must be an integer >= 0, got {warmup!r}")
        if not xs:
            raise ValueError("Ridge.fit(): no sequences to fit on")
        F, O = xs[0].shape[1], ys[0].shape[1]
        XX, XY = np.zeros((F, F)), np.zeros((F, O))
        xsum, ysum, count = np.zeros(F), np.zeros(O), 0
        for i, (a, b) in enumerate(zip(xs, ys)):
            if a.shape[1] != F or b.shape[1] != O:
                raise ValueError(f"Ridge.fit(): every sequence must have {F} input and {O} target features, "
                                 f"got {a.shape[1]} and {b.shape[1]} in sequence {i}")
            if len(a) != len(b):
                raise ValueError(f"Ridge.fit(): x and y must have the same steps, got {len(a)} and {len(b)}"
                                 + (f" in sequence {i}" if len(xs) > 1 else ""))
            if warmup >= len(a):
                raise ValueError(f"Ridge.fit(): warmup ({warmup}) must be less than the sequences' steps "
                                 f"({len(a)})")
            a = np.asarray(a[warmup:], np.float64)
            b = np.asarray(b[warmup:], np.float64)
            XX += a.T @ a
            XY += a.T @ b
            xsum += a.sum(0)
            ysum += b.sum(0)
            count += len(a)
        if self.fit_bias:
            xm, ym = xsum / count, ysum / count
            XX -= count * np.outer(xm, xm)
            XY -= count * np.outer(xm, ym)
        Wout = np.linalg.solve(XX + self.ridge * np.eye(F), XY) if F else np.zeros((0, O))
        self.Wout = Wout
        self.bias = ym - xm @ Wout if self.fit_bias else np.zeros(O)
        self.input_dim, self.output_dim = F, O
        return self

    def run(self, x):
        """x @ Wout + bias, in x's form."""
        if self.Wout is None:
            raise RuntimeError("Ridge.run(): the readout is not fitted (call fit first)")
        seqs, form = _series(x, "x", self.input_dim)
        return _form([s @ self.Wout + self.bias for s in seqs], form)

    __call__ = run


# ---------------------------------------------------------------------- ESN

_RESERVOIR_ARGS = ("units", "lr", "sr", "input_scaling", "input_connectivity", "rc_connectivity", "W", "Win", "bias",
                   "activation", "input_dim", "dtype", "seed")
_RIDGE_ARGS = ("ridge", "fit_bias", "Wout")


class ESN:
    """An echo state network: a Reservoir and a Ridge readout on its states
    (reservoirpy.ESN): ESN(units=100, sr=1.25, lr=0.3, ridge=1e-5, seed=0),
    or ESN(reservoir=Reservoir(...), readout=Ridge(...)). Keywords go to the
    reservoir (units, lr, sr, input_scaling, ..., seed) or to the readout
    (ridge, fit_bias, and readout_bias for its bias). input_to_readout=True
    feeds the readout the input beside the states (input first)."""

    def __init__(self, reservoir: Optional[Reservoir] = None, readout: Optional[Ridge] = None,
                 input_to_readout: bool = False, **kwargs):
        kwargs.pop("name", None)
        unknown = set(kwargs) - set(_RESERVOIR_ARGS) - set(_RIDGE_ARGS) - {"readout_bias"}
        if unknown:
            raise TypeError(f"ESN(): unexpected keyword arguments {sorted(unknown)}; the reservoir takes "
                            f"{list(_RESERVOIR_ARGS)}, the readout {list(_RIDGE_ARGS) + ['readout_bias']}")
        if reservoir is None:
            reservoir = Reservoir(**{k: v for k, v in kwargs.items() if k in _RESERVOIR_ARGS})
        if readout is None:
            args = {k: v for k, v in kwargs.items() if k in _RIDGE_ARGS}
            if "readout_bias" in kwargs:
                args["bias"] = kwargs["readout_bias"]
            readout = Ridge(**args)
        if not isinstance(reservoir, Reservoir):
            raise TypeError(f"ESN(): reservoir must be a Reservoir, got {type(reservoir).__name__}")
        if not isinstance(readout, Ridge):
            raise TypeError(f"ESN(): readout must be a Ridge, got {type(readout).__name__}")
        self.reservoir, self.readout = reservoir, readout
        self.input_to_readout = bool(input_to_readout)

    def _features(self, x):
        states = self.reservoir.run(x)
        if not self.input_to_readout:
            return states
        if isinstance(states, list):
            return [np.concatenate([np.asarray(u, s.dtype), s], -1) for u, s in zip(x, states)]
        return np.concatenate([np.asarray(x, states.dtype), states], -1)

    def fit(self, x, y, warmup: int = 0):
        """Runs the reservoir on x (from its current state) and fits the
        readout to y on the states, each sequence's first warmup steps left out."""
        self.readout.fit(self._features(x), y, warmup=warmup)
        return self

    def run(self, x):
        """The readout's outputs on the reservoir's states of x, in x's form."""
        if not self.readout.initialized:
            raise RuntimeError("ESN.run(): the readout is not fitted (call fit first)")
        return self.readout.run(self._features(x))

    predict = run
    __call__ = run

    def reset(self):
        """Zeroes the reservoir's state."""
        return self.reservoir.reset()
