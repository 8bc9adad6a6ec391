"""Keras 3's metrics: objects that accumulate over the batches of an epoch
(``update_state``, ``result``, ``reset_state``), as ``compile(metrics=...,
weighted_metrics=...)`` uses them.

Every metric keeps its state as one float64 vector of sums (``state``), so
that the states of several processes add up to the state of one process
that saw all their data (rnn_fast.nn.distributed sums them).

- Mean-of-values metrics (accuracies, errors, custom functions) keep
  ``[total, count]`` and follow ``keras.metrics.MeanMetricWrapper``: a
  function's values are reduced to one per sample (the mean over any axes
  beyond the weights'), weighted, summed, and divided by the summed weights.
- ``Precision``, ``Recall`` and ``AUC`` keep confusion counts at their
  thresholds, with Keras's thresholds and bucketing.

A custom metric is any callable ``fn(y_true, y_pred)`` returning one value
per sample (or per time step): it is wrapped as Keras wraps it, under its
function name.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import losses
from .naming import auto_name, snake_case

EPSILON = 1e-7


def _sample_values(values: np.ndarray, weights: Optional[np.ndarray]):
    """Keras's reduce_to_samplewise_values: (per-sample values, their
    weights or None)."""
    values = np.asarray(values, dtype=np.float64)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        values, weights = losses.same_rank(values, weights)
        if values.ndim > weights.ndim:
            values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
        weights = np.broadcast_to(weights, values.shape)
        values = values * weights
        if weights.ndim > 1:
            weights = weights.mean(axis=tuple(range(1, weights.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, weights


class Metric:
    """Base class: a float64 state vector of sums, updated per batch.
    direction: 'up' or 'down', which way it improves (None: unknown), as
    monitoring callbacks in mode='auto' need."""

    direction: Optional[str] = None

    def __init__(self, name: Optional[str] = None, size: int = 2):
        self.name = name if name is not None else auto_name(snake_case(type(self).__name__))
        self.state = np.zeros(size, np.float64)

    def reset_state(self) -> None:
        self.state[...] = 0

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class Mean(Metric):
    """The weighted mean of the values given to update_state(values, sample_weight)."""

    def update_state(self, values, sample_weight=None) -> None:  # type: ignore[override]
        values, weights = _sample_values(np.asarray(values), sample_weight)
        self.state[0] += np.sum(values)
        self.state[1] += np.sum(weights) if weights is not None else (values.shape[0] if values.ndim else 1)

    def result(self) -> float:
        return float(self.state[0] / self.state[1]) if self.state[1] else 0.0


class MeanMetricWrapper(Mean):
    """fn(y_true, y_pred) -> values (one per sample, or per step), averaged
    over the samples (weighted) as keras.metrics.MeanMetricWrapper."""

    def __init__(self, fn: Callable, name: Optional[str] = None, **fn_kwargs):
        super().__init__(name if name is not None else getattr(fn, "__name__", "metric"))
        self.fn, self.fn_kwargs = fn, fn_kwargs
        fn_name = getattr(fn, "__name__", "")
        self.direction = "up" if fn_name.endswith("accuracy") else "down" if fn_name in _FUNCTIONS else None

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:  # type: ignore[override]
        values = self.fn(y_true, y_pred, **self.fn_kwargs)
        values = np.asarray(values)
        if values.dtype.kind not in "fiub":
            raise TypeError(f"metric {self.name!r}: its function must return numbers, got dtype {values.dtype}")
        super().update_state(values, sample_weight)


# ---------------------------------------------------------------------------
# The functions behind the mean metrics (one value per output row)
# ---------------------------------------------------------------------------
def _pair(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    return losses.same_rank(y_true, y_pred)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    """Keras's: whether y_true equals the thresholded prediction (so a soft
    label such as 0.7 never counts as right), averaged over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    right = (y_pred > threshold).astype(np.float64) == y_true
    return np.mean(right, axis=-1) if right.ndim > 1 else right.astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return (np.argmax(y_true, -1) == np.argmax(y_pred, -1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return (np.argmax(y_pred, -1) == y_true).astype(np.float64)


def _rows(name: str) -> Callable:
    """A loss's per-row values as a metric function."""
    def fn(y_true, y_pred):
        y_pred = np.asarray(y_pred, dtype=np.float64)
        return losses.get(name).call(np.asarray(y_true), y_pred)
    fn.__name__ = name
    return fn


_FUNCTIONS: Dict[str, Callable] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
}
for _name in ("mean_squared_error", "mean_absolute_error", "mean_squared_logarithmic_error",
              "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"):
    _FUNCTIONS[_name] = _rows(_name)
_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "msle": "mean_squared_logarithmic_error"}


# ---------------------------------------------------------------------------
# Confusion metrics
# ---------------------------------------------------------------------------
def _confusion(y_true, y_pred, thresholds: np.ndarray, evenly: bool, sample_weight=None):
    """(tp, fp, tn, fn) at each threshold, weighted, as Keras's
    update_confusion_matrix_variables counts them (prediction > threshold is
    positive; evenly spaced thresholds by Keras's buckets)."""
    y_pred = np.asarray(y_pred)
    dtype = y_pred.dtype if y_pred.dtype.kind == "f" else np.dtype(np.float32)
    y_pred = y_pred.astype(dtype, copy=False)
    y_true = np.asarray(y_true)
    y_pred, y_true = losses.same_rank(y_pred, y_true)
    if sample_weight is None:
        w = np.ones(y_pred.shape, np.float64)
    else:
        w = np.asarray(sample_weight, np.float64)[..., None]
        _, w = losses.same_rank(y_true, w, expand_rank_1=False)
        w = np.broadcast_to(w, y_pred.shape)
    truth = (y_true != 0).astype(np.float64).ravel()
    w = np.asarray(w, np.float64).ravel()
    pred = y_pred.ravel()
    n = len(thresholds)
    pos, neg = truth * w, (1.0 - truth) * w
    if evenly:
        with_eps = thresholds[0] < 0.0 or thresholds[-1] > 1.0
        p = np.clip(pred, 0, 1)
        buckets = np.ceil(p * dtype.type(n - 1)) - 1
        if with_eps:
            buckets = np.maximum(buckets, 0)
        buckets = buckets.astype(np.int64)
        tp = np.bincount(buckets, pos, n)[::-1].cumsum()[::-1]
        fp = np.bincount(buckets, neg, n)[::-1].cumsum()[::-1]
    else:
        above = pred[None, :] > thresholds.astype(dtype)[:, None]
        tp, fp = above @ pos, above @ neg
    return tp, fp, neg.sum() - fp, pos.sum() - tp


def _evenly(thresholds: np.ndarray) -> bool:
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(1, n - 1, dtype=np.float64) / (n - 1)
    return bool(np.allclose(thresholds[1:-1], even, atol=EPSILON))


class _Confusion(Metric):
    direction = "up"

    def __init__(self, thresholds=None, name: Optional[str] = None):
        values = [0.5] if thresholds is None else list(np.atleast_1d(thresholds))
        for t in values:
            if not 0.0 <= float(t) <= 1.0:
                raise ValueError(f"{type(self).__name__}: thresholds must be in [0, 1], got {t!r}")
        self.thresholds = np.array(values, np.float64)
        self.init_thresholds = thresholds
        super().__init__(name, size=4 * len(values))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        counts = _confusion(y_true, y_pred, self.thresholds, _evenly(self.thresholds), sample_weight)
        self.state += np.concatenate(counts)

    def _counts(self):
        return self.state.reshape(4, -1)

    def _ratio(self, a, b):
        out = np.where(a + b > 0, a / np.where(a + b > 0, a + b, 1), 0.0)
        return float(out[0]) if len(out) == 1 else out

    def get_config(self):
        return {"name": self.name, "thresholds": self.init_thresholds}


class Precision(_Confusion):
    """TP / (TP + FP) at the threshold(s) (0.5 by default)."""

    def result(self):
        tp, fp, _, _ = self._counts()
        return self._ratio(tp, fp)


class Recall(_Confusion):
    """TP / (TP + FN) at the threshold(s) (0.5 by default)."""

    def result(self):
        tp, _, _, fn = self._counts()
        return self._ratio(tp, fn)


class AUC(Metric):
    """The area under the ROC or PR curve from confusion counts at
    num_thresholds thresholds, Keras's approximation (summation_method
    'interpolation', 'minoring' or 'majoring')."""

    direction = "up"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: Optional[str] = None, thresholds=None, from_logits: bool = False):
        if curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', "
                             f"got {summation_method!r}")
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            self._evenly = _evenly(np.array([0.0] + inner + [1.0]))
        else:
            if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got {num_thresholds!r}")
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self.num_thresholds = len(inner) + 2
        self.thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve, self.summation_method, self.from_logits = curve.upper(), summation_method, bool(from_logits)
        self._init = dict(num_thresholds=num_thresholds, curve=curve, summation_method=summation_method,
                          thresholds=thresholds, from_logits=from_logits)
        super().__init__(name, size=4 * self.num_thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_pred = np.asarray(y_pred)
        if self.from_logits:
            y_pred = (1.0 / (1.0 + np.exp(-y_pred.astype(np.float64)))).astype(y_pred.dtype)
        self.state += np.concatenate(_confusion(y_true, y_pred, self.thresholds, self._evenly, sample_weight))

    def result(self) -> float:
        tp, fp, tn, fn = self.state.reshape(4, -1)
        div = lambda a, b: np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)  # noqa: E731 (divide_no_nan)
        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = div(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            ratio = np.where((p[:-1] > 0) & (p[1:] > 0), div(p[:-1], np.maximum(p[1:], 0)), 1.0)
            return float(np.sum(div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))
        recall = div(tp, tp + fn)
        if self.curve == "ROC":
            x, y = div(fp, fp + tn), recall
        else:
            x, y = recall, div(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        return dict(self._init, name=self.name)


class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        super().__init__(binary_accuracy, name, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(categorical_accuracy, name)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(sparse_categorical_accuracy, name)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_squared_error"):
        super().__init__(_FUNCTIONS["mean_squared_error"], name)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name: str = "mean_absolute_error"):
        super().__init__(_FUNCTIONS["mean_absolute_error"], name)


_CLASSES = {"auc": AUC, "precision": Precision, "recall": Recall}


def is_binary_or_sparse(y_true_shape, y_pred_shape):
    """Keras 3's choice for 'accuracy': binary when the output has one
    column, sparse when the targets have one axis fewer (or one column
    against several), categorical otherwise."""
    binary = y_pred_shape[-1] == 1
    sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return binary, sparse


def get(identifier: Union[str, Metric, Callable], y_true_shape=None, y_pred_shape=None) -> Metric:
    """A metric object from what compile() was given (Keras's get_metric):
    a name (logged under that name), a Metric (a fresh copy is not made:
    its state is the model's), or a callable fn(y_true, y_pred)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            binary, sparse = is_binary_or_sparse(y_true_shape, y_pred_shape)
            fn = (binary_accuracy if binary else sparse_categorical_accuracy if sparse else categorical_accuracy)
            return MeanMetricWrapper(fn, identifier)
        if key in _CLASSES:
            metric = _CLASSES[key]()
            metric.name = identifier
            return metric
        name = _ALIASES.get(key, key)
        if name in _FUNCTIONS:
            return MeanMetricWrapper(_FUNCTIONS[name], identifier)
        raise ValueError(f"unknown metric {identifier!r}; known: {known()}, a Metric object or a function "
                         f"fn(y_true, y_pred)")
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"a metric must be a name, an rnn_fast.nn.metrics.Metric or a function fn(y_true, y_pred), "
                    f"got {type(identifier).__name__}")


def known() -> List[str]:
    return sorted(["accuracy", "acc", *_FUNCTIONS, *_ALIASES, "AUC", "Precision", "Recall"])


def check(identifiers: Optional[Sequence], who: str) -> List:
    """compile()'s metrics lists, refused early if something cannot be a metric."""
    if identifiers is None:
        return []
    if isinstance(identifiers, (str, Metric)) or callable(identifiers):
        raise TypeError(f"{who} must be a list of metrics, got {identifiers!r}; write [{identifiers!r}]")
    out = list(identifiers)
    for m in out:
        if isinstance(m, str):
            get(m, (1, 2), (1, 2))  # a name is checked now
        elif not (isinstance(m, Metric) or callable(m)):
            get(m)
    return out


def serialize(spec) -> Any:
    """compile()'s metric spec as JSON: a name as it is; a built-in metric
    object as its class and config; a function or custom metric by name
    (given back at loading through custom_objects)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Metric) and _CLASSES.get(type(spec).__name__.lower()) is type(spec):
        return {"class_name": type(spec).__name__, "config": spec.get_config()}
    if isinstance(spec, MeanMetricWrapper) and type(spec).__name__ in _WRAPPERS:
        return {"class_name": type(spec).__name__, "config": {"name": spec.name}}
    name = spec.name if isinstance(spec, Metric) else getattr(spec, "__name__", type(spec).__name__)
    return {"custom": name}


def deserialize(spec, custom_objects: Optional[Dict[str, Any]] = None):
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and "custom" in spec:
        name = spec["custom"]
        if custom_objects and name in custom_objects:
            return custom_objects[name]
        raise ValueError(f"the metric {name!r} is a custom one: load with compile=False, or pass it as "
                         f"custom_objects={{{name!r}: <the metric>}}")
    classes = dict(_WRAPPERS, **{cls.__name__: cls for cls in _CLASSES.values()})
    if not isinstance(spec, dict) or spec.get("class_name") not in classes or not isinstance(spec.get("config"), dict):
        raise ValueError(f"unknown metric {spec!r}")
    return classes[spec["class_name"]](**spec["config"])


_WRAPPERS = {cls.__name__: cls for cls in (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                           MeanSquaredError, MeanAbsoluteError)}
