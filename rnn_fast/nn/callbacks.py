"""Hooks into Sequential.fit, as Keras's callbacks."""
from typing import Dict, Optional

import numpy as np


class Callback:
    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Dict[str, float]) -> None:
        pass

    def on_train_end(self) -> None:
        pass


class EarlyStopping(Callback):
    """Stops training when `monitor` has not improved by min_delta for
    `patience` epochs; restore_best_weights puts back the best epoch's weights."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, mode: str = "auto",
                 restore_best_weights: bool = False):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta, self.patience = monitor, abs(float(min_delta)), int(patience)
        self.mode = mode if mode != "auto" else ("max" if "acc" in monitor else "min")
        self.restore_best_weights = bool(restore_best_weights)
        self.stopped_epoch = 0

    def on_train_begin(self) -> None:
        self.best: Optional[float] = None
        self.best_weights = None
        self.wait = 0

    def on_epoch_end(self, epoch: int, logs: Dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor {self.monitor!r} is not among the logged values {sorted(logs)}")
        value = logs[self.monitor]
        better = (self.best is None or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better and np.isfinite(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)
