"""Builds the ensemble example (ensemble.pyx, setup.py) in place, checks its
scores against the Python API, and times both:

    python examples/cython/run.py

The Python side is what a user writes without the Cython interface: a loop
over the members calling rnn_fast.lstm_forward (cache=False) and the
read-out in NumPy. Exit status 1 if the scores differ."""
import importlib
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import rnn_fast

HERE = os.path.dirname(os.path.abspath(__file__))
M, N, T, D, H = 1024, 4, 12, 3, 8  # members, windows each, steps, features, units


def python_scores(x, Wx, Wh, b, w_out):
    h0 = np.zeros((N, H), np.float32)
    out = np.empty((M, N), np.float32)
    for m in range(M):
        _, hT, _, _ = rnn_fast.lstm_forward(x[m], h0, Wx[m], Wh[m], b[m], return_state=True, cache=False,
                                            gate_order="ifgo")
        out[m] = hT @ w_out[m]
    return out


def median_ms(fn, repeats=15):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def main():
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=HERE, check=True,
                   stdout=subprocess.DEVNULL)
    sys.path.insert(0, HERE)
    ensemble = importlib.import_module("ensemble")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, N, T, D), dtype=np.float32)
    Wx = rng.standard_normal((M, D, 4 * H), dtype=np.float32) * 0.4
    Wh = rng.standard_normal((M, H, 4 * H), dtype=np.float32) * 0.25
    b = rng.standard_normal((M, 4 * H), dtype=np.float32) * 0.1
    w_out = rng.standard_normal((M, H), dtype=np.float32)
    threads = rnn_fast.get_num_threads()
    ours = ensemble.score(x, Wx, Wh, b, w_out, threads)
    want = python_scores(x, Wx, Wh, b, w_out)
    # The LSTMs' states are the same bits; the read-outs' sums run in
    # different orders (NumPy's dot against a loop).
    ok = np.allclose(ours, want, rtol=1e-5, atol=1e-6)
    # Alternated, medians: the Python loop, the Cython loop on one thread, on all.
    times = {"python": [], "cython, 1 thread": [], f"cython, {threads} threads": []}
    runs = {"python": lambda: python_scores(x, Wx, Wh, b, w_out),
            "cython, 1 thread": lambda: ensemble.score(x, Wx, Wh, b, w_out, 1),
            f"cython, {threads} threads": lambda: ensemble.score(x, Wx, Wh, b, w_out, threads)}
    for _ in range(5):
        for name, fn in runs.items():
            times[name].append(median_ms(fn, 5))
    t = {name: statistics.median(v) for name, v in times.items()}
    print(f"{M} LSTMs (N={N} T={T} D={D} H={H}), each scoring its windows:")
    print(f"  Python loop over rnn_fast.lstm_forward: {t['python']:.2f} ms")
    for name in list(t)[1:]:
        print(f"  {name} over the cimported kernel: {t[name]:.2f} ms ({t['python'] / t[name]:.2f}x)")
    print("PASS: the same scores" if ok else "FAIL: the scores differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
