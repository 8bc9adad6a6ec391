"""pytest-benchmark suite over the matrix of `python -m rnn_fast.bench`.

    pytest bench/ --benchmark-only [--benchmark-save NAME | --benchmark-compare]

Each configuration and pass is one group, so that rnn_fast and the peers
installed (the NumPy loop, PyTorch, ONNX Runtime) stand side by side; every
benchmark checks its output against rnn_fast's NumPy reference before it is
timed (PyTorch's, whose weights are its own, only for finiteness).
"""
import numpy as np
import pytest

from rnn_fast.bench import CONFIGS, PASSES, implementations
from rnn_fast.bench.peers import reference_peer

CASES = [(c, p, i) for c in CONFIGS if not c.full_only for p in PASSES
         for i in ("rnn_fast", "numpy", "torch", "onnxruntime") if i != "onnxruntime" or p == "infer"]


def output(value):
    """The h a pass returns, as a NumPy array (train passes return (h, caches))."""
    if isinstance(value, tuple):
        value = value[0]
    if value is None:  # PyTorch's fwd+bwd leaves its results in .grad
        return None
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


@pytest.mark.parametrize("cfg,pass_,impl", CASES, ids=[f"{c.name}-{p}-{i}" for c, p, i in CASES])
def test_speed(benchmark, cfg, pass_, impl):
    fns = implementations(cfg, np.float32, threads=2).get(impl)
    if fns is None:
        pytest.skip(f"{impl} is not installed (pip install -e '.[bench]'; torch==2.13.0)")
    benchmark.group = f"{cfg.name} {pass_} (N={cfg.N} T={cfg.T} D={cfg.D} H={cfg.H} x{cfg.layers})"
    fn = fns[pass_]
    result = output(fn())
    if impl == "torch":
        assert result is None if pass_ == "fwd+bwd" else np.isfinite(result).all()
    else:
        expected = dict(zip(PASSES, reference_peer(cfg, np.float32)))[pass_]()
        np.testing.assert_allclose(result, output(expected), rtol=2e-3, atol=2e-4)
    benchmark(fn)


def test_keras_workflow_script_times_rnn_fast():
    """bench/keras_workflow.py's rnn_fast side runs and reports both timings
    (its Keras side needs TensorFlow in another venv: see the script)."""
    import json
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "keras_workflow.py")
    out = subprocess.run([sys.executable, script, "--backend", "rnn_fast"], capture_output=True, text=True,
                         timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "rnn_fast" and result["fit_epoch_s"] > 0 and result["predict_s"] > 0
