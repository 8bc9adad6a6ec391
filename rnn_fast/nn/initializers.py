"""Keras's initializers, drawing from rnn_fast.nn.backend.rng(): its
defaults (glorot_uniform kernels, orthogonal recurrent kernels, zero biases,
RandomUniform(-0.05, 0.05) embeddings) and its variance-scaling family
(glorot, he and lecun; normal or uniform), with Keras's fans and its normal
truncated at two standard deviations."""
import contextlib
from typing import Tuple

import numpy as np

from . import backend

# name -> (scale, mode, distribution) of Keras's VarianceScaling
VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
NAMES = tuple(VARIANCE_SCALING) + ("orthogonal", "zeros", "ones", "uniform")

# The standard deviation of a standard normal truncated to [-2, 2]: Keras
# divides by it so that the truncated draw has the variance asked for.
_TRUNCATED_STD = 0.87962566103423978


def get(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"initializer must be one of {list(NAMES)}, got {name!r}")
    return name


def fans(shape: Tuple[int, ...]) -> Tuple[int, int]:
    """Keras's compute_fans for the shapes rnn_fast's layers have (1-D, 2-D)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    return (shape[0], shape[0]) if shape else (1, 1)


def truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    """N(0, stddev^2) draws, each outside two standard deviations drawn again."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev


_PLACEHOLDERS = False


@contextlib.contextmanager
def placeholders():
    """Inside, initialize() draws nothing and returns zeros (memory the
    system maps lazily: no page is touched until written): for building a
    model whose weights are read next, in time and memory bounded by the
    weights actually read (model_file.py)."""
    global _PLACEHOLDERS
    old, _PLACEHOLDERS = _PLACEHOLDERS, True
    try:
        yield
    finally:
        _PLACEHOLDERS = old


def initialize(name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
    if _PLACEHOLDERS:
        return np.zeros(shape, dtype)
    rng = backend.rng()
    if name == "zeros":
        return np.zeros(shape, dtype)
    if name == "ones":
        return np.ones(shape, dtype)
    if name == "uniform":  # Keras's RandomUniform(-0.05, 0.05), the Embedding default
        return rng.uniform(-0.05, 0.05, shape).astype(dtype)
    if name in VARIANCE_SCALING:
        scale, mode, distribution = VARIANCE_SCALING[name]
        fan_in, fan_out = fans(shape)
        n = max(1.0, fan_in if mode == "fan_in" else (fan_in + fan_out) / 2.0)
        if distribution == "uniform":
            limit = np.sqrt(3.0 * scale / n)
            return rng.uniform(-limit, limit, shape).astype(dtype)
        return truncated_normal(rng, shape, np.sqrt(scale / n) / _TRUNCATED_STD).astype(dtype)
    # orthogonal: Q of a Gaussian matrix's QR, signs fixed by R's diagonal, as Keras does.
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q[:rows, :cols]).astype(dtype)
