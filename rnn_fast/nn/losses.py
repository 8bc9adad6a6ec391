"""Keras's losses, each returning the batch's mean loss and its gradient
with respect to the predictions.

As in Keras, a loss is averaged over the last axis (squared/absolute errors)
or summed over it (cross-entropies), then averaged over every other axis:
samples, and time steps for sequence outputs (the unmasked ones, given the
output's mask). Cross-entropies on
probabilities clip them to [1e-7, 1 - 1e-7] as Keras does; pass
``from_logits=True`` to a loss object to give them raw scores instead.
"""
from typing import Any, Dict, Tuple, Union

import numpy as np

EPSILON = 1e-7

Result = Tuple[float, np.ndarray]


def match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras accepts targets of shape (N,) for outputs of shape (N, 1)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    return y_true


def _check(y_true: np.ndarray, y_pred: np.ndarray, who: str) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{who}: y must have the model output's shape {y_pred.shape}, got {y_true.shape}")


def _weighted(loss_rows: np.ndarray, grad: np.ndarray, weights) -> Result:
    """The mean of loss_rows (each output row's loss), and grad (the mean's
    gradient), with each row weighted (weights: its shape, or None)."""
    if weights is None:
        return float(np.mean(loss_rows)), grad
    return float(np.mean(loss_rows * weights)), grad * weights[..., None]


def mask_weights(mask, y_pred: np.ndarray) -> np.ndarray:
    """Keras's weights of a masked output's rows (mask: y_pred.shape[:-1]):
    rows / unmasked rows on the unmasked ones, 0 on the others, so that the
    mean is over the unmasked rows alone (0 when there are none)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != y_pred.shape[:-1]:
        raise ValueError(f"loss: the output's mask must have shape {y_pred.shape[:-1]}, got {mask.shape}")
    valid = int(mask.sum())
    return np.where(mask, mask.size / valid if valid else 0.0, 0.0).astype(y_pred.dtype)


def mean_squared_error(y_true, y_pred, weights=None) -> Result:
    _check(y_true, y_pred, "mean_squared_error")
    diff = y_pred - y_true
    return _weighted(np.mean(diff * diff, axis=-1), (2.0 / diff.size) * diff, weights)


def mean_absolute_error(y_true, y_pred, weights=None) -> Result:
    _check(y_true, y_pred, "mean_absolute_error")
    diff = y_pred - y_true
    return _weighted(np.mean(np.abs(diff), axis=-1), np.sign(diff) / diff.size, weights)


def _log_sigmoid(z):
    return -np.logaddexp(0, -z)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    _check(y_true, y_pred, "binary_crossentropy")
    n = y_pred.size
    if from_logits:
        loss = -(y_true * _log_sigmoid(y_pred) + (1 - y_true) * _log_sigmoid(-y_pred))
        p = np.exp(_log_sigmoid(y_pred))
        return _weighted(np.mean(loss, axis=-1), (p - y_true) / n, weights)
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    loss = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # the clip passes no gradient
    grad = (-y_true / p + (1 - y_true) / (1 - p)) * inside / n
    return _weighted(np.mean(loss, axis=-1), grad, weights)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    _check(y_true, y_pred, "categorical_crossentropy")
    rows = y_pred.size // y_pred.shape[-1]
    if from_logits:
        logp = _log_softmax(y_pred)
        loss = -(y_true * logp).sum(axis=-1)
        grad = np.exp(logp) * y_true.sum(axis=-1, keepdims=True) - y_true
        return _weighted(loss, grad / rows, weights)
    # Keras rescales the probabilities to sum to 1, then clips.
    s = y_pred.sum(axis=-1, keepdims=True)
    q = y_pred / s
    p = np.clip(q, EPSILON, 1 - EPSILON)
    loss = -(y_true * np.log(p)).sum(axis=-1)
    dq = -y_true / p * ((q > EPSILON) & (q < 1 - EPSILON))
    grad = (dq - (dq * q).sum(axis=-1, keepdims=True)) / s  # through q = y_pred / sum(y_pred)
    return _weighted(loss, grad / rows, weights)


def _labels(y_true, y_pred, who: str) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape == y_pred.shape[:-1] + (1,):
        y = y[..., 0]
    if y.shape != y_pred.shape[:-1]:
        raise ValueError(f"{who}: y must hold class indices of shape {y_pred.shape[:-1]}, got {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ValueError(f"{who}: y must hold integer class indices")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{who}: y must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    C = y_pred.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= C):
        raise ValueError(f"{who}: class indices must be in [0, {C}), got values in [{y.min()}, {y.max()}]")
    return y


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    y = _labels(y_true, y_pred, "sparse_categorical_crossentropy")
    onehot = np.zeros_like(y_pred)
    np.put_along_axis(onehot, y[..., None], 1, axis=-1)
    return categorical_crossentropy(onehot, y_pred, from_logits, weights)


_FUNCTIONS = {
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


class Loss:
    """A loss by name with its options: Loss('binary_crossentropy', from_logits=True)."""

    def __init__(self, name: str, from_logits: bool = False):
        name = _ALIASES.get(name, name)
        if name not in _FUNCTIONS:
            raise ValueError(f"loss must be one of {sorted(_FUNCTIONS) + sorted(_ALIASES)}, got {name!r}")
        if from_logits and "crossentropy" not in name:
            raise ValueError(f"{name}: from_logits applies to cross-entropies only")
        self.name, self.from_logits = name, bool(from_logits)

    def __call__(self, y_true, y_pred, mask=None) -> Result:
        """(loss, gradient). mask (the output's, y_pred.shape[:-1]; Keras's):
        the loss is the mean over the unmasked rows alone (0 if none)."""
        y_pred = np.asarray(y_pred)
        weights = None if mask is None else mask_weights(mask, y_pred)
        if self.name == "sparse_categorical_crossentropy":
            return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits, weights)
        y_true = match_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
        if "crossentropy" in self.name:
            return _FUNCTIONS[self.name](y_true, y_pred, self.from_logits, weights)
        return _FUNCTIONS[self.name](y_true, y_pred, weights)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    def __init__(self):
        super().__init__("mean_squared_error")


class MeanAbsoluteError(Loss):
    def __init__(self):
        super().__init__("mean_absolute_error")


class BinaryCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("binary_crossentropy", from_logits)


class CategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("categorical_crossentropy", from_logits)


class SparseCategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("sparse_categorical_crossentropy", from_logits)


def get(value: Union[str, Loss]) -> Loss:
    if isinstance(value, Loss):
        return value
    if isinstance(value, str):
        return Loss(value)
    raise TypeError(f"loss must be a name or an rnn_fast.nn.losses.Loss, got {type(value).__name__}")


def from_config(config: Dict[str, Any]) -> Loss:
    return Loss(**config)
