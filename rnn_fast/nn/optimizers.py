"""Keras 3's optimizers (update rules and defaults) with its gradient
clipping: clipnorm (each weight's gradient), global_clipnorm (all of them
together) or clipvalue (each element)."""
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .. import _core
from . import schedules
from .schedules import LearningRateSchedule

schedules = schedules  # keras.optimizers.schedules: rnn_fast.nn.optimizers.schedules


class Optimizer:
    """Keeps one list of slot arrays per weight; ``apply(weights, grads)``
    updates the weights in place."""

    slots: tuple = ()

    def __init__(self, learning_rate: float = 0.001, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 weight_decay: Optional[float] = None):
        name = type(self).__name__
        if weight_decay is not None and (isinstance(weight_decay, bool) or
                                         not isinstance(weight_decay, (int, float, np.integer, np.floating)) or
                                         not np.isfinite(weight_decay) or weight_decay < 0):
            raise ValueError(f"{name}: weight_decay must be a finite number >= 0 or None, got {weight_decay!r}")
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        if isinstance(learning_rate, dict):  # a saved schedule
            learning_rate = schedules.deserialize(learning_rate)
        given = [k for k, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"{name}: only one of clipnorm, clipvalue, global_clipnorm can be set, got {given}")
        for k in given:
            v = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}[k]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or \
                    not np.isfinite(v) or v <= 0:
                raise ValueError(f"{name}: {k} must be a finite number > 0, got {v!r}")
        self._learning_rate: Union[float, LearningRateSchedule] = 0.0
        if isinstance(learning_rate, LearningRateSchedule):
            self._learning_rate = learning_rate
        else:
            self.learning_rate = learning_rate
        self._lr = 0.0  # the rate of the update being made
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.iterations = 0
        self.state: List[List[np.ndarray]] = []  # state[i][j]: slot j of weight i

    @property
    def learning_rate(self) -> float:
        """The rate of the next update (a schedule's value at this step)."""
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(f"{type(self).__name__}: this optimizer was created with a LearningRateSchedule as its "
                            f"learning_rate, hence its learning rate is not settable")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or \
                not np.isfinite(value) or value < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a finite number >= 0 or a "
                             f"LearningRateSchedule, got {value!r}")
        self._learning_rate = float(value)

    def current_learning_rate(self) -> float:
        lr = self._learning_rate
        return float(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else lr

    def build(self, weights: List[np.ndarray]) -> None:
        self.state = [[np.zeros_like(w) for _ in self.slots] for w in weights]

    def clip(self, grads: List[np.ndarray]) -> List[np.ndarray]:
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
                out.append(g * g.dtype.type(self.clipnorm / norm) if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            norm = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads))
            if norm > self.global_clipnorm:
                return [g * g.dtype.type(self.global_clipnorm / norm) for g in grads]
            return grads
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def apply(self, weights: List[np.ndarray], grads: List[np.ndarray]) -> None:
        if len(self.state) != len(weights):
            self.build(weights)
        self._lr = self.current_learning_rate()
        grads = self.clip(grads)
        if self.weight_decay:  # Keras's decoupled decay, before the step: w -= w * weight_decay * lr
            for w in weights:
                w *= w.dtype.type(1 - self.weight_decay * self._lr)
        self.iterations += 1
        self._apply(weights, [g.astype(w.dtype, copy=False) for w, g in zip(weights, grads)])

    def _apply(self, weights: List[np.ndarray], grads: List[np.ndarray]) -> None:
        """The step, the gradients clipped and in the weights' dtypes."""
        for w, g, s in zip(weights, grads, self.state):
            self._update(w, g, s)

    def _update(self, w: np.ndarray, g: np.ndarray, slots: List[np.ndarray]) -> None:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        lr = self._learning_rate
        lr = schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else lr
        return {"learning_rate": lr, "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm, "weight_decay": self.weight_decay}


def _number(who: str, name: str, value, low: float, high: float, high_open: bool = False) -> float:
    """value as a float, or a ValueError naming it unless it is a finite real in [low, high] ([low, high))."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and \
        np.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bounds = f">= {low}" if high == np.inf else f"in [{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{who}: {name} must be a finite number {bounds}, got {value!r}")
    return float(value)


class SGD(Optimizer):
    """velocity = momentum * velocity - lr * g; w += velocity
    (nesterov: w += momentum * velocity - lr * g); plain w -= lr * g without momentum."""

    slots = ("momentum",)

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov = _number("SGD", "momentum", momentum, 0.0, 1.0), bool(nesterov)

    def _update(self, w, g, slots):
        lr = w.dtype.type(self._lr)
        if self.momentum == 0:
            w -= lr * g
            return
        m = slots[0]
        m *= w.dtype.type(self.momentum)
        m -= lr * g
        w += w.dtype.type(self.momentum) * m - lr * g if self.nesterov else m

    def get_config(self):
        return dict(super().get_config(), momentum=self.momentum, nesterov=self.nesterov)


class RMSprop(Optimizer):
    """v = rho * v + (1 - rho) g^2; step = lr g / sqrt(v + eps) (centered:
    v - mean_g^2); with momentum, m = momentum m + step and w -= m."""

    slots = ("velocity", "momentum", "average_gradient")

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _number("RMSprop", "rho", rho, 0.0, 1.0, high_open=True)
        self.momentum = _number("RMSprop", "momentum", momentum, 0.0, 1.0, high_open=True)
        self.epsilon = _number("RMSprop", "epsilon", epsilon, 0.0, np.inf)
        self.centered = bool(centered)

    def _update(self, w, g, slots):
        t = w.dtype.type
        v, m, avg = slots
        v *= t(self.rho)
        v += t(1 - self.rho) * g * g
        denom = v + t(self.epsilon)
        if self.centered:
            avg *= t(self.rho)
            avg += t(1 - self.rho) * g
            denom = denom - avg * avg
        step = t(self._lr) * g / np.sqrt(denom)
        if self.momentum > 0:
            m *= t(self.momentum)
            m += step
            w -= m
        else:
            w -= step

    def get_config(self):
        return dict(super().get_config(), rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                    centered=self.centered)


class Adam(Optimizer):
    """m += (1 - beta_1)(g - m); v += (1 - beta_2)(g^2 - v);
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + eps)."""

    slots = ("m", "v", "vhat")

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        who = type(self).__name__
        self.beta_1 = _number(who, "beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = _number(who, "beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = _number(who, "epsilon", epsilon, 0.0, np.inf)
        self.amsgrad = bool(amsgrad)

    def _apply(self, weights, grads):
        # One pass in C++ over every weight, with the values of the NumPy
        # expressions of rnn_fast.reference._adam_update (five NumPy passes
        # and their temporaries); one call for all (~10 us a call, 14 a batch
        # on the seed's model, when made per weight).
        n = self.iterations
        alpha = self._lr * np.sqrt(1 - self.beta_2 ** n) / (1 - self.beta_1 ** n)
        m, v, vhat = (list(slot) for slot in zip(*self.state)) if self.state else ([], [], [])
        _core._adam_update(list(weights), grads, m, v, vhat if self.amsgrad else None, alpha=alpha,
                           beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def get_config(self):
        return dict(super().get_config(), beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                    amsgrad=self.amsgrad)


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras's AdamW: weight_decay=0.004 by default)."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(value: Union[str, Optimizer]) -> Optimizer:
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str) and value.lower() in OPTIMIZERS:
        return OPTIMIZERS[value.lower()]()
    raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer object, got {value!r}")


def from_config(class_name: str, config: Dict[str, Any]) -> Optimizer:
    classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
    if class_name not in classes:
        raise ValueError(f"unknown optimizer class {class_name!r}; known: {sorted(classes)}")
    return classes[class_name](**config)
