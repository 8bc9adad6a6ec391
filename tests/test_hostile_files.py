"""Issue 18: model files written by someone else. Each hostile file is
loaded in its own process, timed and its peak memory measured: every one
must be refused with a ValueError within 5 s and under 256 MiB of memory
beyond the process's before the call; a valid file still loads. Files are
made by editing a valid one, recomputing the manifest's digest where the
test is about what lies behind it (a careless or hostile editor can)."""
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import rnn_fast
from rnn_fast import nn

RUNNER = r"""
import json, sys, time
from rnn_fast import nn

def status(key):  # kB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts again from the present size
before = status("VmRSS")
start = time.perf_counter()
try:
    nn.load_model(sys.argv[1])
    outcome = "loaded"
except ValueError as e:
    outcome = "ValueError: " + str(e)
except BaseException as e:
    outcome = type(e).__name__ + ": " + str(e)
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                  "extra_mib": (status("VmHWM") - before) / 1024}))
"""
GIB_OF_ZEROS = 1 << 30  # a member declaring this many bytes deflates to ~5 MB


def env():
    """The child imports the rnn_fast this process imported."""
    src = os.path.dirname(os.path.dirname(rnn_fast.__file__))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def load_isolated(path):
    done = subprocess.run([sys.executable, "-c", RUNNER, str(path)], capture_output=True, text=True, timeout=120,
                          env=env())
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def members(path):
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=a.dtype.hasobject)
    return buf.getvalue()


def write(path, entries, big=None):
    """entries: [(member name, bytes)]; big: a member name whose .npy
    declares GIB_OF_ZEROS bytes of float32 zeros, streamed deflated."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in entries:
            z.writestr(name, data)
        if big is not None:
            with z.open(big, "w", force_zip64=True) as f:
                header = io.BytesIO()
                np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False,
                                                              "shape": (GIB_OF_ZEROS // 4,)})
                f.write(header.getvalue())
                chunk = bytes(16 << 20)
                for _ in range(GIB_OF_ZEROS // len(chunk)):
                    f.write(chunk)


def with_manifest(files, edit, digest=True):
    """files with the manifest edited by edit(manifest) (returning the new
    one, or a str/bytes of text), its digest recomputed when digest."""
    manifest = json.loads(np.load(io.BytesIO(files["__rnn_fast_model__.npy"])).tobytes())
    new = edit(manifest)
    text = new if isinstance(new, bytes) else (new.encode() if isinstance(new, str) else json.dumps(new).encode())
    out = dict(files)
    out["__rnn_fast_model__.npy"] = npy(np.frombuffer(text, np.uint8))
    if digest:
        out["__rnn_fast_manifest_sha256__.npy"] = npy(np.frombuffer(hashlib.sha256(text).hexdigest().encode(),
                                                                    np.uint8))
    return out


def saved_model(tmp_path_factory, name):
    """A small trained model (its optimizer state too), saved as name (.npz or .keras)."""
    nn.set_random_seed(0)
    model = nn.Sequential([nn.Input((5, 3)), nn.LSTM(4), nn.Dense(2)])
    model.compile(nn.Adam(0.01), "mse")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 2)))
    path = tmp_path_factory.mktemp("valid") / name
    model.save(path)
    return path


def write_hostile(path, make, valid):
    """The file make(the valid file's members) describes, at path."""
    import warnings
    entries, big = make(members(valid))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name" is the point of some cases
        write(path, entries, big)


def refused_in_bounds(result, gist):
    assert result["outcome"].startswith("ValueError: "), result
    if gist:
        assert gist in result["outcome"], result
    assert result["seconds"] < 5, result
    assert result["extra_mib"] < 256, result


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return saved_model(tmp_path_factory, "m.npz")


def _set(manifest, path, value):
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return manifest


def _units(m):
    m["model"]["layers"][0]["config"]["units"] = 8000
    return m


def _swap_state(m):
    arrays = m["arrays"]
    arrays["optimizer/0/m"], arrays["optimizer/1/m"] = arrays["optimizer/1/m"], arrays["optimizer/0/m"]
    return m


def _many_layers(m):
    m["model"]["layers"] = [{"class_name": "Dense", "config": {"units": 1, "name": f"d{i}"}} for i in range(20000)]
    m["model"]["input_shape"] = [None, 1]
    return m


HOSTILE = {
    # name: (how to make the member list from the valid file's, the message's gist)
    "no manifest, a deflated gigabyte": (lambda f: ([], "x.npy"), "no __rnn_fast_model__ entry"),
    "a listed gigabyte the config has no place for": (
        lambda f: (list(with_manifest(f, lambda m: _set(m, ["arrays", "weights/9/kernel"], {
            "dtype": "<f4", "shape": [GIB_OF_ZEROS // 4], "sha256": "0" * 64})).items()), "weights/9/kernel.npy"),
        "no place for"),
    "a config edited, digest kept": (
        lambda f: (list(with_manifest(f, lambda m: _set(m, ["model", "layers", 0, "config", "go_backwards"], True),
                                      digest=False).items()), None), "does not match its checksum"),
    "units 8000 with the arrays of 4": (lambda f: (list(with_manifest(f, _units).items()), None),
                                        "does not fit its config"),
    "20,000 layers": (lambda f: (list(with_manifest(f, _many_layers).items()), None), "does not fit its config"),
    "optimizer state for 7 weights": (
        lambda f: (list(with_manifest(f, lambda m: _set(m, ["compile", "optimizer", "weights"], 7)).items()), None),
        "optimizer holds state for 7 weights"),
    "optimizer state of the wrong shapes": (lambda f: (list(with_manifest(f, _swap_state).items()), None),
                                            "is damaged: array 'optimizer/0/m'"),
    "iterations -1e30": (
        lambda f: (list(with_manifest(f, lambda m: _set(m, ["compile", "optimizer", "iterations"], -1e30)).items()),
                   None), "step count must be an integer"),
    "beta_1 NaN": (
        lambda f: (list(with_manifest(f, lambda m: _set(m, ["compile", "optimizer", "config", "beta_1"],
                                                          float("nan"))).items()), None), "beta_1 must be"),
    "an object array": (
        lambda f: (list({**with_manifest(f, lambda m: _set(m, ["arrays", "junk"], {
            "dtype": "|O", "shape": [2], "sha256": "0" * 64})), "junk.npy": npy(np.array([1, "a"], object))}.items()),
            None), "holds objects"),
    "a path-like member name": (lambda f: (list(f.items()) + [("../../evil.npy", npy(np.zeros(2)))], None),
                                "do not match the manifest"),
    "a deeply nested manifest": (lambda f: (list(with_manifest(f, lambda m: "[" * 200000 + "]" * 200000).items()),
                                            None), "damaged manifest"),
    "a 40 MB manifest": (lambda f: (list(with_manifest(f, lambda m: _set(m, ["padding"], "x" * (40 << 20)))
                                         .items()), None), "unknown keys ['padding']"),
    "a duplicate member": (lambda f: (list(f.items()) + [("weights/0/kernel.npy", f["weights/0/kernel.npy"])], None),
                           "appears twice"),
    "a truncated file": ("truncate", None),
    "not a zip": ("garbage", "not a readable rnn_fast model file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_files_are_refused_quickly_and_in_bounded_memory(case, valid, tmp_path):
    make, gist = HOSTILE[case]
    path = tmp_path / "hostile.npz"
    if make == "truncate":
        data = valid.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif make == "garbage":
        path.write_bytes(os.urandom(4096))
    else:
        write_hostile(path, make, valid)
    refused_in_bounds(load_isolated(path), gist)


def test_the_valid_file_loads_in_its_own_process(valid):
    result = load_isolated(valid)
    assert result["outcome"] == "loaded", result


def test_set_weights_refuses_what_it_cannot_take_without_loss():
    layer = nn.Dense(2)
    layer.build((3,))
    before = [w.copy() for w in layer.weights]
    for bad in (np.ones((3, 2), complex), np.full((3, 2), "a"), np.zeros((3, 2), [("a", "f4")]),
                np.empty((3, 2), object)):
        with pytest.raises(TypeError, match="kernel must be a real numeric array"):
            layer.set_weights([bad, np.zeros(2)])
    with pytest.raises(ValueError, match="bias must have shape"):
        layer.set_weights([np.ones((3, 2)), np.zeros(3)])  # the kernel, checked first, is not written either
    for a, b in zip(layer.weights, before):
        np.testing.assert_array_equal(a, b)
    layer.set_weights([np.ones((3, 2), np.int64), np.array([True, False])])
    assert layer.weights[0].dtype == np.float32 and layer.weights[1][0] == 1


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Adam(beta_1=float("nan")), "beta_1 must be a finite number"),
    (lambda: nn.Adam(beta_2=1.0), "beta_2 must be a finite number"),
    (lambda: nn.Adam(epsilon=-1e-7), "epsilon must be a finite number >= 0"),
    (lambda: nn.RMSprop(rho=float("inf")), "rho must be"),
    (lambda: nn.RMSprop(momentum=1.5), "momentum must be"),
    (lambda: nn.SGD(momentum=float("nan")), "momentum must be"),
    (lambda: nn.SGD(learning_rate=-1), "learning_rate must be"),
    (lambda: nn.Adam(clipnorm=float("nan")), "clipnorm must be"),
])
def test_optimizer_hyperparameters_are_checked_in_the_constructors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fuzzed_model_files_are_refused_or_intact():
    """tests/fuzz_model_files.py in its own process: 400 seeded random
    damages to each of two models' files (a crash or hang fails here too)."""
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, os.path.join(here, "fuzz_model_files.py"), "400", "7"],
                          capture_output=True, text=True, timeout=600, env=env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " 0 failures" in done.stdout


# ------------------------------------------------------------ .keras files
@pytest.fixture(scope="module")
def valid_keras(tmp_path_factory):
    pytest.importorskip("h5py")
    return saved_model(tmp_path_factory, "m.keras")


def _config(files, edit):
    out = dict(files)
    new = edit(json.loads(files["config.json"]))
    out["config.json"] = new.encode() if isinstance(new, str) else json.dumps(new).encode()
    return out


def _keras_units(c):
    c["config"]["layers"][1]["config"]["units"] = 8000
    return c


def _h5_with(files, edit):
    """files with model.weights.h5 rewritten by edit(h5py.File)."""
    import h5py
    buf = io.BytesIO(files["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    return {**files, "model.weights.h5": buf.getvalue()}


def _huge_dataset(f):
    node = f["layers/lstm/cell/vars"]
    del node["0"]
    node.create_dataset("0", shape=(1 << 16, 1 << 14), dtype="f4", chunks=(1 << 10, 1 << 10), compression="gzip")


def _huge_optimizer(f):
    node = f["optimizer/vars"]
    node.create_dataset(str(len(node) + 5), shape=(1 << 28,), dtype="f4", chunks=(1 << 20,), compression="gzip")


HOSTILE_KERAS = {
    "a deflated gigabyte of weights": (lambda f: ([(k, v) for k, v in f.items() if k != "model.weights.h5"],
                                                  "model.weights.h5"), "more than the"),
    "a deeply nested config": (lambda f: (list(_config(f, lambda c: "[" * 200000 + "]" * 200000).items()), None),
                               "RecursionError"),
    "units 8000 with the weights of 4": (lambda f: (list(_config(f, _keras_units).items()), None),
                                         "in the file, the config makes"),
    "a 70 MB config": (lambda f: (list(_config(f, lambda c: dict(c, pad=" " * (70 << 20))).items()), None),
                       "more than a model's config takes"),
    "a weight of a gigabyte's declared shape": (lambda f: (list(_h5_with(f, _huge_dataset).items()), None),
                                                "in the file, the config makes"),
    "optimizer variables of a gigabyte": (lambda f: (list(_h5_with(f, _huge_optimizer).items()), None),
                                          "optimizer variables declare"),
    "a config that is not a model's": (lambda f: (list(_config(f, lambda c: {"class_name": 7}).items()), None),
                                       "holds a Keras 7 model"),
    "a config without layers": (lambda f: (list(_config(f, lambda c: {"class_name": "Sequential",
                                                                       "config": {}}).items()), None),
                                "not a readable Keras file"),
    "a duplicate member": (lambda f: (list(f.items()) + [("config.json", f["config.json"])], None), "some twice"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_KERAS))
def test_hostile_keras_files_are_refused_quickly_and_in_bounded_memory(case, valid_keras, tmp_path):
    make, gist = HOSTILE_KERAS[case]
    path = tmp_path / "hostile.keras"
    write_hostile(path, make, valid_keras)
    refused_in_bounds(load_isolated(path), gist)


def test_the_valid_keras_file_loads_in_its_own_process(valid_keras):
    assert load_isolated(valid_keras)["outcome"] == "loaded"
