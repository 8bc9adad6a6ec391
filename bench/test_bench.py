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


def test_percent_of_sgemm_is_against_the_configurations_own_sgemm_calls():
    """A row's '% sgemm' and the 85%-of-peak allowance of its target use the
    sgemm calls timed in its configuration's rows, not the run's: a yardstick
    timed while another configuration ran measures the host's drift."""
    from rnn_fast.bench import PEAK_N, Result, gemm_flops_of, pct_of_peak, row_base, sgemm_base, targets

    def ms_at(gflops):  # one 2048^2 sgemm call at this speed
        return gemm_flops_of(PEAK_N) / (gflops * 1e9) * 1e3

    def row(config, pass_, sgemm_gflops, ours_ms, torch_ms):
        r = Result(config, "lstm", "float32", 2, pass_, flops=100e9)
        r.ms = {"rnn_fast": ours_ms, "torch": torch_ms, "numpy": 10 * torch_ms}
        r.sgemm_ms = [ms_at(g) for g in sgemm_gflops]
        return r

    # The host was slow (100 GFLOP/s sgemm) while "large" ran, fast (200) before.
    results = [row("medium", "fwd+bwd", [200, 200, 200], 1000.0, 1300.0),
               row("large", "infer", [100, 100, 90], 1000.0, 1200.0),
               row("large", "fwd+bwd", [100, 110], 1250.0, 1300.0)]
    assert sgemm_base(results, "float32", "large") == pytest.approx(100)
    run_wide = {"float32": sgemm_base(results, "float32")}
    # The median of all eight calls' times: between the 110 and 100 GFLOP/s ones.
    assert run_wide["float32"] == pytest.approx(2 / (1 / 110 + 1 / 100))
    assert row_base(results, results[0], run_wide) == pytest.approx(200)
    # 100 GFLOP of work in 1000 ms is 100 GFLOP/s: all of "large"'s yardstick.
    assert pct_of_peak(results, "large", "infer", run_wide) == pytest.approx(100)
    assert pct_of_peak(results, "medium", "fwd+bwd", run_wide) == pytest.approx(50)
    # A configuration without sgemm calls of its own falls back to the run's.
    bare = row("latency", "infer", [], 1000.0, 1000.0)
    assert row_base(results + [bare], bare, run_wide) == run_wide["float32"]
    by_name = {t.name: t for t in targets(results, run_wide, {})}
    assert by_name["large LSTM infer, % of in-run sgemm"].status == "PASS"
    assert by_name["large LSTM fwd+bwd, % of in-run sgemm"].value == pytest.approx(80)
    assert by_name["large LSTM fwd+bwd, % of in-run sgemm"].status == "FAIL"
    # fwd+bwd: 1.25x the faster peer, unless that is beyond 85% of the
    # configuration's sgemm: for "large", 85% of 100 GFLOP/s is 1176 ms, so
    # 1300 / 1176 = 1.1x is enough; for "medium" 1.25x stands.
    assert by_name["large fwd+bwd vs faster (torch)"].needed == pytest.approx(1.1, abs=0.005)
    assert by_name["medium fwd+bwd vs faster (torch)"].needed == 1.25
    assert by_name["medium fwd+bwd vs faster (torch)"].status == "PASS"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_lengths_rows_time_what_they_claim(cell):
    """The variable-lengths targets' closures: with every length T, the plain
    closures' outputs; with lengths, zeros past each row's end, two layers."""
    from rnn_fast.bench import Config
    from rnn_fast.bench.peers import rnn_fast_lengths, rnn_fast_peer

    cfg = Config("tiny", cell, 5, 6, 4, 3, layers=2)
    plain = rnn_fast_peer(cfg, np.float64)
    full = rnn_fast_lengths(cfg, np.float64, np.full(cfg.N, cfg.T))
    for a, b in zip(plain, full):
        np.testing.assert_allclose(output(b()), output(a()), rtol=1e-12)
    lengths = np.array([6, 0, 3, 1, 5])
    h = output(rnn_fast_lengths(cfg, np.float64, lengths)[0]())
    assert not h[np.arange(cfg.T)[None, :] >= lengths[:, None]].any()


def test_reservoir_peers_compute_the_same_states():
    """The echo state network rows time the same work: reservoirpy's run and
    rnn_fast's, given reservoirpy's weights, give the same states."""
    from rnn_fast.bench.peers import reservoir_peers

    runs = reservoir_peers(50, 300)
    if "reservoirpy" not in runs:
        pytest.skip("reservoirpy is not installed (pip install -e '.[bench]')")
    np.testing.assert_allclose(runs["rnn_fast"](), runs["reservoirpy"](), rtol=0, atol=1e-12)
