"""Type stubs of rnn_fast's compiled kernels (see each function's docstring)."""
from typing import Literal, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

Array = np.ndarray
Activation = Literal["tanh", "relu"]
GateOrder = Literal["ifog", "ifgo"]  # an LSTM's gate blocks: cs231n's, or Keras's and PyTorch's
GRUGateOrder = Literal["rzn", "zrn"]  # a GRU's gate blocks: PyTorch's, or Keras's

class RNNStepCache: ...
class RNNCache: ...
class LSTMStepCache: ...
class LSTMCache: ...
class GRUStepCache: ...
class GRUCache: ...
class AffineCache: ...
class EmbeddingCache: ...

class InferenceWeights:
    """A layer's weights packed once: the base of each cell's Inference class."""
    @property
    def D(self) -> int: ...
    @property
    def H(self) -> int: ...
    @property
    def dtype(self) -> np.dtype: ...

class LSTMInference(InferenceWeights):
    """An LSTM layer's weights, copied and packed once for many inference forwards."""
    def __init__(self, Wx: ArrayLike, Wh: ArrayLike, b: ArrayLike, *, gate_order: GateOrder = ...) -> None: ...
    @property
    def gate_order(self) -> GateOrder: ...
    def __call__(
        self,
        x: ArrayLike,
        h0: ArrayLike,
        *,
        c0: Optional[ArrayLike] = ...,
        reverse: bool = ...,
        return_state: bool = ...,
        lengths: Optional[ArrayLike] = ...,
    ) -> Union[Array, Tuple[Array, Array, Array]]: ...

class RNNInference(InferenceWeights):
    """A vanilla RNN layer's weights, copied and packed once for many inference forwards."""
    def __init__(self, Wx: ArrayLike, Wh: ArrayLike, b: ArrayLike, *, activation: Activation = ...) -> None: ...
    def __call__(
        self,
        x: ArrayLike,
        h0: ArrayLike,
        *,
        reverse: bool = ...,
        return_state: bool = ...,
        lengths: Optional[ArrayLike] = ...,
    ) -> Union[Array, Tuple[Array, Array]]: ...

class GRUInference(InferenceWeights):
    """A GRU layer's weights, copied and packed once for many inference forwards."""
    def __init__(
        self, Wx: ArrayLike, Wh: ArrayLike, b: ArrayLike, bh: ArrayLike, *, gate_order: GRUGateOrder = ...
    ) -> None: ...
    @property
    def gate_order(self) -> GRUGateOrder: ...
    def __call__(
        self,
        x: ArrayLike,
        h0: ArrayLike,
        *,
        reverse: bool = ...,
        return_state: bool = ...,
        lengths: Optional[ArrayLike] = ...,
    ) -> Union[Array, Tuple[Array, Array]]: ...

def rnn_step_forward(
    x: ArrayLike,
    prev_h: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    *,
    activation: Activation = ...,
    cache: bool = ...,
) -> Tuple[Array, Optional[RNNStepCache]]: ...
def rnn_step_backward(dnext_h: ArrayLike, cache: RNNStepCache) -> Tuple[Array, Array, Array, Array, Array]: ...
def rnn_forward(
    x: ArrayLike,
    h0: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    *,
    activation: Activation = ...,
    reverse: bool = ...,
    return_state: bool = ...,
    cache: bool = ...,
    _borrow: bool = ...,
    lengths: Optional[ArrayLike] = ...,
) -> Union[Tuple[Array, Optional[RNNCache]], Tuple[Array, Array, Optional[RNNCache]]]: ...
def rnn_backward(dh: ArrayLike, cache: RNNCache) -> Tuple[Array, Array, Array, Array, Array]: ...
def lstm_step_forward(
    x: ArrayLike,
    prev_h: ArrayLike,
    prev_c: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    *,
    cache: bool = ...,
    gate_order: GateOrder = ...,
) -> Tuple[Array, Array, Optional[LSTMStepCache]]: ...
def lstm_step_backward(
    dnext_h: ArrayLike, dnext_c: ArrayLike, cache: LSTMStepCache
) -> Tuple[Array, Array, Array, Array, Array, Array]: ...
def lstm_forward(
    x: ArrayLike,
    h0: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    *,
    c0: Optional[ArrayLike] = ...,
    reverse: bool = ...,
    return_state: bool = ...,
    cache: bool = ...,
    _borrow: bool = ...,
    gate_order: GateOrder = ...,
    lengths: Optional[ArrayLike] = ...,
) -> Union[Tuple[Array, Optional[LSTMCache]], Tuple[Array, Array, Array, Optional[LSTMCache]]]: ...
def lstm_backward(
    dh: ArrayLike, cache: LSTMCache, *, dcT: Optional[ArrayLike] = ..., return_dc0: bool = ...
) -> Tuple[Array, ...]: ...
def gru_step_forward(
    x: ArrayLike,
    prev_h: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    bh: ArrayLike,
    *,
    cache: bool = ...,
    gate_order: GRUGateOrder = ...,
) -> Tuple[Array, Optional[GRUStepCache]]: ...
def gru_step_backward(
    dnext_h: ArrayLike, cache: GRUStepCache
) -> Tuple[Array, Array, Array, Array, Array, Array]: ...
def gru_forward(
    x: ArrayLike,
    h0: ArrayLike,
    Wx: ArrayLike,
    Wh: ArrayLike,
    b: ArrayLike,
    bh: ArrayLike,
    *,
    reverse: bool = ...,
    return_state: bool = ...,
    cache: bool = ...,
    _borrow: bool = ...,
    gate_order: GRUGateOrder = ...,
    lengths: Optional[ArrayLike] = ...,
) -> Union[Tuple[Array, Optional[GRUCache]], Tuple[Array, Array, Optional[GRUCache]]]: ...
def gru_backward(dh: ArrayLike, cache: GRUCache) -> Tuple[Array, Array, Array, Array, Array, Array]: ...
def temporal_affine_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike) -> Tuple[Array, AffineCache]: ...
def temporal_affine_backward(dout: ArrayLike, cache: AffineCache) -> Tuple[Array, Array, Array]: ...
def word_embedding_forward(x: ArrayLike, W: ArrayLike) -> Tuple[Array, EmbeddingCache]: ...
def word_embedding_backward(dout: ArrayLike, cache: EmbeddingCache) -> Array: ...
def temporal_softmax_loss(x: ArrayLike, y: ArrayLike, mask: ArrayLike, verbose: bool = ...) -> Tuple[float, Array]: ...
def dropout_forward(x: ArrayLike, rate: float, seed: int) -> Tuple[Array, Array]: ...
def dropout_backward(dy: ArrayLike, mask: ArrayLike) -> Array: ...
class LeakyReservoir:
    """A leaky reservoir's fixed weights, laid out once for many runs (rnn_fast.reservoir.Reservoir holds one)."""
    def __init__(self, units: int, input_dim: int, W: Tuple[ArrayLike, ArrayLike, ArrayLike],
                 Win: Tuple[ArrayLike, ArrayLike, ArrayLike], bias: ArrayLike, lr: ArrayLike, *,
                 activation: str = ..., dtype: str = ...) -> None: ...
    def run(self, u: ArrayLike, x0: ArrayLike) -> Array: ...
    @property
    def dtype(self) -> str: ...
    @property
    def units(self) -> int: ...
    @property
    def input_dim(self) -> int: ...
    @property
    def stored(self) -> int: ...
    @property
    def dense(self) -> bool: ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
