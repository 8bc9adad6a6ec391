"""Thread count: settable, read from OMP_NUM_THREADS, and without effect on
the results, which are bitwise identical whatever the count."""
import os
import subprocess
import sys

import numpy as np
import pytest

import rnn_fast as rf

from conftest import CELLS, rand


def run_all(dtype):
    """Forward and backward of every kernel on shapes big enough to go parallel."""
    out = []
    for cell in CELLS.values():
        args = cell.inputs((40, 9, 70, 96), dtype)
        for reverse in (False, True):
            h, cache = cell.forward(rf, args, reverse=reverse)
            out += [h, *cell.backward(rf, rand(h.shape, dtype), cache)]
    # The GEMM's other paths: 50 output columns (3 whole slivers and 2
    # columns) are computed transposed; one sliver of 16 makes it split its
    # rows among threads rather than its columns; the backward's dw (200 x 50
    # or 200 x 16 summed over 2,400 rows) cuts its sums in two.
    scores = []
    for shape in ((30, 20, 130, 300), (48, 50, 200, 50), (48, 50, 200, 16)):
        N, T, D, M = shape
        x, w, b = rand((N, T, D), dtype), rand((D, M), dtype, 2), rand((M,), dtype, 3)
        y, cache = rf.temporal_affine_forward(x, w, b)
        out += [y, *rf.temporal_affine_backward(rand(y.shape, dtype), cache)]
        scores.append(y)
    idx = np.random.default_rng(0).integers(0, 50, size=(30, 20))
    e, cache = rf.word_embedding_forward(idx, rand((50, 300), dtype))
    out += [e, rf.word_embedding_backward(rand(e.shape, dtype), cache)]
    loss, dx = rf.temporal_softmax_loss(scores[0], idx, idx % 3 > 0)
    out += [np.array(loss), dx]
    y, mask = rf.dropout_forward(rand((300, 401), dtype), 0.3, 12345)  # past the parallel threshold, odd size
    out += [y, mask, rf.dropout_backward(rand(y.shape, dtype, 4), mask)]
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


def run_recurrent(dtype, shape):
    out = []
    for cell in CELLS.values():
        args = cell.inputs(shape, dtype)
        for reverse in (False, True):
            h, cache = cell.forward(rf, args, reverse=reverse)
            out += [h, cell.forward(rf, args, reverse=reverse, cache=False)[0]]
            out.append(cell.inference(rf, args[2:])(*args[:2], reverse=reverse))
            out += cell.backward(rf, rand(h.shape, dtype), cache)
    return out


# (N, T, D, H): more row blocks than one pass keeps (N = 100), recurrent
# products deeper than one K block (H = 300 forward, 4H backward), and shallow
# inputs (D <= 4), whose gradients the backward's time loop takes when threads
# own rows and a pass after it takes otherwise; one and two rows, whose step
# operand is dense under every partition.
PARTITION_SHAPES = [(40, 9, 70, 96), (100, 5, 20, 300), (3, 4, 5, 7), (32, 7, 1, 50), (13, 6, 4, 20),
                    (1, 6, 9, 40), (2, 5, 30, 300)]


@pytest.mark.parametrize("shape", PARTITION_SHAPES, ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_time_loop_partitions_give_bitwise_identical_results(dtype, shape):
    """Threads owning rows (no barriers; whole rows per tile, or tiles of
    columns in passes) or owning columns (a barrier per step), at any thread
    count: the same bits as one thread."""
    rf.set_num_threads(1)
    expected = run_recurrent(dtype, shape)
    try:
        for how in ("rows", "columns", "row_passes", "auto"):
            rf._core._set_partition(how)
            for n in (1, 2, 3):
                rf.set_num_threads(n)
                for k, (a, e) in enumerate(zip(run_recurrent(dtype, shape), expected)):
                    assert np.array_equal(a, e), f"output {k} differs with partition {how} on {n} threads"
    finally:
        rf._core._set_partition("auto")
    with pytest.raises(ValueError, match="partition"):
        rf._core._set_partition("diagonal")


@pytest.mark.parametrize("n", ["1", "2", "3"])
def test_omp_num_threads_is_respected(n):
    env = {**os.environ, "OMP_NUM_THREADS": n}
    out = subprocess.run(
        [sys.executable, "-c", "import rnn_fast; print(rnn_fast.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    assert out.stdout.strip() == n


FORK_SCRIPT = r"""
import multiprocessing as mp
import numpy as np
import rnn_fast as rf

rng = np.random.default_rng(0)
args = [rng.standard_normal(s).astype(np.float32) for s in [(32, 30, 64), (32, 96), (64, 384), (96, 384), (384,)]]
rf.set_num_threads(2)
h, cache = rf.lstm_forward(*args)          # the parent's OpenMP pool is busy before the fork
expected = [h, *rf.lstm_backward(np.ones_like(h), cache)]

def child(q):
    out = []
    for n in (None, 2):                    # asking for 2 threads in the child must not hang either
        if n:
            rf.set_num_threads(n)
        h, cache = rf.lstm_forward(*args)
        got = [h, *rf.lstm_backward(np.ones_like(h), cache)]
        out.append(all(np.array_equal(a, b) for a, b in zip(got, expected)))
    q.put((out, rf.get_num_threads()))

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,), daemon=True)  # a hung child must not keep us alive
    p.start()
    p.join(60)
    assert not p.is_alive(), "forked child hung"
    assert p.exitcode == 0, p.exitcode
    same, threads = q.get(timeout=5)
    assert same == [True, True] and threads == 1, (same, threads)
    h, cache = rf.lstm_forward(*args)      # the parent keeps its threads
    assert rf.get_num_threads() == 2 and np.array_equal(h, expected[0])
    print("ok")
"""


def test_forked_child_runs_the_kernels_to_completion(tmp_path):
    """GNU OpenMP's pool does not survive fork(); the child must not hang in it."""
    script = tmp_path / "fork_child.py"
    script.write_text(FORK_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
