"""Element-wise activations: each a forward and a backward that takes the
forward's output (and input where needed)."""
from typing import Callable, Dict, Tuple, Union

import numpy as np


def _sigmoid(z):
    # exp of a non-positive number only: no overflow warning for large |z|.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softplus(z):
    return (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))).astype(z.dtype, copy=False)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _elu(z, alpha=1.0):
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0))).astype(z.dtype, copy=False)


# name -> (forward(z), backward(z, y, dy) -> dz). Keras's definitions
# (hard_sigmoid: relu6(x + 3) / 6; leaky_relu: slope 0.2).
_TABLE: Dict[str, Tuple[Callable, Callable]] = {
    "linear": (lambda z: z, lambda z, y, dy: dy),
    "relu": (lambda z: np.maximum(z, 0), lambda z, y, dy: dy * (z > 0)),
    "tanh": (np.tanh, lambda z, y, dy: dy * (1 - y * y)),
    "sigmoid": (_sigmoid, lambda z, y, dy: dy * y * (1 - y)),
    "softmax": (_softmax, lambda z, y, dy: y * (dy - (dy * y).sum(axis=-1, keepdims=True))),
    "hard_sigmoid": (lambda z: np.clip(z / 6 + 0.5, 0, 1).astype(z.dtype, copy=False),
                     lambda z, y, dy: dy * ((z > -3) & (z < 3)) / 6),
    "relu6": (lambda z: np.clip(z, 0, 6), lambda z, y, dy: dy * ((z > 0) & (z < 6))),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.2 * z).astype(z.dtype, copy=False),
                   lambda z, y, dy: dy * np.where(z > 0, 1, 0.2).astype(z.dtype)),
    "elu": (_elu, lambda z, y, dy: dy * np.where(z > 0, 1, y + 1)),
    "selu": (lambda z: (_SELU_SCALE * _elu(z, _SELU_ALPHA)).astype(z.dtype, copy=False),
             lambda z, y, dy: dy * np.where(z > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA).astype(z.dtype)),
    "softplus": (_softplus, lambda z, y, dy: dy * _sigmoid(z)),
    "softsign": (lambda z: z / (np.abs(z) + 1), lambda z, y, dy: dy / (np.abs(z) + 1) ** 2),
    "silu": (lambda z: z * _sigmoid(z), lambda z, y, dy: dy * (_sigmoid(z) * (1 + z * (1 - _sigmoid(z))))),
    "exponential": (np.exp, lambda z, y, dy: dy * y),
}
_ALIASES = {"swish": "silu"}


def get(activation: Union[str, None]) -> str:
    """Checks an activation's name; None means linear, as in Keras."""
    name = "linear" if activation is None else _ALIASES.get(activation, activation)
    if name not in _TABLE:
        raise ValueError(f"activation must be one of {sorted(_TABLE)} or None, got {activation!r}")
    return name


def forward(name: str, z: np.ndarray) -> np.ndarray:
    return _TABLE[name][0](z)


def backward(name: str, z: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return _TABLE[name][1](z, y, dy)
