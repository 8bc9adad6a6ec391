"""keras.Sequential on rnn_fast's layers: compile, fit (with validation,
shuffling, a progress bar and a History), evaluate, predict, summary, and
save / load_model in a file that needs no pickle."""
import contextlib
import hashlib
import io
import json
import sys
import time
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import backend, distributed, keras_file, layers as layers_mod, losses, optimizers

FORMAT = "rnn_fast.nn/1"
_MANIFEST = "__rnn_fast_model__"


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------
def _accuracy_kind(loss_name: str) -> str:
    """Keras resolves 'accuracy' by the loss it is compiled with."""
    return {"binary_crossentropy": "binary_accuracy", "categorical_crossentropy": "categorical_accuracy",
            "sparse_categorical_crossentropy": "sparse_categorical_accuracy"}.get(loss_name, "accuracy")


def _metric(kind: str, y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool, mask=None) -> float:
    """Mean of the metric over samples (and time steps; those of the mask
    only, as Keras weighs a metric by its output's mask)."""
    if kind != "sparse_categorical_accuracy":
        y_true = losses.match_rank(np.asarray(y_true), y_pred)
    if kind == "binary_accuracy":
        threshold = 0.0 if from_logits else 0.5
        values = np.mean((y_pred > threshold) == (np.asarray(y_true) > 0.5), axis=-1)
    elif kind == "categorical_accuracy":
        values = np.argmax(y_pred, -1) == np.argmax(y_true, -1)
    elif kind == "sparse_categorical_accuracy":
        y = np.asarray(y_true)
        y = y[..., 0] if y.shape == y_pred.shape[:-1] + (1,) else y
        values = np.argmax(y_pred, -1) == y
    elif kind == "accuracy":
        values = np.mean(np.asarray(y_true) == y_pred, axis=-1)
    elif kind in ("mse", "mean_squared_error"):
        values = np.mean(np.square(y_pred - y_true), axis=-1)
    elif kind in ("mae", "mean_absolute_error"):
        values = np.mean(np.abs(y_pred - y_true), axis=-1)
    else:
        raise AssertionError(kind)
    if mask is None:
        return float(np.mean(values))
    mask = np.broadcast_to(mask, values.shape)
    valid = mask.sum()
    return float(np.sum(values * mask) / valid) if valid else 0.0


_METRICS = ("accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
            "mse", "mean_squared_error", "mae", "mean_absolute_error")


class History:
    """What fit returns: history[name] is a list with one value per epoch."""

    def __init__(self):
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []
        self.params: Dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class _Progress:
    """Keras's progress bar: redrawn in place on a terminal, one line per
    epoch otherwise (logs and notebooks)."""

    def __init__(self, total: int, verbose: Union[int, str], stream=None):
        self.total, self.verbose = total, 1 if verbose == "auto" else int(verbose)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def update(self, done: int, values: Dict[str, float], final: bool = False) -> None:
        if self.verbose == 0 or (self.verbose == 2 and not final):
            return
        now = time.perf_counter()
        if not final and (not self.tty or now - self.last_draw < 0.1):
            return
        self.last_draw = now
        elapsed = now - self.start
        metrics = "".join(f" - {k}: {v:.4f}" for k, v in values.items())
        if self.verbose == 2:
            line = f"{elapsed:.0f}s{metrics}"
        else:
            width = 30
            filled = width if done >= self.total else int(width * done / max(self.total, 1))
            bar = "=" * max(filled - 1, 0) + (">" if filled < width else "=") + "." * (width - filled)
            digits = len(str(self.total))
            per_step = elapsed / max(done, 1)
            timing = f"{elapsed:.0f}s {per_step * 1e3:.0f}ms/step" if final else f"ETA: {per_step * (self.total - done):.0f}s"
            line = f"{done:{digits}d}/{self.total} [{bar}] - {timing}{metrics}"
        end = "\n" if final else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()


# ---------------------------------------------------------------------------
# Sequential
# ---------------------------------------------------------------------------
class Sequential:
    """A stack of layers, each feeding the next: keras.Sequential."""

    _count = 0

    def __init__(self, layers: Optional[Sequence[layers_mod.Layer]] = None, name: Optional[str] = None):
        if name is None:
            name = "sequential" if Sequential._count == 0 else f"sequential_{Sequential._count}"
            Sequential._count += 1
        self.name = name
        self.layers: List[layers_mod.Layer] = []
        self.input_shape: Optional[Tuple[Optional[int], ...]] = None
        self.optimizer: Optional[optimizers.Optimizer] = None
        self.loss: Optional[losses.Loss] = None
        self.metrics: List[str] = []
        self._output_mask: Optional[np.ndarray] = None  # the last pass's output mask
        self.stop_training = False
        for layer in layers or []:
            self.add(layer)

    # ---- structure ---------------------------------------------------------
    def add(self, layer: layers_mod.Layer) -> None:
        if not isinstance(layer, layers_mod.Layer):
            raise TypeError(f"Sequential.add(): expected a layer, got {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"Sequential.add(): the model already has a layer named {layer.name!r}")
        if self.built:
            shape = self._output_shapes()[-1] if self.layers else self.input_shape[1:]
            if not layer.built:
                layer.build(shape)
            if isinstance(layer.output_shape_for(shape), list):
                raise ValueError(f"Sequential.add(): {layer.name} outputs a list (return_state=True or "
                                 f"merge_mode=None); a layer inside Sequential must output one array")
        self.layers.append(layer)
        if len(self.layers) == 1 and layer.input_shape is not None:
            self.build((None,) + tuple(layer.input_shape))

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        """input_shape includes the batch axis, as in Keras: (None, T, D)."""
        self.input_shape = tuple(input_shape)
        shape = self.input_shape[1:]
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.output_shape_for(shape)
            if isinstance(shape, list):
                raise ValueError(f"{layer.name}: a layer inside Sequential must output one array "
                                 f"(return_state=True or merge_mode=None output a list)")

    def _output_shapes(self) -> List[Tuple[Optional[int], ...]]:
        shape = self.input_shape[1:]
        out = []
        for layer in self.layers:
            shape = layer.output_shape_for(shape)
            out.append(shape)
        return out

    @property
    def weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers if layer.trainable for w in layer.weights]

    def get_weights(self) -> List[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built("set_weights")
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"set_weights(): the model has {len(self.weights)} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def reset_states(self) -> None:
        """Zeroes the carried state of every stateful layer."""
        for layer in self.layers:
            layer.reset_states()

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> layers_mod.Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer(): no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what}(): this model has not yet been built; give the first layer an input_shape, "
                             f"call build((None, ...)), or call fit/predict on data first")

    def summary(self, print_fn=print) -> None:
        self._require_built("summary")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer, shape in zip(self.layers, self._output_shapes()):
            rows.append((f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(shape)), f"{layer.count_params():,}"))
        widths = [max(len(r[i]) for r in rows) + 3 for i in range(3)]
        line = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        total = sum(widths)
        trainable = sum(l.count_params() for l in self.layers if l.trainable)
        out = [f'Model: "{self.name}"', "_" * total, line(rows[0]), "=" * total]
        for r in rows[1:]:
            out += [line(r), "_" * total]
        out[-1] = "=" * total
        out += [f"Total params: {self.count_params():,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {self.count_params() - trainable:,}", "_" * total]
        print_fn("\n".join(out))

    # ---- compile -------------------------------------------------------------
    def compile(self, optimizer: Union[str, optimizers.Optimizer] = "rmsprop",
                loss: Union[str, losses.Loss, None] = None, metrics: Optional[Sequence[str]] = None,
                clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                global_clipnorm: Optional[float] = None) -> None:
        if loss is None:
            raise ValueError("compile(): a loss is required, e.g. loss='mse'")
        self.optimizer = optimizers.get(optimizer)
        if clipnorm is not None or clipvalue is not None or global_clipnorm is not None:
            cfg = dict(self.optimizer.get_config(), clipnorm=clipnorm, clipvalue=clipvalue,
                       global_clipnorm=global_clipnorm)
            self.optimizer = type(self.optimizer)(**cfg)
        self.loss = losses.get(loss)
        metrics = list(metrics or [])
        for m in metrics:
            if m not in _METRICS:
                raise ValueError(f"compile(): metrics must be among {list(_METRICS)}, got {m!r}")
        self.metrics = metrics

    def _accumulate(self, sums, counts, values: Dict[str, float], batch: int,
                    metric_weight: Optional[float] = None) -> Dict[str, float]:
        """Adds a batch's values to the running sums and returns the running
        means, as Keras's trackers: the loss weighted by the batch's samples,
        a metric by its unmasked steps when the output has a mask (Keras's
        metrics are means over every step they weigh; metric_weight: that
        weight, when the batch was computed elsewhere)."""
        for k, v in values.items():
            w = batch
            if k != "loss" and metric_weight is not None:
                w = metric_weight
            elif k != "loss" and self._output_mask is not None:
                w = float(np.sum(self._output_mask))
            sums[k] = sums.get(k, 0.0) + v * w
            counts[k] = counts.get(k, 0.0) + w
        return {k: sums[k] / counts[k] if counts[k] else 0.0 for k in sums}

    def _metric_values(self, y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
        out = {}
        for m in self.metrics:
            kind = _accuracy_kind(self.loss.name) if m in ("accuracy", "acc") else m
            out[m] = _metric(kind, y, pred, self.loss.from_logits, self._output_mask)
        return out

    # ---- the passes ----------------------------------------------------------
    def _forward(self, x: np.ndarray, training: bool, keep_cache: bool = True) -> np.ndarray:
        """keep_cache=False: an inference pass, no backward follows, so the
        layers keep nothing for one (the recurrent kernels write no cache).
        With keep_cache, the backward follows (compute_gradients) and nothing
        writes the layers' inputs and outputs before it: the layers borrow
        them for their caches (Layer._borrow)."""
        if not self.built:
            self.build((None,) + tuple(np.shape(x)[1:]))
        for layer in self.layers:
            layer._set_keep_cache(keep_cache, borrow=keep_cache)
        mask = None  # Keras's mask of x: made, passed on and read by the layers (compute_mask)
        try:
            for layer in self.layers:
                y = layer.forward(x, training=training, **({"mask": mask} if mask is not None and layer._takes_mask
                                                           else {}))
                mask = layer.compute_mask(x, mask)
                x = y
        finally:
            for layer in self.layers:
                layer._set_keep_cache(True)
        self._output_mask = mask  # for the loss and metrics, which skip the masked steps
        return x

    @contextlib.contextmanager
    def _weights_fixed(self):
        """A pass over many batches with fixed weights (predict, evaluate):
        the recurrent layers pack their weights once for all of them."""
        for layer in self.layers:
            layer._freeze(True)
        try:
            yield
        finally:
            for layer in self.layers:
                layer._freeze(False)

    def _backward(self, dy: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)

    def _regularization(self) -> float:
        return float(sum(layer.regularization_loss() for layer in self.layers))

    def _require_compiled(self, what: str) -> None:
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{what}(): compile the model first, e.g. model.compile(optimizer='adam', loss='mse')")

    def compute_gradients(self, x, y, training: bool = True) -> Tuple[float, List[np.ndarray], np.ndarray]:
        """The loss on one batch (regularization penalties included), the
        gradients of the trainable weights (order of trainable_weights) and
        the predictions. Backpropagation runs through time over the whole
        batch; stateful layers cut it at the batch's first step."""
        self._require_compiled("compute_gradients")
        pred = self._forward(x, training=training)
        loss, dpred = self.loss(y, pred, mask=self._output_mask)
        loss += self._regularization()
        self._backward(dpred.astype(pred.dtype, copy=False))
        grads = []
        for layer in self.layers:
            if layer.trainable:
                layer.add_regularization_grads()
                grads += layer.grads
        return loss, grads, pred

    def train_on_batch(self, x, y) -> Dict[str, float]:
        """One gradient step on one batch; returns its loss and metrics.
        Data-parallel (rnn_fast.nn.distributed.init()): the batch is the
        global one, of which each process computes its part."""
        self._require_compiled("train_on_batch")
        ctx = distributed.active()
        if ctx is not None and ctx.size > 1:
            x, y = self._check_data(x, y, "train_on_batch()")
            return distributed.train_step(ctx, self, x, y, sync=not self.built)[0]
        loss, grads, pred = self.compute_gradients(x, y, training=True)
        self.optimizer.apply(self.trainable_weights, grads)
        return dict(loss=loss, **self._metric_values(y, pred))

    def test_on_batch(self, x, y) -> Dict[str, float]:
        self._require_compiled("test_on_batch")
        pred = self._forward(x, training=False, keep_cache=False)
        loss = self.loss(y, pred, mask=self._output_mask)[0] + self._regularization()
        return dict(loss=loss, **self._metric_values(y, pred))

    def predict_on_batch(self, x) -> np.ndarray:
        return self._forward(x, training=False, keep_cache=False)

    # ---- loops ---------------------------------------------------------------
    @staticmethod
    def _check_data(x, y, who: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"{who}: x must be a non-empty array with the samples on the first axis, got shape {x.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.shape[:1] != x.shape[:1]:
                raise ValueError(f"{who}: x and y must hold the same number of samples, got {x.shape[0]} and "
                                 f"{y.shape[0] if y.ndim else 'a scalar'}")
        return x, y

    @staticmethod
    def _batch_size(batch_size: Optional[int], who: str) -> int:
        return 32 if batch_size is None else layers_mod.positive_int(batch_size, f"{who}: batch_size")

    def fit(self, x=None, y=None, batch_size: Optional[int] = None, epochs: int = 1, verbose: Union[int, str] = "auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            initial_epoch: int = 0) -> History:
        """Trains for `epochs` passes over (x, y) in batches; see Keras's Model.fit."""
        self._require_compiled("fit")
        x, y = self._check_data(x, y, "fit()")
        if y is None:
            raise ValueError("fit(): y is required")
        batch_size = self._batch_size(batch_size, "fit()")
        verbose = 1 if verbose == "auto" else int(verbose)  # also decides the "Epoch i/n" lines
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit(): validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is None and validation_split > 0:
            # Keras: the last fraction of the data, taken before any shuffling.
            split = int(x.shape[0] * (1.0 - validation_split))
            if split == 0 or split == x.shape[0]:
                raise ValueError(f"fit(): validation_split={validation_split} leaves no training or no validation "
                                 f"samples out of {x.shape[0]}")
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit(): validation_data must be a tuple (x_val, y_val)")
            validation_data = self._check_data(*validation_data, "fit(): validation_data")
        ctx = distributed.active()
        if ctx is not None and ctx.size > 1:
            # Rank 0's generators now (shuffling and dropout agree), its
            # weights and optimizer state at the first step (built there, as
            # one process builds the model at its first batch).
            distributed.sync_random(ctx, self)
            if not ctx.is_root:
                verbose = 0
        else:
            ctx = None
        callbacks = list(callbacks or [])
        history = History()
        history.params = {"epochs": epochs, "steps": -(-x.shape[0] // batch_size), "verbose": verbose}
        self.stop_training = False
        for cb in callbacks:
            cb.set_model(self)
            cb.on_train_begin()
        n = x.shape[0]
        steps = -(-n // batch_size)
        for epoch in range(initial_epoch, epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            order = backend.rng().permutation(n) if shuffle else np.arange(n)
            bar = _Progress(steps, verbose)
            sums: Dict[str, float] = {}
            counts: Dict[str, float] = {}
            for step in range(steps):
                idx = order[step * batch_size:(step + 1) * batch_size]
                xb, yb = (x[idx], y[idx]) if shuffle else (x[idx[0]:idx[-1] + 1], y[idx[0]:idx[-1] + 1])
                if ctx is None:
                    values = self.train_on_batch(xb, yb)
                    logs = self._accumulate(sums, counts, values, len(idx))
                else:
                    first = epoch == initial_epoch and step == 0
                    values, metric_weight = distributed.train_step(ctx, self, xb, yb, sync=first)
                    logs = self._accumulate(sums, counts, values, len(idx), metric_weight)
                bar.update(step + 1, logs, final=step + 1 == steps and validation_data is None)
            if validation_data is not None:
                val = self.evaluate(*validation_data, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"val_{k}": v for k, v in val.items()})
                bar.update(steps, logs, final=True)
            history.epoch.append(epoch)
            for k, v in logs.items():
                history.history.setdefault(k, []).append(v)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if ctx is not None:  # rank 0 decides for all (the logs are the same everywhere)
                self.stop_training = bool(ctx.bcast(self.stop_training))
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        self.history = history
        return history

    def evaluate(self, x=None, y=None, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto",
                 return_dict: bool = False):
        """The loss (and metrics) over (x, y), in inference mode: a float, a
        list [loss, *metrics], or with return_dict a dict."""
        self._require_compiled("evaluate")
        x, y = self._check_data(x, y, "evaluate()")
        if y is None:
            raise ValueError("evaluate(): y is required")
        batch_size = self._batch_size(batch_size, "evaluate()")
        ctx = distributed.active()
        if ctx is not None and ctx.size > 1:  # each rank its part of every batch
            if not ctx.is_root:
                verbose = 0
        else:
            ctx = None
        steps = -(-x.shape[0] // batch_size)
        bar = _Progress(steps, verbose)
        sums: Dict[str, float] = {}
        counts: Dict[str, float] = {}
        with self._weights_fixed():
            for step in range(steps):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                if ctx is None:
                    values = self.test_on_batch(x[sl], y[sl])
                    logs = self._accumulate(sums, counts, values, len(x[sl]))
                else:
                    values, metric_weight = distributed.test_step(ctx, self, x[sl], y[sl])
                    logs = self._accumulate(sums, counts, values, len(x[sl]), metric_weight)
                bar.update(step + 1, logs, final=step + 1 == steps)
        if return_dict:
            return logs
        return logs["loss"] if not self.metrics else [logs["loss"]] + [logs[m] for m in self.metrics]

    def predict(self, x, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto") -> np.ndarray:
        """The model's outputs for x, in batches, in inference mode (no dropout)."""
        x, _ = self._check_data(x, None, "predict()")
        batch_size = self._batch_size(batch_size, "predict()")
        ctx = distributed.active()
        if ctx is not None and ctx.size > 1:  # each rank its share, gathered on every rank
            n = x.shape[0]
            start, stop = ctx.part(n)
            local = self._predict_local(x[start:stop], batch_size, verbose if ctx.is_root else 0)
            if local is None:  # an empty share: the output's shape from a sample
                with self._weights_fixed():
                    local = self._forward(x[:1], training=False, keep_cache=False)[:0]
            return ctx.gather_rows(local, n)
        return self._predict_local(x, batch_size, verbose)

    def _predict_local(self, x, batch_size: int, verbose) -> Optional[np.ndarray]:
        steps = -(-x.shape[0] // batch_size)
        if steps == 0:
            return None
        bar = _Progress(steps, verbose)
        outs = []
        with self._weights_fixed():
            for step in range(steps):
                outs.append(self._forward(x[step * batch_size:(step + 1) * batch_size], training=False,
                                          keep_cache=False))
                bar.update(step + 1, {}, final=step + 1 == steps)
        return np.concatenate(outs, axis=0)

    def __call__(self, x, training: bool = False) -> np.ndarray:
        return self._forward(np.asarray(x), training=training, keep_cache=False)

    # ---- saving --------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    def save(self, filepath) -> None:
        """Writes architecture, weights, compile settings and optimizer state to
        one .npz file (a zip of .npy arrays and a JSON manifest; no pickle).
        Data-parallel, rank 0 writes and the others wait for it."""
        ctx = distributed.active()
        if ctx is not None and ctx.size > 1:
            error = None
            if ctx.is_root:
                try:
                    self._save(filepath)
                except BaseException as e:
                    error = e
            failed = ctx.bcast(None if error is None else repr(error))
            if error is not None:
                raise error
            if failed is not None:
                raise RuntimeError(f"save(): rank 0 could not write {filepath!r}: {failed}")
            return
        self._save(filepath)

    def _save(self, filepath) -> None:
        arrays: Dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            for name, w in zip(layer.weight_names, layer.weights):
                arrays[f"weights/{i}/{name}"] = w
        manifest: Dict[str, Any] = {"format": FORMAT, "model": self.get_config(), "compile": None}
        if self.optimizer is not None:
            opt = self.optimizer
            for i, slots in enumerate(opt.state):
                for j, s in enumerate(slots):
                    arrays[f"optimizer/{i}/{opt.slots[j]}"] = s
            manifest["compile"] = {"optimizer": {"class_name": type(opt).__name__, "config": opt.get_config(),
                                                 "iterations": opt.iterations, "weights": len(opt.state)},
                                   "loss": self.loss.get_config(), "metrics": self.metrics}
        manifest["arrays"] = {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": _digest(v)}
                              for k, v in arrays.items()}
        text = json.dumps(manifest).encode()
        arrays[_MANIFEST] = np.frombuffer(text, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with open(filepath, "wb") as f:
            f.write(buf.getvalue())


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def load_model(filepath, compile: bool = True) -> Sequential:
    """Reads a file written by Sequential.save: the same architecture, the
    weights and optimizer state bit for bit. A file that is not one, or whose
    contents were changed, is refused with a ValueError. A Keras 3 ``.keras``
    file of a Sequential model of rnn_fast's layers is read too
    (keras_file.py; needs h5py)."""
    try:
        with open(filepath, "rb") as f:
            data = f.read()
        keras = keras_file.is_keras_file(data)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"load_model(): {filepath} is not a readable rnn_fast model file "
                         f"({type(e).__name__}: {e})") from None
    if keras:
        return keras_file.load_keras(data, filepath, compile)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"load_model(): {filepath} is not a readable rnn_fast model file "
                         f"({type(e).__name__}: {e})") from None
    if _MANIFEST not in arrays:
        raise ValueError(f"load_model(): {filepath} is not an rnn_fast model file (no {_MANIFEST} entry)")
    try:
        manifest = json.loads(arrays.pop(_MANIFEST).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"load_model(): {filepath} has a damaged manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"load_model(): {filepath} has format {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    listed = manifest.get("arrays", {})
    if set(listed) != set(arrays):
        raise ValueError(f"load_model(): {filepath} is damaged: its arrays {sorted(set(arrays) ^ set(listed))} "
                         f"do not match the manifest")
    for k, a in arrays.items():
        meta = listed[k]
        if a.dtype.str != meta["dtype"] or list(a.shape) != meta["shape"] or _digest(a) != meta["sha256"]:
            raise ValueError(f"load_model(): {filepath} is damaged: array {k!r} does not match its checksum")

    config = manifest["model"]
    model = Sequential([layers_mod.layer_from_config(spec) for spec in config["layers"]], name=config["name"])
    if config["input_shape"] is not None and not model.built:
        model.build(tuple(config["input_shape"]))
    for i, layer in enumerate(model.layers):
        layer.set_weights([arrays[f"weights/{i}/{name}"] for name in layer.weight_names])
    comp = manifest.get("compile")
    if compile and comp is not None:
        opt_spec = comp["optimizer"]
        optimizer = optimizers.from_config(opt_spec["class_name"], opt_spec["config"])
        model.compile(optimizer=optimizer, loss=losses.from_config(comp["loss"]), metrics=comp["metrics"])
        optimizer.iterations = int(opt_spec["iterations"])
        optimizer.state = [[arrays[f"optimizer/{i}/{slot}"].copy() for slot in optimizer.slots]
                           for i in range(opt_spec["weights"])]
    return model
