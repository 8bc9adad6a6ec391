"""The data fit, evaluate and predict take, in Keras 3's forms: arrays
(batched and shuffled here), a ``PyDataset``-like object (``len()`` batches,
``ds[i]`` the i-th, an optional ``on_epoch_end()``), or a generator or any
other iterable of batches. A batch is ``x``, ``(x,)``, ``(x, y)`` or
``(x, y, sample_weight)``. Epochs follow Keras's EpochIterator: with
``steps_per_epoch`` an epoch takes that many batches and the next epoch
continues where it stopped; without it, an epoch is one pass over the data.
"""
import warnings
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from . import backend
from .layers import positive_int

Batch = Tuple[Any, Optional[Any], Optional[Any]]

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
           "generate at least `steps_per_epoch * epochs` batches.")


def unpack(data, who: str) -> Batch:
    """Keras's unpack_x_y_sample_weight: (x, y, sample_weight)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError(f"{who}: a batch must be x, (x,), (x, y) or (x, y, sample_weight), got a tuple of "
                     f"{len(data)} elements")


def is_arrays(x) -> bool:
    """Arrays (or a list or dict of them, a model's several inputs), as opposed to a dataset or generator."""
    return isinstance(x, (np.ndarray, list, tuple, dict, float, int, np.generic)) or hasattr(x, "__array__")


def nsamples(x) -> int:
    """The samples in a model's checked inputs: an array, or a tuple of arrays (several inputs)."""
    return (x[0] if isinstance(x, tuple) else x).shape[0]


def take(x, index):
    """The rows index of a model's checked inputs, targets or weights (an
    array, a tuple of them with None for none, or None)."""
    if x is None:
        return None
    return tuple(None if a is None else a[index] for a in x) if isinstance(x, tuple) else x[index]


def is_pydataset(x) -> bool:
    return not is_arrays(x) and hasattr(x, "__getitem__") and hasattr(x, "__len__")


def is_iterable(x) -> bool:
    return not is_arrays(x) and (hasattr(x, "__iter__") or hasattr(x, "__next__"))


def class_weights(y, class_weight: Dict[int, float], who: str) -> np.ndarray:
    """Keras's class_weight_to_sample_weights: each sample's class (its
    one-hot argmax, or its label) looked up, 1 for classes not listed."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{who}: class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else y[..., 0]
    if y.ndim != 1:
        raise ValueError(f"{who}: class_weight needs one class per sample (targets of shape (N,), (N, 1) or "
                         f"one-hot (N, C)), got targets of shape {np.shape(y)}; use sample_weight of shape (N, T) "
                         f"for sequences")
    labels = np.round(y).astype(np.int64)
    return np.array([float(class_weight.get(int(c), 1.0)) for c in labels], np.float64)


class _Source:
    num_batches: Optional[int] = None

    def batches(self) -> Iterator[Batch]:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        pass


class ArraySource(_Source):
    def __init__(self, x, y, sample_weight, batch_size: int, shuffle: bool):
        self.x, self.y, self.sw, self.batch_size, self.shuffle = x, y, sample_weight, batch_size, shuffle
        self.n = nsamples(x)
        self.num_batches = -(-self.n // batch_size)

    def batches(self):
        order = backend.rng().permutation(self.n) if self.shuffle else None
        for step in range(self.num_batches):
            if order is None:
                sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
            else:
                sl = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield take(self.x, sl), take(self.y, sl), take(self.sw, sl)


class PyDatasetSource(_Source):
    def __init__(self, ds, shuffle: bool, who: str):
        self.ds, self.shuffle, self.who = ds, shuffle, who
        self.num_batches = len(ds)

    def batches(self):
        order = backend.rng().permutation(self.num_batches) if self.shuffle else range(self.num_batches)
        for i in order:
            yield unpack(self.ds[int(i)], self.who)

    def on_epoch_end(self):
        hook = getattr(self.ds, "on_epoch_end", None)
        if callable(hook):
            hook()


class IterableSource(_Source):
    def __init__(self, it, who: str):
        self.it, self.who = it, who

    def batches(self):
        for item in (self.it if hasattr(self.it, "__next__") else iter(self.it)):
            yield unpack(item, self.who)


class Epochs:
    """One fit/evaluate/predict's batches, epoch after epoch (Keras's
    EpochIterator). epoch() yields (step, (x, y, sample_weight))."""

    def __init__(self, source: _Source, steps: Optional[int], class_weight=None, who: str = "fit()",
                 check=None, needs_y: bool = False):
        """check(x, y, sample_weight) -> the batch's arrays, checked;
        needs_y: a batch without targets is refused (fit, evaluate)."""
        self.source, self.steps, self.class_weight, self.who = source, steps, class_weight, who
        self.check, self.needs_y = check, needs_y
        self._iterator: Optional[Iterator[Batch]] = None
        self._seen = 0
        self.exhausted = False  # an epoch found no data at all

    @property
    def num_batches(self) -> Optional[int]:
        return self.steps or self.source.num_batches

    def restart(self) -> None:
        """The next epoch starts from the data's beginning (steps_per_epoch or not)."""
        self._iterator, self._seen = None, 0

    def _batch(self, batch: Batch) -> Batch:
        x, y, sw = batch if self.check is None else self.check(*batch)
        if self.needs_y and y is None:
            raise ValueError(f"{self.who}: the data's batches must hold targets: (x, y) or (x, y, sample_weight)")
        if self.class_weight is not None and sw is None and y is not None:
            sw = class_weights(y, self.class_weight, self.who)
        return x, y, sw

    def epoch(self) -> Iterator[Tuple[int, Batch]]:
        total = self.steps or self.source.num_batches
        known = self.source.num_batches
        if total:
            if self._iterator is None or not self.steps:
                self._iterator, self._seen = self.source.batches(), 0
            for step in range(total):
                if known and self._seen >= known:
                    if self.steps:
                        warnings.warn(RAN_OUT, stacklevel=3)
                    break
                try:
                    batch = next(self._iterator)
                except StopIteration:
                    warnings.warn(RAN_OUT, stacklevel=3)
                    self._iterator = None
                    if step == 0:
                        self.exhausted = True
                    break
                self._seen += 1
                yield step, self._batch(batch)
            if known and self._seen >= known:
                self._iterator, self._seen = None, 0
        else:
            step = -1
            for step, batch in enumerate(self.source.batches()):
                yield step, self._batch(batch)
            if step < 0:
                warnings.warn(RAN_OUT, stacklevel=3)
                self.exhausted = True
        self.source.on_epoch_end()


def source(x, y, sample_weight, batch_size: Optional[int], shuffle: bool, who: str,
           check_arrays=None) -> _Source:
    """The data's source of batches; arrays are checked (check_arrays(x, y,
    sample_weight) -> the arrays) and batched here."""
    if x is None:
        raise ValueError(f"{who}: x is required")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{who}: x must be an array, a PyDataset-like object (__len__ and __getitem__), or a "
                        f"generator or iterable of (x, y[, sample_weight]) batches, got a {type(x).__name__}")
    if is_arrays(x):
        x, y, sample_weight = check_arrays(x, y, sample_weight)
        size = 32 if batch_size is None else positive_int(batch_size, f"{who}: batch_size")
        return ArraySource(x, y, sample_weight, size, shuffle)
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"{who}: {name} must not be given when x is a generator or dataset (it yields "
                             f"(x, y, sample_weight) batches itself)")
    if batch_size is not None:
        raise ValueError(f"{who}: batch_size must not be given when x is a generator or dataset (its batches "
                         f"have their own size)")
    if is_pydataset(x):
        return PyDatasetSource(x, shuffle, who)
    if is_iterable(x):
        if shuffle:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
                          "generator. The generator is expected to yield already-shuffled data.", stacklevel=3)
        return IterableSource(x, who)
    raise TypeError(f"{who}: x must be an array, a PyDataset-like object (__len__ and __getitem__), or a "
                    f"generator or iterable of (x, y[, sample_weight]) batches, got {type(x).__name__}")


def steps_arg(steps, who: str, name: str) -> Optional[int]:
    return None if steps is None else positive_int(steps, f"{who}: {name}")
