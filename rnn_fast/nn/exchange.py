"""Recurrent stacks between PyTorch and rnn_fast: a ``torch.nn.RNN``,
``nn.LSTM`` or ``nn.GRU`` (any ``num_layers``, ``bidirectional``, ``bias``,
``batch_first``) becomes a list of ``rnn_fast.nn`` layers with the same
outputs, and goes back into a module of the same shape; ``torch_weights``
gives one layer's weights as the cs231n-style kernels take them.

Layouts. PyTorch keeps ``weight_ih (G, D)``, ``weight_hh (G, H)`` and two
biases per layer and direction; rnn_fast.nn keeps Keras's ``kernel (D, G)``,
``recurrent_kernel (H, G)`` and one bias (SimpleRNN, LSTM: the two summed;
LSTM gates i, f, g, o in both) or two (GRU: ``bias (2, 3H)``; gates z, r, n
in Keras's order, r, z, n in PyTorch's). The converted layers take
batch-first input ``(N, T, D)`` whatever the module's ``batch_first``.
PyTorch's bidirectional output at step t is ``[forward h_t, backward h_t]``,
which is ``Bidirectional(..., merge_mode='concat')``'s.

Writing back (``to_torch``): a summed bias is split as it was read (the
module's ``bias_hh`` kept, ``bias_ih`` = the sum minus it; exactly the
original pair while the sum is unchanged), so a round trip gives the same
``state_dict``. torch is not imported here: the functions take its modules.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from . import layers as L

_CLASSES = {"RNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU}


def _kind(module) -> str:
    kind = type(module).__name__
    if kind not in _CLASSES:
        raise TypeError(f"expected a torch.nn.RNN, LSTM or GRU, got {kind}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"LSTM(proj_size={module.proj_size}) has no rnn_fast counterpart")
    return kind


def _params(module, layer: int, reverse: bool) -> List[np.ndarray]:
    """weight_ih, weight_hh, bias_ih, bias_hh of one layer and direction (zeros
    for absent biases), as NumPy arrays."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    W_ih = getattr(module, "weight_ih" + suffix).detach().cpu().numpy()
    W_hh = getattr(module, "weight_hh" + suffix).detach().cpu().numpy()
    out = [W_ih, W_hh]
    for name in ("bias_ih", "bias_hh"):
        b = getattr(module, name + suffix, None)
        out.append(np.zeros(W_ih.shape[0], W_ih.dtype) if b is None else b.detach().cpu().numpy())
    return out


def _zr(H: int) -> np.ndarray:
    """The column order that swaps a GRU's first two gate blocks (r, z <-> z, r)."""
    return np.r_[H:2 * H, 0:H, 2 * H:3 * H]


def torch_weights(module, layer: int = 0, reverse: bool = False) -> Tuple[tuple, Dict[str, str]]:
    """One layer (and direction) of a torch.nn.RNN, LSTM or GRU as the kernels
    take it: ``(weights, keywords)``, so that ``rnn_fast.<cell>_forward(x, h0,
    *weights, **keywords)`` (plus ``c0=`` for an LSTM, ``reverse=True`` for
    the reverse direction) is the module's layer. RNN: ``(Wx, Wh, b)`` with
    ``b = bias_ih + bias_hh`` and ``activation``; LSTM: the same in PyTorch's
    gate order with ``gate_order='ifgo'``; GRU: ``(Wx, Wh, b, bh)`` as they
    are (PyTorch's order is the kernels' default). Copies: later changes to
    the module do not reach them."""
    kind = _kind(module)
    W_ih, W_hh, b_ih, b_hh = _params(module, layer, reverse)
    Wx, Wh = W_ih.T.copy(), W_hh.T.copy()
    if kind == "GRU":
        return (Wx, Wh, b_ih.copy(), b_hh.copy()), {}
    keywords = {"gate_order": "ifgo"} if kind == "LSTM" else {"activation": module.nonlinearity}
    return (Wx, Wh, b_ih + b_hh), keywords


def _layer(module, kind: str, layer: int, reverse: bool, D: int, return_sequences: bool, first: bool):
    """One direction of one torch layer as an rnn_fast.nn layer, built, with
    the module's weights (and its biases remembered for to_torch)."""
    H = module.hidden_size
    W_ih, W_hh, b_ih, b_hh = _params(module, layer, reverse)
    kwargs = dict(return_sequences=return_sequences, use_bias=bool(module.bias), go_backwards=reverse,
                  dtype=W_ih.dtype.name)
    if first:
        kwargs["input_shape"] = (None, D)
    if kind == "RNN":
        kwargs["activation"] = module.nonlinearity
    out = _CLASSES[kind](H, **kwargs)
    out.build((None, D))
    if kind == "GRU":
        order = _zr(H)
        weights = [W_ih.T[:, order], W_hh.T[:, order]] + ([np.stack([b_ih[order], b_hh[order]])] if module.bias else [])
    else:
        weights = [W_ih.T, W_hh.T] + ([b_ih + b_hh] if module.bias else [])
    out.set_weights(weights)
    out._torch_biases = (b_ih.copy(), b_hh.copy(), out.weights[2].copy() if module.bias else None)
    return out


def from_torch(module, *, return_sequences: bool = True) -> List[L.Layer]:
    """The rnn_fast.nn layers of a torch.nn.RNN, LSTM or GRU, one per torch
    layer (a ``Bidirectional(..., merge_mode='concat')`` for a bidirectional
    one), the first with its input shape, so that
    ``Sequential(from_torch(module)).predict(x)`` is the module's output
    sequence for a batch-first x (N, T, D). ``return_sequences=False`` makes
    the last layer return its final state instead (for a bidirectional
    module, ``[forward h_T, backward h_0]``, PyTorch's ``h_n`` of the last layer
    concatenated). The initial states are zero, as in a call without ``hx``."""
    kind = _kind(module)
    H, dirs = module.hidden_size, 2 if module.bidirectional else 1
    out: List[L.Layer] = []
    for k in range(module.num_layers):
        D = module.input_size if k == 0 else dirs * H
        seq = return_sequences or k < module.num_layers - 1
        fwd = _layer(module, kind, k, False, D, seq, first=k == 0)
        if not module.bidirectional:
            out.append(fwd)
            continue
        bwd = _layer(module, kind, k, True, D, seq, first=False)
        both = L.Bidirectional(fwd, merge_mode="concat", backward_layer=bwd)
        both.build((None, D))
        out.append(both)
    return out


def _torch_pair(layer, kind: str, H: int, use_bias: bool) -> List[np.ndarray]:
    """weight_ih, weight_hh[, bias_ih, bias_hh] of one rnn_fast.nn layer in
    PyTorch's layout (see the module docstring for the bias split)."""
    kernel, recurrent = layer.weights[0], layer.weights[1]
    if kind == "GRU":
        order = _zr(H)  # its own inverse
        out = [kernel[:, order].T, recurrent[:, order].T]
        return out + ([layer.weights[2][0][order], layer.weights[2][1][order]] if use_bias else [])
    out = [kernel.T, recurrent.T]
    if not use_bias:
        return out
    bias = layer.weights[2]
    b_ih, b_hh, summed = getattr(layer, "_torch_biases", (None, None, None))
    if summed is not None and np.array_equal(summed, bias):
        return out + [b_ih, b_hh]
    b_hh = np.zeros_like(bias) if b_hh is None else b_hh.astype(bias.dtype)
    return out + [bias - b_hh, b_hh]


def to_torch(layers: Sequence[L.Layer], module) -> None:
    """Writes rnn_fast.nn layers (``from_torch``'s, or a model's layers of the
    same shapes) into a torch.nn.RNN, LSTM or GRU in place."""
    import torch

    kind = _kind(module)
    layers = list(layers)
    if len(layers) != module.num_layers:
        raise ValueError(f"to_torch(): {len(layers)} layers for a module of num_layers={module.num_layers}")
    H = module.hidden_size
    with torch.no_grad():
        for k, layer in enumerate(layers):
            directions = [(layer.forward_layer, ""), (layer.backward_layer, "_reverse")] \
                if isinstance(layer, L.Bidirectional) else [(layer, "")]
            if len(directions) != (2 if module.bidirectional else 1):
                raise ValueError(f"to_torch(): layer {k} ({type(layer).__name__}) does not match "
                                 f"bidirectional={module.bidirectional}")
            for sub, reverse in directions:
                if type(sub).__name__ != _CLASSES[kind].__name__:
                    raise ValueError(f"to_torch(): layer {k} is a {type(sub).__name__}, the module a {kind}")
                names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
                for name, value in zip(names, _torch_pair(sub, kind, H, bool(module.bias))):
                    param = getattr(module, f"{name}_l{k}{reverse}")
                    if tuple(param.shape) != value.shape:
                        raise ValueError(f"to_torch(): {name}_l{k}{reverse} has shape {tuple(param.shape)}, "
                                         f"the layer's is {value.shape}")
                    param.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(param.dtype))
