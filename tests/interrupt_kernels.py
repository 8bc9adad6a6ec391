"""Ctrl-C during long kernel calls (issue 18), in a process of its own:
python tests/interrupt_kernels.py CASE. CASE is a cell ('rnn', 'lstm',
'gru': its forward, backward and inference under each partition of the time
loop, and a forward of variable lengths) or 'other' (the echo state
reservoir, the temporal affine layer, the GEMM).

For each call: a SIGINT is sent to the process by a timer thread, as a
terminal's Ctrl-C would be, at a few delays into a call that runs for
seconds uninterrupted (checked: eight times an eighth of its work takes
MULTI_SECOND or more), and the call must raise KeyboardInterrupt within
LATENCY seconds of the signal. After every interrupted call, a small call of
the same kernel must equal the NumPy reference (the thread pool still works
and nothing was left behind), and repeated interrupted calls must not grow
the process's memory (the call's buffers are freed). Prints one JSON line
per interrupted call, then 'ok'; exits 1 with the failures.
"""
import gc
import json
import os
import resource
import signal
import sys
import threading
import time

import numpy as np

import rnn_fast
from rnn_fast import _core, reference

# Seconds from the signal to KeyboardInterrupt: the 100 ms. The sanitizer job (.ci/sanitize) sets
# RNN_FAST_INTERRUPT_LATENCY_MS higher: under ASan every step, page mapping and free is several times slower
# (measured there: 25 to 210 ms, median 67), and what that run checks is that interrupted calls end cleanly.
LATENCY = float(os.environ.get("RNN_FAST_INTERRUPT_LATENCY_MS", "100")) / 1e3
DELAYS = (0.05, 0.4)  # into the call: while its outputs are mapped, and in its time loop
MULTI_SECOND = 2.0  # the least a call must run uninterrupted (estimated)
GROWTH = 96 << 20  # bytes of RSS that repeated interrupted calls may add (the kernels' kept blocks)

rng = np.random.default_rng(0)
failures = []


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def interrupted(call, delay):
    """Seconds from a SIGINT sent `delay` s into call() to its
    KeyboardInterrupt (None if it returned first)."""
    sent = []

    def kill():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(delay, kill)
    timer.start()
    try:
        call()
    except KeyboardInterrupt:
        return time.perf_counter() - sent[0]
    finally:
        timer.join()
    return None


def timed(call):
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def estimate(name, eighth_call):
    """The seconds a call of 8 times eighth_call's work takes (the faster of
    two); fails the case if that is too short to test."""
    seconds = 8 * min(timed(eighth_call) for _ in range(2))
    if seconds < MULTI_SECOND:
        failures.append(f"{name}: the call is too short to test ({seconds:.2f} s estimated)")
    return seconds


def check(name, long_call, seconds, small_check, memory=False):
    """Interrupts long_call (estimated to take `seconds`) at each delay (with
    `memory`, twice more at the last one, for the memory check), checking
    small_check() after each. A latency over LATENCY is measured once more
    (this host is shared: a stall of the whole machine is not the kernel's)."""
    sizes = []
    for delay in DELAYS + (DELAYS[-1],) * (2 if memory else 0):
        gc.collect()
        latency = interrupted(long_call, delay)
        if latency is not None and latency > LATENCY:
            print(json.dumps({"call": name, "delay": delay, "latency_ms": round(latency * 1e3, 1),
                              "again": True}), flush=True)
            latency = interrupted(long_call, delay)
        gc.collect()
        sizes.append(rss())
        print(json.dumps({"call": name, "delay": delay, "latency_ms": None if latency is None else
                          round(latency * 1e3, 1), "estimated_s": round(seconds, 2)}), flush=True)
        if latency is None:
            failures.append(f"{name}: not interrupted (delay {delay} s)")
        elif latency > LATENCY:
            failures.append(f"{name}: interrupted {latency * 1e3:.0f} ms after the signal (delay {delay} s)")
        error = small_check()
        if error is not None:
            failures.append(f"{name}: after the interrupt, {error}")
    if memory and sizes[-1] - sizes[len(DELAYS) - 1] > GROWTH:
        failures.append(f"{name}: memory grew {(sizes[-1] - sizes[len(DELAYS) - 1]) >> 20} MiB over two more "
                        "interrupted calls")


def differs(got, want, tol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.max(np.abs(got - want)) if got.size else 0.0
    return None if got.shape == want.shape and err <= tol else f"max error {err:.2e} (shape {got.shape})"


def cell_case(cell):
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    forward, backward = getattr(rnn_fast, f"{cell}_forward"), getattr(rnn_fast, f"{cell}_backward")
    Inference = {"rnn": rnn_fast.RNNInference, "lstm": rnn_fast.LSTMInference, "gru": rnn_fast.GRUInference}[cell]
    # Sized for seconds per call on 2 cores in little memory: few rows and wide layers, whose weights
    # stream from memory at every step (the vanilla RNN has a quarter of the LSTM's a step).
    N, D, H = 16, 256, 2048
    T = {"rnn": 3200, "lstm": 750, "gru": 1000}[cell]
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    h0 = rng.standard_normal((N, H), dtype=np.float32) * 0.1
    Wx = rng.standard_normal((D, G * H), dtype=np.float32) * 0.05
    Wh = rng.standard_normal((H, G * H), dtype=np.float32) * 0.05
    b = rng.standard_normal(G * H, dtype=np.float32) * 0.1
    extra = {"bh": rng.standard_normal(G * H, dtype=np.float32) * 0.1} if cell == "gru" else {}
    lengths = rng.integers(T // 2, T + 1, size=N)
    lengths[0] = T

    # The small check: a forward and backward of a few rows and steps against the reference, float64.
    xs, h0s = x[:3, :5].astype(np.float64), h0[:3].astype(np.float64)
    ws = [a.astype(np.float64) for a in (Wx, Wh, b)]
    exs = {k: v.astype(np.float64) for k, v in extra.items()}
    dhs = rng.standard_normal((3, 5, H))

    def small_check():
        h, cache = forward(xs, h0s, *ws, **exs)
        rh, rcache = getattr(reference, f"{cell}_forward")(xs, h0s, *ws, **exs)
        error = differs(h, rh, 1e-10)
        if error is None:
            grads = backward(dhs, cache)
            rgrads = getattr(reference, f"{cell}_backward")(dhs, rcache)
            for g, rg in zip(grads, rgrads):
                error = error or differs(g, rg, 1e-9)
        return error

    inference = Inference(Wx, Wh, b, **extra)
    eighth = T // 8
    _, cache = forward(x, h0, Wx, Wh, b, **extra)
    _, cache8 = forward(x[:, :eighth], h0, Wx, Wh, b, **extra)
    dh, dh8 = np.ones((N, T, H), np.float32), np.ones((N, eighth, H), np.float32)
    # How long each call runs (the partitions share out the same work).
    seconds = {"forward": estimate(f"{cell}_forward", lambda: forward(x[:, :eighth], h0, Wx, Wh, b, **extra)),
               "backward": estimate(f"{cell}_backward", lambda: backward(dh8, cache8)),
               "inference": estimate(f"{cell}_inference", lambda: inference(x[:, :eighth], h0)),
               "lengths": estimate(f"{cell}_forward/lengths", lambda: forward(
                   x[:, :eighth], h0, Wx, Wh, b, lengths=np.minimum(lengths, eighth), **extra))}
    for partition in ("rows", "columns", "row_passes"):
        _core._set_partition(partition)
        check(f"{cell}_forward/{partition}", lambda: forward(x, h0, Wx, Wh, b, **extra), seconds["forward"],
              small_check, memory=partition == "rows")
        check(f"{cell}_backward/{partition}", lambda: backward(dh, cache), seconds["backward"], small_check,
              memory=partition == "columns")
        check(f"{cell}_inference/{partition}", lambda: inference(x, h0), seconds["inference"], small_check)
    _core._set_partition("auto")
    check(f"{cell}_forward/lengths", lambda: forward(x, h0, Wx, Wh, b, lengths=lengths, **extra),
          seconds["lengths"], small_check)


def other_case():
    from rnn_fast.reservoir import Reservoir

    res = Reservoir(2000, lr=0.3, sr=0.9, seed=0)
    u = rng.standard_normal((40000, 8)).astype(np.float32)
    res.initialize(u[:1])

    def reservoir_check():
        small = Reservoir(20, lr=0.3, sr=0.9, seed=1)
        got = small.run(u[:30])
        want = reference.reservoir_forward(u[None, :30], np.zeros((1, 20), np.float32), small.W, small.Win,
                                           small.bias, small.lr)[0]
        return differs(got, want, 1e-5)

    check("reservoir_run", lambda: (res.reset(), res.run(u)),
          estimate("reservoir_run", lambda: (res.reset(), res.run(u[:5000]))), reservoir_check)

    N, T, D, M = 32, 2000, 2048, 2048
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    w = rng.standard_normal((D, M), dtype=np.float32) * 0.03
    bias = np.zeros(M, np.float32)
    xs, ws, bs = x[:2, :3].astype(np.float64), w[:, :7].astype(np.float64), bias[:7].astype(np.float64)

    def affine_check():
        out, _ = rnn_fast.temporal_affine_forward(xs, ws, bs)
        return differs(out, reference.temporal_affine_forward(xs, ws, bs)[0], 1e-10)

    check("temporal_affine_forward", lambda: rnn_fast.temporal_affine_forward(x, w, bias),
          estimate("temporal_affine_forward", lambda: rnn_fast.temporal_affine_forward(x[:8], w, bias)),
          affine_check)
    a = rng.standard_normal((16000, 4000), dtype=np.float32)
    bm = rng.standard_normal((4000, 4000), dtype=np.float32)

    def matmul_check():
        return differs(_core._matmul(xs[0], ws), xs[0] @ ws, 1e-10)

    check("gemm", lambda: _core._matmul(a, bm), estimate("gemm", lambda: _core._matmul(a[:2000], bm)),
          matmul_check)


def main():
    # At most 3 GiB more address space than at the start (the cases need about 1.5).
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))
    case = sys.argv[1]
    if case in ("rnn", "lstm", "gru"):
        cell_case(case)
    elif case == "other":
        other_case()
    else:
        raise SystemExit(f"unknown case {case!r}")
    if failures:
        print("\n".join(failures))
        raise SystemExit(1)
    print("ok")


if __name__ == "__main__":
    main()
