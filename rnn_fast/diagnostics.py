"""Gradient-flow diagnostics: seeing vanishing and exploding gradients.

Backpropagation through time multiplies a gradient by the step Jacobian
dh_t/dh_{t-1} once per step it goes back; when those products shrink (or
grow) geometrically, what a model can learn from far back vanishes (or its
training blows up). These functions measure it on your own model and data:

- ``gradient_flow(model, x)``: for every recurrent layer of a Sequential
  model (or one layer, or ``cell_flow`` for a kernel call's arguments), the
  norm of the gradient with respect to each step's hidden state, as a
  function of the distance back from the step it was injected at; the norms
  of the step Jacobians (``jacobians=True``); and a verdict.
- ``plot_gradient_flow(flows)``: gradient norm against distance in steps
  (matplotlib, an optional extra).
- ``GradientFlowMonitor(x)``: a ``fit`` callback that records it every epoch
  and warns when it vanishes or explodes.

By default (``source='last'``) a unit gradient is injected at each layer's
last step and followed back: the layer's own propagation, whatever the loss.
``source='loss'`` follows the gradient of the model's compiled loss on
(x, y) instead, as training sees it.

The gradients come from the compiled step kernels (rnn_fast's
``*_step_forward`` / ``*_step_backward``), one step at a time, so every
step's gradient is seen; float32 or float64 as the model's weights.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from . import _core
from .nn.callbacks import Callback

__all__ = ["GradientFlow", "cell_flow", "gradient_flow", "plot_gradient_flow", "GradientFlowMonitor"]

# A gradient that falls (rises) by this factor over the steps it crosses has vanished (exploded).
FACTOR = 1e3


@dataclass
class GradientFlow:
    """One recurrent layer's gradient flow on one batch.

    norms[d]: the norm (over the batch) of the loss gradient with respect to
        the state d steps before the last (d = 0 is the last step, in the
        order the layer runs its steps: reversed for go_backwards); the
        state is h, and (h, c) for an LSTM.
    ratios[d]: norms[d] / norms[0].
    cell_norms[d]: the same for an LSTM's cell state, else None.
    jacobian_norms[d]: the mean over the sampled rows of the spectral norm of
        the step Jacobian d state_t / d state_(t-1) at that step (the state
        is (h, c) for an LSTM), with jacobians=True, else None.
    rate: the per-step factor of a geometric fit of ratios (<1 shrinks).
    horizon: the first distance at which the gradient has fallen by 1e3
        (None: not within the sequence); horizon_estimate: the distance the
        fitted rate takes to get there (inf if it never falls).
    verdict: 'vanishing' (fell by 1e3 within the sequence), 'exploding' (rose
        by 1e3), or 'stable'; 'n/a' when the gradient followed was injected
        at more than the last step (source='loss' on a layer whose every
        step feeds the loss), where the norms sum many steps' gradients.
    """
    name: str
    cell: str
    norms: np.ndarray
    ratios: np.ndarray
    rate: float
    horizon: Optional[int]
    horizon_estimate: float
    verdict: str
    cell_norms: Optional[np.ndarray] = None
    jacobian_norms: Optional[np.ndarray] = None

    @property
    def distance(self) -> np.ndarray:
        return np.arange(len(self.norms))

    def __repr__(self):
        end = f"{self.ratios[-1]:.3g}" if len(self.ratios) else "-"
        return (f"GradientFlow({self.name!r}, {self.cell}, T={len(self.norms)}, verdict={self.verdict!r}, "
                f"ratio over the sequence={end}, rate={self.rate:.4g}/step, horizon={self.horizon}, "
                f"horizon_estimate={self.horizon_estimate:.4g})")


# ----------------------------------------------------------------- the core

_STEPS = {
    "rnn": (_core.rnn_step_forward, _core.rnn_step_backward, _core.rnn_forward),
    "lstm": (_core.lstm_step_forward, _core.lstm_step_backward, _core.lstm_forward),
    "gru": (_core.gru_step_forward, _core.gru_step_backward, _core.gru_forward),
}


def _verdict(name, cell, norms, cell_norms=None, jacobian_norms=None, injected_once=True) -> GradientFlow:
    norms = np.asarray(norms, np.float64)
    base = norms[0] if len(norms) else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = norms / base if base > 0 else np.zeros_like(norms)
    ok = np.isfinite(ratios) & (ratios > 0)
    d = np.arange(len(norms))
    if ok.sum() >= 2:
        slope = np.polyfit(d[ok], np.log(ratios[ok]), 1)[0]
        rate = float(np.exp(slope))
    else:
        rate = 1.0 if len(norms) < 2 else 0.0
    fallen = np.flatnonzero(ratios <= 1 / FACTOR)
    risen = np.flatnonzero(ratios >= FACTOR)
    if risen.size and (not fallen.size or risen[0] < fallen[0]):
        verdict, horizon = "exploding", None
    elif fallen.size:
        verdict, horizon = "vanishing", int(fallen[0])
    else:
        verdict, horizon = "stable", None
    if not injected_once:  # the norms add up what many steps sent back: no propagation to judge
        verdict, horizon = "n/a", None
    estimate = float(horizon) if horizon is not None else \
        (math.log(1 / FACTOR) / math.log(rate) if 0 < rate < 1 else (0.0 if rate == 0 else math.inf))
    return GradientFlow(name, cell, norms, ratios, rate, horizon, estimate, verdict,
                        None if cell_norms is None else np.asarray(cell_norms, np.float64), jacobian_norms)


def _flow(name, cell, weights, options, x, states, dh=None, dc=None, jacobians=False, samples=8, seed=0):
    """GradientFlow of one layer run forward over x (N,T,D), in step order,
    from states (h0[, c0]); the injected gradient dh (N,T,H) (None: a unit
    one at the last step) and, for an LSTM, dc (N,H) at the last step."""
    step_forward, step_backward, _ = _STEPS[cell]
    N, T = x.shape[0], x.shape[1]
    H = weights[1].shape[0]
    dtype = x.dtype
    h = states[0]
    c = states[1] if cell == "lstm" else None
    caches, inputs = [], []
    for t in range(T):
        inputs.append((h, c))
        if cell == "lstm":
            h, c, cache = step_forward(x[:, t], h, c, *weights, **options)
        else:
            h, cache = step_forward(x[:, t], h, *weights, **options)
        caches.append(cache)
    once = dh is None or not np.any(dh[:, :-1])
    if dh is None:
        g = np.random.default_rng(seed).standard_normal((N, H))
        dh = np.zeros((N, T, H), dtype)
        if T:
            dh[:, -1] = (g / np.linalg.norm(g)).astype(dtype)
    carry_h = np.zeros((N, H), dtype)
    carry_c = np.zeros((N, H), dtype) if dc is None else np.asarray(dc, dtype)
    norms, cell_norms = np.zeros(T), (np.zeros(T) if cell == "lstm" else None)
    for t in reversed(range(T)):
        total = dh[:, t] + carry_h  # dL/dh_t; carry_c is dL/dc_t
        norms[T - 1 - t] = np.linalg.norm(total.astype(np.float64))
        if cell == "lstm":
            cell_norms[T - 1 - t] = np.linalg.norm(carry_c.astype(np.float64))
            norms[T - 1 - t] = math.hypot(norms[T - 1 - t], cell_norms[T - 1 - t])
            _, carry_h, carry_c, *_ = step_backward(total, carry_c, caches[t])
        else:
            _, carry_h, *_ = step_backward(total, caches[t])
    jac = _jacobian_norms(cell, weights, options, x, inputs, samples) if jacobians else None
    return _verdict(name, cell, norms, cell_norms, jac, once)


def _jacobian_norms(cell, weights, options, x, inputs, samples):
    """Per distance back from the last step: the mean spectral norm of the
    step Jacobians of the first `samples` rows. Each row is repeated once
    per state unit, and one step backward with the identity as the upstream
    gradient gives the Jacobian's rows."""
    step_forward, step_backward, _ = _STEPS[cell]
    N, T = x.shape[0], x.shape[1]
    H = weights[1].shape[0]
    n = min(N, samples)
    K = 2 * H if cell == "lstm" else H  # the state: (h, c) for an LSTM
    eye = np.eye(K, dtype=x.dtype)
    out = np.zeros(T)
    for t in range(T):
        h, c = inputs[t]
        rep = lambda a: np.repeat(a[:n], K, axis=0)  # noqa: E731: row i of sample s at s*K + i
        up = np.tile(eye, (n, 1))
        if cell == "lstm":
            _, _, cache = step_forward(rep(x[:, t]), rep(h), rep(c), *weights, **options)
            _, dh_prev, dc_prev, *_ = step_backward(up[:, :H], up[:, H:], cache)
            rows = np.concatenate([dh_prev, dc_prev], axis=1)
        else:
            _, cache = step_forward(rep(x[:, t]), rep(h), *weights, **options)
            _, rows, *_ = step_backward(up, cache)
        J = rows.reshape(n, K, K).astype(np.float64)  # J^T per sample: row i = d state_t[i] / d state_(t-1)
        out[T - 1 - t] = np.linalg.norm(J, 2, axis=(1, 2)).mean()
    return out


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# ----------------------------------------------------------------- the API

def cell_flow(cell: str, x, h0, Wx, Wh, b, *, bh=None, c0=None, activation: str = "tanh",
              gate_order: Optional[str] = None, reverse: bool = False, dh=None, jacobians: bool = False,
              jacobian_samples: int = 8, name: Optional[str] = None) -> GradientFlow:
    """The gradient flow of one kernel call: rnn_forward (cell 'rnn',
    activation), lstm_forward ('lstm', c0, gate_order) or gru_forward
    ('gru', bh, gate_order), with those functions' arguments. dh (N, T, H):
    the gradient injected at each step (None: a unit one at the last step
    processed). The arguments are checked by the sequence kernel itself."""
    if cell not in _STEPS:
        raise ValueError(f"cell_flow(): cell must be 'rnn', 'lstm' or 'gru', got {cell!r}")
    samples = _positive(jacobian_samples, "cell_flow(): jacobian_samples")
    forward = _STEPS[cell][2]
    if cell == "rnn":
        weights, options, extra = (Wx, Wh, b), {"activation": activation}, {}
    elif cell == "lstm":
        weights, options, extra = (Wx, Wh, b), {"gate_order": gate_order or "ifog"}, {"c0": c0}
    else:
        if bh is None:
            raise TypeError("cell_flow(): a GRU needs bh, its recurrent bias")
        weights, options, extra = (Wx, Wh, b, bh), {"gate_order": gate_order or "rzn"}, {}
    # The sequence kernel checks every argument (and names it), and gives the dtype.
    h = forward(x, h0, *weights, reverse=reverse, cache=False, **options, **extra)[0]
    dtype = h.dtype
    x = np.asarray(x, dtype)
    order = slice(None, None, -1) if reverse else slice(None)
    states = [np.asarray(h0, dtype)]
    if cell == "lstm":
        states.append(np.zeros_like(states[0]) if c0 is None else np.asarray(c0, dtype))
    if dh is not None:
        dh = np.asarray(dh, dtype)
        if dh.shape != h.shape:
            raise ValueError(f"cell_flow(): dh must have the shape of h, {h.shape}, got {dh.shape}")
        dh = dh[:, order]
    weights = tuple(np.asarray(w, dtype) for w in weights)
    return _flow(name or cell, cell, weights, options, x[:, order], states, dh, None, jacobians, samples)


def _recurrent_layers(model) -> list:
    """(display name, layer) of every recurrent layer of a model or layer, in order."""
    from .nn import layers as L

    found = []

    def visit(layer):
        if isinstance(layer, L.Bidirectional):
            found.append((f"{layer.name}/forward", layer.forward_layer))
            found.append((f"{layer.name}/backward", layer.backward_layer))
        elif isinstance(layer, L._Recurrent):
            found.append((layer.name, layer))

    for layer in getattr(model, "layers", [model]):
        visit(layer)
    return found


def _layer_cell(layer):
    from .nn import layers as L

    if isinstance(layer, L.LSTM):
        return "lstm", (layer.weights[0], layer.weights[1], layer._bias()), {"gate_order": "ifgo"}
    if isinstance(layer, L.GRU):
        return "gru", (layer.weights[0], layer.weights[1], *layer._biases()), {"gate_order": "zrn"}
    return "rnn", (layer.weights[0], layer.weights[1], layer._bias()), {"activation": layer.activation}


def gradient_flow(model, x, y=None, *, source: str = "last", jacobians: bool = False,
                  jacobian_samples: int = 8) -> List[GradientFlow]:
    """One GradientFlow per recurrent layer of model (a Sequential, or one
    layer; a Bidirectional gives its two directions), on the batch x.

    source='last': a unit gradient injected at each layer's last step (the
    layers' own propagation); source='loss': the gradient of the model's
    compiled loss on (x, y), as training sees it. The model is run in
    inference mode (no dropout); stateful layers keep their states. Masked
    (padded) batches are refused: give the sequences' common length."""
    from .nn import layers as L
    from .nn.models import Sequential

    if source not in ("last", "loss"):
        raise ValueError(f"gradient_flow(): source must be 'last' or 'loss', got {source!r}")
    samples = _positive(jacobian_samples, "gradient_flow(): jacobian_samples")
    if not isinstance(model, (Sequential, L.Layer)):
        raise TypeError(f"gradient_flow(): model must be a Sequential or a layer of rnn_fast.nn, got "
                        f"{type(model).__name__} (for a kernel call's arguments: cell_flow)")
    layers = _recurrent_layers(model)
    if not layers:
        raise ValueError("gradient_flow(): the model has no recurrent layer (SimpleRNN, LSTM, GRU, Bidirectional)")
    if source == "loss":
        if not isinstance(model, Sequential):
            raise ValueError("gradient_flow(): source='loss' needs a compiled Sequential model")
        if y is None:
            raise ValueError("gradient_flow(): source='loss' needs the targets y")
    saved = [(layer, None if layer.states is None else [s.copy() for s in layer.states]) for _, layer in layers]
    for _, layer in layers:
        layer._probe = {}
    try:
        if source == "loss":
            model.compute_gradients(x, y, training=False)
        elif isinstance(model, Sequential):
            model._forward(x, training=False)
        else:
            if not model.built:
                model.build(tuple(np.shape(x)[1:]))
            model.forward(x, training=False)
        flows = []
        for name, layer in layers:
            probe = layer._probe
            if probe.get("lengths") is not None:
                raise ValueError(f"gradient_flow(): {name} ran on a masked batch; the diagnostics follow every "
                                 f"step of every row: give sequences of one length (no Masking, mask_zero)")
            cell, weights, options = _layer_cell(layer)
            order = slice(None, None, -1) if layer.go_backwards else slice(None)
            dh = dc = None
            if source == "loss":
                if "dh" not in probe:
                    raise RuntimeError(f"gradient_flow(): no gradient reached {name}")
                dh = probe["dh"][:, order]
                dc = probe.get("dc")
            flows.append(_flow(name, cell, weights, options, probe["x"][:, order], probe["states"], dh, dc,
                               jacobians, samples))
        return flows
    finally:
        for layer, states in saved:
            layer._probe = None
            layer.states = states


def plot_gradient_flow(flows: Union[GradientFlow, Sequence[GradientFlow]], path: Optional[str] = None,
                       title: Optional[str] = None, ax=None):
    """Gradient norm (relative to the last step's) against the distance back
    in steps, on a log scale, one line per flow, with the 1e-3 line that
    marks a vanished gradient; saved to path if given. Returns the figure.
    Needs matplotlib (pip install "rnn_fast[plot]")."""
    try:
        import matplotlib
        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError('plot_gradient_flow() needs matplotlib: pip install "rnn_fast[plot]"') from e
    flows = [flows] if isinstance(flows, GradientFlow) else list(flows)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    for f in flows:
        r = np.where(f.ratios > 0, f.ratios, np.nan)
        ax.semilogy(f.distance, r, label=f"{f.name} ({f.verdict}, {f.rate:.3g}/step)")
    ax.axhline(1 / FACTOR, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("steps back from the last step")
    ax.set_ylabel("|dL/dh_t| / |dL/dh_T|")
    ax.set_title(title or "Gradient flow through time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if path is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return fig


class GradientFlowMonitor(Callback):
    """A fit callback: the gradient flow of every recurrent layer on the
    batch x (and y, for source='loss') at the end of every `every` epochs,
    kept in `history` (one dict per measured epoch: epoch, and per layer its
    GradientFlow), with a RuntimeWarning when a layer's gradient vanishes or
    explodes (warn=False: record only)."""

    def __init__(self, x, y=None, *, every: int = 1, source: str = "last", warn: bool = True):
        super().__init__()
        self.x, self.y = x, y
        self.every = _positive(every, "GradientFlowMonitor(): every")
        if source not in ("last", "loss"):
            raise ValueError(f"GradientFlowMonitor(): source must be 'last' or 'loss', got {source!r}")
        self.source, self.warn = source, bool(warn)
        self.history: List[Dict[str, object]] = []

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        if (epoch + 1) % self.every:
            return
        flows = gradient_flow(self.model, self.x, self.y, source=self.source)
        self.history.append({"epoch": epoch, **{f.name: f for f in flows}})
        if self.warn:
            for f in flows:
                if f.verdict != "stable":
                    warnings.warn(f"epoch {epoch + 1}: {f.name}'s gradient is {f.verdict} "
                                  f"({f.rate:.3g}x per step; {f.ratios[-1]:.2g} after {len(f.ratios) - 1} steps)",
                                  RuntimeWarning, stacklevel=2)

    def ratios(self, layer: str) -> np.ndarray:
        """(epochs measured, T): a layer's ratios at each measured epoch."""
        return np.array([h[layer].ratios for h in self.history])
