"""Property-based checks of the Cython API's return codes (issue 18), run in a
process of its own by test_cython.py against its downstream module:

    python tests/fuzz_cython_api.py MODULE_DIR [EXAMPLES]

MODULE_DIR holds use_kernels (tests/cython/use_kernels.pyx, built), whose
def functions call each kernel of rnn_fast.cython_kernels without the GIL and
return its code. Hypothesis draws the kernel (every cell's forward,
backward and steps), the dtype, the sizes (0 and 1 included for every
letter), the option and direction, `work` (its size, empty for an inference
forward, or one off), the thread count (valid, 0, negative, past the cap)
and at most one argument whose shape is one off in one dimension. Every
call must return
  * ESHAPE when a shape is off, with last_error() naming the kernel and an
    argument ("fn: name must have shape ...");
  * else EVALUE for a thread count out of [1, four per core], naming it;
  * else OK, with every output written and equal, bit for bit, to the
    Python function's;
and write no output when it fails, and change no input.
"""
import re
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnn_fast as rf

OK, ESHAPE, EVALUE = 0, 1, 2
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
OPTION = {"rnn": "activation", "lstm": "gate_order", "gru": "gate_order"}
OPTIONS = {"rnn": ("tanh", "relu"), "lstm": ("ifog", "ifgo"), "gru": ("rzn", "zrn")}

# Each kernel's arguments in order, named as in cython_kernels.pxd: (name, shape in letters, role), role
# "in" (an input), "out" (an output the call fills), "work" (the forward's
# workspace: an output of the forward, an input of the backward). Letters: N,
# T, D, H, G (gates x H), W (the workspace's elements). The flags follow.
SEQ = {"x": "NTD", "h0": "NH", "c0": "NH", "Wx": "DG", "Wh": "HG", "b": "G", "bh": "G"}
STEP = {"x": "ND", "prev_h": "NH", "prev_c": "NH", "Wx": "DG", "Wh": "HG", "b": "G", "bh": "G"}


def spec(names, shapes, role):
    return [(n, shapes.get(n, ""), role) for n in names]


KERNELS = {
    ("rnn", "fwd"): spec(["x", "h0", "Wx", "Wh", "b"], SEQ, "in") + [("h", "NTH", "out"), ("hT", "NH", "out")],
    ("rnn", "bwd"): [("dh", "NTH", "in")] + spec(["x", "h0", "Wx", "Wh"], SEQ, "in") + [
        ("h", "NTH", "in"), ("dx", "NTD", "out"), ("dh0", "NH", "out"), ("dWx", "DG", "out"), ("dWh", "HG", "out"),
        ("db", "G", "out")],
    ("rnn", "step_fwd"): spec(["x", "prev_h", "Wx", "Wh", "b"], STEP, "in") + [("next_h", "NH", "out")],
    ("rnn", "step_bwd"): [("dnext_h", "NH", "in")] + spec(["x", "prev_h", "Wx", "Wh"], STEP, "in") + [
        ("next_h", "NH", "in"), ("dx", "ND", "out"), ("dprev_h", "NH", "out"), ("dWx", "DG", "out"),
        ("dWh", "HG", "out"), ("db", "G", "out")],
    ("lstm", "fwd"): spec(["x", "h0", "c0", "Wx", "Wh", "b"], SEQ, "in") + [
        ("h", "NTH", "out"), ("hT", "NH", "out"), ("cT", "NH", "out"), ("work", "W", "work")],
    ("lstm", "bwd"): [("dh", "NTH", "in"), ("dcT", "NH", "in")] + spec(["x", "h0", "c0", "Wx", "Wh"], SEQ, "in") + [
        ("h", "NTH", "in"), ("work", "W", "in"), ("dx", "NTD", "out"), ("dh0", "NH", "out"), ("dc0", "NH", "out"),
        ("dWx", "DG", "out"), ("dWh", "HG", "out"), ("db", "G", "out")],
    ("lstm", "step_fwd"): spec(["x", "prev_h", "prev_c", "Wx", "Wh", "b"], STEP, "in") + [
        ("next_h", "NH", "out"), ("next_c", "NH", "out"), ("work", "W", "work")],
    ("lstm", "step_bwd"): [("dnext_h", "NH", "in"), ("dnext_c", "NH", "in")] + spec(
        ["x", "prev_h", "prev_c", "Wx", "Wh"], STEP, "in") + [
        ("next_h", "NH", "in"), ("work", "W", "in"), ("dx", "ND", "out"), ("dprev_h", "NH", "out"),
        ("dprev_c", "NH", "out"), ("dWx", "DG", "out"), ("dWh", "HG", "out"), ("db", "G", "out")],
    ("gru", "fwd"): spec(["x", "h0", "Wx", "Wh", "b", "bh"], SEQ, "in") + [
        ("h", "NTH", "out"), ("hT", "NH", "out"), ("work", "W", "work")],
    ("gru", "bwd"): [("dh", "NTH", "in")] + spec(["x", "h0", "Wx", "Wh"], SEQ, "in") + [
        ("h", "NTH", "in"), ("work", "W", "in"), ("dx", "NTD", "out"), ("dh0", "NH", "out"), ("dWx", "DG", "out"),
        ("dWh", "HG", "out"), ("db", "G", "out"), ("dbh", "G", "out")],
    ("gru", "step_fwd"): spec(["x", "prev_h", "Wx", "Wh", "b", "bh"], STEP, "in") + [
        ("next_h", "NH", "out"), ("work", "W", "work")],
    ("gru", "step_bwd"): [("dnext_h", "NH", "in")] + spec(["x", "prev_h", "Wx", "Wh"], STEP, "in") + [
        ("next_h", "NH", "in"), ("work", "W", "in"), ("dx", "ND", "out"), ("dprev_h", "NH", "out"),
        ("dWx", "DG", "out"), ("dWh", "HG", "out"), ("db", "G", "out"), ("dbh", "G", "out")],
}


def python_outputs(cell, kind, a, option, reverse):
    """The Python functions' outputs, in the wrapper's output order."""
    opt = {OPTION[cell]: OPTIONS[cell][option]}
    extra = [a["bh"]] if cell == "gru" else []
    if kind in ("fwd", "bwd"):
        c0 = {"c0": a["c0"]} if cell == "lstm" else {}
        out = getattr(rf, f"{cell}_forward")(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], *extra, reverse=reverse,
                                             return_state=True, **c0, **opt)
        if kind == "fwd":
            return list(out[:-1])
        back = getattr(rf, f"{cell}_backward")
        if cell == "lstm":
            g = back(a["dh"], out[-1], dcT=a["dcT"], return_dc0=True)
            return [g[0], g[1], g[5], g[2], g[3], g[4]]  # dx, dh0, dc0, dWx, dWh, db
        return list(back(a["dh"], out[-1]))
    c = [a["prev_c"]] if cell == "lstm" else []
    out = getattr(rf, f"{cell}_step_forward")(a["x"], a["prev_h"], *c, a["Wx"], a["Wh"], a["b"], *extra, **opt)
    if kind == "step_fwd":
        return list(out[:-1])
    back = getattr(rf, f"{cell}_step_backward")
    if cell == "lstm":
        return list(back(a["dnext_h"], a["dnext_c"], out[-1]))
    return list(back(a["dnext_h"], out[-1]))


@st.composite
def calls(draw):
    cell = draw(st.sampled_from(sorted(GATES)))
    kind = draw(st.sampled_from(["fwd", "bwd", "step_fwd", "step_bwd"]))
    dims = {k: draw(st.integers(0, 5)) for k in "NTDH"}
    if kind.startswith("step"):
        dims["T"] = 1
    dims["G"] = GATES[cell] * dims["H"]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    option, reverse = draw(st.integers(0, 1)), draw(st.booleans())
    cap = rf._core._max_threads()
    nthreads = draw(st.sampled_from([1, 1, 2, cap, 0, -1, cap + 1, 2**31 - 1]))
    args = KERNELS[(cell, kind)]
    # The argument drawn off by one (index into args, or None), its axis and sign.
    off = draw(st.one_of(st.none(), st.integers(0, len(args) - 1)))
    axis, step = draw(st.integers(0, 2)), draw(st.sampled_from([-1, 1]))
    # A forward's work: its size, or empty (an inference), drawn apart from `off`.
    empty_work = draw(st.booleans()) if kind.endswith("fwd") else False
    seed = draw(st.integers(0, 2**32 - 1))
    return cell, kind, dims, dtype, option, reverse, nthreads, off, axis, step, empty_work, seed


def shape_of(letters, dims, uk, cell):
    if letters == "W":
        return (uk.workspace(cell, dims["N"], dims["T"], dims["H"]),)
    return tuple(dims[c] for c in letters)


def run(uk, cell, kind, dims, dtype, option, reverse, nthreads, off, axis, step, empty_work, seed):
    rng = np.random.default_rng(seed)
    args = KERNELS[(cell, kind)]
    # Every input of the cell's forward and backward (the backward's kernel
    # takes fewer: no biases), then the call's own arguments.
    pool = {}
    for key in (cell, kind.replace("bwd", "fwd")), (cell, kind.replace("fwd", "bwd")):
        for name, letters, role in KERNELS[key]:
            if role == "in" and name not in pool:
                pool[name] = rng.standard_normal(shape_of(letters, dims, uk, cell)).astype(dtype) * 0.5
    values = {name: pool[name] if role == "in" else np.full(shape_of(letters, dims, uk, cell), np.nan, dtype)
              for name, letters, role in args}
    if kind.endswith("bwd"):
        # The forward's h (next_h) and work, from a valid forward of the same inputs.
        fwd = (cell, kind.replace("bwd", "fwd"))
        fargs = [pool[n] if r == "in" else np.full(shape_of(l, dims, uk, cell), np.nan, dtype)
                 for n, l, r in KERNELS[fwd]]
        fnames = [n for n, _, _ in KERNELS[fwd]]
        flags = ([reverse] if kind == "bwd" else []) + [option, 1]
        assert getattr(uk, f"{cell}_{fwd[1]}")(*fargs, *flags) == OK, uk.error()
        for n, a in zip(fnames, fargs):
            if n in ("h", "next_h", "work"):
                values[n] = a
    if empty_work and "work" in values:
        values["work"] = np.empty(0, dtype)
    want_code = OK
    if off is not None:
        name = args[off][0]
        a = values[name]
        ax = axis % a.ndim
        if a.shape[ax] + step >= 0 and not (name == "work" and a.size == 0 and kind.endswith("fwd")):
            shape = list(a.shape)
            shape[ax] += step
            values[name] = (rng.standard_normal(shape).astype(dtype) if args[off][2] == "in"
                            else np.full(shape, np.nan, dtype))
            want_code = ESHAPE
    cap = rf._core._max_threads()
    if want_code == OK and not 1 <= nthreads <= cap:
        want_code = EVALUE
    flags = ([reverse] if kind in ("fwd", "bwd") else []) + [option, nthreads]
    ordered = [values[n] for n, _, _ in args]
    before = {n: values[n].copy() for n, _, role in args if role == "in"}
    fn = getattr(uk, f"{cell}_{kind}")
    code = fn(*ordered, *flags)
    where = f"{cell}_{kind} dims={dims} dtype={np.dtype(dtype).name} nthreads={nthreads} off={off}"
    assert code == want_code, f"{where}: code {code}, expected {want_code} ({uk.error()})"
    for n, _, role in args:
        if role == "in":
            assert np.array_equal(values[n], before[n]), f"{where}: input {n} changed"
    outputs = [values[n] for n, _, role in args if role == "out"]
    if code != OK:
        message = uk.error()
        if code == ESHAPE:
            fname = {"fwd": "forward", "bwd": "backward", "step_fwd": "step_forward",
                     "step_bwd": "step_backward"}[kind]
            m = re.match(rf"{cell}_{fname}: (\w+) must have shape ", message)
            assert m and m.group(1) in values, f"{where}: message {message!r}"
            # x and Wh set the letters; any other argument off is the one named.
            name = args[off][0]
            assert name in ("x", "Wh") or m.group(1) == name, f"{where}: {name} was off; message {message!r}"
        else:
            assert message.startswith("nthreads must be"), f"{where}: message {message!r}"
        for o in outputs:
            assert np.isnan(o).all(), f"{where}: an output was written by a failed call"
        return code
    want = python_outputs(cell, kind, pool, option, reverse)
    assert len(want) == len(outputs), where
    for k, (g, w) in enumerate(zip(outputs, want)):
        assert g.shape == w.shape and np.array_equal(g, w), f"{where}: output {k} differs from Python's"
    return code


def main(module_dir, examples):
    sys.path.insert(0, module_dir)
    import use_kernels as uk

    seen = {}

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(calls())
    def fuzz(call):
        code = run(uk, *call)
        seen[code] = seen.get(code, 0) + 1

    fuzz()
    print("codes", dict(sorted(seen.items())))
    # Every outcome was drawn often enough to mean something.
    assert all(seen.get(c, 0) >= examples // 20 for c in (OK, ESHAPE, EVALUE)), seen
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
