"""Keras's default initializers, drawing from rnn_fast.nn.backend.rng()."""
from typing import Tuple

import numpy as np

from . import backend

NAMES = ("glorot_uniform", "orthogonal", "zeros", "ones", "uniform")


def get(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"initializer must be one of {list(NAMES)}, got {name!r}")
    return name


def initialize(name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
    rng = backend.rng()
    if name == "zeros":
        return np.zeros(shape, dtype)
    if name == "ones":
        return np.ones(shape, dtype)
    if name == "uniform":  # Keras's RandomUniform(-0.05, 0.05), the Embedding default
        return rng.uniform(-0.05, 0.05, shape).astype(dtype)
    if name == "glorot_uniform":
        fan_in, fan_out = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(dtype)
    # orthogonal: Q of a Gaussian matrix's QR, signs fixed by R's diagonal, as Keras does.
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q[:rows, :cols]).astype(dtype)
