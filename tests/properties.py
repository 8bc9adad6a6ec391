"""Property-based checks of every public kernel, run one kernel per process
by test_properties.py so that a crash fails a test instead of the session.

    python tests/properties.py KERNEL [EXAMPLES]

Hypothesis draws the sizes (0 and 1 included for every letter), each
argument's dtype (float16/32/64, ints, bool, complex, object, Python lists,
non-arrays), its memory layout (C, Fortran, strided slice, negative strides,
read-only, unaligned, broadcast), one argument of wrong shape, out-of-range
indices, wrong caches and the keyword options (variable lengths= of the
sequence kernels among them), and the cells' inference objects (weights
packed once) on drawn calls. Every call must either
  * match rnn_fast.reference within conftest.TOL of the result dtype, with
    fresh writeable outputs and every input left unchanged, or
  * raise TypeError (a bad dtype or object) or ValueError (a bad shape or
    index) whose message names the function and an offending argument.
Values come from a NumPy generator seeded by Hypothesis, so they are
continuous (no ties at ReLU's kink) while the structure is searched.
"""
import re
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import CELLS, TOL

FLOAT, INDEX, MASK = "float", "index", "mask"

# Argument dtypes; one argument in eight takes an odd one, so that most calls
# have every argument valid and the rest mostly one bad argument.
DTYPES = ["float32", "float64"]
# Odd dtypes: those the kernels promote (float16, integers, bool) and those they refuse (complex, strings,
# objects, Python objects), drawn alike often enough for every outcome to be common.
ODD_DTYPES = ["float16", "int64", "uint8", "bool", "complex128", "complex64", "str", "object", "list", "python"]
LAYOUTS = ["C", "C", "F", "sliced", "negative", "readonly", "unaligned", "broadcast"]
PYTHON_OBJECTS = [None, "text", 1.5, [[1, 2]], {"a": 1}]


def valid_dtype(a, kind):
    if kind == FLOAT:  # floats, and what the kernels promote as NumPy would: booleans, integers, float16
        return a.dtype.kind in "biu" or (a.dtype.kind == "f" and a.itemsize in (2, 4, 8))
    if kind == INDEX:
        return a.dtype.kind in "iu"
    return a.dtype.kind in "biuf"


def with_layout(a, layout):
    """An array equal to a, stored as `layout` says."""
    if a.ndim == 0 or layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "sliced":  # every other element of a twice-as-long last axis
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if layout == "negative":
        return np.flip(np.flip(a).copy())
    if layout == "readonly":
        a = a.copy()
        a.setflags(write=False)
        return a
    if layout == "unaligned":
        if a.dtype.hasobject:
            return a
        raw = np.zeros(a.nbytes + 1, np.uint8)
        u = raw[1:].view(a.dtype).reshape(a.shape)
        u[...] = a
        return u
    # broadcast: the first row repeated through a zero stride (read-only)
    return np.broadcast_to(a[:1], a.shape) if a.shape[0] > 0 else a


@dataclass
class Call:
    """One drawn call: its arguments and what must happen."""
    fn: str
    args: dict
    kwargs: dict = field(default_factory=dict)
    type_bad: set = field(default_factory=set)  # arguments of a wrong dtype or type
    value_bad: set = field(default_factory=set)  # arguments of a wrong shape or value
    # A float32 argument: NumPy rounds its products to float32 before any
    # promotion, while the kernels promote first, so float32's tolerance holds.
    float32: bool = False
    floats: set = field(default_factory=set)  # the float arguments (the others: indices, masks)


class Draw:
    """Draws arguments of one call from Hypothesis's data and a seeded rng."""

    def __init__(self, data, fn, valid_only=False):
        self.data = data
        self.valid_only = valid_only  # every argument valid: a forward whose backward is under test
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        self.call = Call(fn, {})
        # At most one argument of wrong shape: this one, if it is drawn.
        self.misshapen = None

    def letters(self, names):
        return {n: self.data.draw(st.integers(0, 4), label=n) for n in names}

    def maybe_misshape(self, names):
        if self.data.draw(st.integers(0, 4), label="misshape?") == 0:
            self.misshapen = self.data.draw(st.sampled_from(names), label="misshapen")

    def array(self, name, shape, kind=FLOAT, high=None, scale=1.0, shared=None, optional=False):
        """A float argument (or integer indices in [0, high), or a mask) of the
        given shape, in a drawn dtype and layout; records what makes it bad.
        shared: the axes whose letter another argument also fixes (default
        all), the ones that a wrong length can be detected on. optional: a
        keyword argument whose None means "absent", a valid value."""
        valid_only = self.valid_only
        if kind == INDEX:
            values = self.rng.integers(0, max(high, 1), size=shape)
            if not valid_only and values.size and self.data.draw(st.integers(0, 5), label=f"{name} out of range?") == 0:
                values.flat[self.rng.integers(values.size)] = self.data.draw(st.sampled_from([-1, high]))
        elif kind == MASK:
            values = self.rng.random(shape) > 0.3
        else:
            values = self.rng.standard_normal(shape) * scale
        intended = shape
        shared = range(len(shape)) if shared is None else shared
        if name == self.misshapen and not valid_only:
            values = np.resize(values, self.bad_shape(shape, shared))
        odd = not valid_only and self.data.draw(st.integers(0, 7), label=f"{name} odd?") == 0
        dtype = self.data.draw(st.sampled_from(ODD_DTYPES if odd else DTYPES), label=f"{name} dtype")
        if kind != FLOAT and dtype.startswith("float"):
            dtype = {INDEX: "int64", MASK: "bool"}[kind] if dtype == "float64" else dtype
        layout = self.data.draw(st.sampled_from(LAYOUTS), label=f"{name} layout")
        if dtype == "python":
            value = self.data.draw(st.sampled_from(PYTHON_OBJECTS), label=f"{name} object")
        elif dtype == "list":
            value = values.tolist()
        elif dtype == "object":
            value = with_layout(values.astype(object), layout)
        else:
            value = with_layout(values.astype(dtype), layout)
        if not (optional and value is None):
            self.judge(name, value, intended, shared, kind, high)
        self.call.args[name] = value
        return value

    def bad_shape(self, shape, shared):
        how = self.data.draw(st.sampled_from(["grow", "extra axis", "drop axis"]), label="how")
        if how == "extra axis" or not shape or (how == "grow" and not shared):
            return tuple(shape) + (1,)
        if how == "drop axis":
            return tuple(shape[:-1])
        axis = self.data.draw(st.sampled_from(list(shared)), label="axis")
        return tuple(n + 1 if i == axis else n for i, n in enumerate(shape))

    def judge(self, name, value, shape, shared, kind, high):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                a = np.asarray(value)
            except ValueError:  # a ragged list
                self.call.type_bad.add(name)
                return
        if kind == FLOAT:
            self.call.floats.add(name)
            self.call.float32 |= valid_dtype(a, kind) and promoted(a.dtype) == np.float32
        # A step's rows may come 1-D (one row for all, as NumPy broadcasts it).
        row = self.call.fn.endswith("_step_forward") and name in ("x", "prev_h", "prev_c")
        if not valid_dtype(a, kind):
            self.call.type_bad.add(name)
        elif row and a.ndim == 1 and a.shape[0] == shape[-1]:
            pass
        elif a.ndim != len(shape) or any(a.shape[i] != shape[i] for i in shared):
            self.call.value_bad.add(name)
        elif kind == INDEX and a.size and (a.min() < 0 or a.max() >= high):
            self.call.value_bad.add(name)


def fresh(value):
    """A private copy of an argument, to compare with after the call."""
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def unchanged(before, after):
    if isinstance(before, np.ndarray):
        return before.dtype == after.dtype and np.array_equal(before, after, equal_nan=before.dtype.kind in "fc")
    return before == after


def check_raises(call, run):
    """run() must raise the error the bad arguments call for, naming one."""
    try:
        run()
    except (TypeError, ValueError) as e:
        message = str(e)
        want = TypeError if call.type_bad and not call.value_bad else ValueError if not call.type_bad else Exception
        assert isinstance(e, want), f"{type(e).__name__} where {want.__name__} was due: {message}"
        assert message.startswith(f"{call.fn}(): "), f"the message does not name {call.fn}: {message}"
        bad = call.type_bad | call.value_bad
        assert any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in bad), (
            f"the message names none of {sorted(bad)}: {message}")
        return type(e).__name__
    raise AssertionError(f"{call.fn} accepted bad {sorted(call.type_bad | call.value_bad)}")


def check_results(call, ours, expected, inputs_before):
    """ours matches the reference's results; the inputs are unchanged."""
    tol = lambda dtype: TOL[np.float32 if call.float32 else dtype.type]  # noqa: E731
    for name, before in inputs_before.items():
        assert unchanged(before, call.args.get(name, call.kwargs.get(name))), f"{call.fn} changed its input {name}"
    ours = ours if isinstance(ours, tuple) else (ours,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(ours) == len(expected), f"{len(ours)} results, the reference has {len(expected)}"
    inputs = [v for v in {**call.args, **call.kwargs}.values() if isinstance(v, np.ndarray)]
    for k, (a, e) in enumerate(zip(ours, expected)):
        if isinstance(e, float):  # a loss, as precise as the arrays beside it
            assert isinstance(a, float), f"result {k} is a {type(a).__name__}, not a float"
            np.testing.assert_allclose(a, e, err_msg=f"result {k}", **tol(expected[-1].dtype))
            continue
        if not isinstance(e, np.ndarray):  # a cache
            continue
        assert isinstance(a, np.ndarray), f"result {k} is a {type(a).__name__}"
        assert a.shape == e.shape and a.dtype == e.dtype, f"result {k}: {a.dtype}{a.shape}, reference {e.dtype}{e.shape}"
        assert a.flags.writeable and a.flags.c_contiguous, f"result {k} is not a fresh C array"
        assert not any(np.shares_memory(a, v) for v in inputs), f"result {k} shares memory with an input"
        np.testing.assert_allclose(a, e, err_msg=f"result {k}", **tol(e.dtype))


OUTCOMES = {"valid": 0, "TypeError": 0, "ValueError": 0}


def run_case(call, ours_fn, ref_fn):
    if call.type_bad or call.value_bad:
        OUTCOMES[check_raises(call, ours_fn)] += 1
        return None
    OUTCOMES["valid"] += 1
    before = {n: fresh(v) for n, v in {**call.args, **call.kwargs}.items()}
    with np.errstate(all="ignore"):
        expected = ref_fn()
    ours = ours_fn()
    check_results(call, ours, expected, before)
    return ours, expected


def promoted(dtype):
    """The dtype the kernels compute a float argument of this dtype in (NumPy's promotion against float32)."""
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.promote_types(dtype, np.float32)


def as_arrays(call):
    """The arguments as the reference takes them: arrays, the float ones
    promoted as the kernels promote them (which is NumPy's result against
    float32 weights; NumPy on integer weights alone would compute in
    integers)."""
    out = {n: np.asarray(v) for n, v in call.args.items()}
    return {n: a.astype(promoted(a.dtype)) if n in call.floats else a for n, a in out.items()}


# ------------------------------------------------------------ forwards


def recurrent_forward(data, cell, step):
    fn = f"{cell}_{'step_' if step else ''}forward"
    g, has_c, more = CELLS[cell].gates, CELLS[cell].states > 1, CELLS[cell].args[5:]  # more: a GRU's bh
    d = Draw(data, fn)
    L = d.letters("NTDH")
    N, T, D, H = L["N"], L["T"], L["D"], L["H"]
    h_name, c_name = ("prev_h", "prev_c") if step else ("h0", "c0")
    with_c0 = has_c and (step or data.draw(st.booleans(), label="c0"))
    names = ["x", h_name] + ([c_name] if with_c0 else []) + ["Wx", "Wh", "b"] + list(more)
    d.maybe_misshape(names)
    d.array("x", (N, D) if step else (N, T, D), shared=None if step else (0, 2))
    d.array(h_name, (N, H))
    if with_c0:
        d.array(c_name, (N, H), optional=not step)
    d.array("Wx", (D, g * H), scale=0.5)
    d.array("Wh", (H, g * H), scale=0.5)
    d.array("b", (g * H,), scale=0.1)
    for name in more:
        d.array(name, (g * H,), scale=0.1)
    kwargs = {}
    if cell == "rnn":
        kwargs["activation"] = data.draw(st.sampled_from(["tanh", "relu", "tanh", "sigmoid"]), label="activation")
        if kwargs["activation"] == "sigmoid":
            d.call.value_bad.add("activation")
    if not step:
        kwargs["reverse"] = data.draw(st.booleans(), label="reverse")
        kwargs["return_state"] = data.draw(st.booleans(), label="return_state")
    if with_c0 and not step:
        kwargs["c0"] = d.call.args.pop("c0")
    if not step and data.draw(st.booleans(), label="lengths?"):  # variable lengths in [0, T]
        d.array("lengths", (N,), kind=INDEX, high=T + 1, optional=True)
        kwargs["lengths"] = d.call.args.pop("lengths")
    d.call.kwargs = kwargs
    ours = lambda: getattr(rf, fn)(*d.call.args.values(), **kwargs)  # noqa: E731
    reference = lambda: getattr(ref, fn)(*as_arrays(d.call).values(), **{  # noqa: E731
        k: np.asarray(v).astype(promoted(np.asarray(v).dtype)) if k == "c0" and v is not None else v
        for k, v in kwargs.items()})
    run_case(d.call, ours, reference)


def inference_forward(data, cell):
    """A cell's inference object (weights packed once, valid) called on
    drawn, possibly bad, arguments: the reference's forward without a cache."""
    info = CELLS[cell]
    g, has_c, more = info.gates, info.states > 1, info.args[5:]
    cls = {"rnn": "RNNInference", "lstm": "LSTMInference", "gru": "GRUInference"}[cell]
    w = Draw(data, cls, valid_only=True)
    L = w.letters("NTDH")
    N, T, D, H = L["N"], L["T"], L["D"], L["H"]
    weights = [w.array("Wx", (D, g * H), scale=0.5), w.array("Wh", (H, g * H), scale=0.5),
               w.array("b", (g * H,), scale=0.1)] + [w.array(name, (g * H,), scale=0.1) for name in more]
    options = {}
    if cell == "rnn":
        options["activation"] = data.draw(st.sampled_from(["tanh", "relu"]), label="activation")
    packed = getattr(rf, cls)(*weights, **options)
    d = Draw(data, cls)
    d.call.float32 = w.call.float32
    with_c0 = has_c and data.draw(st.booleans(), label="c0")
    d.maybe_misshape(["x", "h0"] + (["c0"] if with_c0 else []))
    d.array("x", (N, T, D), shared=(0, 2))
    d.array("h0", (N, H))
    kwargs = {"reverse": data.draw(st.booleans(), label="reverse"),
              "return_state": data.draw(st.booleans(), label="return_state")}
    if with_c0:
        d.array("c0", (N, H), optional=True)
        kwargs["c0"] = d.call.args.pop("c0")
    if data.draw(st.booleans(), label="lengths?"):
        d.array("lengths", (N,), kind=INDEX, high=T + 1, optional=True)
        kwargs["lengths"] = d.call.args.pop("lengths")
    d.call.kwargs = kwargs
    ours = lambda: packed(*d.call.args.values(), **kwargs)  # noqa: E731

    def reference():
        args = as_arrays(d.call)
        dtype = np.result_type(*[promoted(np.asarray(a).dtype) for a in weights], *args.values())
        kw = {k: (np.asarray(v).astype(promoted(np.asarray(v).dtype)) if k == "c0" and v is not None else v)
              for k, v in kwargs.items()}
        out = getattr(ref, f"{cell}_forward")(args["x"], args["h0"], *[np.asarray(a).astype(dtype) for a in weights],
                                              cache=False, **options, **kw)
        out = out[:-1]  # no cache
        return out[0] if len(out) == 1 else out
    run_case(d.call, ours, reference)


def run_positional(call):
    """run_case for a call of fn(*args) in both libraries."""
    run_case(call, lambda: getattr(rf, call.fn)(*call.args.values()),
             lambda: getattr(ref, call.fn)(*as_arrays(call).values()))


def affine_forward(data):
    d = Draw(data, "temporal_affine_forward")
    L = d.letters("NTDM")
    d.maybe_misshape(["x", "w", "b"])
    d.array("x", (L["N"], L["T"], L["D"]), shared=(2,))
    d.array("w", (L["D"], L["M"]))
    d.array("b", (L["M"],))
    run_positional(d.call)


def embedding_forward(data):
    d = Draw(data, "word_embedding_forward")
    L = d.letters("NTVD")
    d.maybe_misshape(["x", "W"])
    d.array("x", (L["N"], L["T"]), kind=INDEX, high=L["V"], shared=())
    d.array("W", (L["V"], L["D"]), shared=())
    run_positional(d.call)


def softmax_loss(data):
    d = Draw(data, "temporal_softmax_loss")
    L = d.letters("NT")
    V = data.draw(st.integers(1, 5), label="V")  # V = 0 leaves no valid target
    d.maybe_misshape(["x", "y", "mask"])
    d.array("x", (L["N"], L["T"], V), scale=3.0, shared=(0, 1))
    d.array("y", (L["N"], L["T"]), kind=INDEX, high=V)
    d.array("mask", (L["N"], L["T"]), kind=MASK)
    run_positional(d.call)


# ----------------------------------------------------------- backwards


def wrong_cache(data, call, caches):
    """Sometimes replaces the cache by another kernel's, the reference's or junk."""
    if data.draw(st.integers(0, 6), label="wrong cache?") == 0:
        call.args["cache"] = data.draw(st.sampled_from(caches + [None, (1, 2), "cache"]), label="cache")
        call.type_bad.add("cache")


def other_caches(own):
    x = np.zeros((1, 1, 4))
    h0 = np.zeros((1, 1))
    caches = {
        "RNNStepCache": rf.rnn_step_forward(x[:, 0, :1], h0, np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1))[1],
        "RNNCache": rf.rnn_forward(x[..., :1], h0, np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1))[1],
        "LSTMStepCache": rf.lstm_step_forward(x[:, 0], h0, h0, np.zeros((4, 4)), np.zeros((1, 4)), np.zeros(4))[2],
        "LSTMCache": rf.lstm_forward(x, h0, np.zeros((4, 4)), np.zeros((1, 4)), np.zeros(4))[1],
        "GRUStepCache": rf.gru_step_forward(x[:, 0], h0, np.zeros((4, 3)), np.zeros((1, 3)), np.zeros(3),
                                            np.zeros(3))[1],
        "GRUCache": rf.gru_forward(x, h0, np.zeros((4, 3)), np.zeros((1, 3)), np.zeros(3), np.zeros(3))[1],
        "AffineCache": rf.temporal_affine_forward(x, np.zeros((4, 2)), np.zeros(2))[1],
        "EmbeddingCache": rf.word_embedding_forward(np.zeros((1, 1), int), np.zeros((1, 2)))[1],
    }
    return [c for name, c in caches.items() if name != own]


def recurrent_backward(data, cell, step):
    fwd = f"{cell}_{'step_' if step else ''}forward"
    fn = f"{cell}_{'step_' if step else ''}backward"
    d = Draw(data, fwd, valid_only=True)
    L = d.letters("NTDH")
    N, T, D, H = L["N"], L["T"], L["D"], L["H"]
    g, has_c, more = CELLS[cell].gates, CELLS[cell].states > 1, CELLS[cell].args[5:]
    x = d.array("x", (N, D) if step else (N, T, D))
    h0 = d.array("h0", (N, H))
    c0 = d.array("c0", (N, H)) if has_c else None
    Wx, Wh, b = d.array("Wx", (D, g * H), scale=0.5), d.array("Wh", (H, g * H), scale=0.5), d.array("b", (g * H,))
    biases = [d.array(name, (g * H,), scale=0.1) for name in more]
    kwargs, ref_kwargs = {}, {}
    if cell == "rnn":
        kwargs["activation"] = data.draw(st.sampled_from(["tanh", "relu"]), label="activation")
    if not step:
        kwargs["reverse"] = data.draw(st.booleans(), label="reverse")
        if has_c and data.draw(st.booleans(), label="c0"):
            kwargs["c0"] = c0
        if data.draw(st.booleans(), label="lengths?"):  # variable lengths: the backward follows the packing
            kwargs["lengths"] = d.rng.integers(0, T + 1, size=N)
    ref_kwargs = {k: np.asarray(v) if k == "c0" else v for k, v in kwargs.items()}
    fwd_args = [x, h0] + ([c0] if step and has_c else []) + [Wx, Wh, b] + biases
    ours_fwd = getattr(rf, fwd)(*fwd_args, **kwargs)
    ref_fwd = getattr(ref, fwd)(*map(np.asarray, fwd_args), **ref_kwargs)
    cache, ref_cache = ours_fwd[-1], ref_fwd[-1]

    e = Draw(data, fn)
    e.call.float32 = d.call.float32
    h_shape = (N, H) if step else (N, T, H)
    dh_name = "dnext_h" if step else "dh"
    names = [dh_name] + (["dnext_c"] if step and has_c else [])
    with_dcT = has_c and not step and data.draw(st.booleans(), label="dcT")
    names += ["dcT"] if with_dcT else []
    e.maybe_misshape(names)
    e.array(dh_name, h_shape)
    if step and has_c:
        e.array("dnext_c", (N, H))
    e.call.args["cache"] = cache
    kw = {}
    if with_dcT:
        kw["dcT"] = e.array("dcT", (N, H), optional=True)
        del e.call.args["dcT"]
    if has_c and not step:
        kw["return_dc0"] = data.draw(st.booleans(), label="return_dc0")
    e.call.kwargs = kw
    wrong_cache(data, e.call, other_caches(type(cache).__name__) + [ref_cache])
    call = e.call
    ours = lambda: getattr(rf, fn)(*call.args.values(), **kw)  # noqa: E731
    ref_kw = {k: np.asarray(v) if k == "dcT" and v is not None else v for k, v in kw.items()}
    reference = lambda: getattr(ref, fn)(*[np.asarray(v) for n, v in call.args.items() if n != "cache"],  # noqa: E731
                                         ref_cache, **ref_kw)
    result = run_case(call, ours, reference)
    if result is not None:  # a cache serves any number of backwards, with equal results
        again = ours()
        assert all(np.array_equal(a, b) for a, b in zip(again, result[0])), "a second backward differs"


def layer_backward(data, fn, forward_draw, dout_shape, cache_type):
    """The backward fn(dout, cache) of a layer: a valid forward drawn by
    forward_draw(d) -> (cache, reference cache), then dout (N,T,...) drawn
    with every mishap, and sometimes a wrong cache."""
    d = Draw(data, fn.replace("backward", "forward"), valid_only=True)
    L = d.letters("NTDM")
    cache, ref_cache = forward_draw(d, L)
    e = Draw(data, fn)
    e.call.float32 = d.call.float32
    e.maybe_misshape(["dout"])
    e.array("dout", dout_shape(L))
    e.call.args["cache"] = cache
    wrong_cache(data, e.call, other_caches(cache_type) + [ref_cache])
    call = e.call
    run_case(call, lambda: getattr(rf, fn)(*call.args.values()),
             lambda: getattr(ref, fn)(np.asarray(call.args["dout"]), ref_cache))


def affine_forward_valid(d, L):
    args = [d.array("x", (L["N"], L["T"], L["D"])), d.array("w", (L["D"], L["M"])), d.array("b", (L["M"],))]
    return rf.temporal_affine_forward(*args)[1], ref.temporal_affine_forward(*map(np.asarray, args))[1]


def embedding_forward_valid(d, L):
    V = L["M"] or (1 if L["N"] * L["T"] else 0)  # M as the vocabulary: some index must be valid
    x = d.rng.integers(0, max(V, 1), size=(L["N"], L["T"]))
    W = d.array("W", (V, L["D"]))
    return rf.word_embedding_forward(x, W)[1], ref.word_embedding_forward(x, np.asarray(W))[1]


# Every cell's four kernels (conftest.CELLS), then the layers'.
PROPERTIES = {
    f"{cell}_{'step_' if step else ''}{pass_}": (
        lambda data, cell=cell, step=step, draw=draw: draw(data, cell, step))
    for cell in CELLS for step in (True, False)
    for pass_, draw in (("forward", recurrent_forward), ("backward", recurrent_backward))
}
PROPERTIES |= {
    "temporal_affine_forward": affine_forward,
    "temporal_affine_backward": lambda data: layer_backward(
        data, "temporal_affine_backward", affine_forward_valid, lambda L: (L["N"], L["T"], L["M"]), "AffineCache"),
    "word_embedding_forward": embedding_forward,
    "word_embedding_backward": lambda data: layer_backward(
        data, "word_embedding_backward", embedding_forward_valid, lambda L: (L["N"], L["T"], L["D"]),
        "EmbeddingCache"),
    "temporal_softmax_loss": softmax_loss,
}
PROPERTIES |= {f"{cell}_inference": (lambda data, cell=cell: inference_forward(data, cell)) for cell in CELLS}


def main(kernel, examples):
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def prop(data):
        PROPERTIES[kernel](data)

    prop()
    print(f"{kernel}: {examples} examples passed: {OUTCOMES}")
    # The draws must reach all three outcomes often, or the check is hollow.
    assert all(n >= examples // 20 for n in OUTCOMES.values()), f"too few of some outcome: {OUTCOMES}"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200)
