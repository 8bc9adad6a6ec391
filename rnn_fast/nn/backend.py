"""Global settings of rnn_fast.nn, as Keras keeps them: the float type of new
layers and the random generator behind initializers, dropout and shuffling."""
from typing import Optional

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
