"""Shared helpers: random inputs for each kernel and the per-dtype tolerances
that every comparison with the NumPy reference uses."""
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import pytest

# Kernel vs reference. The kernels sum in a different order (blocked GEMMs,
# all time steps at once), so results agree to rounding, not bitwise:
# float64 to ~1e-15 relative per step, float32 to ~1e-7.
TOL = {
    np.float64: dict(rtol=1e-9, atol=1e-11),
    np.float32: dict(rtol=2e-4, atol=2e-5),
}

DTYPES = [np.float32, np.float64]

# (N, T, D, H): ones in every position, an odd H=37, and sizes that cross the
# GEMM's blocking (96 rows, 256 deep) so that edge tiles are exercised.
SHAPES = [
    (1, 1, 1, 1),
    (2, 3, 4, 5),
    (1, 9, 1, 37),
    (3, 1, 37, 1),
    (4, 7, 16, 8),
    (33, 4, 260, 70),
]


def shape_id(s):
    return "N{}T{}D{}H{}".format(*s)


def recurrent_inputs(shape, dtype, gates, seed=0, scale=0.5):
    """x (N,T,D), h0 (N,H), Wx (D,gH), Wh (H,gH), b (gH,) for a cell of g gates."""
    N, T, D, H = shape
    rng = np.random.default_rng(seed)
    G = gates * H
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = rng.standard_normal((D, G)) * scale / np.sqrt(D)
    Wh = rng.standard_normal((H, G)) * scale / np.sqrt(H)
    b = rng.standard_normal(G) * 0.1
    return [a.astype(dtype) for a in (x, h0, Wx, Wh, b)]


def rand(shape, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as the tests drive it. Tests of every cell run over
    CELLS, so a new cell is tested by adding its entry (and its kernels)."""

    name: str  # its kernels' prefix: {name}_forward, {name}_backward, ...
    gates: int  # column blocks of Wx and Wh
    args: Tuple[str, ...] = ("x", "h0", "Wx", "Wh", "b")  # the forward's positional arguments
    grads: Tuple[str, ...] = ("dx", "dh0", "dWx", "dWh", "db")  # what the backward returns
    variants: Tuple[Dict[str, Any], ...] = ({},)  # keyword sets of the forward that tests run each of
    states: int = 1  # states carried from step to step: h, or (LSTM) h and c

    def inputs(self, shape, dtype, seed=0, scale=0.5):
        """The forward's positional arguments: recurrent_inputs, then any
        further bias (gates * H values each)."""
        args = recurrent_inputs(shape, dtype, self.gates, seed, scale)
        more = len(self.args) - len(args)
        return args + [rand(self.gates * shape[3], dtype, seed + 20 + k) * dtype(0.1) for k in range(more)]

    def forward(self, lib, args, **kw):
        return getattr(lib, f"{self.name}_forward")(*args, **kw)

    def backward(self, lib, dh, cache, **kw):
        return getattr(lib, f"{self.name}_backward")(dh, cache, **kw)

    def step_inputs(self, N, D, H, dtype, seed=0, scale=0.5):
        """The step forward's positional arguments: x (N,D), prev_h (and
        prev_c) (N,H), then the weights (as inputs()'s)."""
        args = self.inputs((N, 1, D, H), dtype, seed, scale)
        prev = [args[1]] + [rand((N, H), dtype, seed + 5 + k) for k in range(self.states - 1)]
        return [args[0][:, 0]] + prev + args[2:]

    def step_forward(self, lib, args, **kw):
        """(next_h[, next_c], cache)."""
        return getattr(lib, f"{self.name}_step_forward")(*args, **kw)

    def step_backward(self, lib, douts, cache):
        """The gradients of step_inputs' arguments, in their order, given those of the step's states."""
        return getattr(lib, f"{self.name}_step_backward")(*douts, cache)

    def inference(self, lib, weights, **kw):
        """The cell's inference object (LSTMInference, ...) on weights = the forward's arguments after h0."""
        return getattr(lib, f"{self.name.upper()}Inference")(*weights, **kw)


CELLS = {cell.name: cell for cell in (Cell("rnn", 1, variants=({"activation": "tanh"}, {"activation": "relu"})),
                                      Cell("lstm", 4, states=2),
                                      Cell("gru", 3, args=Cell.args + ("bh",), grads=Cell.grads + ("dbh",)))}
GRU = CELLS["gru"]


def assert_close(actual, expected, dtype, err_msg=""):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{err_msg}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{err_msg}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, err_msg=err_msg, **TOL[np.dtype(dtype).type])


def assert_all_close(actual, expected, dtype, names):
    assert len(actual) == len(expected) == len(names)
    for a, e, n in zip(actual, expected, names):
        assert_close(a, e, dtype, n)


@pytest.fixture(autouse=True)
def _restore_threads():
    import rnn_fast

    n = rnn_fast.get_num_threads()
    yield
    rnn_fast.set_num_threads(n)


def cell_variants():
    """(cell name, forward keywords) for every cell and each of its variants: a parametrize list."""
    return [(name, kw) for name, cell in CELLS.items() for kw in cell.variants]


def floatx(value):
    """An autouse fixture for a test module: each test runs with
    rnn_fast.nn's floatx set to value (float32 to meet Keras, float64 for
    finite differences), the old one restored after. Use as
    `float32 = floatx("float32")` at the module's top level."""
    @pytest.fixture(autouse=True)
    def fixture():
        from rnn_fast import nn

        old = nn.floatx()
        nn.set_floatx(value)
        yield
        nn.set_floatx(old)
    return fixture
