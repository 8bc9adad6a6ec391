"""Issue 18: no crash from Python. Each case runs in a process of its own
(a crash fails its test, not the session): caches made without a forward,
thread counts the system cannot or should not start, and conversions whose
errors must keep their cause."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import rnn_fast


def child_env(env=None):
    """The environment of a child that imports this rnn_fast, plus env."""
    src = os.path.dirname(os.path.dirname(rnn_fast.__file__))
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}


def run(*parts, env=None, timeout=120):
    """python -c (the parts, each dedented, joined) in a fresh process;
    returns (returncode, stdout + stderr)."""
    code = "\n".join(textwrap.dedent(p) for p in parts)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=child_env(env))
    if done.returncode < 0:
        return done.returncode, f"killed by {signal.Signals(-done.returncode).name}\n{done.stdout}{done.stderr}"
    return done.returncode, done.stdout + done.stderr


def test_caches_not_made_by_a_forward_are_refused():
    code, out = run("""
        import copy, numpy as np, rnn_fast
        from rnn_fast import _core
        names = sorted(n for n in dir(_core) if n.endswith("Cache"))
        assert len(names) >= 8, names
        for name in names:
            C = getattr(_core, name)
            try:
                C.__new__(C)
            except TypeError as e:
                assert "made by the forward functions only" in str(e), e
            else:
                raise SystemExit(f"{name}.__new__ was accepted")
        x, h0 = np.ones((2, 3, 4), np.float32), np.zeros((2, 5), np.float32)
        h, cache = rnn_fast.lstm_forward(x, h0, np.ones((4, 20), np.float32), np.ones((5, 20), np.float32),
                                         np.zeros(20, np.float32))
        for clone in (copy.copy, copy.deepcopy):
            try:
                clone(cache)
            except TypeError:
                pass
            else:
                raise SystemExit("a copy of a cache was made")
        rnn_fast.lstm_backward(np.ones_like(h), cache)  # the real one still works
        print("ok", len(names))
    """)
    assert code == 0 and "ok" in out, out


def test_objects_made_without_init_are_refused():
    """The classes Python constructs (inference objects, the reservoir):
    C.__new__(C) gives an object no __init__ filled; every method and
    property refuses it with a TypeError, and one called through the class on
    another object refuses that."""
    code, out = run("""
        import numpy as np, rnn_fast
        from rnn_fast import _core
        f = np.float32
        made = {
            "RNNInference": lambda C: C(np.ones((3, 4), f), np.ones((4, 4), f), np.zeros(4, f)),
            "LSTMInference": lambda C: C(np.ones((3, 16), f), np.ones((4, 16), f), np.zeros(16, f)),
            "GRUInference": lambda C: C(np.ones((3, 12), f), np.ones((4, 12), f), np.zeros(12, f), np.zeros(12, f)),
            "LeakyReservoir": lambda C: C(2, 1, (np.ones(2), np.array([0, 1]), np.array([0, 1, 2])),
                                          (np.ones(2), np.array([0, 0]), np.array([0, 1, 2])), np.zeros(2),
                                          np.ones(2)),
        }
        calls = {
            "RNNInference": ["D", "H", "dtype", "__repr__", "__call__"],
            "LSTMInference": ["D", "H", "dtype", "gate_order", "__repr__", "__call__"],
            "GRUInference": ["D", "H", "dtype", "gate_order", "__repr__", "__call__"],
            "LeakyReservoir": ["dtype", "units", "input_dim", "stored", "dense", "run"],
        }
        x, h0 = np.ones((2, 3, 3), f), np.zeros((2, 4), f)
        args = {"__call__": (x, h0), "run": (np.ones((1, 3, 1)), np.zeros((1, 2)))}
        for name, make in made.items():
            C = getattr(_core, name)
            real = make(C)
            blank = C.__new__(C)
            for attr in calls[name]:
                for obj, why in ((blank, "never initialized"), (object(), "method called on an object of type object")):
                    member = getattr(C, attr)
                    try:
                        if isinstance(member, property):
                            member.fget(obj)
                        else:
                            member(obj, *args.get(attr, ()))
                    except TypeError as e:
                        assert why in str(e), (name, attr, e)
                    else:
                        raise SystemExit(f"{name}.{attr} accepted {why}")
                member = getattr(real, attr)
                member(*args.get(attr, ())) if callable(member) else member  # the real one works
            print("refused", name)
    """, CHECK, """
    print("ok")
    """)
    assert code == 0, out
    assert out.count("refused") == 4 and "ok" in out, out


@pytest.mark.parametrize("raised,expect", [
    ("SystemExit(3)", "SystemExit 3"), ("RuntimeError('boom')", "RuntimeError boom"),
    ("MemoryError('no room')", "MemoryError no room"), ("KeyboardInterrupt()", "KeyboardInterrupt"),
    ("ValueError('bad values')", "TypeError from ValueError"),
])
def test_conversion_errors_keep_their_cause(raised, expect):
    code, out = run(f"""
        import numpy as np, rnn_fast
        class Odd:
            def __array__(self, dtype=None, copy=None):
                raise {raised}
        W = np.ones((4, 8), np.float32)
        try:
            rnn_fast.rnn_forward(Odd(), np.zeros((2, 8), np.float32), W, np.ones((8, 8), np.float32),
                                 np.zeros(8, np.float32))
        except BaseException as e:
            cause = e.__cause__
            if isinstance(e, TypeError) and cause is not None:
                print("got TypeError from", type(cause).__name__, "|", e)
            else:
                print("got", type(e).__name__, *e.args)
    """)
    assert code == 0, out
    assert f"got {expect}" in out, out
    if expect.startswith("TypeError"):
        assert "rnn_forward(): x must be a float32 or float64 array" in out


def test_a_uint64_index_beyond_int64_is_named_as_it_is():
    code, out = run("""
        import numpy as np, rnn_fast
        try:
            rnn_fast.word_embedding_forward(np.array([[2**64 - 1]], np.uint64), np.ones((3, 2), np.float32))
        except ValueError as e:
            print("ValueError", e)
        try:
            rnn_fast.lstm_forward(np.ones((1, 2, 3)), np.zeros((1, 4)), np.ones((3, 16)), np.ones((4, 16)),
                                  np.zeros(16), lengths=np.array([2**64 - 1], np.uint64))
        except ValueError as e:
            print("ValueError", e)
    """)
    assert code == 0, out
    assert "x holds 18446744073709551615, larger than any index" in out
    assert "got values up to 18446744073709551615" in out


CHECK = """
    import numpy as np, rnn_fast
    from rnn_fast import reference
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(s) for s in ((3, 6, 4), (3, 5), (4, 20), (5, 20), (20,))]
    h, _ = rnn_fast.lstm_forward(*args)
    np.testing.assert_allclose(h, reference.lstm_forward(*args)[0], rtol=1e-10, atol=1e-12)
"""


def test_a_thread_count_past_the_cap_is_refused_and_the_process_goes_on():
    code, out = run("""
        import rnn_fast
        for n in (1_000_000, 4096, 0, -1):
            try:
                rnn_fast.set_num_threads(n)
            except ValueError as e:
                print("refused", n, e)
    """, CHECK, """
    print("ok", rnn_fast.get_num_threads())
    """)
    assert code == 0, out
    assert out.count("refused") == 4 and "four per core" in out and "ok" in out, out


def test_omp_num_threads_past_the_cap_warns_and_runs_at_the_cap():
    code, out = run("""
        import os, warnings
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            import rnn_fast
        print("warned", [str(w.message) for w in seen if "OMP_NUM_THREADS" in str(w.message)])
        cap = 4 * os.cpu_count()
        assert rnn_fast.get_num_threads() == min(cap, 1 << 30), rnn_fast.get_num_threads()
    """, CHECK, """
    print("ok")
    """, env={"OMP_NUM_THREADS": "1000000"})
    assert code == 0 and "ok" in out, out
    assert "is more than the kernels take" in out, out


def test_the_pool_starts_at_import():
    code, out = run("""
        import os, rnn_fast
        print("threads", len(os.listdir("/proc/self/task")))
    """, env={"OMP_NUM_THREADS": "2"})
    assert code == 0, out
    assert int(out.split("threads")[1].split()[0]) >= 2, out


def test_threads_the_system_cannot_start_are_a_memory_error_not_a_crash():
    """Under an address-space limit that leaves no room for more thread
    stacks, asking for more threads is a MemoryError; the kernels go on."""
    code, out = run("""
        import resource, rnn_fast
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (32 << 20), resource.RLIM_INFINITY))
        try:
            rnn_fast.set_num_threads(rnn_fast._core._max_threads())
            print("started")
        except MemoryError as e:
            print("MemoryError", e)
        print("threads now", rnn_fast.get_num_threads())
    """, CHECK, """
    print("ok")
    """, env={"OMP_NUM_THREADS": "1", "OMP_STACKSIZE": "64M"})
    assert code == 0, out
    assert "MemoryError set_num_threads" in out and "threads now 1" in out and "ok" in out, out


def test_a_thread_that_cannot_start_its_team_gets_a_memory_error():
    """OpenMP keeps a pool per calling thread: a Python thread's first call
    with two threads starts one. Under an address-space limit that leaves
    no room for its stack, that call is a MemoryError in that thread (no
    crash), and the main thread's kernels go on."""
    code, out = run("""
        import resource, threading, rnn_fast
        rnn_fast.set_num_threads(2)  # the main thread's pool, started before the limit
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (32 << 20), resource.RLIM_INFINITY))
        def worker():
            import numpy as np
            try:
                rnn_fast.lstm_forward(np.ones((2, 3, 4)), np.zeros((2, 5)), np.ones((4, 20)), np.ones((5, 20)),
                                      np.zeros(20))
                print("started")
            except MemoryError as e:
                print("MemoryError", e)
        threading.stack_size(1 << 20)  # the worker's own stack fits under the limit
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    """, CHECK, """
    print("ok", rnn_fast.get_num_threads())
    """, env={"OMP_NUM_THREADS": "1", "OMP_STACKSIZE": "64M"})
    assert code == 0, out
    assert "MemoryError rnn_fast: the system cannot start 2 threads now" in out and "ok 2" in out, out


# ---------------------------------------------------------------- Ctrl-C

@pytest.mark.parametrize("case", ["rnn", "lstm", "gru", "other"])
def test_ctrl_c_interrupts_every_long_kernel_call_within_100_ms(case):
    """tests/interrupt_kernels.py CASE: SIGINT during multi-second calls of
    each sequence kernel (forward, backward and inference, each partition of
    the time loop, variable lengths), of the reservoir, the temporal affine
    layer and the GEMM: KeyboardInterrupt within 100 ms, then correct
    results and no memory kept."""
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, os.path.join(here, "interrupt_kernels.py"), case], capture_output=True,
                          text=True, timeout=300, env=child_env())
    out = done.stdout + done.stderr
    assert done.returncode == 0 and out.rstrip().endswith("ok"), out


# A call of about a second: 16 x 400 x 256 x 2048 LSTM, float32.
LONG_CALL = """
    import os, signal, threading, time
    import numpy as np, rnn_fast
    rng = np.random.default_rng(1)
    N, T, D, H = 16, 400, 256, 2048
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    h0 = np.zeros((N, H), np.float32)
    Wx = rng.standard_normal((D, 4 * H), dtype=np.float32) * 0.05
    Wh = rng.standard_normal((H, 4 * H), dtype=np.float32) * 0.05
    b = np.zeros(4 * H, np.float32)
    def long_call():
        return rnn_fast.lstm_forward(x, h0, Wx, Wh, b)
    def signal_in(seconds, sig):
        threading.Timer(seconds, os.kill, (os.getpid(), sig)).start()
"""


def test_a_signal_handler_that_raises_ends_the_call_with_its_exception():
    code, out = run(LONG_CALL, """
        class Alarm(Exception):
            pass
        def on_alarm(signum, frame):
            raise Alarm("time is up")
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t = time.perf_counter()
        try:
            long_call()
        except Alarm as e:
            print("raised", e, round(time.perf_counter() - t, 2))
    """, CHECK, """
    print("ok")
    """)
    assert code == 0 and "raised time is up" in out and "ok" in out, out
    assert float(out.split("time is up")[1].split()[0]) < 0.4, out


def test_a_signal_handler_that_returns_lets_the_call_finish():
    """Handlers run during the call (not after it), and one that does not
    raise, as Python's own loop does, changes nothing: the call returns the
    values of an uninterrupted one."""
    code, out = run(LONG_CALL, """
        want, _ = long_call()
        seen = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(time.perf_counter()))
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(time.perf_counter()))
        signal_in(0.1, signal.SIGUSR1)
        signal_in(0.2, signal.SIGINT)
        t = time.perf_counter()
        got, _ = long_call()
        end = time.perf_counter()
        assert len(seen) == 2, seen
        print("handled during the call", all(t < s < end - 0.1 for s in seen), "call took", round(end - t, 2))
        print("same values", np.array_equal(got, want))
    """)
    assert code == 0, out
    assert "handled during the call True" in out and "same values True" in out, out


def test_only_the_main_thread_is_interrupted():
    """Python runs signal handlers on the main thread only: Ctrl-C there
    interrupts the main thread's wait, and a kernel call in another thread
    runs to its end with the values of an uninterrupted one."""
    code, out = run(LONG_CALL, """
        want, _ = long_call()
        got = []
        worker = threading.Thread(target=lambda: got.append(long_call()[0]))
        worker.start()
        signal_in(0.2, signal.SIGINT)
        try:
            while worker.is_alive():
                time.sleep(0.01)
        except KeyboardInterrupt:
            print("main interrupted")
        worker.join()
        print("worker finished", len(got) == 1 and np.array_equal(got[0], want))
    """)
    assert code == 0, out
    assert "main interrupted" in out and "worker finished True" in out, out
