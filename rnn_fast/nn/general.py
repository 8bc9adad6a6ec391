"""The general path of SimpleRNN and LSTM: a NumPy step loop for what the
fused C++ kernels do not run, Keras's other activations and recurrent
dropout. The layers use it only then; their defaults stay on the kernels.

The loop computes what Keras's cells compute, gate by gate (Keras's order:
SimpleRNN one block; LSTM i, f, c, o), with the kernels' conventions for
the rest: time runs backwards when reverse (the outputs stay at their step),
and with lengths a row's steps t >= lengths[n] carry its state unchanged and
output 0, so the layer's mask handling is the same on both paths.

Dropout masks, one per sequence as in Keras's DropoutRNNCell: in_masks
(G, N, D) multiply the input of each gate block, rec_masks (G, N, H) the
previous output in each block's recurrent product (G = 1 for SimpleRNN, 4
for LSTM; None: no dropout).
"""
from typing import Any, Dict, List, Optional

import numpy as np

from . import activations


def _steps(T: int, reverse: bool):
    return range(T - 1, -1, -1) if reverse else range(T)


def _input_products(x, Wx, b, in_masks, G):
    """(N, T, G*H): every step's input product and bias, block by block."""
    H = Wx.shape[1] // G
    if in_masks is None:
        return x @ Wx + b
    blocks = [(x * in_masks[k][:, None, :]) @ Wx[:, k * H:(k + 1) * H] for k in range(G)]
    return np.concatenate(blocks, axis=-1) + b


def _recurrent_product(h, Wh, rec_masks, G):
    H = Wh.shape[0]
    if rec_masks is None:
        return h @ Wh
    return np.concatenate([(h * rec_masks[k]) @ Wh[:, k * H:(k + 1) * H] for k in range(G)], axis=-1)


def _recurrent_grad(dz, Wh, rec_masks, G):
    """The gradient of h_{t-1} from its recurrent product's pre-activations dz (N, G*H)."""
    H = Wh.shape[0]
    if rec_masks is None:
        return dz @ Wh.T
    return sum((dz[:, k * H:(k + 1) * H] @ Wh[:, k * H:(k + 1) * H].T) * rec_masks[k] for k in range(G))


def forward(cell: str, x, states: List[np.ndarray], Wx, Wh, b, activation: str, recurrent_activation: str,
            reverse: bool, lengths: Optional[np.ndarray], in_masks=None, rec_masks=None, keep_cache: bool = True):
    """cell 'simple' or 'lstm'. Returns (h (N, T, H), final states, cache)."""
    G = 4 if cell == "lstm" else 1
    N, T, _ = x.shape
    H = Wh.shape[0]
    dtype = x.dtype
    zx = _input_products(x, Wx, b, in_masks, G)
    h = np.zeros((N, T, H), dtype)
    prev = [np.asarray(s, dtype) for s in states]
    saved: Dict[int, Any] = {}
    for t in _steps(T, reverse):
        z = zx[:, t] + _recurrent_product(prev[0], Wh, rec_masks, G)
        if cell == "lstm":
            zi, zf, zc, zo = (z[:, k * H:(k + 1) * H] for k in range(4))
            i, f = activations.forward(recurrent_activation, zi), activations.forward(recurrent_activation, zf)
            g, o = activations.forward(activation, zc), activations.forward(recurrent_activation, zo)
            c = f * prev[1] + i * g
            ac = activations.forward(activation, c)
            new = [o * ac, c]
            if keep_cache:
                saved[t] = (prev, z, i, f, g, o, c, ac)
        else:
            a = activations.forward(activation, z)
            new = [a]
            if keep_cache:
                saved[t] = (prev, z, a)
        if lengths is not None:
            valid = (t < lengths)[:, None]
            new = [np.where(valid, n, p) for n, p in zip(new, prev)]
            h[:, t] = np.where(valid, new[0], 0)
        else:
            h[:, t] = new[0]
        prev = [np.asarray(s, dtype) for s in new]
    cache = None
    if keep_cache:
        cache = {"cell": cell, "x": x, "Wx": Wx, "Wh": Wh, "saved": saved, "act": activation,
                 "ract": recurrent_activation, "reverse": reverse, "lengths": lengths, "in_masks": in_masks,
                 "rec_masks": rec_masks, "states": prev, "h0": states}
    return h, prev, cache


def backward(dh, cache, dstates_final: Optional[List[Optional[np.ndarray]]] = None):
    """dh (N, T, H) the gradient of every step's output (kernel time order);
    dstates_final: of the final states beyond h (LSTM's c_T). Returns (dx,
    [d initial states], dWx, dWh, db)."""
    cell, x, Wx, Wh = cache["cell"], cache["x"], cache["Wx"], cache["Wh"]
    G = 4 if cell == "lstm" else 1
    N, T, D = x.shape
    H = Wh.shape[0]
    act, ract, lengths = cache["act"], cache["ract"], cache["lengths"]
    rec_masks, in_masks = cache["rec_masks"], cache["in_masks"]
    dz_all = np.zeros((N, T, G * H), dh.dtype)
    dWh = np.zeros_like(Wh)
    dnext_h = np.zeros((N, H), dh.dtype)
    dnext_c = np.zeros((N, H), dh.dtype)
    if cell == "lstm" and dstates_final and dstates_final[0] is not None:
        dnext_c = np.array(dstates_final[0], dh.dtype)
    for t in reversed(list(_steps(T, cache["reverse"]))):
        valid = None if lengths is None else (t < lengths)[:, None]
        dh_t = dh[:, t] + dnext_h
        if valid is not None:
            dh_t = np.where(valid, dh_t, 0)
        if cell == "lstm":
            prev, z, i, f, g, o, c, ac = cache["saved"][t]
            dc = activations.backward(act, c, ac, dh_t * o) + (dnext_c if valid is None
                                                               else np.where(valid, dnext_c, 0))
            dz = np.concatenate([activations.backward(ract, z[:, :H], i, dc * g),
                                 activations.backward(ract, z[:, H:2 * H], f, dc * prev[1]),
                                 activations.backward(act, z[:, 2 * H:3 * H], g, dc * i),
                                 activations.backward(ract, z[:, 3 * H:], o, dh_t * ac)], axis=-1)
            dprev_c = dc * f
        else:
            prev, z, a = cache["saved"][t]
            dz = activations.backward(act, z, a, dh_t)
        dz_all[:, t] = dz
        hm = prev[0]
        if rec_masks is None:
            dWh += hm.T @ dz
        else:
            for k in range(G):
                dWh[:, k * H:(k + 1) * H] += (hm * rec_masks[k]).T @ dz[:, k * H:(k + 1) * H]
        dprev_h = _recurrent_grad(dz, Wh, rec_masks, G)
        if valid is not None:  # a row without step t passes its gradients by
            dprev_h = np.where(valid, dprev_h, dnext_h)
            if cell == "lstm":
                dprev_c = np.where(valid, dprev_c, dnext_c)
        dnext_h = dprev_h
        if cell == "lstm":
            dnext_c = dprev_c
    flat = dz_all.reshape(N * T, G * H)
    db = flat.sum(axis=0)
    if in_masks is None:
        dWx = x.reshape(N * T, D).T @ flat
        dx = dz_all @ Wx.T
    else:
        dWx = np.zeros_like(Wx)
        dx = np.zeros((N, T, D), dh.dtype)
        for k in range(G):
            blk = slice(k * H, (k + 1) * H)
            xm = (x * in_masks[k][:, None, :]).reshape(N * T, D)
            dWx[:, blk] = xm.T @ flat[:, blk]
            dx += (dz_all[..., blk] @ Wx[:, blk].T) * in_masks[k][:, None, :]
    dinit = [dnext_h] + ([dnext_c] if cell == "lstm" else [])
    return dx, dinit, dWx.astype(Wx.dtype, copy=False), dWh, db.astype(Wx.dtype, copy=False)
