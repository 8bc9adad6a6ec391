"""Fuzzing of model files (issue 18), run in a process of its own by
tests/test_hostile_files.py: seeded random damage to valid files of a
Sequential and a functional model, in rnn_fast's format and in Keras's
.keras (with h5py): bytes flipped, the file cut, members dropped or
doubled, and the manifest's (config.json's) JSON changed at random, with
its digest recomputed; every load must end in a ValueError, or in a model
that predicts exactly what the original did (a rewritten manifest: in
the model it describes, which predicts without error).

    python tests/fuzz_model_files.py [examples] [seed]
"""
import copy
import hashlib
import io
import json
import random
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from rnn_fast import nn

X_SEQ = np.random.default_rng(0).standard_normal((3, 5, 3)).astype(np.float32)
X_STATIC = np.random.default_rng(1).standard_normal((3, 2)).astype(np.float32)


def models():
    nn.set_random_seed(0)
    seq = nn.Sequential([nn.LSTM(4, input_shape=(5, 3), return_sequences=True), nn.GRU(3), nn.Dense(2)])
    seq.compile(nn.Adam(0.01), "mse", metrics=["mae"])
    seq.train_on_batch(X_SEQ, np.zeros((3, 2), np.float32))
    a, b = nn.Input((5, 3)), nn.Input((2,))
    out = nn.Dense(1)(nn.concatenate([nn.SimpleRNN(3)(a), nn.Dense(2)(b)]))
    fn = nn.Model([a, b], out)
    fn.compile(nn.RMSprop(0.01, momentum=0.5), "mse")
    fn.train_on_batch([X_SEQ, X_STATIC], np.zeros((3, 1), np.float32))
    return [(seq, X_SEQ), (fn, [X_SEQ, X_STATIC])]


def rewrite(files, manifest):
    text = json.dumps(manifest).encode()
    out = dict(files)
    for name, data in (("__rnn_fast_model__.npy", text), ("__rnn_fast_manifest_sha256__.npy",
                                                          hashlib.sha256(text).hexdigest().encode())):
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(data, np.uint8))
        out[name] = buf.getvalue()
    return out


def mutate_json(value, rng: random.Random):
    """value with one random change somewhere inside it."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])
    walk(value, [])
    path = rng.choice(paths[1:])
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    replacements = [None, -1, 0, 1, 10 ** 12, 1e308, -1e30, float("nan"), "", "x" * 50, [], {}, [None], True,
                    "float16", "LSTM", {"class_name": "Dense", "config": {}}]
    if rng.random() < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(replacements)
    return value


def damaged(data: bytes, rng: random.Random):
    """data damaged at random, and whether the manifest (a .keras file's
    config.json) was rewritten (with its digest)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    keras = "config.json" in files
    kind = rng.choice(["flip", "cut", "drop", "double", "json", "json", "json"])
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out), False
    if kind == "cut":
        return data[:rng.randrange(len(data))], False
    if kind in ("drop", "double"):
        entries = list(files.items())
        victim = rng.randrange(len(entries))
        if kind == "drop":
            del entries[victim]
        else:
            entries.append(entries[victim])
    elif keras:
        config = mutate_json(json.loads(files["config.json"]), rng)
        entries = list({**files, "config.json": json.dumps(config).encode()}.items())
    else:
        manifest = json.loads(np.load(io.BytesIO(files["__rnn_fast_model__.npy"])).tobytes())
        entries = list(rewrite(files, mutate_json(copy.deepcopy(manifest), rng)).items())
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")
        for name, content in entries:
            z.writestr(name, content)
    return buf.getvalue(), kind == "json"


def main(examples: int, seed: int) -> int:
    rng = random.Random(seed)
    failures = 0
    outcomes = {"refused": 0, "intact": 0, "another model": 0}
    import importlib.util
    suffixes = [".npz", ".keras"] if importlib.util.find_spec("h5py") else [".npz"]  # .keras: read with h5py
    with tempfile.TemporaryDirectory() as tmp:
        for k, ((model, x), suffix) in enumerate((m, sfx) for m in models() for sfx in suffixes):
            path = Path(tmp) / f"m{k}{suffix}"
            model.save(path)
            data, expected = path.read_bytes(), model.predict(x, verbose=0)
            for i in range(examples):
                bad, rewritten = damaged(data, rng)
                path.write_bytes(bad)
                try:
                    loaded = nn.load_model(path)
                    got = loaded.predict(x, verbose=0)
                except ValueError:
                    outcomes["refused"] += 1
                    continue
                except Exception as e:  # anything but a ValueError is a bug
                    failures += 1
                    print(f"model {k}, example {i}: {type(e).__name__}: {e}")
                    continue
                if np.array_equal(got, expected):
                    outcomes["intact"] += 1
                elif rewritten:  # a manifest rewritten with its digest: another model, consistent, may load
                    outcomes["another model"] += 1
                else:
                    failures += 1
                    print(f"model {k}, example {i}: loaded, and predicts differently")
    print(f"{outcomes['refused']} refused with a ValueError, {outcomes['intact']} loaded intact, "
          f"{outcomes['another model']} rewritten manifests loaded as the models they describe, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, int(sys.argv[2]) if len(sys.argv) > 2 else 0))
