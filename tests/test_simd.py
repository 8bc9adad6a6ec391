"""The SIMD exp-based sigmoid and tanh of the active instruction set: their
stated error bounds, and their behaviour at the extremes. Every ISA this CPU
can run is also put through the kernel tests, in a subprocess each."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnn_fast as rf

# Stated bounds, in units in the last place of the correctly rounded result.
# float32 trades relative accuracy near 0 for speed, as ONNX Runtime's and
# TensorFlow's kernels do: its sigmoid is 1/2 + tanh(x/2)/2 with a rational
# tanh, so its error is bounded in ulp of 1/2 (absolute, ~6e-8 each) for
# x < 0, where the result is small, and in ulp of the result for x >= 0.
ULP_BOUND = {
    (np.float64, "sigmoid"): 3.0, (np.float64, "tanh"): 2.0,
    (np.float32, "sigmoid"): 3.5, (np.float32, "tanh"): 6.0,
}
EXACT = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}


def grid(dtype):
    tiny = np.geomspace(1e-30, 1, 3000)
    return np.concatenate([np.linspace(-40, 40, 200001), tiny, -tiny, [0.0, 0.625, -0.625, 9.0, -9.0]]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_error_bound(name, dtype):
    x = grid(dtype)
    got = rf._core._simd(x, name).astype(np.longdouble)
    exact = EXACT[name](x.astype(np.longdouble))
    unit = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    if dtype == np.float32 and name == "sigmoid":
        unit = np.where(x < 0, np.spacing(np.float32(0.5)), unit)
    ulps = np.abs(got - exact) / unit
    assert ulps.max() <= ULP_BOUND[dtype, name], f"{ulps.max():.2f} ulp at x={x[ulps.argmax()]}"
    assert np.abs(got).max() <= 1  # never past the range: 1 - t*t and s*(1 - s) stay >= 0


def floats_between(a, b):
    lo, hi = np.float32(a).view(np.int32), np.float32(b).view(np.int32)
    return np.arange(lo, hi + 1, dtype=np.int32).view(np.float32)


def test_float32_saturation_in_range_and_exact():
    # Around where the rational tanh reaches 1 (its own clamp point with FMA,
    # past which it would pass 1; 9 and 18 without), every float of both
    # signs: never out of range, and exactly saturated from the clamp on.
    for name, lo, hi, top in (("tanh", 7.9, 9.5, 1.0), ("sigmoid", 15.8, 18.5, 1.0)):
        x = floats_between(lo, hi)
        up, down = rf._core._simd(x, name), rf._core._simd(-x, name)
        bottom = -1.0 if name == "tanh" else 0.0
        assert up.max() <= top and down.min() >= bottom, name
        past = x >= (9.0 if name == "tanh" else 18.0)  # past either clamp point
        assert np.all(up[past] == top) and np.all(down[past] == bottom), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extremes_are_finite_and_exact(dtype):
    x = np.array([-1e4, -1e30, -np.inf, 1e4, 1e30, np.inf], dtype)
    np.testing.assert_array_equal(rf._core._simd(x, "sigmoid"), (x > 0).astype(dtype))
    np.testing.assert_array_equal(rf._core._simd(x, "tanh"), np.sign(x))
    # Around exp's overflow and underflow thresholds: finite and in range.
    edge = np.array([-89.0, 89.0, -88.5, 88.5, -710.0, 710.0, -709.0, 709.0, -745.0], dtype)
    s, t = rf._core._simd(edge, "sigmoid"), rf._core._simd(edge, "tanh")
    assert np.all((s >= 0) & (s <= 1)) and np.all(np.abs(t) <= 1)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(s, EXACT["sigmoid"](edge.astype(np.float64)), rtol=0, atol=1e-30)
    nan = np.array([np.nan], dtype)
    assert np.isnan(rf._core._simd(nan, "sigmoid")).all() and np.isnan(rf._core._simd(nan, "tanh")).all()


def test_isa_is_reported():
    assert rf._core._isa() in ("avx512", "avx2", "portable")


LOWER = {"avx512": ["avx2", "portable"], "avx2": ["portable"], "portable": []}[rf._core._isa()]


@pytest.mark.parametrize("isa", LOWER)
def test_kernels_on_every_instruction_set(isa):
    """The reference and gradient tests again, with the SIMD path capped at isa."""
    here = os.path.dirname(__file__)
    env = {**os.environ, "RNN_FAST_ISA": isa}
    code = f"import rnn_fast, sys; sys.exit(rnn_fast._core._isa() != {isa!r})"
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0
    tests = [os.path.join(here, f) for f in
             ("test_kernels.py", "test_gradcheck.py", "test_simd.py", "test_extremes.py", "test_threads.py",
              "test_reservoir.py")]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "not on_every", *tests],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
