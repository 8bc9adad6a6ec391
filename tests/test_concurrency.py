"""Concurrency and lifetime: calls from many Python threads at once give the
serial results bit for bit (the GIL is released inside the kernels), the
thread count can change while they run, a cache serves any number of
backwards from any thread and owns its data, and 10,000 forward+backward
calls keep resident memory flat."""
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rnn_fast as rf

from conftest import rand, recurrent_inputs

LSTM = recurrent_inputs((16, 12, 48, 64), np.float32, gates=4)  # big enough for the parallel paths
RNN = recurrent_inputs((8, 10, 24, 40), np.float64, gates=1)
GRU = recurrent_inputs((12, 9, 32, 48), np.float32, gates=3) + [rand(144, np.float32, 7) * np.float32(0.1)]
IDX = np.random.default_rng(0).integers(0, 40, size=(16, 12))  # rows of LSTM[2] (48, 256)


def lstm_job(reverse):
    h, hT, cT, cache = rf.lstm_forward(*LSTM, c0=LSTM[1] * 0.5, reverse=reverse, return_state=True)
    return [h, hT, cT, *rf.lstm_backward(np.cos(h), cache, dcT=cT, return_dc0=True)]


def rnn_job():
    h, cache = rf.rnn_forward(*RNN, activation="relu")
    return [h, *rf.rnn_backward(np.sin(h), cache)]


def gru_job(reverse):
    h, hT, cache = rf.gru_forward(*GRU, reverse=reverse, return_state=True)
    x, h0, Wx, Wh, b, bh = GRU
    hs, step_cache = rf.gru_step_forward(x[:, 0], h0, Wx, Wh, b, bh)
    return [h, hT, *rf.gru_backward(np.cos(h), cache), hs, *rf.gru_step_backward(hs, step_cache)]


def step_jobs():
    x, h0, Wx, Wh, b = LSTM
    h, c, cache = rf.lstm_step_forward(x[:, 0], h0, h0, Wx, Wh, b)
    out = [h, c, *rf.lstm_step_backward(h, c, cache)]
    x, h0, Wx, Wh, b = RNN
    h, cache = rf.rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    return out + [h, *rf.rnn_step_backward(h, cache)]


def layer_jobs():
    y, cache = rf.temporal_affine_forward(LSTM[0], LSTM[2], LSTM[4])
    out = [y, *rf.temporal_affine_backward(y, cache)]
    e, cache = rf.word_embedding_forward(IDX, LSTM[2])
    out += [e, rf.word_embedding_backward(e, cache)]
    loss, dx = rf.temporal_softmax_loss(y, IDX, IDX % 3 > 0)
    return out + [np.array(loss), dx]


JOBS = [lambda: lstm_job(False), lambda: lstm_job(True), rnn_job, lambda: gru_job(False), lambda: gru_job(True),
        step_jobs, layer_jobs]


def assert_identical(got, expected, what):
    assert len(got) == len(expected)
    for k, (a, e) in enumerate(zip(got, expected)):
        assert a.dtype == e.dtype and np.array_equal(a, e), f"{what}: output {k} differs from the serial run"


def run_in_threads(threads, rounds):
    """Every thread runs every job `rounds` times, each starting at another job."""
    def worker(k):
        return [(i, JOBS[i]()) for _ in range(rounds) for j in range(len(JOBS)) for i in [(j + k) % len(JOBS)]]

    with ThreadPoolExecutor(threads) as pool:
        return [r for results in pool.map(worker, range(threads)) for r in results]


def test_many_python_threads_give_the_serial_results():
    expected = [job() for job in JOBS]
    results = run_in_threads(threads=8, rounds=10)
    assert len(results) == 8 * 10 * len(JOBS)
    for i, got in results:
        assert_identical(got, expected[i], f"job {i}")


def test_changing_the_thread_count_while_kernels_run():
    rf.set_num_threads(1)
    expected = [job() for job in JOBS]
    stop, changes = threading.Event(), [0]

    def change_counts():
        while not stop.is_set():
            rf.set_num_threads(1 + changes[0] % 4)
            changes[0] += 1
            time.sleep(0.0005)

    changer = threading.Thread(target=change_counts)
    changer.start()
    try:
        results = run_in_threads(threads=4, rounds=10)
    finally:
        stop.set()
        changer.join()
    assert changes[0] > 10, "the count hardly changed during the run"
    for i, got in results:
        assert_identical(got, expected[i], f"job {i}")


def test_the_gil_is_released_inside_the_kernels():
    args = recurrent_inputs((64, 200, 256, 256), np.float32, gates=4)
    inside, done = threading.Event(), threading.Event()

    def call():
        inside.set()
        rf.lstm_forward(*args)
        done.set()

    t = threading.Thread(target=call)
    start = time.perf_counter()
    t.start()
    inside.wait()
    spins = 0
    while not done.is_set():  # Python runs here only while the kernel does not hold the GIL
        spins += 1
    t.join()
    elapsed = time.perf_counter() - start
    assert elapsed > 0.02 and spins > 1000, (elapsed, spins)


# ---------------------------------------------------------------- caches


def forwards():
    """(name, forward results, backward) for each kernel with a cache, on
    fresh copies of the inputs, which the caller may then overwrite."""
    x, h0, Wx, Wh, b = [a.copy() for a in LSTM]
    xr, h0r, Wxr, Whr, br = [a.copy() for a in RNN]
    xg, h0g, Wxg, Whg, bg, bhg = [a.copy() for a in GRU]
    idx = IDX.copy()
    inputs = [x, h0, Wx, Wh, b, xr, h0r, Wxr, Whr, br, xg, h0g, Wxg, Whg, bg, bhg, idx]
    runs = [
        ("lstm", rf.lstm_forward(x, h0, Wx, Wh, b, c0=h0), lambda r: rf.lstm_backward(r[0], r[1], dcT=h0 * 0 + 1)),
        ("rnn", rf.rnn_forward(xr, h0r, Wxr, Whr, br), lambda r: rf.rnn_backward(r[0], r[1])),
        ("gru", rf.gru_forward(xg, h0g, Wxg, Whg, bg, bhg), lambda r: rf.gru_backward(r[0], r[1])),
        ("gru step", rf.gru_step_forward(xg[:, 0], h0g, Wxg, Whg, bg, bhg),
         lambda r: rf.gru_step_backward(r[0], r[1])),
        ("lstm step", rf.lstm_step_forward(x[:, 0], h0, h0, Wx, Wh, b),
         lambda r: rf.lstm_step_backward(r[0], r[1], r[2])),
        ("rnn step", rf.rnn_step_forward(xr[:, 0], h0r, Wxr, Whr, br), lambda r: rf.rnn_step_backward(r[0], r[1])),
        ("affine", rf.temporal_affine_forward(x, Wx, b), lambda r: rf.temporal_affine_backward(r[0], r[1])),
        ("embedding", rf.word_embedding_forward(idx, Wx), lambda r: (rf.word_embedding_backward(r[0], r[1]),)),
    ]
    return runs, inputs


def test_a_cache_serves_many_backwards_from_many_threads():
    runs, _ = forwards()
    for name, result, backward in runs:
        expected = backward(result)
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(lambda _: [backward(result) for _ in range(4)], range(8)))
        for per_thread in outs:
            for got in per_thread:
                assert_identical(got, expected, name)


def test_caches_own_their_data():
    # Overwriting every input and every returned array after the forward
    # changes nothing in the backward: the caches hold copies, not views.
    expected = {name: backward(result) for name, result, backward in forwards()[0]}
    runs, inputs = forwards()
    upstream = {name: [np.array(a, copy=True) for a in result[:-1]] for name, result, _ in runs}
    for a in inputs:
        a[...] = 7
    for name, result, backward in runs:
        for a in result[:-1]:
            a[...] = -3  # the returned h (and c): the caller's to change
        restored = (*upstream[name], result[-1])
        assert_identical(backward(restored), expected[name], name)


# ---------------------------------------------------------------- memory


def test_returned_arrays_keep_their_memory_across_threads_and_calls():
    """Outputs of 64 KiB to 64 MiB come from a per-thread pool of blocks that
    an array gives back when it dies: live arrays never share memory, an
    array outlives the thread that made it, and one freed by another thread
    (or after its maker exited) is reused there without disturbing the rest."""
    x, h0, Wx, Wh, b = LSTM  # h (16, 12, 64) float32 is 48 KiB; the gates 192 KiB
    big = rand((64, 12, 48), np.float32, seed=3)
    want = rf.lstm_forward(big, np.zeros((64, 64), np.float32), Wx, Wh, b, cache=False)[0]
    assert want.nbytes >= 64 << 10

    def make():
        return rf.lstm_forward(big, np.zeros((64, 64), np.float32), Wx, Wh, b, cache=False)[0]

    made = []
    worker = threading.Thread(target=lambda: made.extend(make() for _ in range(3)))
    worker.start()
    worker.join()  # its thread-local pool is gone; its arrays live on
    live = made + [make() for _ in range(3)]
    for i, a in enumerate(live):
        np.testing.assert_array_equal(a, want)
        assert not any(np.shares_memory(a, other) for other in live[i + 1:])
    for a in live[::2]:
        a[...] = -1  # writing one array touches no other
    for a in live[1::2]:
        np.testing.assert_array_equal(a, want)
    with ThreadPoolExecutor(2) as pool:  # freed in other threads, then reused there and here
        list(pool.map(lambda a: a.sum(), live[:2]))
        del made[:]
        live = live[2:]
        again = list(pool.map(lambda _: make(), range(4))) + [make() for _ in range(2)]
    for a in again:
        np.testing.assert_array_equal(a, want)
    for a in live[1::2]:
        np.testing.assert_array_equal(a, want)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def test_ten_thousand_calls_keep_resident_memory_flat():
    # Every iteration: an LSTM and an RNN forward+backward, the layers, and a
    # call that fails (the error paths must free what they took too).
    args = recurrent_inputs((4, 8, 16, 32), np.float32, gates=4)
    rargs = recurrent_inputs((4, 8, 16, 32), np.float64, gates=1)
    idx = np.random.default_rng(0).integers(0, 16, size=(4, 8))
    bad = np.zeros((4, 8, 15), np.float32)

    def iteration():
        h, cache = rf.lstm_forward(*args)
        rf.lstm_backward(h, cache)
        h, cache = rf.rnn_forward(*rargs)
        rf.rnn_backward(h, cache)
        y, cache = rf.temporal_affine_forward(args[0], args[2], args[4])
        rf.temporal_affine_backward(y, cache)
        e, cache = rf.word_embedding_forward(idx, args[2])
        rf.word_embedding_backward(e, cache)
        rf.temporal_softmax_loss(y, idx, idx > 2)
        with pytest.raises(ValueError):
            rf.lstm_forward(bad, *args[1:])

    for _ in range(1000):  # warm-up: allocator pools and caches reach their size
        iteration()
    before = resident_bytes()
    for _ in range(10_000):
        iteration()
    growth = resident_bytes() - before
    # Stated bound: 2 MiB over 10,000 iterations, i.e. under ~200 bytes per
    # iteration, while one leaked LSTM cache alone would be ~30 KB per call.
    assert growth < 2 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB"
