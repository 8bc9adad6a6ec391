"""rnn_fast: C++/OpenMP kernels for vanilla RNN, LSTM and GRU layers.

A drop-in replacement for the NumPy functions of cs231n's ``rnn_layers.py``:
same names, arguments, shapes and return values, computed by compiled
kernels in float32 or float64. ``rnn_fast.reference`` holds the NumPy twins.
"""
from . import reference
from .reference import sigmoid  # cs231n's rnn_layers.py has it beside the layers
from ._core import (
    GRUInference,
    LSTMInference,
    RNNInference,
    dropout_forward,
    dropout_backward,
    get_num_threads,
    gru_backward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
    lstm_backward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    set_num_threads,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_softmax_loss,
    word_embedding_backward,
    word_embedding_forward,
)

__version__ = "0.1.0"


def get_include() -> str:
    """The directory to put on Cython's (and the C compiler's) include path
    to ``cimport rnn_fast.cython_kernels``: the one that holds the rnn_fast
    package, whose cython_kernels.pxd declares the kernels for Cython (see
    the README's "From Cython")."""
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


__all__ = [
    "reference",
    "get_include",
    "sigmoid",
    "GRUInference",
    "LSTMInference",
    "RNNInference",
    "dropout_forward",
    "dropout_backward",
    "get_num_threads",
    "gru_backward",
    "gru_forward",
    "gru_step_backward",
    "gru_step_forward",
    "lstm_backward",
    "lstm_forward",
    "lstm_step_backward",
    "lstm_step_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "set_num_threads",
    "temporal_affine_backward",
    "temporal_affine_forward",
    "temporal_softmax_loss",
    "word_embedding_backward",
    "word_embedding_forward",
]
