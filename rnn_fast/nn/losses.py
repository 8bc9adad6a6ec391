"""Keras's losses, each giving the batch's loss and its gradient with
respect to the predictions.

A loss is one value per output row (``call``: the mean over the last axis
for squared/absolute/Huber errors, the sum over it for cross-entropies) and
that value's gradient (``gradient``). As Keras's ``sum_over_batch_size``
reduction, the batch's loss is then the sum of the rows' values times their
weights (``sample_weight``, and the output's mask: the unmasked rows count
rows / unmasked times) over the number of rows. Cross-entropies on
probabilities clip them to [1e-7, 1 - 1e-7] as Keras does; pass
``from_logits=True`` to give them raw scores instead.

A custom loss subclasses ``Loss`` and defines both methods::

    class LogCosh(losses.Loss):
        def call(self, y_true, y_pred):        # one value per row
            return np.mean(np.log(np.cosh(y_pred - y_true)), axis=-1)
        def gradient(self, y_true, y_pred):    # d call / d y_pred, y_pred's shape
            return np.tanh(y_pred - y_true) / y_pred.shape[-1]

A plain function ``fn(y_true, y_pred)`` is taken when it carries its
gradient as ``fn.gradient``; rnn_fast has no automatic differentiation, so
a function without one is refused.
"""
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from .naming import snake_case

EPSILON = 1e-7

Result = Tuple[float, np.ndarray]


def match_rank(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Keras accepts targets of shape (N,) for outputs of shape (N, 1)."""
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        return y_true[..., None]
    return y_true


def same_rank(x1: np.ndarray, x2: np.ndarray, expand_rank_1: bool = True):
    """Keras's squeeze_or_expand_to_same_rank: drops (or, from rank 1,
    adds) a last axis of 1 when the ranks differ by one."""
    x1, x2 = np.asarray(x1), np.asarray(x2)
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def mask_weights(mask, y_pred: np.ndarray) -> np.ndarray:
    """Keras's weights of a masked output's rows (mask: y_pred.shape[:-1]):
    rows / unmasked rows on the unmasked ones, 0 on the others, so that the
    mean is over the unmasked rows alone (0 when there are none)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != y_pred.shape[:-1]:
        raise ValueError(f"loss: the output's mask must have shape {y_pred.shape[:-1]}, got {mask.shape}")
    valid = int(mask.sum())
    return np.where(mask, mask.size / valid if valid else 0.0, 0.0).astype(y_pred.dtype)


def row_weights(sample_weight, rows_shape: Tuple[int, ...], who: str = "sample_weight") -> np.ndarray:
    """sample_weight as one weight per output row: shape (N,) (each sample's
    rows; for sequence outputs Keras raises here, rnn_fast weighs every step
    of the sample), (N, T) for sequence outputs, or either with a last axis
    of 1."""
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "fiub":
        raise TypeError(f"{who} must hold numbers, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.ndim == len(rows_shape) + 1 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim == 0 or w.shape != tuple(rows_shape[:w.ndim]):
        expected = " or ".join(str(tuple(rows_shape[:k])) for k in range(1, len(rows_shape) + 1))
        raise ValueError(f"{who} must have shape {expected} (one weight per sample"
                         f"{', or per time step' if len(rows_shape) > 1 else ''}), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{who} must be finite")
    return w.reshape(w.shape + (1,) * (len(rows_shape) - w.ndim))


def _log_sigmoid(z):
    return -np.logaddexp(0, -z)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class Loss:
    """A loss: ``call(y_true, y_pred)`` gives each output row's value and
    ``gradient(y_true, y_pred)`` that value's gradient; calling the object
    gives (the batch's weighted loss, its gradient). The built-in ones by
    name: ``Loss('binary_crossentropy', from_logits=True)``."""

    def __init__(self, name: Optional[str] = None, from_logits: bool = False):
        custom = type(self).call is not Loss.call
        if custom:
            if type(self).gradient is Loss.gradient:
                raise TypeError(f"{type(self).__name__}: a custom loss must define gradient(y_true, y_pred) beside "
                                f"call(); rnn_fast computes no gradients by itself")
            self.name = name if name is not None else snake_case(type(self).__name__)
            self.from_logits = bool(from_logits)
            self._impl: Optional[_Builtin] = None
            return
        if name is None:
            raise TypeError("Loss(): give the name of a built-in loss, e.g. Loss('mse'), or subclass Loss")
        name = _ALIASES.get(name, name)
        if name not in _BUILTINS:
            raise ValueError(f"loss must be one of {sorted(_BUILTINS) + sorted(_ALIASES)}, got {name!r}")
        if from_logits and "crossentropy" not in name:
            raise ValueError(f"{name}: from_logits applies to cross-entropies only")
        self.name, self.from_logits = name, bool(from_logits)
        self._impl = _BUILTINS[name]

    # ---- what a custom loss defines ----------------------------------------
    def call(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Each output row's loss (shape y_pred.shape[:-1])."""
        return self._impl.rows(self, self._targets(y_true, y_pred), y_pred)

    def gradient(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """The gradient of each row's loss with respect to y_pred (y_pred's shape)."""
        return self._impl.grad(self, self._targets(y_true, y_pred), y_pred)

    # ---- the reduction ---------------------------------------------------------
    def _targets(self, y_true, y_pred: np.ndarray) -> np.ndarray:
        if self._impl is not None and self._impl.sparse:
            return _labels(y_true, y_pred, self.name)
        y_true = match_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{self.name}: y must have the model output's shape {y_pred.shape}, got {y_true.shape}")
        return y_true

    def __call__(self, y_true, y_pred, mask=None, sample_weight=None) -> Result:
        """(loss, gradient). mask (the output's, y_pred.shape[:-1]; Keras's):
        the loss is the mean over the unmasked rows alone (0 if none).
        sample_weight: see row_weights."""
        y_pred = np.asarray(y_pred)
        rows_shape = y_pred.shape[:-1]
        weights = None if mask is None else mask_weights(mask, y_pred)
        if sample_weight is not None:
            sw = row_weights(sample_weight, rows_shape).astype(y_pred.dtype)
            weights = sw if weights is None else weights * sw
        if self._impl is not None:
            y_true = self._targets(y_true, y_pred)
            rows, grad = self._impl.rows(self, y_true, y_pred), self._impl.grad(self, y_true, y_pred)
        else:  # as Keras hands a custom loss its targets: in the prediction's dtype, ranks matched
            y_true, _ = same_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
            rows = np.asarray(self.call(y_true, y_pred))
            grad = np.asarray(self.gradient(y_true, y_pred))
        if rows.shape != rows_shape:
            raise ValueError(f"loss {self.name!r}: call() must return one value per output row, shape "
                             f"{rows_shape}, got {rows.shape}")
        if grad.shape != y_pred.shape:
            raise ValueError(f"loss {self.name!r}: gradient() must have y_pred's shape {y_pred.shape}, "
                             f"got {grad.shape}")
        n = max(int(np.prod(rows_shape)), 1)
        if weights is None:
            return float(np.mean(rows)), grad / n
        return float(np.sum(rows * weights) / n), grad * (weights[..., None] / n)

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class _Builtin:
    def __init__(self, rows: Callable, grad: Callable, sparse: bool = False):
        self.rows, self.grad, self.sparse = rows, grad, sparse


def _cross_rows(loss: Loss, y, p):
    if loss.from_logits:
        return -(y * _log_softmax(p)).sum(axis=-1)
    q = p / p.sum(axis=-1, keepdims=True)  # Keras rescales the probabilities to sum to 1, then clips
    return -(y * np.log(np.clip(q, EPSILON, 1 - EPSILON))).sum(axis=-1)


def _cross_grad(loss: Loss, y, p):
    if loss.from_logits:
        return np.exp(_log_softmax(p)) * y.sum(axis=-1, keepdims=True) - y
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    dq = -y / np.clip(q, EPSILON, 1 - EPSILON) * ((q > EPSILON) & (q < 1 - EPSILON))
    return (dq - (dq * q).sum(axis=-1, keepdims=True)) / s  # through q = p / sum(p)


def _binary_rows(loss: Loss, y, p):
    if loss.from_logits:
        return np.mean(-(y * _log_sigmoid(p) + (1 - y) * _log_sigmoid(-p)), axis=-1)
    q = np.clip(p, EPSILON, 1 - EPSILON)
    return np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q)), axis=-1)


def _binary_grad(loss: Loss, y, p):
    C = p.shape[-1]
    if loss.from_logits:
        return (np.exp(_log_sigmoid(p)) - y) / C
    q = np.clip(p, EPSILON, 1 - EPSILON)
    inside = (p > EPSILON) & (p < 1 - EPSILON)  # the clip passes no gradient
    return (-y / q + (1 - y) / (1 - q)) * inside / C


def _sparse(fn):
    def onehot(loss, y, p):
        t = np.zeros_like(p)
        np.put_along_axis(t, y[..., None], 1, axis=-1)
        return fn(loss, t, p)
    return onehot


def _huber_parts(loss, y, p):
    d = p - y
    return d, np.abs(d) <= loss.delta, p.dtype.type(loss.delta)


def _huber_rows(loss, y, p):
    d, small, delta = _huber_parts(loss, y, p)
    return np.mean(np.where(small, 0.5 * d * d, delta * np.abs(d) - 0.5 * delta * delta), axis=-1)


def _huber_grad(loss, y, p):
    d, small, delta = _huber_parts(loss, y, p)
    return np.where(small, d, delta * np.sign(d)) / p.shape[-1]


def _msle_parts(y, p):
    eps = p.dtype.type(EPSILON)
    a = np.log(np.maximum(p, eps) + 1)
    b = np.log(np.maximum(y, eps) + 1)
    return a - b, eps


def _msle_rows(loss, y, p):
    d, _ = _msle_parts(y, p)
    return np.mean(d * d, axis=-1)


def _msle_grad(loss, y, p):
    d, eps = _msle_parts(y, p)
    return 2 * d / (np.maximum(p, eps) + 1) * (p > eps) / p.shape[-1]


_BUILTINS: Dict[str, _Builtin] = {
    "mean_squared_error": _Builtin(lambda loss, y, p: np.mean((p - y) ** 2, axis=-1),
                                   lambda loss, y, p: 2 * (p - y) / p.shape[-1]),
    "mean_absolute_error": _Builtin(lambda loss, y, p: np.mean(np.abs(p - y), axis=-1),
                                    lambda loss, y, p: np.sign(p - y) / p.shape[-1]),
    "mean_squared_logarithmic_error": _Builtin(_msle_rows, _msle_grad),
    "huber": _Builtin(_huber_rows, _huber_grad),
    "binary_crossentropy": _Builtin(_binary_rows, _binary_grad),
    "categorical_crossentropy": _Builtin(_cross_rows, _cross_grad),
    "sparse_categorical_crossentropy": _Builtin(_sparse(_cross_rows), _sparse(_cross_grad), sparse=True),
}
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "msle": "mean_squared_logarithmic_error",
            "huber_loss": "huber"}


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


def _builtin_loss(name: str, y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    loss = Loss(name, from_logits=from_logits) if "crossentropy" in name else Loss(name)
    return loss(y_true, np.asarray(y_pred), sample_weight=weights)


def mean_squared_error(y_true, y_pred, weights=None) -> Result:
    return _builtin_loss("mean_squared_error", y_true, y_pred, weights=weights)


def mean_absolute_error(y_true, y_pred, weights=None) -> Result:
    return _builtin_loss("mean_absolute_error", y_true, y_pred, weights=weights)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    return _builtin_loss("binary_crossentropy", y_true, y_pred, from_logits, weights)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    return _builtin_loss("categorical_crossentropy", y_true, y_pred, from_logits, weights)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, weights=None) -> Result:
    return _builtin_loss("sparse_categorical_crossentropy", y_true, y_pred, from_logits, weights)


class MeanSquaredError(Loss):
    def __init__(self):
        super().__init__("mean_squared_error")


class MeanAbsoluteError(Loss):
    def __init__(self):
        super().__init__("mean_absolute_error")


class MeanSquaredLogarithmicError(Loss):
    def __init__(self):
        super().__init__("mean_squared_logarithmic_error")


class Huber(Loss):
    """0.5 e^2 where |e| <= delta, delta (|e| - 0.5 delta) beyond, averaged over the last axis."""

    def __init__(self, delta: float = 1.0):
        super().__init__("huber")
        if not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"Huber: delta must be a finite number > 0, got {delta!r}")
        self.delta = float(delta)

    def get_config(self):
        return {"name": "huber", "from_logits": False, "delta": self.delta}


class BinaryCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("binary_crossentropy", from_logits)


class CategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("categorical_crossentropy", from_logits)


class SparseCategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False):
        super().__init__("sparse_categorical_crossentropy", from_logits)


class LossFunctionWrapper(Loss):
    """A function fn(y_true, y_pred) -> one value per row, with its
    gradient(y_true, y_pred) -> d value / d y_pred, as a Loss."""

    def __init__(self, fn: Callable, gradient: Callable, name: Optional[str] = None):
        self.fn, self.grad_fn = fn, gradient
        super().__init__(name if name is not None else getattr(fn, "__name__", "loss"))

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def gradient(self, y_true, y_pred):
        return self.grad_fn(y_true, y_pred)

    def get_config(self):
        return {"name": self.name}


def get(value: Union[str, Loss, Callable]) -> Loss:
    if isinstance(value, Loss):
        return value
    if isinstance(value, str):
        return Huber() if _ALIASES.get(value, value) == "huber" else Loss(value)
    if callable(value):
        grad = getattr(value, "gradient", None)
        if callable(grad):
            return LossFunctionWrapper(value, grad)
        raise TypeError(f"loss {getattr(value, '__name__', value)!r}: a custom loss must come with its gradient "
                        f"(rnn_fast has no automatic differentiation): give the function a gradient attribute, "
                        f"fn.gradient = lambda y_true, y_pred: <d fn / d y_pred>, or subclass "
                        f"rnn_fast.nn.losses.Loss with call() and gradient()")
    raise TypeError(f"loss must be a name, an rnn_fast.nn.losses.Loss or a function, got {type(value).__name__}")


def from_config(config: Dict[str, Any], custom_objects: Optional[Dict[str, Any]] = None) -> Loss:
    config = dict(config)
    name = config.get("name")
    if custom_objects and name in custom_objects:
        return get(custom_objects[name]() if isinstance(custom_objects[name], type) else custom_objects[name])
    if _ALIASES.get(name, name) == "huber":
        return Huber(delta=float(config.get("delta", 1.0)))
    if _ALIASES.get(name, name) not in _BUILTINS:
        raise ValueError(f"the loss {name!r} is a custom one: load with compile=False, or pass it as "
                         f"custom_objects={{{name!r}: <the loss>}}")
    return Loss(name, from_logits=bool(config.get("from_logits", False)))
