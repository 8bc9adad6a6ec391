"""Thread count: settable, read from OMP_NUM_THREADS, and without effect on
the results, which are bitwise identical whatever the count."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnn_fast as rf

from conftest import rand, recurrent_inputs


def run_all(dtype):
    """Forward and backward of every kernel on shapes big enough to go parallel."""
    out = []
    for cell, gates in (("rnn", 1), ("lstm", 4)):
        args = recurrent_inputs((40, 9, 70, 96), dtype, gates=gates)
        for reverse in (False, True):
            h, cache = getattr(rf, f"{cell}_forward")(*args, reverse=reverse)
            out += [h, *getattr(rf, f"{cell}_backward")(rand(h.shape, dtype), cache)]
    x, w, b = rand((30, 20, 130), dtype), rand((130, 300), dtype, 2), rand((300,), dtype, 3)
    y, cache = rf.temporal_affine_forward(x, w, b)
    out += [y, *rf.temporal_affine_backward(rand(y.shape, dtype), cache)]
    idx = np.random.default_rng(0).integers(0, 50, size=(30, 20))
    e, cache = rf.word_embedding_forward(idx, rand((50, 300), dtype))
    out += [e, rf.word_embedding_backward(rand(e.shape, dtype), cache)]
    loss, dx = rf.temporal_softmax_loss(y, idx, idx % 3 > 0)
    out += [np.array(loss), dx]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_bitwise_identical_for_any_thread_count(dtype):
    rf.set_num_threads(1)
    expected = run_all(dtype)
    for n in (2, 3, 4):
        rf.set_num_threads(n)
        assert rf.get_num_threads() == n
        for k, (a, e) in enumerate(zip(run_all(dtype), expected)):
            assert np.array_equal(a, e), f"output {k} differs with {n} threads"


@pytest.mark.parametrize("n", ["1", "2", "3"])
def test_omp_num_threads_is_respected(n):
    env = {**os.environ, "OMP_NUM_THREADS": n}
    out = subprocess.run(
        [sys.executable, "-c", "import rnn_fast; print(rnn_fast.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    assert out.stdout.strip() == n
