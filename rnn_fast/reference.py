"""Plain NumPy twins of rnn_fast's kernels: the ground truth for tests and the
baseline for benchmarks.

Same names, argument order, return tuples and shapes as cs231n's
``rnn_layers.py`` and as ``rnn_fast``'s compiled functions, written straight
from the definitions, one time step at a time. Letters: N batch, T time,
D input features, H hidden units, M affine outputs, V vocabulary. LSTM gates
are ordered i, f, o, g; GRU gates r, z, n (PyTorch's). Caches are named
structures, not positional tuples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_step_forward",
    "rnn_step_backward",
    "rnn_forward",
    "rnn_backward",
    "lstm_step_forward",
    "lstm_step_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_step_forward",
    "gru_step_backward",
    "gru_forward",
    "gru_backward",
    "temporal_affine_forward",
    "temporal_affine_backward",
    "word_embedding_forward",
    "word_embedding_backward",
    "temporal_softmax_loss",
    "dropout_forward",
    "dropout_backward",
    "reservoir_forward",
]


def sigmoid(x):
    """1 / (1 + exp(-x)); exp overflow gives exactly 0, never NaN."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _activate(a, activation):
    if activation == "tanh":
        return np.tanh(a)
    if activation == "relu":
        return np.maximum(a, 0)
    raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")


def _d_activate(y, activation):
    """Derivative of the activation, from its output y."""
    return 1 - y * y if activation == "tanh" else (y > 0).astype(y.dtype)


# ------------------------------------------------------------ vanilla RNN


@dataclass
class RNNStepCache:
    x: np.ndarray  # (N, D)
    prev_h: np.ndarray  # (N, H)
    Wx: np.ndarray  # (D, H)
    Wh: np.ndarray  # (H, H)
    next_h: np.ndarray  # (N, H)
    activation: str = "tanh"


def rnn_step_forward(x, prev_h, Wx, Wh, b, *, activation="tanh", cache=True):
    """next_h = act(x Wx + prev_h Wh + b). x (N, D), prev_h (N, H), Wx (D, H),
    Wh (H, H), b (H,). Returns (next_h (N, H), cache); cache=False (inference)
    returns None in the cache's place."""
    next_h = _activate(x.dot(Wx) + prev_h.dot(Wh) + b, activation)
    return next_h, RNNStepCache(x, prev_h, Wx, Wh, next_h, activation) if cache else None


def rnn_step_backward(dnext_h, cache):
    """Returns (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,))."""
    da = dnext_h * _d_activate(cache.next_h, cache.activation)
    dx = da.dot(cache.Wx.T)
    dprev_h = da.dot(cache.Wh.T)
    dWx = cache.x.T.dot(da)
    dWh = cache.prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


@dataclass
class RNNCache:
    steps: List[RNNStepCache]  # in time order t = 0..T-1
    shape_x: tuple  # (N, T, D)
    h0: np.ndarray  # (N, H)
    Wx: np.ndarray
    Wh: np.ndarray
    reverse: bool
    dtype: np.dtype  # of the forward's results: every input promoted
    lengths: Optional[np.ndarray] = None  # (N,) int64, or None: every sequence of length T


def _times(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _check_lengths(lengths, N, T):
    """lengths as an int64 (N,) array with 0 <= lengths[n] <= T, or None."""
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {a.dtype}")
    if a.shape != (N,):
        raise ValueError(f"lengths must have shape (N,) = ({N},), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() > T):
        raise ValueError(f"lengths must be in [0, T] = [0, {T}], got values from {a.min()} to {a.max()}")
    return a.astype(np.int64)


# Variable lengths (PyTorch's packed sequences): row n runs its steps t <
# lengths[n] only (from lengths[n] - 1 down to 0 when reverse); at the other
# steps its state is carried unchanged, its output is 0, and its gradients
# flow past the step untouched (an upstream gradient there is ignored).
def _valid(lengths, t):
    """(N, 1) booleans: the rows that have step t; None without lengths (all)."""
    return None if lengths is None else (t < lengths)[:, None]


def _carry(valid, new, old):
    """The state after a step: new where the row has the step, else old."""
    return new if valid is None else np.where(valid, new, old)


def _only(valid, a):
    """a where the row has the step, else 0."""
    return a if valid is None else np.where(valid, a, 0)


def rnn_forward(x, h0, Wx, Wh, b, *, activation="tanh", reverse=False, return_state=False, cache=True,
                lengths=None):
    """Vanilla RNN over a sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    b (H,). Returns (h (N, T, H), cache), or (h, h_T, cache) with return_state.
    reverse runs time from T-1 down to 0 (h_T is then the state at t = 0).
    cache=False (inference) returns None in the cache's place. lengths (N,)
    integers in [0, T]: sequences of those lengths, padded to T (see _valid)."""
    N, T, _ = x.shape
    H = h0.shape[1]
    lengths = _check_lengths(lengths, N, T)
    dtype = np.result_type(x, h0, Wx, Wh, b)
    h = np.zeros((N, T, H), dtype=dtype)
    steps = [None] * T
    prev = h0
    for t in _times(T, reverse):
        new, steps[t] = rnn_step_forward(x[:, t], prev, Wx, Wh, b, activation=activation)
        valid = _valid(lengths, t)
        prev = _carry(valid, new, prev)
        h[:, t] = _only(valid, new)
    saved = RNNCache(steps, x.shape, h0, Wx, Wh, reverse, dtype, lengths) if cache else None
    if return_state:
        return h, np.array(prev, dtype=dtype), saved
    return h, saved


def rnn_backward(dh, cache):
    """dh (N, T, H): upstream gradient of each step's h only.
    Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db)."""
    N, T, D = cache.shape_x
    dtype = np.result_type(dh, cache.dtype)
    dx = np.zeros((N, T, D), dtype=dtype)
    dprev = np.zeros(cache.h0.shape, dtype=dtype)
    dWx = np.zeros(cache.Wx.shape, dtype=dtype)
    dWh = np.zeros(cache.Wh.shape, dtype=dtype)
    db = np.zeros(cache.Wx.shape[1], dtype=dtype)
    for t in reversed(list(_times(T, cache.reverse))):
        valid = _valid(cache.lengths, t)
        dx[:, t], dstep, dWx_t, dWh_t, db_t = rnn_step_backward(_only(valid, dh[:, t] + dprev), cache.steps[t])
        dprev = _carry(valid, dstep, dprev)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db


# ------------------------------------------------------------------- LSTM


@dataclass
class LSTMStepCache:
    x: np.ndarray  # (N, D)
    prev_h: np.ndarray  # (N, H)
    prev_c: np.ndarray  # (N, H)
    Wx: np.ndarray  # (D, 4H)
    Wh: np.ndarray  # (H, 4H)
    i: np.ndarray  # (N, H) post-activation gates
    f: np.ndarray
    o: np.ndarray
    g: np.ndarray
    next_c: np.ndarray  # (N, H)
    gate_order: str = "ifog"


def _gate_blocks(gate_order):
    """The column blocks of gates i, f, o, g in weights of gate_order
    ('ifog': cs231n's; 'ifgo': Keras's and PyTorch's)."""
    if gate_order not in ("ifog", "ifgo"):
        raise ValueError(f"gate_order must be 'ifog' (cs231n's) or 'ifgo' (Keras's and PyTorch's), got {gate_order!r}")
    return (0, 1, 2, 3) if gate_order == "ifog" else (0, 1, 3, 2)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b, *, cache=True, gate_order="ifog"):
    """One LSTM step. x (N, D), prev_h and prev_c (N, H), Wx (D, 4H),
    Wh (H, 4H), b (4H,), gate blocks in gate_order. Returns (next_h, next_c,
    cache); cache=False (inference) returns None in the cache's place."""
    H = Wh.shape[0]  # x, prev_h, prev_c: (N, .) or 1-D rows, broadcast as NumPy broadcasts them
    a = x.dot(Wx) + prev_h.dot(Wh) + b
    bi, bf, bo, bg = (a[..., k * H : (k + 1) * H] for k in _gate_blocks(gate_order))
    i, f, o, g = sigmoid(bi), sigmoid(bf), sigmoid(bo), np.tanh(bg)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    saved = LSTMStepCache(x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c, gate_order) if cache else None
    return next_h, next_c, saved


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Returns (dx (N, D), dprev_h, dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,))."""
    c = cache
    tc = np.tanh(c.next_c)
    dc = dnext_c + dnext_h * c.o * (1 - tc * tc)
    grads = [  # of the pre-activations of i, f, o, g
        dc * c.g * c.i * (1 - c.i),
        dc * c.prev_c * c.f * (1 - c.f),
        dnext_h * tc * c.o * (1 - c.o),
        dc * c.i * (1 - c.g * c.g),
    ]
    blocks = _gate_blocks(c.gate_order)
    da = np.concatenate([grads[blocks.index(k)] for k in range(4)], axis=1)
    dx = da.dot(c.Wx.T)
    dprev_h = da.dot(c.Wh.T)
    dprev_c = dc * c.f
    dWx = c.x.T.dot(da)
    dWh = c.prev_h.T.dot(da)
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


@dataclass
class LSTMCache:
    steps: List[LSTMStepCache]  # in time order t = 0..T-1
    shape_x: tuple  # (N, T, D)
    h0: np.ndarray  # (N, H)
    c0: np.ndarray  # (N, H)
    Wx: np.ndarray
    Wh: np.ndarray
    reverse: bool
    dtype: np.dtype  # of the forward's results: every input promoted
    lengths: Optional[np.ndarray] = None  # see RNNCache


def lstm_forward(x, h0, Wx, Wh, b, *, c0=None, reverse=False, return_state=False, cache=True, gate_order="ifog",
                 lengths=None):
    """LSTM over a sequence. x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H),
    b (4H,), gate blocks in gate_order ('ifog', or 'ifgo': Keras's and
    PyTorch's; the gradients come in the same order); the cell state starts
    at c0 (N, H), zeros by default.
    Returns (h (N, T, H), cache), or (h, h_T, c_T, cache) with return_state;
    cache=False (inference) returns None in the cache's place. lengths: as
    rnn_forward's."""
    N, T, _ = x.shape
    H = h0.shape[1]
    lengths = _check_lengths(lengths, N, T)
    dtype = np.result_type(x, h0, Wx, Wh, b, *([] if c0 is None else [c0]))
    if c0 is None:
        c0 = np.zeros((N, H), dtype=dtype)
    h = np.zeros((N, T, H), dtype=dtype)
    steps = [None] * T
    prev_h, prev_c = h0, c0
    for t in _times(T, reverse):
        new_h, new_c, steps[t] = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b, gate_order=gate_order)
        valid = _valid(lengths, t)
        prev_h, prev_c = _carry(valid, new_h, prev_h), _carry(valid, new_c, prev_c)
        h[:, t] = _only(valid, new_h)
    saved = LSTMCache(steps, x.shape, h0, c0, Wx, Wh, reverse, dtype, lengths) if cache else None
    if return_state:
        return h, np.array(prev_h, dtype=dtype), np.array(prev_c, dtype=dtype), saved
    return h, saved


def lstm_backward(dh, cache, *, dcT=None, return_dc0=False):
    """dh (N, T, H): upstream gradient of each step's h only; dcT (N, H):
    gradient of the final cell state (zero by default).
    Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db), with dc0 appended when
    return_dc0."""
    N, T, D = cache.shape_x
    dtype = np.result_type(dh, cache.dtype, *([] if dcT is None else [dcT]))
    dx = np.zeros((N, T, D), dtype=dtype)
    dprev_h = np.zeros(cache.h0.shape, dtype=dtype)
    dprev_c = np.zeros(cache.h0.shape, dtype=dtype) if dcT is None else np.array(dcT, dtype=dtype)
    dWx = np.zeros(cache.Wx.shape, dtype=dtype)
    dWh = np.zeros(cache.Wh.shape, dtype=dtype)
    db = np.zeros(cache.Wx.shape[1], dtype=dtype)
    for t in reversed(list(_times(T, cache.reverse))):
        valid = _valid(cache.lengths, t)
        dx[:, t], dstep_h, dstep_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            _only(valid, dh[:, t] + dprev_h), _only(valid, dprev_c), cache.steps[t]
        )
        dprev_h, dprev_c = _carry(valid, dstep_h, dprev_h), _carry(valid, dstep_c, dprev_c)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    if return_dc0:
        return dx, dprev_h, dWx, dWh, db, dprev_c
    return dx, dprev_h, dWx, dWh, db


# -------------------------------------------------------------------- GRU
# PyTorch's equations and gate order r, z, n (Keras's reset_after=True):
#   r = sigmoid(x Wx_r + b_r + h Wh_r + bh_r)
#   z = sigmoid(x Wx_z + b_z + h Wh_z + bh_z)
#   n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n))
#   h' = (1 - z) * n + z * h
# The reset gate multiplies the recurrent product, so the gradient of a
# step's recurrent pre-activations (dah) differs from that of its input ones
# (dax) in the n block: dah_n = r * dax_n.


@dataclass
class GRUStepCache:
    x: np.ndarray  # (N, D)
    prev_h: np.ndarray  # (N, H)
    Wx: np.ndarray  # (D, 3H)
    Wh: np.ndarray  # (H, 3H)
    r: np.ndarray  # (N, H) post-activation gates
    z: np.ndarray
    n: np.ndarray
    hn: np.ndarray  # (N, H) h Wh_n + bh_n, the recurrent part that r scales
    gate_order: str = "rzn"


def _gru_blocks(gate_order):
    """The column blocks of gates r, z, n in weights of gate_order ('rzn':
    PyTorch's; 'zrn': Keras's)."""
    if gate_order not in ("rzn", "zrn"):
        raise ValueError(f"gate_order must be 'rzn' (PyTorch's) or 'zrn' (Keras's), got {gate_order!r}")
    return (0, 1, 2) if gate_order == "rzn" else (1, 0, 2)


def gru_step_forward(x, prev_h, Wx, Wh, b, bh, *, cache=True, gate_order="rzn"):
    """One GRU step. x (N, D), prev_h (N, H), Wx (D, 3H), Wh (H, 3H), b and
    bh (3H,) (the input's and the recurrent product's biases), gate blocks r,
    z, n (or z, r, n with gate_order='zrn', Keras's order). Returns (next_h,
    cache); cache=False (inference) returns None in the cache's place."""
    H = Wh.shape[0]  # x, prev_h: (N, .) or 1-D rows, broadcast as NumPy broadcasts them
    ax = x.dot(Wx) + b
    ah = prev_h.dot(Wh) + bh
    kr, kz, kn = (slice(k * H, (k + 1) * H) for k in _gru_blocks(gate_order))
    r = sigmoid(ax[..., kr] + ah[..., kr])
    z = sigmoid(ax[..., kz] + ah[..., kz])
    hn = ah[..., kn]
    n = np.tanh(ax[..., kn] + r * hn)
    next_h = (1 - z) * n + z * prev_h
    return next_h, GRUStepCache(x, prev_h, Wx, Wh, r, z, n, hn, gate_order) if cache else None


def gru_step_backward(dnext_h, cache):
    """Returns (dx (N, D), dprev_h (N, H), dWx (D, 3H), dWh (H, 3H), db (3H,),
    dbh (3H,)), gate blocks in the forward's gate_order."""
    c = cache
    dn = dnext_h * (1 - c.z) * (1 - c.n * c.n)  # of n's pre-activation
    dz = dnext_h * (c.prev_h - c.n) * c.z * (1 - c.z)
    dr = dn * c.hn * c.r * (1 - c.r)
    first = [dr, dz] if c.gate_order == "rzn" else [dz, dr]
    dax = np.concatenate(first + [dn], axis=1)  # of x Wx + b
    dah = np.concatenate(first + [dn * c.r], axis=1)  # of h Wh + bh
    dx = dax.dot(c.Wx.T)
    dprev_h = dnext_h * c.z + dah.dot(c.Wh.T)
    return dx, dprev_h, c.x.T.dot(dax), c.prev_h.T.dot(dah), dax.sum(axis=0), dah.sum(axis=0)


@dataclass
class GRUCache(RNNCache):
    """RNNCache's fields, its steps GRUStepCache."""


def gru_forward(x, h0, Wx, Wh, b, bh, *, reverse=False, return_state=False, cache=True, gate_order="rzn",
                lengths=None):
    """GRU over a sequence. x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H),
    b and bh (3H,), gate blocks r, z, n (or z, r, n with gate_order='zrn',
    Keras's order); lengths as rnn_forward's. Returns (h (N, T, H), cache), or
    (h, h_T, cache) with return_state. reverse runs time from T-1 down to 0.
    cache=False (inference) returns None in the cache's place."""
    N, T, _ = x.shape
    H = h0.shape[1]
    lengths = _check_lengths(lengths, N, T)
    dtype = np.result_type(x, h0, Wx, Wh, b, bh)
    h = np.zeros((N, T, H), dtype=dtype)
    steps = [None] * T
    prev = h0
    for t in _times(T, reverse):
        new, steps[t] = gru_step_forward(x[:, t], prev, Wx, Wh, b, bh, gate_order=gate_order)
        valid = _valid(lengths, t)
        prev = _carry(valid, new, prev)
        h[:, t] = _only(valid, new)
    saved = GRUCache(steps, x.shape, h0, Wx, Wh, reverse, dtype, lengths) if cache else None
    if return_state:
        return h, np.array(prev, dtype=dtype), saved
    return h, saved


def gru_backward(dh, cache):
    """dh (N, T, H): upstream gradient of each step's h only.
    Returns (dx (N, T, D), dh0 (N, H), dWx, dWh, db, dbh)."""
    N, T, D = cache.shape_x
    dtype = np.result_type(dh, cache.dtype)
    dx = np.zeros((N, T, D), dtype=dtype)
    dprev = np.zeros(cache.h0.shape, dtype=dtype)
    dWx = np.zeros(cache.Wx.shape, dtype=dtype)
    dWh = np.zeros(cache.Wh.shape, dtype=dtype)
    db = np.zeros(cache.Wx.shape[1], dtype=dtype)
    dbh = np.zeros(cache.Wx.shape[1], dtype=dtype)
    for t in reversed(list(_times(T, cache.reverse))):
        valid = _valid(cache.lengths, t)
        dx[:, t], dstep, dWx_t, dWh_t, db_t, dbh_t = gru_step_backward(_only(valid, dh[:, t] + dprev), cache.steps[t])
        dprev = _carry(valid, dstep, dprev)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
        dbh += dbh_t
    return dx, dprev, dWx, dWh, db, dbh


# ------------------------------------------------- non-recurrent layers


@dataclass
class AffineCache:
    x: np.ndarray  # (N, T, D)
    w: np.ndarray  # (D, M)
    dtype: np.dtype  # of the forward's result: every input promoted


def temporal_affine_forward(x, w, b):
    """out (N, T, M) = x (N, T, D) . w (D, M) + b (M,). Returns (out, cache)."""
    N, T, D = x.shape
    out = x.reshape(N * T, D).dot(w).reshape(N, T, w.shape[1]) + b
    return out, AffineCache(x, w, out.dtype)


def temporal_affine_backward(dout, cache):
    """Returns (dx (N, T, D), dw (D, M), db (M,)), all in the dtype of the
    forward's result promoted with dout's, as the recurrent backwards."""
    x, w = cache.x, cache.w
    dout = dout.astype(np.result_type(dout, cache.dtype), copy=False)
    N, T, D = x.shape
    M = w.shape[1]
    dx = dout.reshape(N * T, M).dot(w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T.dot(dout.reshape(N * T, M))
    db = dout.sum(axis=(0, 1))
    return dx, dw, db


@dataclass
class EmbeddingCache:
    x: np.ndarray  # (N, T) integer indices
    W: np.ndarray  # (V, D)


def word_embedding_forward(x, W):
    """out (N, T, D) = W[x] for x (N, T) integers in [0, V), W (V, D)."""
    return W[x], EmbeddingCache(x, W)


def word_embedding_backward(dout, cache):
    """Returns dW (V, D): dout (N, T, D) summed into the rows that were read."""
    dW = np.zeros_like(cache.W, dtype=np.result_type(dout, cache.W))
    np.add.at(dW, cache.x, dout)
    return dW


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax loss over V classes at every time step, averaged over N, where
    mask (N, T) says which steps count. x (N, T, V) scores, y (N, T) targets.
    Returns (loss, dx (N, T, V)). log p is computed as a log-sum-exp, so the
    loss stays finite where a probability underflows."""
    N, T, V = x.shape
    x_flat = x.reshape(N * T, V)
    y_flat = y.reshape(N * T)
    mask_flat = mask.reshape(N * T)
    shifted = x_flat - np.max(x_flat, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    probs = np.exp(log_probs)
    loss = -np.sum(mask_flat * log_probs[np.arange(N * T), y_flat]) / N
    dx_flat = probs.copy()
    dx_flat[np.arange(N * T), y_flat] -= 1
    dx_flat /= N
    dx_flat *= mask_flat[:, None]
    if verbose:
        print("dx_flat: ", dx_flat.shape)
    return float(loss), dx_flat.reshape(N, T, V)


def _splitmix64(seed, j):
    """SplitMix64's output for steps j (uint64 array) of its sequence from seed."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (j + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_forward(x, rate, seed):
    """Inverted dropout: element i (flat) is kept when 32-bit half i % 2 of
    SplitMix64 step i // 2 from seed is below (1 - rate) * 2**32 (rounded);
    mask = 1 / (1 - rate) where kept, else 0; returns (x * mask, mask)."""
    x = np.asarray(x)
    keep = 1.0 - rate
    n = x.size
    z = _splitmix64(seed, np.arange((n + 1) // 2, dtype=np.uint64))
    halves = np.stack([z & np.uint64(0xFFFFFFFF), z >> np.uint64(32)], axis=1).reshape(-1)[:n]
    threshold = np.uint64(round(keep * 2.0**32))
    mask = np.where(halves < threshold, x.dtype.type(1) / x.dtype.type(keep), x.dtype.type(0)).astype(x.dtype)
    mask = mask.reshape(x.shape)
    return x * mask, mask


def dropout_backward(dy, mask):
    """The backward of dropout_forward: dy * mask."""
    dy, mask = np.asarray(dy), np.asarray(mask)
    if dy.shape != mask.shape:
        raise ValueError(f"dropout_backward(): mask must have dy's shape {dy.shape}, got {mask.shape}")
    return dy * mask


def _adam_update(w, g, m, v, vhat, *, alpha, beta_1, beta_2, epsilon):
    """The twin of rnn_fast._core._adam_update (rnn_fast.nn's Adam step), in
    place, in w's dtype: the NumPy expressions the kernel's values follow."""
    t = w.dtype.type
    m += (g - m) * t(1 - beta_1)
    v += (g * g - v) * t(1 - beta_2)
    if vhat is not None:
        np.maximum(vhat, v, out=vhat)
        v = vhat
    w -= t(alpha) * m / (np.sqrt(v) + t(epsilon))


_RESERVOIR_ACTIVATIONS = {
    "tanh": np.tanh,
    "identity": lambda a: a,
    "relu": lambda a: np.maximum(a, 0),
    "sigmoid": sigmoid,
}


def reservoir_forward(u, x0, W, Win, bias, lr, *, activation="tanh"):
    """States x (N, T, U) of a leaky reservoir (rnn_fast.reservoir) run on the
    sequences u (N, T, D) from the states x0 (N, U): W (U, U), Win (U, D),
    bias and lr (U,), activation a name of the kernel's or a callable on
    arrays. The twin of rnn_fast._core.LeakyReservoir.run:
        x[:, t] = (1 - lr) * x[:, t-1] + lr * f(x[:, t-1] @ W.T + u[:, t] @ Win.T + bias)
    """
    f = _RESERVOIR_ACTIVATIONS[activation] if isinstance(activation, str) else activation
    u, s = np.asarray(u), np.asarray(x0)
    x = np.empty(u.shape[:2] + (np.shape(W)[0],), np.result_type(u, s, W, Win, bias, lr))
    for t in range(u.shape[1]):
        s = (1 - lr) * s + lr * f(s @ W.T + u[:, t] @ Win.T + bias)
        x[:, t] = s
    return x
