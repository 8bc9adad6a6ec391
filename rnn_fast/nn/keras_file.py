"""Reading Keras 3's ``.keras`` files (a zip of ``config.json``, the model's
architecture, and ``model.weights.h5``, its weights) into ``rnn_fast.nn``:
``load_model("model.keras")`` comes here. Only ``Sequential`` models of the
layers rnn_fast has, with options it runs; anything else is named in a
``ValueError``. The weights are read with ``h5py`` (the ``keras`` extra).
The model is compiled as Keras's was (optimizer class and settings, loss,
metrics) with a fresh optimizer state.
"""
from __future__ import annotations

import inspect
import io
import json
import re
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from . import layers as L
from . import optimizers, regularizers

# Keys of a Keras layer's config that change nothing here: naming, dtype
# policy, how the weights were first drawn (they are read from the file),
# Keras's own execution choices.
_IGNORED = {"name", "trainable", "dtype", "seed", "unroll", "kernel_initializer",
            "recurrent_initializer", "bias_initializer", "embeddings_initializer"}
# Keys that must hold their default (rnn_fast has no such option).
_DEFAULTS = {"activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
             "bias_constraint": None, "embeddings_constraint": None, "recurrent_dropout": 0.0,
             "quantization_config": None, "noise_shape": None, "sparse": False,
             "lora_rank": None, "lora_alpha": None, "input_length": None}
_REGULARIZERS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "embeddings_regularizer")
# rnn_fast's layers by Keras class name, and the config keys each takes.
_LAYERS = {
    "SimpleRNN": (L.SimpleRNN, ("units", "activation", "use_bias", "dropout", "return_sequences", "return_state",
                                "go_backwards", "stateful", "zero_output_for_mask")),
    "LSTM": (L.LSTM, ("units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "dropout",
                      "return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask")),
    "GRU": (L.GRU, ("units", "activation", "recurrent_activation", "use_bias", "reset_after", "dropout",
                    "return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask")),
    "Dense": (L.Dense, ("units", "activation", "use_bias")),
    "Dropout": (L.Dropout, ("rate",)),
    "Embedding": (L.Embedding, ("input_dim", "output_dim", "mask_zero")),
    "Masking": (L.Masking, ("mask_value",)),
    "RepeatVector": (L.RepeatVector, ("n",)),
    "Activation": (L.Activation, ("activation",)),
}


def is_keras_file(data: bytes) -> bool:
    """Whether data is a zip holding config.json and model.weights.h5."""
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        return False
    return {"config.json", "model.weights.h5"} <= names


def _snake(name: str) -> str:
    """Keras's to_snake_case: the stem of its weight-file paths."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


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
        return L.Bidirectional(forward, merge_mode=cfg.get("merge_mode", "concat"), backward_layer=backward)
    if cls not in _LAYERS:
        raise ValueError(f"{where}: rnn_fast.nn has no {cls} layer (it reads {sorted(_LAYERS)} and Bidirectional)")
    make, keys = _LAYERS[cls]
    kwargs = {k: cfg[k] for k in keys if k in cfg}
    for key in _REGULARIZERS:
        if key in cfg:
            reg = _regularizer(cfg[key], where)
            if reg is not None:
                kwargs[key] = reg
    for key, default in _DEFAULTS.items():
        if key in cfg and cfg[key] != default:
            raise ValueError(f"{where}: {key}={cfg[key]!r} is not supported (rnn_fast runs {key}={default!r})")
    unknown = set(cfg) - _IGNORED - set(_DEFAULTS) - set(_REGULARIZERS) - set(keys)
    if unknown:
        raise ValueError(f"{where}: options {sorted(unknown)} are not supported")
    return make(input_shape=input_shape, **kwargs)


def _variables(group, cls: str) -> List[np.ndarray]:
    """The arrays of one layer's group of the weights file, in Keras's order
    (which is rnn_fast's: kernel, recurrent kernel, bias; Bidirectional's
    forward layer's, then its backward layer's)."""
    if cls == "Bidirectional":
        return [a for part in ("forward_layer", "backward_layer")
                for a in _variables(group[part], "_recurrent")]
    node = group["cell"] if "cell" in group else group
    if "vars" not in node:
        return []
    vars_ = node["vars"]
    return [np.asarray(vars_[k]) for k in sorted(vars_, key=int)]


def load_keras(data: bytes, filepath, compile: bool = True):
    """The rnn_fast Sequential of a Keras 3 .keras file's bytes."""
    import h5py  # the keras extra

    from .models import Sequential

    archive = zipfile.ZipFile(io.BytesIO(data))
    config = json.loads(archive.read("config.json"))
    if config.get("class_name") != "Sequential":
        raise ValueError(f"load_model(): {filepath} holds a Keras {config.get('class_name')} model; rnn_fast reads "
                         f"Sequential models")
    specs = config["config"]["layers"]
    input_shape: Optional[tuple] = None
    if specs and specs[0].get("class_name") == "InputLayer":
        input_shape = tuple(specs[0]["config"]["batch_shape"][1:])
        specs = specs[1:]
    built = [_layer(spec, f"load_model(): {filepath}: layer {k}", input_shape if k == 0 else None)
             for k, spec in enumerate(specs)]
    model = Sequential(built, name=config["config"].get("name"))
    if input_shape is not None and not model.built:
        model.build(input_shape)
    counts: Dict[str, int] = {}
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        for spec, layer in zip(specs, model.layers):
            stem = _snake(spec["class_name"])
            key = stem if counts.get(stem, 0) == 0 else f"{stem}_{counts[stem]}"
            counts[stem] = counts.get(stem, 0) + 1
            arrays = _variables(f["layers"][key], spec["class_name"]) if key in f["layers"] else []
            if len(arrays) != len(layer.weights):
                raise ValueError(f"load_model(): {filepath}: layer {layer.name} has {len(arrays)} weight arrays in "
                                 f"the file, rnn_fast's has {len(layer.weights)}")
            layer.set_weights([a.astype(w.dtype) for a, w in zip(arrays, layer.weights)])
    comp = config.get("compile_config")
    if compile and comp:
        opt = comp.get("optimizer")
        optimizer = "rmsprop"
        if isinstance(opt, dict):
            cls = opt.get("class_name")
            classes = {c.__name__: c for c in optimizers.OPTIMIZERS.values()}
            if cls not in classes:
                raise ValueError(f"load_model(): {filepath}: optimizer {cls!r} has no rnn_fast counterpart")
            accepted = inspect.signature(classes[cls]).parameters
            settings = {k: v for k, v in opt.get("config", {}).items() if k in accepted and v is not None}
            optimizer = optimizers.from_config(cls, settings)
        elif isinstance(opt, str):
            optimizer = opt
        loss = comp.get("loss")
        if not isinstance(loss, str):
            raise ValueError(f"load_model(): {filepath}: loss {loss!r} is not a name rnn_fast knows")
        model.compile(optimizer=optimizer, loss=loss, metrics=comp.get("metrics"))
    return model


def save_keras(model, filepath) -> None:
    raise ValueError(f"save(): {filepath!r}: writing Keras's .keras format is not supported yet")
