"""Data-parallel training on MPI (rnn_fast.nn.distributed), launched with
mpirun in subprocesses: K = 2 and K = 3 (oversubscribed: uneven parts)
processes reach the one-process run's weights, History, predictions and
evaluation to float64 rounding, for an LSTM with both kinds of dropout, a
stacked GRU with a penalty, a Bidirectional LSTM, a masked sequence
output (parts weighted by their unmasked steps) and a classifier with
sample weights, weighted metrics and AUC/precision (metric states summed
over the ranks), and a functional model of two inputs (a list of arrays
split by rows); only rank 0 saves; a
rank that raises or dies ends the job with an error within the timeout.
Skipped without mpi4py and mpirun (pip install "rnn_fast[mpi]"), unless
RNN_FAST_REQUIRE_MPI=1 (CI), which makes that a failure."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnn_fast
from rnn_fast.nn import load_model

HERE = os.path.join(os.path.dirname(__file__), "mpi")


def mpirun():
    candidates = [os.path.join(os.path.dirname(sys.executable), "mpirun"), shutil.which("mpirun")]
    found = next((c for c in candidates if c and os.path.exists(c)), None)
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        if os.environ.get("RNN_FAST_REQUIRE_MPI") == "1":
            pytest.fail("RNN_FAST_REQUIRE_MPI=1 but mpi4py or mpirun is missing (pip install -e '.[mpi]')")
        pytest.skip("mpi4py or mpirun is missing (pip install -e '.[mpi]')")
    return found


def env():
    # Open MPI refuses root unless told; the package's own sources first on the path.
    src = os.path.dirname(os.path.dirname(rnn_fast.__file__))
    return {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def launch(ranks, script, *args, timeout=120):
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    if ranks:
        cmd = [mpirun(), "--oversubscribe", "-np", str(ranks), *cmd]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["lstm", "gru", "bidirectional", "masked", "weighted", "functional"])
def test_k_processes_train_as_one(kind, tmp_path):
    runs = {}
    for ranks in (0, 2, 3):
        out = str(tmp_path / f"{kind}{ranks}")
        done = launch(ranks, "train.py", kind, out, "1" if ranks else "0")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        with np.load(out + ".npz") as arrays, open(out + ".json") as f:
            runs[ranks] = (dict(arrays), json.load(f))
    one, one_log = runs[0]
    for ranks in (2, 3):
        arrays, log = runs[ranks]
        assert log["size"] == ranks
        for name in one:
            np.testing.assert_allclose(arrays[name], one[name], rtol=1e-12, atol=1e-14, err_msg=f"{ranks}: {name}")
        assert set(log) == set(one_log)
        for key in set(one_log) - {"size"}:
            np.testing.assert_allclose(log[key], one_log[key], rtol=1e-12, err_msg=f"{ranks}: {key}")
        # Only rank 0 wrote its file, and it holds the trained weights.
        out = str(tmp_path / f"{kind}{ranks}")
        assert os.path.exists(f"{out}.rank0.model.npz")
        assert not any(os.path.exists(f"{out}.rank{r}.model.npz") for r in range(1, ranks))
        saved = load_model(f"{out}.rank0.model.npz").get_weights()
        for i, w in enumerate(saved):
            np.testing.assert_array_equal(w, arrays[f"arr_{i}"])


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job(how):
    done = launch(2, "fail.py", how, timeout=60)
    assert done.returncode != 0
    out = done.stdout + done.stderr
    if how == "raise":
        assert "rank 0: RuntimeError: rnn_fast.nn.distributed: rank 1 raised during a training step" in out
        assert "ValueError: boom on rank 1" in out
    assert "rank 0 finished" not in out


def test_without_mpi_nothing_changes():
    # Importing rnn_fast.nn never imports mpi4py; one process without init() is the plain path.
    code = ("import sys, rnn_fast.nn, rnn_fast.nn.distributed as d; "
            "assert 'mpi4py' not in sys.modules and d.active() is None and d.size() == 1 and d.rank() == 0")
    subprocess.run([sys.executable, "-c", code], check=True, env=env(), timeout=60)
