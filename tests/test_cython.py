"""rnn_fast.cython_kernels (issue 13): a downstream Cython module
(tests/cython/use_kernels.pyx), built in a temporary directory against the
installed package with only rnn_fast.get_include() and NumPy's include
directory, cimports every kernel; each gives the Python function's results
bit for bit, in float32 and float64, every cell and option; a bad shape is
a code and a message; the calls release the GIL and run inside prange."""
import importlib
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rnn_fast as rf

from conftest import rand

HERE = pathlib.Path(__file__).parent

SETUP = '''
import numpy, rnn_fast
from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension("use_kernels", ["use_kernels.pyx"], include_dirs=[rnn_fast.get_include(), numpy.get_include()])
setup(ext_modules=cythonize([ext], include_path=[rnn_fast.get_include()], language_level=3))
'''


@pytest.fixture(scope="module")
def uk(tmp_path_factory):
    work = tmp_path_factory.mktemp("downstream")
    shutil.copy(HERE / "cython" / "use_kernels.pyx", work)
    (work / "setup.py").write_text(SETUP)
    out = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=work, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module("use_kernels")
    finally:
        sys.path.remove(str(work))


SHAPES = [(3, 5, 4, 6), (2, 4, 3, 5), (9, 3, 20, 16), (4, 0, 3, 2)]  # N, T, D, H
CASES = [("rnn", 0), ("rnn", 1), ("lstm", 0), ("lstm", 1), ("gru", 0), ("gru", 1)]
OPTIONS = {"rnn": ("activation", ["tanh", "relu"]), "lstm": ("gate_order", ["ifog", "ifgo"]),
           "gru": ("gate_order", ["rzn", "zrn"])}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def inputs(cell, shape, dtype, seed=0):
    N, T, D, H = shape
    G = GATES[cell] * H
    args = dict(x=rand((N, T, D), dtype, seed), h0=rand((N, H), dtype, seed + 1), Wx=rand((D, G), dtype, seed + 2),
                Wh=rand((H, G), dtype, seed + 3), b=rand((G,), dtype, seed + 4))
    if cell == "gru":
        args["bh"] = rand((G,), dtype, seed + 5)
    if cell == "lstm":
        args["c0"] = rand((N, H), dtype, seed + 6)
    return args


def empty(dtype, *shape):
    return np.full(shape, np.nan, dtype)  # NaN: any element a kernel forgets shows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("cell,option", CASES)
@pytest.mark.parametrize("reverse", [False, True])
def test_sequence_kernels_equal_the_python_functions(uk, cell, option, shape, dtype, reverse):
    N, T, D, H = shape
    G = GATES[cell] * H
    a = inputs(cell, shape, dtype)
    dh = rand((N, T, H), dtype, 9)
    key, values = OPTIONS[cell]
    kw = {key: values[option], "reverse": reverse, "return_state": True}
    h, hT, cT, dx, dh0, dc0 = (empty(dtype, N, T, H), empty(dtype, N, H), empty(dtype, N, H),
                               empty(dtype, N, T, D), empty(dtype, N, H), empty(dtype, N, H))
    dWx, dWh, db, dbh = empty(dtype, D, G), empty(dtype, H, G), empty(dtype, G), empty(dtype, G)
    if cell == "rnn":
        want_h, want_hT, cache = rf.rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], **kw)
        want = [want_h, want_hT, *rf.rnn_backward(dh, cache)]
        assert uk.rnn_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], h, hT, reverse, option, 2) == 0
        assert uk.rnn_bwd(dh, a["x"], a["h0"], a["Wx"], a["Wh"], h, dx, dh0, dWx, dWh, db, reverse, option, 2) == 0
        got = [h, hT, dx, dh0, dWx, dWh, db]
    elif cell == "lstm":
        dcT = rand((N, H), dtype, 10)
        work = empty(dtype, uk.workspace("lstm", N, T, H))
        want_h, want_hT, want_cT, cache = rf.lstm_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], c0=a["c0"], **kw)
        want = [want_h, want_hT, want_cT, *rf.lstm_backward(dh, cache, dcT=dcT, return_dc0=True)]
        assert uk.lstm_fwd(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], h, hT, cT, work, reverse, option,
                           2) == 0
        assert uk.lstm_bwd(dh, dcT, a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], h, work, dx, dh0, dc0, dWx, dWh, db,
                           reverse, option, 2) == 0
        got = [h, hT, cT, dx, dh0, dWx, dWh, db, dc0]
    else:
        work = empty(dtype, uk.workspace("gru", N, T, H))
        want_h, want_hT, cache = rf.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], **kw)
        want = [want_h, want_hT, *rf.gru_backward(dh, cache)]
        assert uk.gru_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], h, hT, work, reverse, option, 2) == 0
        assert uk.gru_bwd(dh, a["x"], a["h0"], a["Wx"], a["Wh"], h, work, dx, dh0, dWx, dWh, db, dbh, reverse, option,
                          2) == 0
        got = [h, hT, dx, dh0, dWx, dWh, db, dbh]
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell,option", CASES)
def test_step_kernels_equal_the_python_functions(uk, cell, option, dtype):
    N, D, H = 5, 7, 6
    G = GATES[cell] * H
    a = inputs(cell, (N, 1, D, H), dtype, seed=3)
    x = np.ascontiguousarray(a["x"][:, 0])
    dout = rand((N, H), dtype, 11)
    key, values = OPTIONS[cell]
    kw = {key: values[option]}
    nh, nc, dx, dprev, dprev_c = (empty(dtype, N, H), empty(dtype, N, H), empty(dtype, N, D), empty(dtype, N, H),
                                  empty(dtype, N, H))
    dWx, dWh, db, dbh = empty(dtype, D, G), empty(dtype, H, G), empty(dtype, G), empty(dtype, G)
    if cell == "rnn":
        want_h, cache = rf.rnn_step_forward(x, a["h0"], a["Wx"], a["Wh"], a["b"], **kw)
        want = [want_h, *rf.rnn_step_backward(dout, cache)]
        assert uk.rnn_step_fwd(x, a["h0"], a["Wx"], a["Wh"], a["b"], nh, option, 1) == 0
        assert uk.rnn_step_bwd(dout, x, a["h0"], a["Wx"], a["Wh"], nh, dx, dprev, dWx, dWh, db, option, 1) == 0
        got = [nh, dx, dprev, dWx, dWh, db]
    elif cell == "lstm":
        dout_c = rand((N, H), dtype, 12)
        work = empty(dtype, uk.workspace("lstm", N, 1, H))
        want_h, want_c, cache = rf.lstm_step_forward(x, a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], **kw)
        want = [want_h, want_c, *rf.lstm_step_backward(dout, dout_c, cache)]
        assert uk.lstm_step_fwd(x, a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], nh, nc, work, option, 1) == 0
        assert uk.lstm_step_bwd(dout, dout_c, x, a["h0"], a["c0"], a["Wx"], a["Wh"], nh, work, dx, dprev, dprev_c,
                                dWx, dWh, db, option, 1) == 0
        got = [nh, nc, dx, dprev, dprev_c, dWx, dWh, db]
    else:
        work = empty(dtype, uk.workspace("gru", N, 1, H))
        want_h, cache = rf.gru_step_forward(x, a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], **kw)
        want = [want_h, *rf.gru_step_backward(dout, cache)]
        assert uk.gru_step_fwd(x, a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], nh, work, option, 1) == 0
        assert uk.gru_step_bwd(dout, x, a["h0"], a["Wx"], a["Wh"], nh, work, dx, dprev, dWx, dWh, db, dbh, option,
                               1) == 0
        got = [nh, dx, dprev, dWx, dWh, db, dbh]
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")


def test_a_bad_shape_is_a_code_and_a_message_and_writes_nothing(uk):
    N, T, D, H = 3, 4, 5, 6
    a = inputs("lstm", (N, T, D, H), np.float32)
    h, hT, cT = empty(np.float32, N, T, H), empty(np.float32, N, H), empty(np.float32, N, H)
    work = empty(np.float32, uk.workspace("lstm", N, T, H))
    bad_c0 = np.zeros((N, H + 1), np.float32)
    code = uk.lstm_fwd(a["x"], a["h0"], bad_c0, a["Wx"], a["Wh"], a["b"], h, hT, cT, work, False, False, 1)
    assert code == uk.CODES["ESHAPE"]
    assert uk.error() == "lstm_forward: c0 must have shape (N, H) = (3, 6), got (3, 7)"
    assert np.isnan(h).all() and np.isnan(hT).all()
    code = uk.lstm_fwd(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], h, hT, cT, work[:-1], False, False, 1)
    assert code == uk.CODES["ESHAPE"]
    assert uk.error() == f"lstm_forward: work must have shape (lstm_workspace(N, T, H),) = ({work.size},), " \
                         f"got ({work.size - 1},)"
    assert uk.lstm_fwd(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], h, hT, cT, work, False, False, 0) == 2
    assert uk.error() == "nthreads must be >= 1"
    assert uk.workspace("lstm", N, T, H) == 5 * N * T * H and uk.workspace("gru", N, T, H) == 4 * N * T * H


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_an_empty_work_is_an_inference_forward(uk, cell):
    """work with 0 elements: the outputs of the training forward and of the
    Python function with cache=False, nothing kept."""
    N, T, D, H = 4, 6, 5, 3
    a = inputs(cell, (N, T, D, H), np.float64, seed=7)
    h, hT, cT = empty(np.float64, N, T, H), empty(np.float64, N, H), empty(np.float64, N, H)
    none = np.empty(0)
    if cell == "lstm":
        assert uk.lstm_fwd(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], h, hT, cT, none, True, True, 2) == 0
        want = rf.lstm_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], c0=a["c0"], reverse=True,
                               return_state=True, cache=False, gate_order="ifgo")[:3]
        got = [h, hT, cT]
    else:
        assert uk.gru_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], h, hT, none, True, True, 2) == 0
        want = rf.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], reverse=True, return_state=True,
                              cache=False, gate_order="zrn")[:2]
        got = [h, hT]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_return_codes_hold_under_fuzzing(uk):
    """tests/fuzz_cython_api.py in a process of its own (a crash fails this
    test, not the session): drawn kernels, sizes, workspaces, thread counts
    and one shape off; the codes, messages and outputs as documented."""
    src = pathlib.Path(rf.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    examples = str(max(1000, int(os.environ.get("RNN_FAST_PROPERTY_EXAMPLES", "300"))))
    done = subprocess.run([sys.executable, str(HERE / "fuzz_cython_api.py"), str(pathlib.Path(uk.__file__).parent),
                           examples], cwd=HERE, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("ok"), \
        f"exit {done.returncode}\n{done.stdout[-4000:]}{done.stderr[-4000:]}"


def test_a_thread_count_past_the_cap_is_evalue_and_a_forked_child_runs_on_one_thread(uk):
    N, T, D, H = 3, 4, 5, 6
    a = inputs("gru", (N, T, D, H), np.float32)
    h, hT = empty(np.float32, N, T, H), empty(np.float32, N, H)
    work = empty(np.float32, uk.workspace("gru", N, T, H))
    cap = rf._core._max_threads()
    for n in (cap + 1, 1_000_000):
        assert uk.gru_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], h, hT, work, False, False, n) == 2
        assert uk.error() == f"nthreads must be at most {cap} (four per core, within OpenMP's thread limit), got {n}"
        assert np.isnan(h).all()
    assert uk.gru_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], h, hT, work, False, False, cap) == 0
    want = h.copy()
    # A forked child asks for every thread: it runs on one (OpenMP's pool is the parent's) with the same values.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        h2 = empty(np.float32, N, T, H)
        code = uk.gru_fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], h2, hT, work, False, False, cap)
        os.write(write, b"same" if code == 0 and np.array_equal(h2, want) else b"differs")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"same" and status == 0
    os.close(read)


def test_prange_runs_an_ensemble_without_the_gil(uk):
    """An ensemble of LSTMs, one member per prange iteration on one thread
    each: every member's outputs are the Python function's."""
    M, N, T, D, H = 6, 3, 7, 4, 5
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, N, T, D), dtype=np.float32)
    h0 = rng.standard_normal((M, N, H), dtype=np.float32)
    c0 = rng.standard_normal((M, N, H), dtype=np.float32)
    Wx = rng.standard_normal((M, D, 4 * H), dtype=np.float32) * 0.3
    Wh = rng.standard_normal((M, H, 4 * H), dtype=np.float32) * 0.3
    b = rng.standard_normal((M, 4 * H), dtype=np.float32) * 0.1
    h, hT, cT = empty(np.float32, M, N, T, H), empty(np.float32, M, N, H), empty(np.float32, M, N, H)
    work = empty(np.float32, M, uk.workspace("lstm", N, T, H))
    assert uk.lstm_ensemble(x, h0, c0, Wx, Wh, b, h, hT, cT, work, 2) == 0
    for m in range(M):
        want = rf.lstm_forward(x[m], h0[m], Wx[m], Wh[m], b[m], c0=c0[m], return_state=True, cache=False)
        for g, w in zip((h[m], hT[m], cT[m]), want[:3]):
            np.testing.assert_array_equal(g, w)


def test_the_calls_release_the_gil(uk):
    """While a thread sits in a long run of kernel calls, this thread runs
    Python code: it could not if the calls held the GIL."""
    N, T, D, H = 16, 200, 32, 64
    a = inputs("lstm", (N, T, D, H), np.float32)
    h, hT, cT = empty(np.float32, N, T, H), empty(np.float32, N, H), empty(np.float32, N, H)
    work = empty(np.float32, uk.workspace("lstm", N, T, H))
    start = time.perf_counter()
    uk.lstm_hold_gil_free(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], h, hT, cT, work, 1)
    one = time.perf_counter() - start
    repeats = max(4, int(0.5 / max(one, 1e-4)))
    worker = threading.Thread(target=uk.lstm_hold_gil_free, args=(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"],
                                                                     a["b"], h, hT, cT, work, repeats))
    ticks = 0
    worker.start()
    while worker.is_alive():
        ticks += 1  # Python bytecode, which needs the GIL
    worker.join()
    assert ticks > 1000
