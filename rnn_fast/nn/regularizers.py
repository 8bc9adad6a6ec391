"""Weight penalties added to the training loss, as Keras's regularizers."""
from typing import Any, Dict, Optional

import numpy as np


class Regularizer:
    """penalty(w) = l1 * sum|w| + l2 * sum(w^2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        for name, value in (("l1", l1), ("l2", l2)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}(): {name} must be a finite number >= 0, got {value!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: np.ndarray) -> float:
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def gradient(self, w: np.ndarray) -> np.ndarray:
        return (self.l1 * np.sign(w) + 2 * self.l2 * w).astype(w.dtype, copy=False)

    def get_config(self) -> Dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)


class L2(Regularizer):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)


class L1L2(Regularizer):
    pass


def l1(l1: float = 0.01) -> Regularizer:
    return L1(l1)


def l2(l2: float = 0.01) -> Regularizer:
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    return L1L2(l1, l2)


def get(value: Any) -> Optional[Regularizer]:
    if value is None or isinstance(value, Regularizer):
        return value
    if value in ("l1", "l2", "l1_l2"):
        return {"l1": l1, "l2": l2, "l1_l2": l1_l2}[value]()
    raise ValueError(f"regularizer must be None, 'l1', 'l2', 'l1_l2' or a Regularizer, got {value!r}")


def from_config(config: Optional[Dict[str, Any]]) -> Optional[Regularizer]:
    return None if config is None else Regularizer(**config)
