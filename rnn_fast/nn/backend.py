"""Global settings of rnn_fast.nn, as Keras keeps them: the float type of new
layers and the random generator behind initializers, dropout and shuffling;
and, in data-parallel training, which part of the global batch this process
computes."""
import contextlib
from typing import Optional, Tuple

import numpy as np

_FLOATX = "float32"
_RNG = np.random.default_rng()


def floatx() -> str:
    """The dtype of new layers' weights and of the data they compute on."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """'float32' (the default, as in Keras) or 'float64'."""
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(f"set_floatx(): value must be 'float32' or 'float64', got {value!r}")
    _FLOATX = value


def set_random_seed(seed: Optional[int]) -> None:
    """Seeds initializers, dropout masks and shuffling (keras.utils.set_random_seed)."""
    global _RNG
    _RNG = np.random.default_rng(seed)


def rng() -> np.random.Generator:
    return _RNG


# (start, stop, n): this process computes rows [start, stop) of a global
# batch of n (rnn_fast.nn.distributed); None otherwise.
_PART: Optional[Tuple[int, int, int]] = None


@contextlib.contextmanager
def batch_part(start: int, stop: int, n: int):
    """While it lasts, random draws over a batch (dropout masks) are drawn
    for the whole global batch of n rows and sliced to [start, stop): the
    masks of one process running the whole batch."""
    global _PART
    before, _PART = _PART, (start, stop, n)
    try:
        yield
    finally:
        _PART = before


def batch_part_now() -> Optional[Tuple[int, int, int]]:
    return _PART


def batch_random(rng: np.random.Generator, shape) -> np.ndarray:
    """rng.random(shape) for a batch of shape[0] rows, or, inside
    batch_part, the rows [start, stop) of a draw for the global batch."""
    if _PART is None:
        return rng.random(shape)
    start, stop, n = _PART
    return rng.random((n,) + tuple(shape[1:]))[start:stop]
