"""Keras 3's learning-rate schedules (keras.optimizers.schedules): give one
as an optimizer's learning_rate and the rate of each step is schedule(step),
step counting the updates made before it (0 for the first)."""
import math
from typing import Any, Dict, Sequence

import numpy as np


class LearningRateSchedule:
    """Base class: __call__(step) -> learning rate."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError


def _positive(value, who: str) -> float:
    if isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{who} must be a finite number > 0, got {value!r}")
    return float(value)


def _rate(value, who: str) -> float:
    if isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{who} must be a finite number >= 0, got {value!r}")
    return float(value)


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the
    exponent floored with staircase."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "ExponentialDecay"):
        self.initial_learning_rate = _rate(initial_learning_rate, "ExponentialDecay: initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "ExponentialDecay: decay_steps")
        self.decay_rate = _rate(decay_rate, "ExponentialDecay: decay_rate")
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while step <=
    boundaries[1], ..., values[-1] after the last boundary."""

    def __init__(self, boundaries: Sequence[float], values: Sequence[float], name: str = "PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstantDecay: values must have one more element than boundaries "
                             f"({len(boundaries) + 1}), got {len(values)}")
        if any(b2 < b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must be increasing, got {boundaries}")
        self.boundaries = [float(b) for b in boundaries]
        self.values = [_rate(v, "PiecewiseConstantDecay: each value") for v in values]
        self.name = name

    def __call__(self, step: int) -> float:
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """A linear warm-up (to warmup_target over warmup_steps, when given),
    then a cosine from the rate reached down to alpha times it over
    decay_steps, constant after."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str = "CosineDecay",
                 warmup_target=None, warmup_steps: int = 0):
        self.initial_learning_rate = _rate(initial_learning_rate, "CosineDecay: initial_learning_rate")
        self.decay_steps = _positive(decay_steps, "CosineDecay: decay_steps")
        self.alpha = _rate(alpha, "CosineDecay: alpha")
        self.warmup_target = None if warmup_target is None else _rate(warmup_target, "CosineDecay: warmup_target")
        self.warmup_steps = _rate(warmup_steps, "CosineDecay: warmup_steps")
        self.name = name

    def _decay(self, step: float, start: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return (self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps + \
                self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule: LearningRateSchedule) -> Dict[str, Any]:
    name = type(schedule).__name__
    if SCHEDULES.get(name) is not type(schedule):
        raise ValueError(f"a custom learning-rate schedule ({name}) cannot be saved; save with a built-in one "
                         f"({sorted(SCHEDULES)}) or a float")
    return {"class_name": name, "config": schedule.get_config()}


def deserialize(spec: Dict[str, Any]) -> LearningRateSchedule:
    if not isinstance(spec, dict) or spec.get("class_name") not in SCHEDULES or not isinstance(spec.get("config"),
                                                                                               dict):
        raise ValueError(f"unknown learning-rate schedule {spec!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[spec["class_name"]](**spec["config"])
