"""rnn_fast's own model file: ``model.save("m.npz")`` and ``load_model``.

A zip of ``.npy`` members (never pickle): the arrays (``weights/<layer
index>/<name>``, ``optimizer/<weight index>/<slot>``), a JSON manifest
(architecture, compile settings, and each array's dtype, shape and SHA-256)
and the manifest's own SHA-256, so that neither an array nor the config
can change unnoticed.

Reading trusts nothing in the file and is bounded in time and memory:
  1. the zip's directory only: member names (no duplicates, each a .npy),
     their count, and the manifest's size;
  2. the manifest (JSON of bounded size; its digest checked), its fields'
     types and every member listed, none missing, none extra;
  3. each member's .npy header (a few bytes decompressed): dtype and shape
     as the manifest declares, and the size the zip's directory declares
     equal to what they make (so no member decompresses past it);
  4. the model built from the config with placeholder weights (zeros the
     system hands out lazily, no random draws) and its weights' shapes and
     dtypes checked against the declared arrays, and the optimizer's state
     against the trainable weights, before any array is read;
  5. then the arrays, one at a time, each checked against its digest.
A file that fails any step is a ValueError naming what is wrong.
"""
import hashlib
import io
import json
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import initializers, losses, metrics as metrics_mod, optimizers

FORMAT = "rnn_fast.nn/2"
MANIFEST = "__rnn_fast_model__"
DIGEST = "__rnn_fast_manifest_sha256__"
MAX_MEMBERS = 1_000_000
MAX_MANIFEST_BYTES = 256 << 20
MAX_ITERATIONS = 2 ** 53  # an optimizer's step count: exact in a float64


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(model, filepath) -> None:
    """Writes architecture, weights, compile settings and optimizer state."""
    from .models import _map_heads

    arrays: Dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        for name, w in zip(layer.weight_names, layer.weights):
            arrays[f"weights/{i}/{name}"] = w
    manifest: Dict[str, Any] = {"format": FORMAT, "class_name": model._class_name, "model": model.get_config(),
                                "compile": None}
    if model.optimizer is not None:
        opt = model.optimizer
        for i, slots in enumerate(opt.state):
            for j, s in enumerate(slots):
                arrays[f"optimizer/{i}/{opt.slots[j]}"] = s
        multi = model._multi
        manifest["compile"] = {
            "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config(),
                          "iterations": opt.iterations, "weights": len(opt.state)},
            "loss": _map_heads(multi, lambda l: l.get_config(), model.loss),
            "loss_weights": model._loss_weights,
            "metrics": _map_heads(multi, lambda specs: [metrics_mod.serialize(m) for m in specs],
                                  model._metric_specs),
            "weighted_metrics": _map_heads(multi, lambda specs: [metrics_mod.serialize(m) for m in specs],
                                           model._weighted_specs)}
    manifest["arrays"] = {k: {"dtype": v.dtype.str, "shape": list(v.shape), "sha256": digest(v)}
                          for k, v in arrays.items()}
    text = json.dumps(manifest).encode()
    arrays[MANIFEST] = np.frombuffer(text, dtype=np.uint8)
    arrays[DIGEST] = np.frombuffer(hashlib.sha256(text).hexdigest().encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with open(filepath, "wb") as f:
        f.write(buf.getvalue())


class _Reader:
    """One file's members, read under the rules of the module's docstring."""

    def __init__(self, data: bytes, filepath):
        self.where = f"load_model(): {filepath}"
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError, NotImplementedError) as e:
            self.fail(f"is not a readable rnn_fast model file ({type(e).__name__}: {e})")
        if len(infos) > MAX_MEMBERS:
            self.fail(f"holds {len(infos)} members, more than a model file's {MAX_MEMBERS}")
        self.members: Dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                self.fail(f"is not an rnn_fast model file (member {info.filename!r} is not a .npy array)")
            key = info.filename[:-4]
            if key in self.members:
                self.fail(f"is damaged: member {info.filename!r} appears twice")
            self.members[key] = info

    def fail(self, what: str):
        raise ValueError(f"{self.where} {what}")

    def header(self, key: str) -> Tuple[np.dtype, Tuple[int, ...], int]:
        """A member's dtype, shape and data offset from its .npy header, its
        size in the zip's directory checked against them."""
        info = self.members[key]
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                offset = f.tell()
        except MemoryError:
            raise
        except Exception as e:  # zipfile's and the .npy parser's many kinds (NotImplementedError, TokenError, ...)
            self.fail(f"is damaged: member {key!r} has no valid .npy header ({type(e).__name__}: {e})")
        if dtype.hasobject or dtype.fields is not None or fortran:
            self.fail(f"is damaged: member {key!r} holds {'objects' if dtype.hasobject else 'records'} or a "
                      f"Fortran-ordered array, not a plain array")
        count = 1
        for d in shape:
            count *= int(d)
        if info.file_size != offset + count * dtype.itemsize:
            self.fail(f"is damaged: member {key!r} declares {count * dtype.itemsize} bytes of data in its header "
                      f"and {info.file_size - offset} in the zip's directory")
        return dtype, tuple(int(d) for d in shape), offset

    def array(self, key: str) -> np.ndarray:
        try:
            with self.zip.open(self.members[key]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except MemoryError:
            raise
        except Exception as e:
            self.fail(f"is damaged: member {key!r} cannot be read ({type(e).__name__}: {e})")

    def manifest(self) -> Dict[str, Any]:
        for key in (MANIFEST, DIGEST):
            if key not in self.members:
                self.fail(f"is not an rnn_fast model file (no {key} entry)" if key == MANIFEST else
                          f"is not an rnn_fast model file of format {FORMAT!r} (no digest of its manifest: written "
                          f"by an older rnn_fast, or altered)")
            dtype, shape, _ = self.header(key)
            if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_MANIFEST_BYTES:
                self.fail(f"is damaged: {key} must be bytes (uint8) of at most {MAX_MANIFEST_BYTES}, got {dtype} "
                          f"of shape {shape}")
        text = self.array(MANIFEST).tobytes()
        if hashlib.sha256(text).hexdigest().encode() != self.array(DIGEST).tobytes():
            self.fail("is damaged: its manifest (architecture and settings) does not match its checksum")
        try:
            manifest = json.loads(text.decode())
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            self.fail(f"has a damaged manifest ({type(e).__name__}: {str(e)[:200]})")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            self.fail(f"has format {found!r}, expected {FORMAT!r}")
        unknown = sorted(set(manifest) - {"format", "class_name", "model", "compile", "arrays"})
        if unknown:
            self.fail(f"has a damaged manifest (unknown keys {unknown[:10]})")
        listed = manifest.get("arrays")
        if not isinstance(listed, dict) or not all(
                isinstance(m, dict) and isinstance(m.get("dtype"), str) and isinstance(m.get("sha256"), str) and
                isinstance(m.get("shape"), list) and all(type(d) is int and d >= 0 for d in m["shape"])
                for m in listed.values()):
            self.fail("has a damaged manifest (its 'arrays' must map each name to dtype, shape and sha256)")
        present = set(self.members) - {MANIFEST, DIGEST}
        if present != set(listed):
            self.fail(f"is damaged: its arrays {sorted(present ^ set(listed))[:10]} do not match the manifest")
        for key, meta in listed.items():
            dtype, shape, _ = self.header(key)
            if dtype.str != meta["dtype"] or list(shape) != meta["shape"]:
                self.fail(f"is damaged: array {key!r} is {dtype.str} {shape} in the file and "
                          f"{meta['dtype']} {tuple(meta['shape'])} in the manifest")
        return manifest


def _build(manifest: Dict[str, Any], who: str):
    """The model of the manifest's config, built with placeholder weights."""
    from .models import _from_config

    try:
        with initializers.placeholders():
            return _from_config(manifest.get("class_name", "Sequential"), manifest.get("model"), who)
    except ValueError:
        raise
    except (MemoryError, TypeError, KeyError, AttributeError, IndexError, RecursionError, OverflowError) as e:
        raise ValueError(f"{who}: the model's config cannot be built ({type(e).__name__}: {str(e)[:300]})") from None


def load(data: bytes, filepath, custom_objects: Optional[Dict[str, Any]] = None, compile: bool = True):
    reader = _Reader(data, filepath)
    manifest = reader.manifest()
    listed = manifest["arrays"]
    model = _build(manifest, reader.where)
    expected: List[Tuple[str, np.ndarray]] = [
        (f"weights/{i}/{name}", w) for i, layer in enumerate(model.layers)
        for name, w in zip(layer.weight_names, layer.weights)]
    for key, w in expected:
        meta = listed.get(key)
        if meta is None or tuple(meta["shape"]) != w.shape or meta["dtype"] != w.dtype.str:
            got = "missing" if meta is None else f"{meta['dtype']} {tuple(meta['shape'])}"
            reader.fail(f"does not fit its config: {key} must be {w.dtype.str} {w.shape}, the file holds {got}")
    comp = manifest.get("compile")
    state_keys: List[List[str]] = []
    if comp is not None:
        state_keys = _check_optimizer(reader, comp, model, listed)
    known = {k for k, _ in expected} | {k for keys in state_keys for k in keys}
    if set(listed) - known:
        reader.fail(f"holds arrays its config has no place for: {sorted(set(listed) - known)[:10]}")
    for key, w in expected:
        a = reader.array(key)
        if digest(a) != listed[key]["sha256"]:
            reader.fail(f"is damaged: array {key!r} does not match its checksum")
        w[...] = a
    if compile and comp is not None:
        _compile(reader, model, comp, custom_objects, state_keys, listed)
    return model


def _check_optimizer(reader: _Reader, comp: Any, model, listed) -> List[List[str]]:
    """The optimizer state's array names, checked against the trainable
    weights (count, shapes, dtypes) and the step count, before reading."""
    try:
        spec = comp["optimizer"]
        cls = {c.__name__: c for c in optimizers.OPTIMIZERS.values()}[spec["class_name"]]
        count, iterations = spec["weights"], spec["iterations"]
    except (KeyError, TypeError):
        reader.fail("has a damaged manifest (its compile settings lack the optimizer's class, count or step)")
    if type(iterations) is not int or not 0 <= iterations <= MAX_ITERATIONS:
        reader.fail(f"has a damaged manifest: the optimizer's step count must be an integer in [0, 2**53], got "
                    f"{iterations!r}")
    trainable = model.trainable_weights
    if type(count) is not int or count not in (0, len(trainable)):
        reader.fail(f"does not fit its config: the optimizer holds state for {count!r} weights, the model has "
                    f"{len(trainable)} trainable")
    keys = [[f"optimizer/{i}/{slot}" for slot in cls.slots] for i in range(count)]
    for w, names in zip(trainable, keys):
        for key in names:
            meta = listed.get(key)
            if meta is None or tuple(meta["shape"]) != w.shape or meta["dtype"] != w.dtype.str:
                got = "missing" if meta is None else f"{meta['dtype']} {tuple(meta['shape'])}"
                reader.fail(f"does not fit its config: {key} must be {w.dtype.str} {w.shape}, the file holds {got}")
    return keys


def _compile(reader: _Reader, model, comp, custom_objects, state_keys, listed) -> None:
    from .models import _map_heads

    spec = comp["optimizer"]
    try:
        optimizer = optimizers.from_config(spec["class_name"], spec["config"])
        multi = isinstance(comp["loss"], list)

        def specs(group):
            return [metrics_mod.deserialize(m, custom_objects) for m in group]
        weights = comp.get("loss_weights")
        model.compile(optimizer=optimizer,
                      loss=_map_heads(multi, lambda c: losses.from_config(c, custom_objects), comp["loss"]),
                      loss_weights=weights if multi or weights is None else weights[0],
                      metrics=_map_heads(multi, specs, comp["metrics"]),
                      weighted_metrics=_map_heads(multi, specs, comp.get("weighted_metrics", [[]] * multi)))
    except ValueError as e:
        reader.fail(f"has compile settings rnn_fast cannot use: {e}")
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        reader.fail(f"has a damaged manifest (its compile settings: {type(e).__name__}: {e})")
    optimizer.iterations = int(spec["iterations"])
    state = []
    for names in state_keys:
        slots = []
        for key in names:
            a = reader.array(key)
            if digest(a) != listed[key]["sha256"]:
                reader.fail(f"is damaged: array {key!r} does not match its checksum")
            if not np.all(np.isfinite(a)):
                reader.fail(f"is damaged: the optimizer's state {key!r} holds non-finite values")
            slots.append(a.copy() if not a.flags.writeable else a)
        state.append(slots)
    optimizer.state = state
