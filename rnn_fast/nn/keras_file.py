"""Reading Keras 3's ``.keras`` files (a zip of ``config.json``, the model's
architecture, and ``model.weights.h5``, its weights) into ``rnn_fast.nn``:
``load_model("model.keras")`` comes here. ``Sequential`` and functional
models of the layers rnn_fast has, with options it runs; anything else is
named in a ``ValueError``. The weights are read with ``h5py`` (the ``keras`` extra).
The model is compiled as Keras's was (optimizer class and settings, loss,
metrics) with a fresh optimizer state.
"""
from __future__ import annotations

import inspect
import io
import json
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from . import layers as L
from . import optimizers, regularizers
from .naming import snake_case

# Keys of a Keras layer's config that change nothing here: naming, dtype
# policy, how the weights were first drawn (they are read from the file),
# Keras's own execution choices.
_IGNORED = {"name", "trainable", "dtype", "seed", "unroll", "kernel_initializer",
            "recurrent_initializer", "bias_initializer", "embeddings_initializer"}
# Keys that must hold their default (rnn_fast has no such option).
_DEFAULTS = {"activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
             "bias_constraint": None, "embeddings_constraint": None, "recurrent_dropout": 0.0,
             "quantization_config": None, "noise_shape": None, "sparse": False,
             "lora_rank": None, "lora_alpha": None, "input_length": None, "data_format": "channels_last"}
_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "embeddings_regularizer")
# rnn_fast's layers by Keras class name, and the config keys each takes.
_LAYERS = {
    "SimpleRNN": (L.SimpleRNN, ("units", "activation", "use_bias", "dropout", "recurrent_dropout", "return_sequences",
                                "return_state", "go_backwards", "stateful", "zero_output_for_mask")),
    "LSTM": (L.LSTM, ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "dropout",
                      "recurrent_dropout", "return_sequences", "return_state", "go_backwards", "stateful",
                      "zero_output_for_mask")),
    "GRU": (L.GRU, ("units", "activation", "recurrent_activation", "use_bias", "reset_after", "dropout",
                    "return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask")),
    "Dense": (L.Dense, ("units", "activation", "use_bias")),
    "Dropout": (L.Dropout, ("rate",)),
    "Embedding": (L.Embedding, ("input_dim", "output_dim", "mask_zero")),
    "Masking": (L.Masking, ("mask_value",)),
    "RepeatVector": (L.RepeatVector, ("n",)),
    "Activation": (L.Activation, ("activation",)),
    "Flatten": (L.Flatten, ()),
    "Concatenate": (L.Concatenate, ("axis",)),
    "Add": (L.Add, ()),
    "Subtract": (L.Subtract, ()),
    "Multiply": (L.Multiply, ()),
    "Average": (L.Average, ()),
}
# Layers holding a layer: Keras's config key of the inner layer(s).
_WRAPPERS = ("Bidirectional", "TimeDistributed")


def is_keras_file(data: bytes) -> bool:
    """Whether data is a zip holding config.json and model.weights.h5."""
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except MemoryError:
        raise
    except Exception:  # not a zip, or a damaged one (zipfile raises many kinds): the caller's reader says which
        return False
    return {"config.json", "model.weights.h5"} <= names


def _regularizer(spec, where: str):
    if spec is None:
        return None
    cls, cfg = spec.get("class_name"), spec.get("config", {})
    if cls in ("L1", "L2", "L1L2"):
        return regularizers.Regularizer(l1=float(cfg.get("l1", 0.0)), l2=float(cfg.get("l2", 0.0)))
    raise ValueError(f"{where}: regularizer {cls!r} has no rnn_fast counterpart")


def _layer(spec: Dict[str, Any], where: str, input_shape=None) -> L.Layer:
    cls, cfg = spec.get("class_name"), dict(spec.get("config", {}))
    where = f"{where} ({cls} {cfg.get('name', '?')!r})"
    if cls == "Bidirectional":
        unknown = set(cfg) - _IGNORED - {"merge_mode", "layer", "backward_layer"}
        if unknown:
            raise ValueError(f"{where}: options {sorted(unknown)} are not supported")
        forward = _layer(cfg["layer"], where, input_shape)
        backward = _layer(cfg["backward_layer"], where) if cfg.get("backward_layer") else None
        return L.Bidirectional(forward, merge_mode=cfg.get("merge_mode", "concat"), backward_layer=backward,
                               **_name(cfg))
    if cls == "TimeDistributed":
        unknown = set(cfg) - _IGNORED - {"layer"}
        if unknown:
            raise ValueError(f"{where}: options {sorted(unknown)} are not supported")
        return L.TimeDistributed(_layer(cfg["layer"], where), **_name(cfg))
    if cls not in _LAYERS:
        raise ValueError(f"{where}: rnn_fast.nn has no {cls} layer (it reads {sorted(_LAYERS)}, "
                         f"{' and '.join(_WRAPPERS)})")
    make, keys = _LAYERS[cls]
    kwargs = {k: cfg[k] for k in keys if k in cfg}
    for key in _REGULARIZERS:
        if key in cfg:
            reg = _regularizer(cfg[key], where)
            if reg is not None:
                kwargs[key] = reg
    for key, default in _DEFAULTS.items():
        if key in cfg and key not in keys and cfg[key] != default:
            raise ValueError(f"{where}: {key}={cfg[key]!r} is not supported (rnn_fast runs {key}={default!r})")
    unknown = set(cfg) - _IGNORED - set(_DEFAULTS) - set(_REGULARIZERS) - set(keys)
    if unknown:
        raise ValueError(f"{where}: options {sorted(unknown)} are not supported")
    return make(input_shape=input_shape, **kwargs, **_name(cfg))


def _without_mask_ops(config: Dict[str, Any], filepath) -> Dict[str, Any]:
    """A functional config without the operations (keras.src.ops: not_equal,
    any, logical_or, ...) Keras records to compute masks, and without the
    layers' mask= arguments they feed: rnn_fast passes masks along the
    graph itself. An operation whose output feeds anything but a mask is
    refused by name."""
    ops = {spec["name"]: spec.get("class_name") for spec in config["layers"]
           if isinstance(spec, dict) and str(spec.get("module", "")).startswith("keras.src.ops")}
    if not ops:
        return config

    def refs(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                yield value["config"]["keras_history"][0]
            else:
                for v in value.values():
                    yield from refs(v)
        elif isinstance(value, list):
            for v in value:
                yield from refs(v)
    layers = []
    for spec in config["layers"]:
        if spec.get("name") in ops:
            continue
        spec = dict(spec)
        nodes = []
        for node in spec.get("inbound_nodes") or []:
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k not in ("mask", "training")}
            used = [r for r in refs([node.get("args"), kwargs]) if r in ops]
            if used:
                raise ValueError(f"load_model(): {filepath}: layer {spec.get('name')!r} reads the output of the Keras "
                                 f"operation {used[0]!r} ({ops[used[0]]}); rnn_fast.nn runs layers only")
            nodes.append(dict(node, kwargs=kwargs))
        spec["inbound_nodes"] = nodes
        layers.append(spec)
    outs = config["output_layers"]
    for ref in ([outs] if outs and isinstance(outs[0], str) else outs):
        if ref[0] in ops:
            raise ValueError(f"load_model(): {filepath}: the output comes from the Keras operation {ref[0]!r}; "
                             f"rnn_fast.nn runs layers only")
    return dict(config, layers=layers)


def _name(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The layer's name, kept (a functional model's output names are its layers')."""
    return {"name": cfg["name"]} if isinstance(cfg.get("name"), str) else {}


def _variables(group, cls: str) -> List[Any]:
    """The datasets (not yet read) of one layer's group of the weights file, in Keras's order
    (which is rnn_fast's: kernel, recurrent kernel, bias; Bidirectional's
    forward layer's, then its backward layer's)."""
    if cls == "Bidirectional":
        return [a for part in ("forward_layer", "backward_layer")
                for a in _variables(group[part], "_recurrent")]
    if cls == "TimeDistributed":
        return _variables(group["layer"], "_inner")
    node = group["cell"] if "cell" in group else group
    if "vars" not in node:
        return []
    vars_ = node["vars"]
    return [vars_[k] for k in sorted(vars_, key=int)]


MAX_CONFIG_BYTES = 64 << 20
MAX_MEMBERS = 64


def load_keras(data: bytes, filepath, compile: bool = True):
    """The rnn_fast Sequential or functional Model of a Keras 3 .keras
    file's bytes. The file is untrusted, as model_file.py's: the zip's
    directory is checked first (a few members, each once; a config of
    bounded size), the model is built from the config with placeholder
    weights, the weights file's size is bounded by the weights it must hold
    before it is decompressed, and every array's shape is checked against
    the model's before it is read. A file that fails, or that h5py or the
    JSON parser cannot read, is a ValueError."""
    try:
        return _load_keras(data, filepath, compile)
    except (ValueError, MemoryError, ImportError):
        raise
    except Exception as e:  # h5py's OSError and KeyError, a config's TypeError, RecursionError, ...
        raise ValueError(f"load_model(): {filepath} is not a readable Keras file ({type(e).__name__}: "
                         f"{str(e)[:300]})") from None


def _load_keras(data: bytes, filepath, compile: bool):
    import h5py  # the keras extra

    from . import functional, initializers
    from .models import Model, Sequential

    archive = zipfile.ZipFile(io.BytesIO(data))
    infos = archive.infolist()
    names = [i.filename for i in infos]
    if len(infos) > MAX_MEMBERS or len(set(names)) != len(names):
        raise ValueError(f"load_model(): {filepath} is damaged: {len(infos)} members"
                         f"{', some twice' if len(set(names)) != len(names) else ''}")
    members = {i.filename: i for i in infos}
    if members["config.json"].file_size > MAX_CONFIG_BYTES:
        raise ValueError(f"load_model(): {filepath}: its config.json declares {members['config.json'].file_size} "
                         f"bytes, more than a model's config takes ({MAX_CONFIG_BYTES})")
    config = json.loads(archive.read("config.json"))
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional"):
        raise ValueError(f"load_model(): {filepath} holds a Keras {kind} model; rnn_fast reads Sequential and "
                         f"functional models")
    specs = config["config"]["layers"]
    try:
        with initializers.placeholders():  # no draws: the file's weights come next
            model, specs, ordered = _keras_model(config, kind, specs, filepath, functional, Model, Sequential)
    except MemoryError as e:  # even lazily mapped, the weights its config asks for do not fit
        raise ValueError(f"load_model(): {filepath}: its config makes a model larger than memory ({e})") from None
    # The weights file holds the weights and at most an optimizer's three slots of each, plus HDF5's
    # own structure: a larger one is refused before it is decompressed.
    weight_bytes = sum(w.nbytes for w in model.weights)
    limit = (64 << 20) + 8 * weight_bytes
    if members["model.weights.h5"].file_size > limit:
        raise ValueError(f"load_model(): {filepath}: its model.weights.h5 declares "
                         f"{members['model.weights.h5'].file_size} bytes, more than the {weight_bytes} bytes of "
                         f"weights its config makes can take ({limit})")
    classes = [spec["class_name"] for spec in specs]
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        for key, cls, layer in zip(_group_keys(classes), classes, ordered):
            found = _layer_datasets(f, key, cls, layer, f"load_model(): {filepath}", "the config makes")
            layer.set_weights([np.asarray(ds).astype(w.dtype) for ds, w in zip(found, layer.weights)])
        opt_vars = None
        if "optimizer" in f and "vars" in f["optimizer"]:
            node = f["optimizer"]["vars"]
            datasets = [node[k] for k in sorted(node, key=int)]
            declared = sum(int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize for ds in datasets)
            if declared > 4 * weight_bytes + (1 << 20) or any(ds.dtype.kind not in "fiu" for ds in datasets):
                raise ValueError(f"load_model(): {filepath}: its optimizer variables declare {declared} bytes or "
                                 f"a non-numeric dtype, more than an optimizer of {weight_bytes} bytes of weights "
                                 f"holds")
            opt_vars = [np.asarray(ds) for ds in datasets]
    return _keras_compile(model, config, opt_vars, filepath, compile)


def _keras_model(config, kind, specs, filepath, functional, Model, Sequential):
    """The model of a .keras config, its layers in the weights file's order."""
    if kind == "Functional":
        def make(spec):
            if spec.get("class_name") == "InputLayer":
                cfg = spec.get("config", {})
                return functional.InputLayer(batch_shape=cfg.get("batch_shape"), dtype=cfg.get("dtype"),
                                             name=cfg.get("name"))
            return _layer(spec, f"load_model(): {filepath}: layer {spec.get('name')!r}")
        try:
            inputs, outputs, single_in, single_out = functional.rebuild(_without_mask_ops(config["config"],
                                                                                          filepath), make)
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"load_model(): {filepath}: the model's graph cannot be read ({e!r})") from None
        model = Model(inputs[0] if single_in else inputs, outputs[0] if single_out else outputs,
                      name=config["config"].get("name"))
        by_name = {layer.name: layer for layer in model.layers}
        specs = [spec for spec in specs if spec.get("name") in by_name]  # the layers (not mask operations)
        ordered = [by_name[spec["name"]] for spec in specs]
    else:
        input_shape: Optional[tuple] = None
        if specs and specs[0].get("class_name") == "InputLayer":
            input_shape = tuple(specs[0]["config"]["batch_shape"][1:])
            specs = specs[1:]
        built = [_layer(spec, f"load_model(): {filepath}: layer {k}", input_shape if k == 0 else None)
                 for k, spec in enumerate(specs)]
        model = Sequential(built, name=config["config"].get("name"))
        if input_shape is not None and not model.built:
            model.build(input_shape)
        ordered = model.layers
    return model, specs, ordered


def _keras_compile(model, config, opt_vars, filepath, compile: bool):
    """The model compiled as the .keras file's compile_config says, with the optimizer's state."""
    comp = config.get("compile_config")
    if compile and comp:
        opt = comp.get("optimizer")
        optimizer = "rmsprop"
        if isinstance(opt, dict):
            cls = opt.get("class_name")
            classes = {c.__name__: c for c in optimizers.OPTIMIZERS.values()}
            if cls not in classes:
                raise ValueError(f"load_model(): {filepath}: optimizer {cls!r} has no rnn_fast counterpart")
            # Its own arguments and every optimizer's (clipping, weight decay); Keras's options rnn_fast
            # does not have must hold their defaults, or training would silently differ.
            accepted = (set(inspect.signature(classes[cls]).parameters) |
                        set(inspect.signature(optimizers.Optimizer.__init__).parameters)) - {"self", "kwargs"}
            config = dict(opt.get("config", {}))
            for key, default in (("use_ema", False), ("loss_scale_factor", None),
                                 ("gradient_accumulation_steps", None)):
                if config.pop(key, default) not in (default, None):
                    raise ValueError(f"load_model(): {filepath}: optimizer {cls} with {key}={opt['config'][key]!r} "
                                     f"is not supported (rnn_fast runs {key}={default!r})")
            unknown = set(config) - accepted - {"name", "ema_momentum", "ema_overwrite_frequency"}
            if unknown:
                raise ValueError(f"load_model(): {filepath}: optimizer {cls}'s options {sorted(unknown)} are not "
                                 f"supported")
            settings = {k: v for k, v in config.items() if k in accepted and v is not None}
            optimizer = optimizers.from_config(cls, settings)
        elif isinstance(opt, str):
            optimizer = opt
        def each(value, fn):  # a setting, or one per output (a list or a dict by output name)
            if isinstance(value, dict) and "class_name" not in value:
                return {k: each(v, fn) for k, v in value.items()}
            if isinstance(value, list):
                return [each(v, fn) for v in value]
            return fn(value)

        def metric_list(value):
            if value is None:
                return None
            if len(model.output_names) > 1:
                return each(value, lambda m: None if m is None else _read_metric(m, filepath))
            return [_read_metric(m, filepath) for m in value]
        model.compile(optimizer=optimizer, loss=each(comp.get("loss"), lambda l: _read_loss(l, filepath)),
                      loss_weights=comp.get("loss_weights"), metrics=metric_list(comp.get("metrics")),
                      weighted_metrics=metric_list(comp.get("weighted_metrics")))
        if opt_vars:
            _set_optimizer_vars(model, opt_vars, filepath)
    return model


def _set_optimizer_vars(model, values: List[np.ndarray], filepath) -> None:
    """The optimizer's state from Keras's list of its variables (the order
    _optimizer_vars writes); a list that does not fit this optimizer is
    skipped with a warning, as Keras skips it."""
    import warnings

    from . import schedules

    opt = model.optimizer  # just compiled: no state yet
    skip = 1 if isinstance(opt._learning_rate, schedules.LearningRateSchedule) else 2
    if len(values) == skip and all(v.ndim == 0 for v in values):  # compiled, never built: no slots yet
        opt.iterations = int(values[0])
        return
    # Past iterations (and the learning rate, which the config holds), _optimizer_vars's arrays are
    # the state's own: fill a fresh state through them.
    opt.state = [[np.zeros_like(w) for _ in opt.slots] for w in model.trainable_weights]
    layout = _optimizer_vars(model)
    if len(layout) != len(values) or any(a.shape != b.shape for a, b in zip(layout, values)):
        opt.state = []
        warnings.warn(f"load_model(): {filepath}: skipping the optimizer's state: the file holds {len(values)} "
                      f"variables, rnn_fast's {type(opt).__name__} has {len(layout)}", stacklevel=3)
        return
    for target, value in zip(layout[skip:], values[skip:]):
        target[...] = value
    opt.iterations = int(values[0])


def _read_loss(spec, filepath):
    """A compile_config's loss: a name, or a serialized Keras loss object."""
    from . import losses

    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        cls, cfg = spec.get("class_name"), spec.get("config") or {}
        classes = {"MeanSquaredError": losses.MeanSquaredError, "MeanAbsoluteError": losses.MeanAbsoluteError,
                   "MeanSquaredLogarithmicError": losses.MeanSquaredLogarithmicError, "Huber": losses.Huber,
                   "BinaryCrossentropy": losses.BinaryCrossentropy,
                   "CategoricalCrossentropy": losses.CategoricalCrossentropy,
                   "SparseCategoricalCrossentropy": losses.SparseCategoricalCrossentropy}
        if cls in classes:
            accepted = inspect.signature(classes[cls]).parameters
            unknown = {k: v for k, v in cfg.items() if k not in accepted and k not in ("name", "reduction", "dtype")}
            if cfg.get("reduction", "sum_over_batch_size") != "sum_over_batch_size" or unknown:
                raise ValueError(f"load_model(): {filepath}: loss {cls} with {unknown or cfg.get('reduction')} is "
                                 f"not supported")
            return classes[cls](**{k: v for k, v in cfg.items() if k in accepted})
    raise ValueError(f"load_model(): {filepath}: loss {spec!r} is not one rnn_fast knows; load with compile=False")


def _read_metric(spec, filepath):
    from . import metrics

    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and spec.get("class_name") in ("AUC", "Precision", "Recall"):
        cls = {"AUC": metrics.AUC, "Precision": metrics.Precision, "Recall": metrics.Recall}[spec["class_name"]]
        accepted = inspect.signature(cls).parameters
        cfg = spec.get("config") or {}
        return cls(**{k: v for k, v in cfg.items() if k in accepted and v is not None})
    if isinstance(spec, dict) and isinstance(spec.get("config"), dict) and "name" in spec["config"]:
        try:
            return metrics.deserialize({"class_name": spec.get("class_name"),
                                        "config": {"name": spec["config"]["name"]}})
        except ValueError:
            pass
    raise ValueError(f"load_model(): {filepath}: metric {spec!r} is not one rnn_fast knows; load with compile=False")


# ---------------------------------------------------------------------------
# Writing: Keras 3's .keras and .weights.h5 files
# ---------------------------------------------------------------------------
KERAS_VERSION = "3.15.1"  # the version whose format is written (and read back by the tests)


def _serialized(module: str, class_name: str, config: Dict[str, Any]) -> Dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _keras_regularizer(cfg):
    if cfg is None:
        return None
    return _serialized("keras.regularizers", "L1L2", {"l1": float(cfg["l1"]), "l2": float(cfg["l2"])})


def _keras_layer(layer: L.Layer, input_shape) -> Dict[str, Any]:
    """A layer as Keras's config.json holds it."""
    cls = type(layer).__name__
    if cls not in _LAYERS and cls not in _WRAPPERS:
        raise ValueError(f"save(): Keras's .keras format: rnn_fast cannot write a {cls} layer there")
    cfg = layer.get_config()
    cfg.pop("input_shape", None)
    for key in _REGULARIZERS:
        if key in cfg:
            cfg[key] = _keras_regularizer(cfg[key])
    if cls == "Bidirectional":
        cfg["layer"] = _keras_layer(layer.forward_layer, input_shape)
        cfg["backward_layer"] = _keras_layer(layer.backward_layer, input_shape)
    if cls == "TimeDistributed":
        cfg["layer"] = _keras_layer(layer.layer, tuple(input_shape)[1:])
    out = _serialized("keras.layers", cls, cfg)
    many = isinstance(input_shape, list)  # a merge layer's inputs
    out["build_config"] = {"input_shape": [[None] + list(s) for s in input_shape] if many
                           else [None] + list(input_shape)}
    return out


def _functional_config(model) -> Dict[str, Any]:
    """A functional model's config.json: Keras's layout (model.get_config()'s
    graph) with each layer as Keras writes it."""
    from . import functional

    graph = model.get_config()
    specs = []
    for layer, spec in zip(model.layers, graph["layers"]):
        if isinstance(layer, functional.InputLayer):
            out = _serialized("keras.layers", "InputLayer", {"batch_shape": list(layer.batch_shape),
                                                            "dtype": layer.dtype.name, "sparse": False,
                                                            "name": layer.name})
        else:
            node = next(n for n in model._graph.nodes if n.layer is layer)
            shape = [t.shape[1:] for t in node.args] if isinstance(node.args, list) else node.args.shape[1:]
            out = _keras_layer(layer, shape)
        out["name"] = layer.name
        out["inbound_nodes"] = spec["inbound_nodes"]
        specs.append(out)
    return {"name": model.name, "trainable": model.trainable, "layers": specs,
            "input_layers": graph["input_layers"], "output_layers": graph["output_layers"]}


def _keras_compile_config(model) -> Optional[Dict[str, Any]]:
    """compile()'s settings as Keras writes them, or None (with a warning)
    when a custom loss, metric or schedule has no Keras name."""
    import warnings

    from . import losses, metrics, schedules

    opt = model.optimizer
    if opt is None:
        return None
    keras_losses = {"mean_squared_error": "MeanSquaredError", "mean_absolute_error": "MeanAbsoluteError",
                    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError", "huber": "Huber",
                    "binary_crossentropy": "BinaryCrossentropy", "categorical_crossentropy": "CategoricalCrossentropy",
                    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"}

    def loss_spec(loss):
        if type(loss) not in (losses.Loss, losses.Huber) and type(loss).__name__ not in keras_losses.values():
            return None
        if loss.name == "huber" or loss.from_logits:
            config = {"name": loss.name, "reduction": "sum_over_batch_size"}
            config.update({"delta": loss.delta} if loss.name == "huber" else {"from_logits": True})
            return _serialized("keras.losses", keras_losses[loss.name], config)
        return loss.name

    def metric(spec):
        if isinstance(spec, str):
            return spec
        ser = metrics.serialize(spec)
        if "custom" in ser:
            return None
        return _serialized("keras.metrics", ser["class_name"], ser["config"])
    multi = model._multi
    heads = model.loss if multi else [model.loss]
    loss_specs = [loss_spec(l) for l in heads]
    if any(l is None for l in loss_specs):
        name = next(l.name for l, spec in zip(heads, loss_specs) if spec is None)
        warnings.warn(f"save(): the custom loss {name!r} has no Keras counterpart: the .keras file is written "
                      f"without its compile settings (Keras loads it uncompiled)", stacklevel=4)
        return None
    groups = [model._metric_specs, model._weighted_specs]
    specs = [[[metric(m) for m in head] for head in g] if multi else [metric(m) for m in g] for g in groups]
    flat = [m for g in specs for m in (sum(g, []) if multi else g)]
    if any(m is None for m in flat):
        warnings.warn("save(): a custom metric has no Keras counterpart: the .keras file is written without its "
                      "compile settings (Keras loads it uncompiled)", stacklevel=4)
        return None
    weights: Any = list(model._loss_weights) if multi else (None if model._loss_weights == [1.0]
                                                            else model._loss_weights[0])
    loss_out: Any = loss_specs if multi else loss_specs[0]
    ocfg = dict(opt.get_config())
    lr = opt._learning_rate
    if isinstance(lr, schedules.LearningRateSchedule):
        ser = schedules.serialize(lr)
        ocfg["learning_rate"] = _serialized("keras.optimizers.schedules", ser["class_name"], ser["config"])
    ocfg["name"] = type(opt).__name__.lower()
    return {"optimizer": _serialized("keras.optimizers", type(opt).__name__, ocfg), "loss": loss_out,
            "loss_weights": weights,
            "metrics": (specs[0] if any(specs[0]) else None) if multi else (specs[0] or None),
            "weighted_metrics": (specs[1] if any(specs[1]) else None) if multi else (specs[1] or None),
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _group_keys(class_names) -> List[str]:
    """The groups of layers of these classes in the weights file: Keras's
    snake-case class names, numbered from the second of a class (lstm,
    lstm_1, ...)."""
    counts: Dict[str, int] = {}
    keys = []
    for cls in class_names:
        stem = snake_case(cls)
        keys.append(stem if counts.get(stem, 0) == 0 else f"{stem}_{counts[stem]}")
        counts[stem] = counts.get(stem, 0) + 1
    return keys


def _layer_keys(model) -> List[str]:
    """Each of the model's layers' group in the weights file."""
    return _group_keys(type(layer).__name__ for layer in model.layers)


def _layer_datasets(f, key: str, cls: str, layer, where: str, theirs: str) -> List[Any]:
    """The datasets (not yet read) of group `key` (a layer of class cls) of
    the weights file f, checked against layer's weights: as many, each of
    its shape and a float dtype; else a ValueError starting with `where`
    and saying what `theirs` ("the config makes") holds."""
    found = _variables(f["layers"][key], cls) if key in f["layers"] else []
    if len(found) != len(layer.weights):
        raise ValueError(f"{where}: layer {layer.name} ({key}) has {len(found)} weight arrays in the file, "
                         f"{theirs} {len(layer.weights)}")
    for ds, w, name in zip(found, layer.weights, layer.weight_names):
        if tuple(ds.shape) != w.shape or ds.dtype.kind != "f":
            raise ValueError(f"{where}: {layer.name}'s {name} is {ds.dtype} {ds.shape} in the file, {theirs} "
                             f"{w.dtype} {w.shape}")
    return found


def _optimizer_vars(model) -> List[np.ndarray]:
    """The optimizer's state in Keras's order: iterations, the learning
    rate (unless a schedule), then its slots by kind over all trainable
    weights (Adam's momentum and velocity interleaved per weight)."""
    from . import schedules

    opt = model.optimizer
    if opt is None:
        return []
    out = [np.array(opt.iterations, np.int64)]
    if not isinstance(opt._learning_rate, schedules.LearningRateSchedule):
        out.append(np.array(opt._learning_rate, np.float32))
    kind = "Adam" if isinstance(opt, optimizers.Adam) else type(opt).__name__  # AdamW's variables are Adam's
    # Before the first step, the zeros Keras's compile builds.
    state = opt.state or [[np.zeros_like(w) for _ in opt.slots] for w in model.trainable_weights]
    if kind == "Adam":
        out += [a for slots in state for a in slots[:2]]
        if opt.amsgrad:
            out += [slots[2] for slots in state]
    elif kind == "RMSprop":
        out += [slots[0] for slots in state]
        if opt.momentum > 0:
            out += [slots[1] for slots in state]
        if opt.centered:
            out += [slots[2] for slots in state]
    elif kind == "SGD" and opt.momentum != 0:
        out += [slots[0] for slots in state]
    return out


def _write_weights(model, f) -> None:
    """Keras's weights layout into the open h5py File f."""
    from . import layers as layers_mod

    layers_group = f.create_group("layers")
    for key, layer in zip(_layer_keys(model), model.layers):
        group = layers_group.create_group(key)
        group.create_group("vars").attrs["name"] = layer.name
        parts = [(group, layer)]
        if isinstance(layer, layers_mod.Bidirectional):
            parts = [(group.create_group(side), sub) for side, sub in
                     (("forward_layer", layer.forward_layer), ("backward_layer", layer.backward_layer))]
            for g, sub in parts:
                g.create_group("vars").attrs["name"] = sub.name
        if isinstance(layer, layers_mod.TimeDistributed):
            parts = [(group.create_group("layer"), layer.layer)]
            parts[0][0].create_group("vars").attrs["name"] = layer.layer.name
        for g, sub in parts:
            if isinstance(sub, layers_mod._Recurrent):
                g = g.create_group("cell")
                node = g.create_group("vars")
                node.attrs["name"] = f"{snake_case(type(sub).__name__)}_cell"
            else:
                node = g["vars"]
            for i, w in enumerate(sub.weights):
                node.create_dataset(str(i), data=w)
    opt_vars = _optimizer_vars(model)
    if opt_vars:
        node = f.create_group("optimizer").create_group("vars")
        node.attrs["name"] = type(model.optimizer).__name__.lower()
        for i, a in enumerate(opt_vars):
            node.create_dataset(str(i), data=a)
    f.create_group("vars").attrs["name"] = model.name


def _h5py(what: str):
    try:
        import h5py
    except ImportError:
        raise ImportError(f"{what} needs h5py: pip install 'rnn_fast[keras]'") from None
    return h5py


def save_keras(model, filepath) -> None:
    """model as a Keras 3 .keras file: config.json (architecture and
    compile settings), model.weights.h5 (weights and optimizer state),
    metadata.json; keras.models.load_model reads it."""
    import datetime

    from .models import Sequential

    h5py = _h5py("save() to a .keras file")
    model._require_built("save")
    if isinstance(model, Sequential):
        input_shape = tuple(model.input_shape[1:])
        specs = [_serialized("keras.layers", "InputLayer", {"batch_shape": [None] + list(input_shape),
                                                            "dtype": model.layers[0].dtype.name if model.layers
                                                            else "float32", "sparse": False, "name": "input_layer"})]
        shape = input_shape
        for layer in model.layers:
            specs.append(_keras_layer(layer, shape))
            shape = layer.output_shape_for(shape)
        config = _serialized("keras", "Sequential", {"name": model.name, "trainable": model.trainable,
                                                     "layers": specs, "build_input_shape": [None] + list(input_shape)})
        config["build_config"] = {"input_shape": [None] + list(input_shape)}
    else:
        config = _serialized("keras.src.models.functional", "Functional", _functional_config(model))
        config["build_config"] = {"input_shape": None}
    config["compile_config"] = _keras_compile_config(model)
    weights = io.BytesIO()
    with h5py.File(weights, "w") as f:
        _write_weights(model, f)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": "rnn_fast"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights.getvalue(), compress_type=zipfile.ZIP_STORED)
    with open(filepath, "wb") as out:
        out.write(buf.getvalue())


def save_weights(model, filepath) -> None:
    """The weights (and optimizer state) in Keras's .weights.h5 layout."""
    h5py = _h5py("save_weights() to a .weights.h5 file")
    model._require_built("save_weights")
    with h5py.File(filepath, "w") as f:
        _write_weights(model, f)


def load_weights(model, filepath) -> None:
    """Weights from a Keras .weights.h5 file (or a .keras file's) into the
    built model, layer by layer as Keras matches them; a layer whose arrays
    differ in number or shape is refused by name."""
    h5py = _h5py("load_weights() of a .weights.h5 file")
    model._require_built("load_weights")
    with h5py.File(filepath, "r") as f:
        if "layers" not in f:
            raise ValueError(f"load_weights(): {filepath} is not a Keras weights file (no 'layers' group)")
        values = []
        for key, layer in zip(_layer_keys(model), model.layers):
            arrays = _layer_datasets(f, key, type(layer).__name__, layer, f"load_weights(): {filepath}",
                                     "the model has")
            values.append([np.asarray(a) for a in arrays])  # read once every shape is checked
    for layer, arrays in zip(model.layers, values):
        layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.weights)])
