"""keras.Sequential on rnn_fast's layers: compile, fit (with validation,
shuffling, a progress bar and a History), evaluate, predict, summary, and
save / load_model in a file that needs no pickle."""
import contextlib
import json
import os
import sys
import time
import warnings
import zipfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import callbacks as callbacks_mod, data, distributed, functional, keras_file, layers as layers_mod, losses
from . import metrics as metrics_mod, model_file, optimizers
from .callbacks import History  # noqa: F401  (rnn_fast.nn.models.History, as before)



def _should_eval(epoch: int, freq) -> bool:
    """Keras: validate after every freq-th epoch, or after the epochs (from 1) listed."""
    return (epoch + 1) % freq == 0 if isinstance(freq, int) else (epoch + 1) in freq


class _Progress:
    """Keras's progress bar: redrawn in place on a terminal, one line per
    epoch otherwise (logs and notebooks)."""

    def __init__(self, total: Optional[int], verbose: Union[int, str], stream=None):
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
        elif self.total is None:  # a generator's batches: no total until it ends
            line = f"{done} steps - {elapsed:.0f}s{metrics}" if final else f"{done}/Unknown - {elapsed:.0f}s{metrics}"
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


def _per_output(value, names: List[str], who: str, default=None, broadcast: bool = True, required: bool = False,
                nested: bool = False) -> List[Any]:
    """A compile() argument for each of the outputs: one value for all
    (broadcast), a list in the outputs' order, or a dict by output name."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"{who}: unknown output names {unknown}; the outputs are {names}")
        out = [value.get(n, default) for n in names]
    elif isinstance(value, (list, tuple)) and (not nested or all(v is None or isinstance(v, (list, tuple))
                                                                  for v in value)):
        if len(value) != len(names):
            raise ValueError(f"{who}: the model has {len(names)} outputs {names}; give one entry per output (a "
                             f"list of {len(names)}, or a dict by output name), got {len(value)}")
        out = list(value)
    elif value is None:
        out = [default] * len(names)
    elif broadcast:
        out = [value] * len(names)
    else:
        raise ValueError(f"{who}: the model has {len(names)} outputs {names}; give a list with one entry per output "
                         f"or a dict by output name, got {value!r}")
    if required and any(v is None for v in out):
        raise ValueError(f"{who}: every output needs a loss; missing for "
                         f"{[n for n, v in zip(names, out) if v is None]}")
    return out


def _loss_weight(w) -> float:
    if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not np.isfinite(w):
        raise ValueError(f"compile(): loss_weights must be finite numbers, got {w!r}")
    return float(w)


def _structure(value, names: List[str], who: str, what: str, missing_ok: bool = False) -> List[Any]:
    """Targets (or weights) for several outputs: a list in their order, or a dict by output name."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or (missing and not missing_ok):
            raise ValueError(f"{who}: {what} is a dict whose keys must be the output names {names}; missing "
                             f"{missing}, unknown {unknown}")
        return [value.get(n) for n in names]
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        got = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else f"one {type(value).__name__}"
        raise ValueError(f"{who}: the model has {len(names)} outputs {names}; {what} must be a list of {len(names)} "
                         f"arrays in that order, or a dict by output name, got {got}")
    return list(value)


def _print_table(model, rows, print_fn) -> None:
    """Keras's summary: the rows under a header, then the parameter counts."""
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(n)]
    line = lambda r: "".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    total = sum(widths)
    trainable = sum(l.count_params() for l in model.layers if l.trainable)
    out = [f'Model: "{model.name}"', "_" * total, line(rows[0]), "=" * total]
    for r in rows[1:]:
        out += [line(r), "_" * total]
    out[-1] = "=" * total
    out += [f"Total params: {model.count_params():,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {model.count_params() - trainable:,}", "_" * total]
    print_fn("\n".join(out))


def _check_sample_array(x, who: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{who}: {name} must be a non-empty array with the samples on the first axis, got shape "
                         f"{x.shape}")
    if x.dtype == object:
        raise TypeError(f"{who}: {name} must be a numeric array, got an array of Python objects (ragged sequences "
                        f"are padded first, e.g. keras.utils.pad_sequences)")
    return x


# ---------------------------------------------------------------------------
# Model (functional) and Sequential
# ---------------------------------------------------------------------------
class Model:
    """keras.Model: Model(inputs, outputs) runs the graph of layers between
    symbolic tensors (the functional API, functional.py); Sequential is the
    case of a stack. Both compile, fit, evaluate, predict and save alike."""

    def __init__(self, inputs=None, outputs=None, name: Optional[str] = None, trainable: bool = True):
        if inputs is None or outputs is None:
            raise TypeError("Model(): give inputs and outputs, the symbolic tensors of a graph: "
                            "Model(inputs=Input(...), outputs=...); subclassing Model with a call() is not "
                            "supported (use Sequential or the functional API)")
        self._init_model(functional.default_name() if name is None else name)
        self._input_keys: Optional[List[str]] = None
        if isinstance(inputs, dict):
            self._input_keys = list(inputs)
            inputs = list(inputs.values())
        self._single_input = isinstance(inputs, functional.KerasTensor)
        self._single_output = isinstance(outputs, functional.KerasTensor)
        ins = [inputs] if self._single_input else list(inputs)
        outs = [outputs] if self._single_output else list(outputs)
        for what, ts in (("inputs", ins), ("outputs", outs)):
            bad = [type(t).__name__ for t in ts if not isinstance(t, functional.KerasTensor)]
            if bad or not ts:
                raise TypeError(f"Model(): {what} must be symbolic tensors (from Input() and layers' outputs), "
                                f"or a list of them, got {bad or 'an empty list'}")
        self._graph = functional.Graph(ins, outs)
        self.inputs, self.outputs = ins, outs
        if self._input_keys is None:
            self._input_keys = [t._keras_history[0].name for t in ins]
        self.layers: List[layers_mod.Layer] = self._graph.layers
        self.input_shape = ins[0].shape if self._single_input else [t.shape for t in ins]
        if not trainable:
            self.trainable = False

    def _init_model(self, name: str) -> None:
        self.name = name
        self.optimizer: Optional[optimizers.Optimizer] = None
        self.loss: Optional[losses.Loss] = None
        self._loss_tracker: Optional[metrics_mod.Mean] = None
        self._compiled_metrics: Optional[List[metrics_mod.Metric]] = None
        self._metric_specs: List[Any] = []
        self._weighted_specs: List[Any] = []
        self.history: Optional[History] = None
        self._trainable = True
        self._output_mask: Optional[np.ndarray] = None  # the last pass's output mask
        self._tape = None  # what the graph's backward reads, from the last training forward
        self._loss_weights: List[float] = [1.0]
        self._head_trackers: List[metrics_mod.Mean] = []  # several outputs: each one's loss, as Keras logs it
        self._head_losses: List[float] = []
        self.stop_training = False

    # ---- structure ---------------------------------------------------------
    @property
    def built(self) -> bool:
        return True

    def build(self, input_shape) -> None:
        """A functional model is built by its inputs' shapes."""

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if self._single_output else shapes

    def _connections(self, layer: layers_mod.Layer) -> str:
        nodes = [n for n in self._graph.nodes if n.layer is layer]
        refs = []
        for node in nodes:
            for t in node.input_tensors:
                source, index, _ = t._keras_history
                refs.append(f"{source.name}[{index}][{t._keras_history[2]}]")
        return ", ".join(refs) if refs else "-"

    def summary(self, print_fn=print) -> None:
        """Keras's table for a functional model: each layer's output shape,
        parameters, and the tensors it is connected to."""
        graph_nodes = set(self._graph.nodes)
        rows = [("Layer (type)", "Output Shape", "Param #", "Connected to")]
        for layer in self.layers:
            nodes = [n for n in functional._nodes_of(layer) if n in graph_nodes or n.is_input]
            outs = nodes[0].outputs
            shape = str(outs[0].shape) if len(outs) == 1 else str([t.shape for t in outs])
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{layer.count_params():,}",
                         self._connections(layer)))
        _print_table(self, rows, print_fn)

    # ---- the passes ----------------------------------------------------------
    def _forward(self, x, training: bool, keep_cache: bool = True):
        """x: the input's array, or the tuple of the inputs' arrays. With
        keep_cache the backward follows and reads the tape kept here."""
        xs = list(x) if isinstance(x, tuple) else [x]
        for layer in self.layers:
            layer._set_keep_cache(keep_cache, borrow=keep_cache)
        try:
            outs, masks, tape = self._graph.forward(xs, training)
        finally:
            for layer in self.layers:
                layer._set_keep_cache(True)
        self._tape = tape if keep_cache else None
        self._output_mask = masks[0] if self._single_output else masks
        return outs[0] if self._single_output else outs

    def _backward(self, dy) -> None:
        if self._tape is None:
            raise RuntimeError("backward without a training forward before it")
        self._graph.backward([dy] if self._single_output else list(dy), self._tape)
        self._tape = None

    def _check_x(self, x, who: str):
        """The model's inputs from x: an array (one input), a list of arrays
        in the inputs' order, or a dict by input name; each checked."""
        keys = self._input_keys
        if isinstance(x, dict):
            missing = [k for k in keys if k not in x]
            extra = [k for k in x if k not in keys]
            if missing or extra:
                raise ValueError(f"{who}: x is a dict whose keys must be the model's input names {keys}; "
                                 f"missing {missing}, unknown {extra}")
            xs = [x[k] for k in keys]
        elif len(keys) == 1:
            xs = [x[0]] if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray) else [x]
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(keys):
                got = f"a list of {len(x)}" if isinstance(x, (list, tuple)) else type(x).__name__
                raise ValueError(f"{who}: the model has {len(keys)} inputs {keys}; x must be a list of {len(keys)} "
                                 f"arrays in that order, or a dict by input name, got {got}")
            xs = list(x)
        arrays = [_check_sample_array(a, who, "x" if len(keys) == 1 else f"x[{k!r}]") for a, k in zip(xs, keys)]
        n = {a.shape[0] for a in arrays}
        if len(n) > 1:
            raise ValueError(f"{who}: the inputs must hold the same number of samples, got "
                             f"{dict(zip(keys, (a.shape[0] for a in arrays)))}")
        return arrays[0] if len(arrays) == 1 else tuple(arrays)

    def __call__(self, x, training: bool = False):
        if functional.is_symbolic(x):
            raise TypeError(f"{self.name}: calling a model on symbolic tensors (a model nested in another) is not "
                            f"supported; build one Model from the layers")
        x, _, _ = self._check_arrays(x, None, None, f"{self.name}()")
        return self._forward(x, training=training, keep_cache=False)

    # ---- configs ---------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """Keras's functional config: the layers with their inbound nodes
        (numbered within this model), and the input and output layers."""
        graph_nodes = set(self._graph.nodes)
        index: Dict[Any, int] = {}
        for layer in self.layers:
            kept = [n for n in functional._nodes_of(layer) if n in graph_nodes or n.is_input]
            for i, node in enumerate(kept):
                index[node] = i

        def ref(t):
            layer, node_index, tensor_index = t._keras_history
            return [layer.name, index[functional._nodes_of(layer)[node_index]], tensor_index]

        specs = []
        for layer in self.layers:
            if isinstance(layer, functional.InputLayer):
                specs.append({"class_name": "InputLayer", "config": layer.get_config(), "name": layer.name,
                              "inbound_nodes": []})
                continue
            nodes = [n for n in functional._nodes_of(layer) if n in graph_nodes]
            specs.append({"class_name": type(layer).__name__, "config": layer.get_config(), "name": layer.name,
                          "inbound_nodes": [functional.node_config(n, ref) for n in nodes]})
        ins = [ref(t) for t in self.inputs]
        outs = [ref(t) for t in self.outputs]
        return {"name": self.name, "trainable": self.trainable, "layers": specs,
                "input_layers": ins[0] if self._single_input else ins,
                "output_layers": outs[0] if self._single_output else outs}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Model":
        """A new model of get_config()'s graph, its weights drawn afresh."""
        def make(spec):
            if spec.get("class_name") == "InputLayer":
                return functional.InputLayer(**spec.get("config", {}))
            return layers_mod.layer_from_config(spec)
        inputs, outputs, single_in, single_out = functional.rebuild(config, make)
        model = Model(inputs[0] if single_in else inputs, outputs[0] if single_out else outputs,
                      name=config.get("name"))
        if config.get("trainable") is False:
            model.trainable = False
        return model

    def to_json(self, **kwargs) -> str:
        """get_config() as JSON (json.dumps's keywords, e.g. indent=2); model_from_json reads it back."""
        return json.dumps({"class_name": self._class_name, "config": self.get_config()}, **kwargs)

    _class_name = "Functional"

    @property
    def weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """As Keras: sets every layer's trainable (a frozen model trains nothing)."""
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = self._trainable

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return [w for layer in self.layers if not layer.trainable for w in layer.weights]

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
        checked, i = [], 0
        for layer in self.layers:  # every array checked before any is written
            n = len(layer.weights)
            checked.append(layer._checked(weights[i:i + n]))
            i += n
        for layer, arrays in zip(self.layers, checked):
            layer._assign(arrays)

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

    # ---- compile -------------------------------------------------------------
    def compile(self, optimizer: Union[str, optimizers.Optimizer] = "rmsprop",
                loss: Union[str, losses.Loss, Callable, None] = None, loss_weights=None,
                metrics: Optional[Sequence] = None, weighted_metrics: Optional[Sequence] = None,
                clipnorm: Optional[float] = None,
                clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None) -> None:
        """As Keras's: metrics are unweighted, weighted_metrics weighted by
        the sample weights (both skip masked steps); a metric is a name, a
        rnn_fast.nn.metrics.Metric or a function fn(y_true, y_pred). A model
        of several outputs takes a loss for all or one per output (a list,
        or a dict by output name), loss_weights, and metrics per output."""
        if loss is None:
            raise ValueError("compile(): a loss is required, e.g. loss='mse'")
        self.optimizer = optimizers.get(optimizer)
        if clipnorm is not None or clipvalue is not None or global_clipnorm is not None:
            cfg = dict(self.optimizer.get_config(), clipnorm=clipnorm, clipvalue=clipvalue,
                       global_clipnorm=global_clipnorm)
            self.optimizer = type(self.optimizer)(**cfg)
        self._loss_tracker = metrics_mod.Mean("loss")
        self._compiled_metrics = None  # made at the first batch, from its shapes (Keras's 'accuracy' needs them)
        names = self.output_names
        if len(names) > 1:
            # Keras's several outputs: a loss each (one loss for all, a list, or a dict by output name), their
            # weighted sum trained, each output's own loss and metrics logged as <output>_loss, <output>_<metric>.
            self.loss = [losses.get(l) for l in _per_output(loss, names, "compile(): loss", required=True)]
            weights = _per_output(loss_weights, names, "compile(): loss_weights", default=1.0, broadcast=False)
            self._loss_weights = [_loss_weight(w) for w in weights]
            self._metric_specs = [metrics_mod.check([m] if isinstance(m, str) else m,
                                                    f"compile(): metrics for output {n!r}")
                                  for m, n in zip(_per_output(metrics, names, "compile(): metrics", broadcast=False,
                                                              default=None, nested=True), names)]
            self._weighted_specs = [metrics_mod.check([m] if isinstance(m, str) else m,
                                                      f"compile(): weighted_metrics for output {n!r}")
                                    for m, n in zip(_per_output(weighted_metrics, names, "compile(): weighted_metrics",
                                                                broadcast=False, default=None, nested=True), names)]
            self._head_trackers = [metrics_mod.Mean(f"{n}_loss") for n in names]
            return
        if loss_weights is not None:
            w = loss_weights[0] if isinstance(loss_weights, (list, tuple)) and len(loss_weights) == 1 else loss_weights
            self._loss_weights = [_loss_weight(w)]
        else:
            self._loss_weights = [1.0]
        self.loss = losses.get(loss)
        self._metric_specs = metrics_mod.check(metrics, "compile(): metrics")
        self._weighted_specs = metrics_mod.check(weighted_metrics, "compile(): weighted_metrics")
        self._head_trackers = []

    @property
    def output_names(self) -> List[str]:
        """Keras's: the names of the layers that make the outputs."""
        if not hasattr(self, "outputs"):
            return [self.layers[-1].name] if self.layers else ["output"]
        names = []
        for t in self.outputs:
            name = t._keras_history[0].name
            names.append(name if name not in names else f"{name}_{names.count(name)}")
        return names

    @property
    def _multi(self) -> bool:
        return isinstance(self.loss, list)

    @property
    def metrics(self) -> List[metrics_mod.Metric]:
        """The loss tracker and the compiled metrics (those made so far), as Keras's model.metrics."""
        if self._loss_tracker is None:
            return []
        return [self._loss_tracker] + list(getattr(self, "_head_trackers", [])) + list(self._compiled_metrics or [])

    @property
    def metrics_names(self) -> List[str]:
        return [m.name for m in self.metrics]

    def reset_metrics(self) -> None:
        for m in self.metrics:
            m.reset_state()

    def _make_metrics(self, y_shape, pred_shape) -> None:
        """The compiled metrics, named as Keras names them (a second one of a
        name gets _1; a weighted one that repeats an unweighted one's name
        gets weighted_; with several outputs, each prefixed by its output's
        name). y_shape, pred_shape: lists of them with several outputs."""
        if self._compiled_metrics is not None:
            return
        made: List[metrics_mod.Metric] = []
        if self._multi:
            for head, (name, ys, ps, specs, wspecs) in enumerate(zip(self.output_names, y_shape, pred_shape,
                                                                     self._metric_specs, self._weighted_specs)):
                for m in self._named_metrics(specs, wspecs, ys, ps, {f"{name}_loss": 1}, prefix=f"{name}_"):
                    m.head = head
                    made.append(m)
        else:
            made = self._named_metrics(self._metric_specs, self._weighted_specs, y_shape, pred_shape, {"loss": 1})
        self._compiled_metrics = made

    @staticmethod
    def _named_metrics(specs, wspecs, y_shape, pred_shape, seen: Dict[str, int], prefix: str = ""):
        made = []
        for weighted, group in ((False, specs), (True, wspecs)):
            for spec in group:
                m = metrics_mod.get(spec, y_shape, pred_shape)
                name = m.base_name = m.name
                if name in seen:
                    if weighted:
                        name = f"weighted_{m.name}"
                    if name in seen:
                        name = f"{name}_{seen[name]}"
                        seen[m.name] = seen.get(m.name, 1) + 1
                seen.setdefault(name, 1)
                m.name = prefix + name
                m.weighted = weighted
                made.append(m)
        return made

    def _update_metrics(self, y, pred, sample_weight) -> None:
        """Adds a batch's outputs to the compiled metrics (the loss tracker
        is updated by the caller)."""
        if self._multi:
            ys = [np.asarray(a) for a in y]
            self._make_metrics([a.shape for a in ys], [p.shape for p in pred])
            sws = sample_weight if sample_weight is not None else [None] * len(ys)
            for head, (yi, pi, mi, swi) in enumerate(zip(ys, pred, self._output_mask, sws)):
                self._update_head([m for m in self._compiled_metrics if m.head == head], yi, pi, mi, swi)
            return
        y = np.asarray(y)
        self._make_metrics(y.shape, pred.shape)
        self._update_head(self._compiled_metrics, y, pred, self._output_mask, sample_weight)

    @staticmethod
    def _update_head(metrics, y, pred, mask, sample_weight) -> None:
        sw = None
        if sample_weight is not None:
            sw = losses.row_weights(sample_weight, pred.shape[:-1])
        for m in metrics:
            w = sw if m.weighted else None
            if mask is not None and not isinstance(m, (metrics_mod.Precision, metrics_mod.Recall, metrics_mod.AUC)):
                # Keras's apply_mask(..., reduction='sum'); its confusion metrics ignore masks
                w = mask.astype(np.float64) if w is None else w * mask
            m.update_state(y, pred, w)

    def _logs(self) -> Dict[str, float]:
        return {m.name: m.result() for m in self.metrics}

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

    def _regularization(self) -> float:
        return float(sum(layer.regularization_loss() for layer in self.layers if layer.trainable))

    def _require_compiled(self, what: str) -> None:
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{what}(): compile the model first, e.g. model.compile(optimizer='adam', loss='mse')")

    def compute_gradients(self, x, y, training: bool = True,
                          sample_weight=None) -> Tuple[float, List[np.ndarray], np.ndarray]:
        """The loss on one batch (regularization penalties included), the
        gradients of the trainable weights (order of trainable_weights) and
        the predictions. Backpropagation runs through time over the whole
        batch; stateful layers cut it at the batch's first step."""
        self._require_compiled("compute_gradients")
        if not isinstance(x, (np.ndarray, tuple)):
            x = self._check_x(x, "compute_gradients()")
        pred = self._forward(x, training=training)
        loss, dpred = self._losses(y, pred, sample_weight, gradient=True)
        loss += self._regularization()
        self._backward(dpred)
        grads = []
        for layer in self.layers:
            if layer.trainable:
                layer.add_regularization_grads()
                grads += layer.grads
        return loss, grads, pred

    def _losses(self, y, pred, sample_weight, gradient: bool):
        """The loss of a batch's predictions (without penalties) and, with
        gradient, its gradient with respect to them; with several outputs,
        the weighted sum of theirs (each output's own kept for its tracker)."""
        if not self._multi:
            value, d = self.loss(y, pred, mask=self._output_mask, sample_weight=sample_weight)
            w = self._loss_weights[0]
            if w != 1.0:
                value, d = value * w, d * w
            return value, d.astype(pred.dtype, copy=False)
        total, grads, self._head_losses = 0.0, [], []
        sws = sample_weight if sample_weight is not None else [None] * len(pred)
        for loss, w, yi, pi, mi, swi in zip(self.loss, self._loss_weights, y, pred, self._output_mask, sws):
            value, d = loss(yi, pi, mask=mi, sample_weight=swi)
            self._head_losses.append(value)
            total += w * value
            grads.append((d * w).astype(pi.dtype, copy=False))
        return total, grads

    def _track(self, loss: float, n: int) -> None:
        self._loss_tracker.update_state(loss, np.float64(n))
        for tracker, value in zip(getattr(self, "_head_trackers", []), getattr(self, "_head_losses", [])):
            tracker.update_state(value, np.float64(n))

    def _train_step(self, x, y, sample_weight, ctx=None, sync: bool = False) -> Dict[str, float]:
        """One gradient step on one batch; updates the loss tracker and the
        metrics and returns their running values."""
        if ctx is not None:
            self._single_output_only("data-parallel training")
            distributed.train_step(ctx, self, x, y, sample_weight, sync=sync)
            return self._logs()
        loss, grads, pred = self.compute_gradients(x, y, training=True, sample_weight=sample_weight)
        if grads:
            self.optimizer.apply(self.trainable_weights, grads)
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=3)
        self._track(loss, data.nsamples(x))
        self._update_metrics(y, pred, sample_weight)
        return self._logs()

    def _test_step(self, x, y, sample_weight, ctx=None) -> Dict[str, float]:
        if ctx is not None:
            self._single_output_only("data-parallel evaluation")
            distributed.test_step(ctx, self, x, y, sample_weight)
            return self._logs()
        pred = self._forward(x, training=False, keep_cache=False)
        loss = self._losses(y, pred, sample_weight, gradient=False)[0] + self._regularization()
        self._track(loss, data.nsamples(x))
        self._update_metrics(y, pred, sample_weight)
        return self._logs()

    def _single_output_only(self, what: str) -> None:
        if self._multi:
            raise ValueError(f"{what} of a model of several outputs is not supported; train it in one process")

    def _ctx(self):
        ctx = distributed.active()
        return ctx if ctx is not None and ctx.size > 1 else None

    def _flat(self, logs: Dict[str, float], return_dict: bool):
        """Keras's results: the dict, or the values in order (one alone as a scalar)."""
        if return_dict:
            return callbacks_mod.pythonify_logs(logs)
        # Keras's _flatten_metrics_in_order: by the metrics' own names (a weighted metric renamed
        # weighted_x in the logs still answers to x there), then the other keys sorted.
        names = ["loss"] + [t.name for t in getattr(self, "_head_trackers", [])] + \
            [getattr(m, "base_name", m.name) for m in self._compiled_metrics or []]
        values = [logs[k] for k in names if k in logs] + [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict: bool = False):
        """One gradient step on one batch. Returns, as Keras, the loss (a
        float), [loss, *metrics] with metrics, or with return_dict a dict.
        Data-parallel (rnn_fast.nn.distributed.init()): the batch is the
        global one, of which each process computes its part."""
        self._require_compiled("train_on_batch")
        x, y, sample_weight = self._check_arrays(x, y, sample_weight, "train_on_batch()")
        if y is None:
            raise ValueError("train_on_batch(): y is required")
        if class_weight is not None:
            if self._multi:
                raise ValueError("train_on_batch(): class_weight is only supported for models of one output (as in "
                                 "Keras); give sample_weight per output")
            if sample_weight is not None:
                raise ValueError("train_on_batch(): sample_weight and class_weight cannot both be given")
            sample_weight = data.class_weights(y, class_weight, "train_on_batch()")
        self.reset_metrics()
        ctx = self._ctx()
        return self._flat(self._train_step(x, y, sample_weight, ctx, sync=ctx is not None and not self.built),
                          return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict: bool = False):
        self._require_compiled("test_on_batch")
        x, y, sample_weight = self._check_arrays(x, y, sample_weight, "test_on_batch()")
        if y is None:
            raise ValueError("test_on_batch(): y is required")
        self.reset_metrics()
        return self._flat(self._test_step(x, y, sample_weight, self._ctx()), return_dict)

    def predict_on_batch(self, x) -> np.ndarray:
        x, _, _ = self._check_arrays(x, None, None, "predict_on_batch()")
        return self._forward(x, training=False, keep_cache=False)

    # ---- loops ---------------------------------------------------------------
    def _check_arrays(self, x, y, sample_weight, who: str):
        """x (the model's inputs: one array, or a tuple of them), y and
        sample_weight (with several outputs: tuples, one per output, from a
        list or a dict by output name; one sample_weight serves all),
        checked: the same number of samples in each."""
        x = self._check_x(x, who)
        n = data.nsamples(x)
        names = self.output_names if self._compiled_multi() else None

        def rows(a, name):
            a = np.asarray(a)
            if a.ndim < 1 or a.shape[0] != n:
                raise ValueError(f"{who}: x and {name} must hold the same number of samples, got {n} and "
                                 f"{a.shape[0] if a.ndim else 'a scalar'}")
            return a
        if names is None:
            y = None if y is None else rows(y, "y")
            sample_weight = None if sample_weight is None else rows(sample_weight, "sample_weight")
            return x, y, sample_weight
        if y is not None:
            y = tuple(rows(a, f"y[{k!r}]") for a, k in zip(_structure(y, names, who, "y"), names))
        if sample_weight is not None:
            if isinstance(sample_weight, (list, tuple, dict)):
                parts = _structure(sample_weight, names, who, "sample_weight", missing_ok=True)
            else:
                parts = [sample_weight] * len(names)
            sample_weight = tuple(None if a is None else rows(a, f"sample_weight[{k!r}]")
                                  for a, k in zip(parts, names))
        return x, y, sample_weight

    def _compiled_multi(self) -> bool:
        return self._multi or (self.loss is None and len(self.output_names) > 1)

    def _epochs(self, x, y, sample_weight, batch_size, shuffle, steps, class_weight, who: str) -> data.Epochs:
        def check(x, y, sw):
            return self._check_arrays(x, y, sw, who)
        src = data.source(x, y, sample_weight, batch_size, shuffle, who, check)
        if class_weight is not None and sample_weight is not None:
            raise ValueError(f"{who}: sample_weight and class_weight cannot both be given")
        if class_weight is not None and self._multi:
            raise ValueError(f"{who}: class_weight is only supported for models of one output (as in Keras); give "
                             f"sample_weight per output")
        if class_weight is not None and isinstance(src, data.IterableSource):
            raise ValueError(f"{who}: class_weight is not supported for generator inputs (as in Keras); yield "
                             f"(x, y, sample_weight) batches instead")
        def check_batch(x, y, sw):
            return self._check_arrays(x, y, sw, f"{who}: a batch")
        return data.Epochs(src, data.steps_arg(steps, who, "steps_per_epoch" if who == "fit()" else "steps"),
                           class_weight, who, check_batch, needs_y=who != "predict()")

    def fit(self, x=None, y=None, batch_size: Optional[int] = None, epochs: int = 1, verbose: Union[int, str] = "auto",
            callbacks=None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            class_weight: Optional[Dict[int, float]] = None, sample_weight=None, initial_epoch: int = 0,
            steps_per_epoch: Optional[int] = None, validation_steps: Optional[int] = None,
            validation_batch_size: Optional[int] = None, validation_freq: Union[int, Sequence[int]] = 1
            ) -> callbacks_mod.History:
        """Trains for `epochs` passes over the data in batches; see Keras's
        Model.fit. x: arrays (with y and sample_weight), a PyDataset-like
        object or a generator of (x, y[, sample_weight]) batches."""
        self._require_compiled("fit")
        verbose = 1 if verbose == "auto" else int(verbose)  # also decides the "Epoch i/n" lines
        if isinstance(validation_freq, bool) or not (
                (isinstance(validation_freq, int) and validation_freq >= 1) or isinstance(validation_freq, (list, tuple))):
            raise ValueError(f"fit(): validation_freq must be a positive integer or a list of epochs, "
                             f"got {validation_freq!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit(): validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is None and validation_split > 0:
            if not data.is_arrays(x):
                raise ValueError("fit(): validation_split needs array data; give validation_data for generators "
                                 "and datasets")
            x, y, sample_weight = self._check_arrays(x, y, sample_weight, "fit()")
            # Keras: the last fraction of the data, taken before any shuffling.
            n = data.nsamples(x)
            split = int(n * (1.0 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit(): validation_split={validation_split} leaves no training or no validation "
                                 f"samples out of {n}")
            validation_data = (data.take(x, slice(split, None)), data.take(y, slice(split, None)),
                               data.take(sample_weight, slice(split, None)))
            x, y = data.take(x, slice(None, split)), data.take(y, slice(None, split))
            sample_weight = data.take(sample_weight, slice(None, split))
        if data.is_arrays(x) and y is None:
            raise ValueError("fit(): y is required")
        train = self._epochs(x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight, "fit()")
        val = None
        if validation_data is not None:
            if isinstance(validation_data, (tuple, list)):
                if len(validation_data) not in (2, 3):
                    raise ValueError("fit(): validation_data must be (x_val, y_val) or (x_val, y_val, "
                                     "sample_weight_val)")
                vx, vy, vsw = data.unpack(tuple(validation_data), "fit(): validation_data")
                if vy is None:
                    raise ValueError("fit(): validation_data needs targets: (x_val, y_val)")
            else:
                vx, vy, vsw = validation_data, None, None
            vbs = validation_batch_size or (batch_size if data.is_arrays(vx) else None)
            val = self._epochs(vx, vy, vsw, vbs, False, validation_steps, None, "fit(): validation_data")
        ctx = self._ctx()
        if ctx is not None:
            # Rank 0's generators now (shuffling and dropout agree), its
            # weights and optimizer state at the first step (built there, as
            # one process builds the model at its first batch).
            distributed.sync_random(ctx, self)
            if not ctx.is_root:
                verbose = 0
        cbs = callbacks_mod.CallbackList(callbacks, self, {"epochs": epochs, "steps": train.num_batches,
                                                          "verbose": verbose}, add_history=True)
        self.stop_training = False
        cbs.on_train_begin()
        training_logs: Dict[str, float] = {}
        first = True
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            bar = _Progress(train.num_batches, verbose)
            logs: Dict[str, float] = {}
            step = -1
            for step, (xb, yb, swb) in train.epoch():
                cbs.on_train_batch_begin(step)
                logs = self._train_step(xb, yb, swb, ctx, sync=first)
                first = False
                cbs.on_train_batch_end(step, logs)
                bar.update(step + 1, logs)
                if self.stop_training:
                    break
            if train.exhausted:
                self.stop_training = True
                break
            epoch_logs = dict(self._logs() if step >= 0 else logs)
            if val is not None and _should_eval(epoch, validation_freq):
                val_logs = self._evaluate(val, cbs, verbose=0)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, logs=epoch_logs)
            bar.update(step + 1, epoch_logs, final=True)
            training_logs = epoch_logs
            if ctx is not None:  # rank 0 decides for all (the logs are the same everywhere)
                self.stop_training = bool(ctx.bcast(self.stop_training))
            if self.stop_training:
                break
        cbs.on_train_end(logs=training_logs)
        return self.history

    def _evaluate(self, epochs: data.Epochs, cbs, verbose) -> Dict[str, float]:
        epochs.restart()  # Keras: each evaluation from the data's start (a generator: where it is)
        ctx = self._ctx()
        if ctx is not None and not ctx.is_root:
            verbose = 0
        bar = _Progress(epochs.num_batches, verbose)
        self.reset_metrics()
        cbs.on_test_begin()
        logs: Dict[str, float] = {}
        step = -1
        with self._weights_fixed():
            for step, (xb, yb, swb) in epochs.epoch():
                cbs.on_test_batch_begin(step)
                logs = self._test_step(xb, yb, swb, ctx)
                cbs.on_test_batch_end(step, logs)
                bar.update(step + 1, logs)
        logs = self._logs() if step >= 0 else logs
        bar.update(step + 1, logs, final=True)
        cbs.on_test_end(logs=logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto",
                 sample_weight=None, steps: Optional[int] = None, callbacks=None, return_dict: bool = False):
        """The loss (and metrics) over the data, in inference mode: a float,
        a list [loss, *metrics], or with return_dict a dict."""
        self._require_compiled("evaluate")
        if data.is_arrays(x) and y is None:
            raise ValueError("evaluate(): y is required")
        epochs = self._epochs(x, y, sample_weight, batch_size, False, steps, None, "evaluate()")
        cbs = callbacks_mod.CallbackList(callbacks, self, {"epochs": 1, "steps": epochs.num_batches,
                                                          "verbose": verbose})
        return self._flat(self._evaluate(epochs, cbs, verbose), return_dict)

    def predict(self, x, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto",
                steps: Optional[int] = None, callbacks=None) -> np.ndarray:
        """The model's outputs for x, in batches, in inference mode (no
        dropout). x: an array, or a dataset or generator of batches (of
        which only x is used)."""
        ctx = self._ctx()
        cbs = callbacks_mod.CallbackList(callbacks, self, {"epochs": 1, "steps": None, "verbose": verbose})
        if ctx is not None and data.is_arrays(x) and not (callbacks or steps):
            # each rank its share, gathered on every rank
            x, _, _ = self._check_arrays(x, None, None, "predict()")
            n = data.nsamples(x)
            start, stop = ctx.part(n)
            size = 32 if batch_size is None else layers_mod.positive_int(batch_size, "predict(): batch_size")
            part = data.Epochs(data.ArraySource(data.take(x, slice(start, stop)), None, None, size, False), None)
            local = self._predict_local(part if stop > start else None, verbose if ctx.is_root else 0, cbs)
            if local is None:  # an empty share: the output's shape from a sample
                with self._weights_fixed():
                    local = self._forward(data.take(x, slice(0, 1)), training=False, keep_cache=False)
                local = [a[:0] for a in local] if isinstance(local, list) else local[:0]
            if isinstance(local, list):
                return [ctx.gather_rows(a, n) for a in local]
            return ctx.gather_rows(local, n)
        epochs = self._epochs(x, None, None, batch_size, False, steps, None, "predict()")
        out = self._predict_local(epochs, verbose, cbs)
        if out is None:
            raise ValueError("predict(): the data held no batches")
        return out

    def _predict_local(self, epochs: Optional[data.Epochs], verbose, cbs) -> Optional[np.ndarray]:
        if epochs is None:
            return None
        bar = _Progress(epochs.num_batches, verbose)
        outs = []
        cbs.on_predict_begin()
        step = -1
        with self._weights_fixed():
            for step, (xb, _, _) in epochs.epoch():
                cbs.on_predict_batch_begin(step)
                outs.append(self._forward(xb, training=False, keep_cache=False))
                cbs.on_predict_batch_end(step, logs={"outputs": outs[-1]})
                bar.update(step + 1, {})
        bar.update(step + 1, {}, final=True)
        cbs.on_predict_end()
        if not outs:
            return None
        if isinstance(outs[0], list):  # several outputs: each one's batches joined
            return [np.concatenate(parts, axis=0) for parts in zip(*outs)]
        return np.concatenate(outs, axis=0)

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

    def save_weights(self, filepath) -> None:
        """The weights (and optimizer state): to filepath ending in
        '.weights.h5', Keras's layout (keras's model.load_weights reads it;
        needs h5py), or '.weights.npz', rnn_fast's own."""
        path = os.fspath(filepath)
        self._require_built("save_weights")
        if path.endswith(".weights.h5"):
            keras_file.save_weights(self, path)
        elif path.endswith(".weights.npz"):
            arrays = {f"{i}/{name}": w for i, layer in enumerate(self.layers)
                      for name, w in zip(layer.weight_names, layer.weights)}
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        else:
            raise ValueError(f"save_weights(): the filepath must end in '.weights.h5' (Keras's weights file) or "
                             f"'.weights.npz' (rnn_fast's), got {path!r}")

    def load_weights(self, filepath) -> None:
        """Weights written by save_weights (either kind), or by Keras's
        save_weights / inside a .keras file, into this built model."""
        path = os.fspath(filepath)
        self._require_built("load_weights")
        if path.endswith(".weights.h5"):
            keras_file.load_weights(self, path)
            return
        if not path.endswith(".weights.npz"):
            raise ValueError(f"load_weights(): the filepath must end in '.weights.h5' or '.weights.npz', "
                             f"got {path!r}")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, ValueError, EOFError, KeyError) as e:
            raise ValueError(f"load_weights(): {path} is not a readable weights file ({type(e).__name__}: {e})") \
                from None
        expected = [f"{i}/{name}" for i, layer in enumerate(self.layers) for name in layer.weight_names]
        if sorted(arrays) != sorted(expected):
            raise ValueError(f"load_weights(): {path} holds the arrays {sorted(arrays)}, the model has {expected}")
        self.set_weights([arrays[k] for k in expected])

    def _save(self, filepath) -> None:
        path = os.fspath(filepath)
        if str(path).endswith(".h5"):
            raise ValueError(f"save(): {path!r}: Keras's legacy HDF5 model format (.h5) is not written by rnn_fast; "
                             f"save to a .keras file (Keras 3's format, which keras.models.load_model reads) or to "
                             f"rnn_fast's own format (any other name, e.g. model.npz)")
        if str(path).endswith(".keras"):
            keras_file.save_keras(self, path)
            return
        model_file.save(self, path)




def _stacked(layer: layers_mod.Layer, shape):
    """The output shape of a layer of a Sequential stack on input `shape`
    (built on it if need be); a layer that outputs a list is refused."""
    if not layer.built:
        layer.build(shape)
    out = layer.output_shape_for(shape)
    if isinstance(out, list):
        raise ValueError(f"Sequential: {layer.name} outputs a list (return_state=True or merge_mode=None); a "
                         f"layer inside Sequential must output one array")
    return out


class Sequential(Model):
    """A stack of layers, each feeding the next: keras.Sequential."""

    _count = 0
    _class_name = "Sequential"

    def __init__(self, layers: Optional[Sequence[layers_mod.Layer]] = None, name: Optional[str] = None):
        if name is None:
            name = "sequential" if Sequential._count == 0 else f"sequential_{Sequential._count}"
            Sequential._count += 1
        self._init_model(name)
        self.layers: List[layers_mod.Layer] = []
        self.input_shape: Optional[Tuple[Optional[int], ...]] = None
        for layer in layers or []:
            self.add(layer)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return (None,) + tuple(self._output_shapes()[-1]) if self.layers else self.input_shape

    def _check_x(self, x, who: str):
        if isinstance(x, dict):
            raise TypeError(f"{who}: x is a dict; named inputs need a functional Model(inputs, outputs) built "
                            f"from Input(name=...) tensors")
        return _check_sample_array(x, who, "x")

    def __call__(self, x, training: bool = False) -> np.ndarray:
        return self._forward(np.asarray(x), training=training, keep_cache=False)

    # ---- structure ---------------------------------------------------------
    def add(self, layer: layers_mod.Layer) -> None:
        """Appends a layer; an Input(...) tensor first sets the input shape, as in Keras."""
        if isinstance(layer, functional.KerasTensor) and isinstance(layer._keras_history[0], functional.InputLayer):
            if self.layers or self.built:
                raise ValueError("Sequential.add(): an Input() must come first, before any layer")
            self.input_shape = layer.shape
            return
        if not isinstance(layer, layers_mod.Layer):
            raise TypeError(f"Sequential.add(): expected a layer, got {type(layer).__name__}")
        # The names and the last output shape, kept as layers are added (a
        # model of n layers is built in O(n), not O(n^2)).
        names, (count, shape) = self.__dict__.get("_names", set()), self.__dict__.get("_tail", (-1, None))
        if len(names) != len(self.layers):
            names = {l.name for l in self.layers}
        if layer.name in names:
            raise ValueError(f"Sequential.add(): the model already has a layer named {layer.name!r}")
        if self.built:
            if count != len(self.layers):
                shape = self._output_shapes()[-1] if self.layers else self.input_shape[1:]
            shape = _stacked(layer, shape)
            self._tail = (len(self.layers) + 1, shape)
        names.add(layer.name)
        self._names = names
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
            shape = _stacked(layer, shape)

    def _output_shapes(self) -> List[Tuple[Optional[int], ...]]:
        shape = self.input_shape[1:]
        out = []
        for layer in self.layers:
            shape = layer.output_shape_for(shape)
            out.append(shape)
        return out

    def summary(self, print_fn=print) -> None:
        self._require_built("summary")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        for layer, shape in zip(self.layers, self._output_shapes()):
            rows.append((f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(shape)),
                         f"{layer.count_params():,}"))
        _print_table(self, rows, print_fn)

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

    def _backward(self, dy: np.ndarray) -> None:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)

    # ---- saving --------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name, "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers]}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Sequential":
        """A new model of get_config()'s architecture (weights drawn afresh, as Keras's from_config)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Sequential.from_config(): config must be a dict with a 'layers' list, as get_config() "
                             "returns")
        model = cls([layers_mod.layer_from_config(spec) for spec in config["layers"]], name=config.get("name"))
        if config.get("input_shape") is not None and not model.built:
            model.build(tuple(config["input_shape"]))
        return model

    def pop(self) -> layers_mod.Layer:
        """Removes and returns the last layer (Keras's Sequential.pop)."""
        if not self.layers:
            raise IndexError("pop(): there are no layers in the model")
        self._tail = (-1, None)
        self._names = set()
        return self.layers.pop()



def load_model(filepath, custom_objects: Optional[Dict[str, Any]] = None, compile: bool = True) -> Model:
    """Reads a file written by save: the same architecture, the weights and
    optimizer state bit for bit. A file that is not one, or whose contents
    were changed, is refused with a ValueError, checked before anything is
    built or decompressed (model_file.py). A Keras 3 ``.keras`` file of a
    Sequential or functional model of rnn_fast's layers is read too
    (keras_file.py; needs h5py). custom_objects: the custom losses and
    metrics the model was compiled with, by name."""
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
    return model_file.load(data, filepath, custom_objects, compile)


def _map_heads(multi: bool, fn, value):
    """fn of a compile setting, or of each output's with several outputs."""
    return [fn(v) for v in value] if multi else fn(value)


def _from_config(class_name, config, who: str) -> Model:
    if class_name == "Sequential":
        return Sequential.from_config(config)
    if class_name in ("Functional", "Model"):
        return Model.from_config(config)
    raise ValueError(f"{who}: expected a Sequential or Functional model, got class {class_name!r}")


def model_from_json(text: str) -> Model:
    """The model of to_json()'s text (Sequential or functional), its weights drawn afresh."""
    try:
        spec = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"model_from_json(): not a model's JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError("model_from_json(): expected the JSON of a model (its to_json())")
    return _from_config(spec.get("class_name"), spec.get("config"), "model_from_json()")
