"""Every compiled kernel against its NumPy twin in rnn_fast.reference."""
import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import (CELLS, DTYPES, SHAPES, TOL, assert_all_close, assert_close, cell_variants, rand,
                      recurrent_inputs, shape_id)

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_sequence(cell, kwargs, shape, dtype, reverse):
    cell = CELLS[cell]
    args = cell.inputs(shape, dtype)
    h, cache = cell.forward(rf, args, reverse=reverse, **kwargs)
    h_ref, cache_ref = cell.forward(ref, args, reverse=reverse, **kwargs)
    assert_close(h, h_ref, dtype, "h")
    dh = rand(h.shape, dtype)
    assert_all_close(cell.backward(rf, dh, cache), cell.backward(ref, dh, cache_ref), dtype, cell.grads)


# dWx and dWh come from one product of dA with x and h_prev stacked (gemm_pair):
# D not a whole number of row slivers on any ISA (7, 13: padding between the
# two), N*T of at least 512 so that the sum is cut in two halves, and an H of
# at most 4 rows, for which the pair falls back to two products.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 60, 7, 11), (5, 110, 13, 6), (4, 130, 9, 3)], ids=shape_id)
@pytest.mark.parametrize("cell", CELLS)
def test_weight_gradients_of_stacked_inputs(shape, dtype, cell):
    cell = CELLS[cell]
    args = cell.inputs(shape, dtype)
    h, cache = cell.forward(rf, args)
    _, cache_ref = cell.forward(ref, args)
    dh = rand(h.shape, dtype)
    assert_all_close(cell.backward(rf, dh, cache), cell.backward(ref, dh, cache_ref), dtype, cell.grads)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
def test_step(cell, kwargs, shape, dtype):
    cell = CELLS[cell]
    N, _, D, H = shape
    args = cell.step_inputs(N, D, H, dtype)
    out = cell.step_forward(rf, args, **kwargs)
    out_ref = cell.step_forward(ref, args, **kwargs)
    assert len(out) == cell.states + 1
    assert_all_close(out[:-1], out_ref[:-1], dtype, ["next_h", "next_c"][:cell.states])
    douts = [rand((N, H), dtype, 2 + k) for k in range(cell.states)]
    names = ["dx", "dprev_h", "dprev_c"][:1 + cell.states] + list(cell.grads[2:])
    assert_all_close(cell.step_backward(rf, douts, out[-1]), cell.step_backward(ref, douts, out_ref[-1]), dtype,
                     names)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_extras(dtype, reverse):
    """c0, return_state, dcT and return_dc0 against the reference."""
    args = recurrent_inputs((3, 6, 5, 4), dtype, gates=4)
    c0 = rand((3, 4), dtype, 7)
    out = rf.lstm_forward(*args, c0=c0, reverse=reverse, return_state=True)
    out_ref = ref.lstm_forward(*args, c0=c0, reverse=reverse, return_state=True)
    assert len(out) == 4
    assert_all_close(out[:3], out_ref[:3], dtype, ["h", "hT", "cT"])
    assert_close(out[1], out[0][:, 0 if reverse else -1], dtype, "hT is the last step's h")
    dh, dcT = rand(out[0].shape, dtype, 8), rand(c0.shape, dtype, 9)
    grads = rf.lstm_backward(dh, out[3], dcT=dcT, return_dc0=True)
    grads_ref = ref.lstm_backward(dh, out_ref[3], dcT=dcT, return_dc0=True)
    assert_all_close(grads, grads_ref, dtype, list(CELLS["lstm"].grads) + ["dc0"])
    # Without the extras the cs231n signature and return values are unchanged.
    assert len(rf.lstm_backward(dh, out[3])) == 5
    assert len(rf.lstm_forward(*args)) == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_return_state(dtype, reverse):
    args = recurrent_inputs((2, 5, 3, 4), dtype, gates=1)
    h, hT, _ = rf.rnn_forward(*args, reverse=reverse, return_state=True)
    h_ref, hT_ref, _ = ref.rnn_forward(*args, reverse=reverse, return_state=True)
    assert_all_close([h, hT], [h_ref, hT_ref], dtype, ["h", "hT"])


# (cell, forward, keywords, outputs): each cell's sequence forward plain and
# with its extras, and its step forward.
INFERENCE_CASES = [
    (name, fn, {**kw, **extra}, outputs)
    for name, cell in CELLS.items() for kw in cell.variants
    for fn, extra, outputs in ((f"{name}_forward", {}, 1),
                               (f"{name}_forward", {"reverse": True, "return_state": True}, 1 + cell.states),
                               (f"{name}_step_forward", {}, cell.states))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,fn,kwargs,outputs", INFERENCE_CASES, ids=lambda v: str(v))
def test_inference_forward_equals_the_training_forward_and_keeps_no_cache(cell, fn, kwargs, outputs, dtype):
    """cache=False: the same outputs bit for bit, None in the cache's place,
    fresh writeable arrays, inputs untouched; the reference twin agrees."""
    cell = CELLS[cell]
    args = cell.inputs((33, 4, 20, 19), dtype)
    if "step" in fn:
        x = args[0]
        args = cell.step_inputs(33, 20, 19, dtype)
        args[0] = x[:, 1]  # a strided view: converted, never written
    before = [a.copy() for a in args]
    trained = getattr(rf, fn)(*args, **kwargs)
    inferred = getattr(rf, fn)(*args, **kwargs, cache=False)
    assert len(trained) == len(inferred) == outputs + 1
    assert inferred[-1] is None and trained[-1] is not None
    for a, t in zip(inferred[:-1], trained[:-1]):
        assert a.dtype == t.dtype and a.shape == t.shape and a.flags.c_contiguous and a.flags.writeable
        np.testing.assert_array_equal(a, t)
        assert not any(np.shares_memory(a, arg) for arg in args)
    for arg, old in zip(args, before):
        np.testing.assert_array_equal(arg, old)
    ref_out = getattr(ref, fn)(*args, **kwargs, cache=False)
    assert ref_out[-1] is None
    assert_all_close(inferred[:-1], ref_out[:-1], dtype, [f"output {k}" for k in range(outputs)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,kwargs", [("rnn", {"activation": "relu"}), ("lstm", {"reverse": True, "return_state": True}),
                                         ("gru", {"reverse": True})], ids=lambda v: str(v))
def test_borrowing_forward_equals_the_copying_one(cell, kwargs, dtype):
    """_borrow=True (rnn_fast.nn's training passes): the same outputs and
    gradients bit for bit, inputs untouched; the cache refers to x instead of
    a copy (a write to x now would reach the backward, which is why only
    passes with nothing in between may borrow)."""
    fn = f"{cell}_forward"
    args = CELLS[cell].inputs((33, 4, 20, 19), dtype)
    x = args[0]
    before = [a.copy() for a in args]
    backward = getattr(rf, fn.replace("forward", "backward"))
    copied = getattr(rf, fn)(*args, **kwargs)
    borrowed = getattr(rf, fn)(*args, **kwargs, _borrow=True)
    for a, t in zip(borrowed[:-1], copied[:-1]):
        np.testing.assert_array_equal(a, t)
    dh = rand(copied[0].shape, dtype, seed=3)
    for g, t in zip(backward(dh, borrowed[-1]), backward(dh, copied[-1])):
        np.testing.assert_array_equal(g, t)
    for arg, old in zip(args, before):
        np.testing.assert_array_equal(arg, old)
    x += 1  # what a borrowing caller must not do: the borrowed cache sees it
    assert not np.array_equal(backward(dh, borrowed[-1])[2], backward(dh, copied[-1])[2])


def _ifgo(a):
    """Gate blocks i, f, o, g of the last axis -> i, f, g, o (or back)."""
    H = a.shape[-1] // 4
    return np.concatenate([a[..., : 2 * H], a[..., 3 * H :], a[..., 2 * H : 3 * H]], axis=-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(32, 6, 50, 50)], ids=shape_id)
@pytest.mark.parametrize("partition", ["auto", "rows", "columns", "row_passes"])
def test_lstm_gate_order_ifgo_is_the_same_lstm_on_permuted_weights(shape, dtype, partition):
    """gate_order='ifgo' (Keras's and PyTorch's): the forward gives the bits of
    'ifog' on the weights permuted (the gates' arithmetic is the same), the
    gradients come out permuted (their sums run over the columns in another
    order: equal to rounding), and the reference agrees."""
    N, T, D, H = shape
    x, h0, Wx, Wh, b = recurrent_inputs(shape, dtype, gates=4)
    c0, dh = rand((N, H), dtype, 11), rand((N, T, H), dtype, 12)
    p = [_ifgo(w) for w in (Wx, Wh, b)]
    rf._core._set_partition(partition)
    try:
        h, hT, cT, cache = rf.lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=True, return_state=True)
        hk, hTk, cTk, cache_k = rf.lstm_forward(x, h0, *p, c0=c0, reverse=True, return_state=True, gate_order="ifgo")
        for a, k in zip((h, hT, cT), (hk, hTk, cTk)):
            np.testing.assert_array_equal(a, k)
        np.testing.assert_array_equal(rf.LSTMInference(*p, gate_order="ifgo")(x, h0, c0=c0, reverse=True), h)
        step = rf.lstm_step_forward(x[:, 0], h0, c0, *p, gate_order="ifgo")
        np.testing.assert_array_equal(step[0], rf.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)[0])
        grads = rf.lstm_backward(dh, cache)
        got = rf.lstm_backward(dh, cache_k)
    finally:
        rf._core._set_partition("auto")
    want = list(grads[:2]) + [_ifgo(g) for g in grads[2:]]
    assert_all_close(got, want, dtype, ["dx", "dh0", "dWx", "dWh", "db"])
    ref_h, ref_cache = ref.lstm_forward(x, h0, *p, c0=c0, reverse=True, gate_order="ifgo")
    assert_all_close([h], [ref_h], dtype, ["h"])
    assert_all_close(got, ref.lstm_backward(dh, ref_cache), dtype, ["dx", "dh0", "dWx", "dWh", "db"])
    assert "gate_order=ifgo" in repr(cache_k) and rf.LSTMInference(*p, gate_order="ifgo").gate_order == "ifgo"


@pytest.mark.parametrize("fn", ["lstm_forward", "lstm_step_forward", "LSTMInference"])
def test_lstm_refuses_an_unknown_gate_order(fn):
    x, h0, Wx, Wh, b = recurrent_inputs((2, 3, 4, 5), np.float32, gates=4)
    args = {"lstm_forward": (x, h0, Wx, Wh, b), "lstm_step_forward": (x[:, 0], h0, h0, Wx, Wh, b),
            "LSTMInference": (Wx, Wh, b)}[fn]
    with pytest.raises(ValueError, match=fn + r"\(\): gate_order must be 'ifog' \(cs231n's\) or 'ifgo' "
                                           r"\(Keras's and PyTorch's\), got 'ifco'"):
        getattr(rf, fn)(*args, gate_order="ifco")
    with pytest.raises(ValueError, match=r"gate_order must be 'ifog'"):
        ref.lstm_forward(x, h0, Wx, Wh, b, gate_order="ifco")


# (N, T, D, H) whose forward takes x·Wx and whose backward takes dx in their
# time loops, as more columns of the products ([Wx; Wh] and [Wh^T Wx^T]): the
# sliver where the cell's columns end shared with dx's (H = 50, 20), slivers
# of dx's alone (D = 32), the fewest rows (N = 3), one row block and several.
FUSED_SHAPES = [(7, 4, 50, 50), (13, 5, 32, 32), (3, 6, 9, 20), (32, 3, 50, 50)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", FUSED_SHAPES, ids=shape_id)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_inputs_taken_in_the_time_loops(cell, shape, dtype):
    """x·Wx in the forward's time loop and dx in the backward's: the
    reference's h and gradients, and the same bits for each partition of the
    loop (rows, columns with the cell's chunks and dx's shared out apart, row
    passes) on 1 to 3 threads, both directions, the inference forward's h
    equal to the training forward's."""
    N, T, D, H = shape
    gates = 4 if cell == "lstm" else 1
    assert rf._core._fused_inputs(N, D, H, gates, np.dtype(dtype).name) == (True, True)
    args = recurrent_inputs(shape, dtype, gates=gates)
    dh = rand((N, T, H), dtype, 7)
    names = ["h", "dx", "dh0", "dWx", "dWh", "db"]
    fwd, bwd = getattr(rf, f"{cell}_forward"), getattr(rf, f"{cell}_backward")
    for reverse in (False, True):
        ref_h, ref_cache = getattr(ref, f"{cell}_forward")(*args, reverse=reverse)
        want = [ref_h, *getattr(ref, f"{cell}_backward")(dh, ref_cache)]
        first = None
        try:
            for how in ("rows", "columns", "row_passes"):
                rf._core._set_partition(how)
                for n in (1, 2, 3):
                    rf.set_num_threads(n)
                    h, cache = fwd(*args, reverse=reverse)
                    got = [h, *bwd(dh, cache)]
                    assert_all_close(got, want, dtype, names)
                    np.testing.assert_array_equal(fwd(*args, reverse=reverse, cache=False)[0], h)
                    first = first or got
                    for k, (a, e) in enumerate(zip(got, first)):
                        assert np.array_equal(a, e), f"{names[k]} differs with partition {how} on {n} threads"
        finally:
            rf._core._set_partition("auto")
    assert rf._core._fused_inputs(N, 4, H, gates, "float32") == (True, False)  # a shallow input's sums instead
    assert rf._core._fused_inputs(2, D, H, gates, "float32") == (False, False)  # tiles of two rows: the GEMMs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(16, 3, 40, 48), (7, 2, 9, 50)], ids=shape_id)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("partition", ["auto", "rows", "columns", "row_passes"])
def test_inference_object_equals_the_inference_forward(cell, kwargs, shape, dtype, partition):
    """Weights packed once (LSTMInference, GRUInference, RNNInference): bit
    for bit what the forward with cache=False returns, with h0 (and c0), both
    directions, each time-loop partition (H = 48 fills whole slivers, 50 does
    not)."""
    cell = CELLS[cell]
    args = cell.inputs(shape, dtype)
    x, h0, weights = args[0], args[1], args[2:]
    extra = {"c0": rand(h0.shape, dtype, seed=5)} if cell.states > 1 else {}
    before = [a.copy() for a in args]
    try:
        rf._core._set_partition(partition)
        obj = cell.inference(rf, weights, **kwargs)
        assert (obj.D, obj.H, obj.dtype) == (shape[2], shape[3], np.dtype(dtype))
        for reverse in (False, True):
            got = obj(x, h0, reverse=reverse, return_state=True, **extra)
            want = cell.forward(rf, args, reverse=reverse, return_state=True, cache=False, **kwargs, **extra)[:-1]
            assert len(got) == len(want) == 1 + cell.states
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.flags.c_contiguous and g.flags.writeable
                np.testing.assert_array_equal(g, w)
                assert not any(np.shares_memory(g, a) for a in args)
            np.testing.assert_array_equal(obj(x, h0, reverse=reverse, **extra), want[0])
    finally:
        rf._core._set_partition("auto")
    for a, old in zip(args, before):
        np.testing.assert_array_equal(a, old)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_object_keeps_its_own_copy_of_the_weights(cell):
    cell = CELLS[cell]
    args = cell.inputs((5, 4, 20, 19), np.float32)
    want = cell.forward(rf, args, cache=False)[0]
    obj = cell.inference(rf, args[2:])
    for w in args[2:]:
        w *= 2
    np.testing.assert_array_equal(obj(*args[:2]), want)
    assert "D=20 H=19 dtype=float32" in repr(obj)


@pytest.mark.parametrize("wide", ["x", "h0", "weights"])
def test_inference_object_promotes_like_the_forward(wide):
    """A float32 object given float64 inputs (or float64 weights given float32
    inputs) computes in float64, as lstm_forward does with the same mix."""
    x, h0, Wx, Wh, b = recurrent_inputs((3, 4, 5, 6), np.float32, gates=4)
    if wide == "x":
        x = x.astype(np.float64)
    elif wide == "h0":
        h0 = h0.astype(np.float64)
    else:
        Wx = Wx.astype(np.float64)
    got = rf.LSTMInference(Wx, Wh, b)(x, h0)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, rf.lstm_forward(x, h0, Wx, Wh, b, cache=False)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 37, 70_000])  # 70,000: the threaded loop
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_equals_its_numpy_twin_bit_for_bit(dtype, n, amsgrad):
    rng = np.random.default_rng(n)
    w, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v, vhat = (rng.random(n).astype(dtype) for _ in range(2))
    g[0] = np.nan if n > 1 else g[0]  # NaN goes where NumPy sends it
    args = dict(alpha=1e-3 * np.sqrt(1 - 0.999**3) / (1 - 0.9**3), beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    want = [a.copy() for a in (w, m, v, vhat)]
    ref._adam_update(want[0], g, want[1], want[2], want[3] if amsgrad else None, **args)
    g_before = g.copy()
    rf._core._adam_update(w, g, m, v, vhat if amsgrad else None, **args)
    for name, got, exp in zip(["w", "m", "v", "vhat"], (w, m, v, vhat), want):
        np.testing.assert_array_equal(got, exp, err_msg=name)
    np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_of_lists_equals_one_call_per_array(amsgrad):
    """A model's weights in one call (rnn_fast.nn's Adam): the same bits as a
    call per array, float32 and float64 arrays mixed, one threaded."""
    rng = np.random.default_rng(5)
    sizes, dtypes = [1, 37, 70_000, 200], [np.float32, np.float64, np.float32, np.float64]
    sets = [[rng.standard_normal(n).astype(d) for _ in range(3)] + [rng.random(n).astype(d) for _ in range(2)]
            for n, d in zip(sizes, dtypes)]
    args = dict(alpha=1e-3 * np.sqrt(1 - 0.999**3) / (1 - 0.9**3), beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    want = [[a.copy() for a in s] for s in sets]
    for w, g, m, v, vhat in want:
        rf._core._adam_update(w, g, m, v, vhat if amsgrad else None, **args)
    cols = list(zip(*sets))
    rf._core._adam_update(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]),
                          list(cols[4]) if amsgrad else None, **args)
    for got, exp in zip(sets, want):
        for name, a, b in zip(["w", "g", "m", "v", "vhat"], got, exp):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_adam_update_refuses_what_it_cannot_update_in_place():
    w, m, v = np.zeros(6), np.zeros(6), np.zeros(6)
    kw = dict(alpha=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    with pytest.raises(TypeError, match=r"_adam_update\(\): w must be a NumPy array \(updated in place\), got float"):
        rf._core._adam_update(0.0, w, m, v, None, **kw)
    with pytest.raises(TypeError, match=r"_adam_update\(\): w\[1\] must be a NumPy array \(updated in place\), got li"):
        rf._core._adam_update([w, [0.0] * 6], [w, w], [m, m], [v, v], None, **kw)
    with pytest.raises(ValueError, match=r"with w a list of 2 arrays, m must be a list of as many, got list of 1"):
        rf._core._adam_update([w, m], [w, w], [v], [v, v], None, **kw)
    with pytest.raises(ValueError, match=r"with w a list of 1 arrays, g must be a list of as many, got ndarray"):
        rf._core._adam_update([w], w, [m], [v], None, **kw)
    with pytest.raises(ValueError, match=r"the arrays of entries 0 and 1 must not share memory"):
        rf._core._adam_update([w, np.zeros(6)], [w.copy(), w.copy()], [m, m.copy()], [v, w], None, **kw)
    with pytest.raises(ValueError, match=r"m must have w's dtype and shape, float64 \(6,\), got float32 \(6,\)"):
        rf._core._adam_update(w, w.copy(), m.astype(np.float32), v, None, **kw)
    with pytest.raises(ValueError, match=r"v must be C-contiguous and writeable"):
        rf._core._adam_update(w, w.copy(), m, np.zeros(12)[::2], None, **kw)
    with pytest.raises(ValueError, match=r"g must have w's shape \(6,\), got \(5,\)"):
        rf._core._adam_update(w, np.zeros(5), m, v, None, **kw)
    with pytest.raises(ValueError, match=r"m and v must not share memory"):
        rf._core._adam_update(w, w.copy(), m, m, None, **kw)


def test_inference_forward_refuses_a_non_boolean_cache_flag():
    args = recurrent_inputs((2, 3, 4, 5), np.float32, gates=4)
    with pytest.raises(TypeError):
        rf.lstm_forward(*args, cache="no")


def test_lstm_forward_is_compiled():
    """The public lstm_forward is the C++ kernel, not a Python loop."""
    assert type(rf.lstm_forward).__name__ == "builtin_function_or_method"
    assert rf.lstm_forward.__module__ == "rnn_fast._core"
    _, cache = rf.lstm_forward(*recurrent_inputs((1, 2, 3, 4), np.float32, gates=4))
    assert type(cache).__module__ == "rnn_fast._core"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (7, 11, 260, 37)], ids=str)
def test_temporal_affine(shape, dtype):
    N, T, D, M = shape
    x, w, b = rand((N, T, D), dtype, 1), rand((D, M), dtype, 2), rand((M,), dtype, 3)
    out, cache = rf.temporal_affine_forward(x, w, b)
    out_ref, cache_ref = ref.temporal_affine_forward(x, w, b)
    assert_close(out, out_ref, dtype, "out")
    dout = rand(out.shape, dtype, 4)
    assert_all_close(
        rf.temporal_affine_backward(dout, cache),
        ref.temporal_affine_backward(dout, cache_ref),
        dtype,
        ["dx", "dw", "db"],
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 10, 5), (5, 40, 7, 130)], ids=str)
def test_word_embedding(shape, dtype):
    N, T, V, D = shape
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, size=(N, T))  # repeated indices exercise the scatter-add
    W = rand((V, D), dtype)
    out, cache = rf.word_embedding_forward(x, W)
    out_ref, cache_ref = ref.word_embedding_forward(x, W)
    assert_close(out, out_ref, dtype, "out")
    dout = rand(out.shape, dtype, 4)
    assert_close(rf.word_embedding_backward(dout, cache), ref.word_embedding_backward(dout, cache_ref), dtype, "dW")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 10), (6, 20, 257)], ids=str)
@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_temporal_softmax_loss(shape, dtype, mask_kind):
    N, T, V = shape
    rng = np.random.default_rng(0)
    x = rand(shape, dtype) * 3
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) > 0.3
    if mask_kind == "float":
        mask = mask * rng.random((N, T))
    loss, dx = rf.temporal_softmax_loss(x, y, mask)
    loss_ref, dx_ref = ref.temporal_softmax_loss(x, y, mask)
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, loss_ref, **TOL[dtype])
    assert_close(dx, dx_ref, dtype, "dx")


def test_softmax_loss_stays_finite_where_probabilities_underflow():
    x = np.array([[[0.0, 1000.0]]])
    loss, dx = rf.temporal_softmax_loss(x, np.array([[0]]), np.array([[True]]))
    assert loss == pytest.approx(1000.0)
    np.testing.assert_allclose(dx, [[[-1.0, 1.0]]])


def test_softmax_loss_of_an_empty_batch_is_nan_as_in_numpy():
    # cs231n's loss divides by N: 0 / 0 for N = 0.
    loss, dx = rf.temporal_softmax_loss(np.zeros((0, 3, 4)), np.zeros((0, 3), int), np.ones((0, 3), bool))
    assert np.isnan(loss) and dx.shape == (0, 3, 4)
    with np.errstate(invalid="ignore"):
        assert np.isnan(ref.temporal_softmax_loss(np.zeros((0, 3, 4)), np.zeros((0, 3), int), np.ones((0, 3), bool))[0])


def test_backward_dtype_is_the_forwards_promoted_with_the_gradients():
    # One float64 argument makes the whole forward float64, and its backward
    # too, even for a float32 upstream gradient (the reference agrees).
    x, h0, Wx, Wh, b = recurrent_inputs((2, 3, 4, 5), np.float32, gates=4)
    b = b.astype(np.float64)
    for lib in (rf, ref):
        h, cache = lib.lstm_forward(x, h0, Wx, Wh, b)
        assert h.dtype == np.float64
        assert all(g.dtype == np.float64 for g in lib.lstm_backward(h.astype(np.float32), cache))
        out, cache = lib.temporal_affine_forward(x, Wx, b)
        assert all(g.dtype == np.float64 for g in lib.temporal_affine_backward(out.astype(np.float32), cache))


# ----------------------------------------------------------- dtypes


@pytest.mark.parametrize("wide", ["x", "h0", "Wx", "Wh", "b"])
def test_mixed_dtypes_promote_to_float64(wide):
    names = ["x", "h0", "Wx", "Wh", "b"]
    args = recurrent_inputs((2, 3, 4, 5), np.float32, gates=4)
    args[names.index(wide)] = args[names.index(wide)].astype(np.float64)
    h, cache = rf.lstm_forward(*args)
    h_ref, cache_ref = ref.lstm_forward(*args)
    assert h.dtype == h_ref.dtype == np.float64
    # NumPy computes the all-float32 products (h0 . Wh, say) in float32 before
    # promoting; we compute everything in float64, so agreement is float32's.
    np.testing.assert_allclose(h, h_ref, **TOL[np.float32])
    grads = rf.lstm_backward(np.ones_like(h), cache)
    assert all(g.dtype == np.float64 for g in grads)


def test_float32_cache_with_float64_gradient_promotes():
    args = recurrent_inputs((2, 3, 4, 5), np.float32, gates=1)
    h, cache = rf.rnn_forward(*args)
    _, cache_ref = ref.rnn_forward(*args)
    dh = rand(h.shape, np.float64)
    grads = rf.rnn_backward(dh, cache)
    grads_ref = ref.rnn_backward(dh, cache_ref)
    assert all(g.dtype == g_ref.dtype == np.float64 for g, g_ref in zip(grads, grads_ref))
    # NumPy evaluates 1 - h**2 in float32 before it meets dh: float32 agreement.
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, **TOL[np.float32])


def test_python_lists_are_accepted_like_numpy():
    x, h0, Wx, Wh, b = recurrent_inputs((1, 2, 2, 1), np.float64, gates=1)
    h, _ = rf.rnn_forward(x.tolist(), h0.tolist(), Wx.tolist(), Wh.tolist(), b.tolist())
    assert_close(h, ref.rnn_forward(x, h0, Wx, Wh, b)[0], np.float64, "h")


# ------------------------------------------------------------ layouts


def _layouts(a):
    """The same values as a, in other memory layouts."""
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    yield "strided", view
    flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[(slice(None, None, -1),) * a.ndim]
    yield "negative", flipped
    ro = a.copy()
    ro.flags.writeable = False
    yield "readonly", ro
    raw = np.zeros(a.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(a.dtype).reshape(a.shape)
    unaligned[...] = a
    yield "unaligned", unaligned


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("position", range(5))
def test_any_memory_layout_gives_the_same_result(dtype, position):
    args = recurrent_inputs((3, 4, 5, 6), dtype, gates=4)
    h, cache = rf.lstm_forward(*args)
    dh = rand(h.shape, dtype)
    grads = rf.lstm_backward(dh, cache)
    for name, variant in _layouts(args[position]):
        assert np.array_equal(variant, args[position])
        changed = list(args)
        changed[position] = variant
        h2, cache2 = rf.lstm_forward(*changed)
        assert np.array_equal(h, h2), name
        for layout, dh2 in _layouts(dh):
            for g, g2 in zip(grads, rf.lstm_backward(dh2, cache2)):
                assert np.array_equal(g, g2), (name, layout)


def test_inputs_are_never_modified():
    args = recurrent_inputs((3, 4, 5, 6), np.float64, gates=4)
    c0 = rand((3, 6), np.float64, 3)
    before = [a.copy() for a in args + [c0]]
    h, hT, cT, cache = rf.lstm_forward(*args, c0=c0, return_state=True)
    dh, dcT = rand(h.shape, np.float64), rand(c0.shape, np.float64, 4)
    dh_before, dcT_before = dh.copy(), dcT.copy()
    rf.lstm_backward(dh, cache, dcT=dcT, return_dc0=True)
    for a, b in zip(args + [c0], before):
        assert np.array_equal(a, b)
    assert np.array_equal(dh, dh_before) and np.array_equal(dcT, dcT_before)


def test_cache_is_independent_of_later_writes_to_inputs_and_outputs():
    args = recurrent_inputs((3, 4, 5, 6), np.float64, gates=4)
    h, cache = rf.lstm_forward(*args)
    dh = rand(h.shape, np.float64)
    expected = rf.lstm_backward(dh, cache)
    for a in args:
        a[...] = 7.0
    h[...] = -3.0
    for g, e in zip(rf.lstm_backward(dh, cache), expected):
        assert np.array_equal(g, e)
    # ... and can be used any number of times.
    for g, e in zip(rf.lstm_backward(dh, cache), expected):
        assert np.array_equal(g, e)


# -------------------------------------------------------------- sizes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5), (0, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)], ids=str)
@pytest.mark.parametrize("cell", CELLS)
def test_zero_sizes_give_correctly_shaped_results(shape, dtype, cell):
    cell = CELLS[cell]
    args = cell.inputs(shape, dtype)
    h, cache = cell.forward(rf, args)
    h_ref, cache_ref = cell.forward(ref, args)
    assert_close(h, h_ref, dtype, "h")
    dh = rand(h.shape, dtype)
    assert_all_close(cell.backward(rf, dh, cache), cell.backward(ref, dh, cache_ref), dtype, cell.grads)


def test_zero_length_sequence_final_state_is_the_initial_state():
    x, h0, Wx, Wh, b = recurrent_inputs((2, 0, 3, 4), np.float64, gates=4)
    c0 = rand(h0.shape, np.float64)
    _, hT, cT, _ = rf.lstm_forward(x, h0, Wx, Wh, b, c0=c0, return_state=True)
    assert np.array_equal(hT, h0) and np.array_equal(cT, c0)


# -------------------------------------------------------- NaN and Inf


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e4, -1e4])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_nan_and_inf_pass_through_as_numpy_would(value, cell):
    gates = 4 if cell == "lstm" else 1
    args = recurrent_inputs((2, 4, 3, 5), np.float64, gates=gates)
    args[0][1, 2, 0] = value
    fwd, bwd = getattr(rf, f"{cell}_forward"), getattr(rf, f"{cell}_backward")
    rfwd, rbwd = getattr(ref, f"{cell}_forward"), getattr(ref, f"{cell}_backward")
    with np.errstate(all="ignore"):
        h, cache = fwd(*args)
        h_ref, cache_ref = rfwd(*args)
        np.testing.assert_array_equal(np.isnan(h), np.isnan(h_ref))
        np.testing.assert_allclose(h, h_ref, **TOL[np.float64])
        dh = rand(h.shape, np.float64)
        for g, g_ref in zip(bwd(dh, cache), rbwd(dh, cache_ref)):
            np.testing.assert_array_equal(np.isnan(g), np.isnan(g_ref))
            np.testing.assert_allclose(g, g_ref, **TOL[np.float64])
    if np.isfinite(value):
        assert np.isfinite(h).all()


# ------------------------------------------------- reused scratch memory


def test_reused_scratch_memory_leaves_no_trace():
    """The core keeps freed scratch blocks for the calling thread's next call
    (and hands a block to a call of another size or dtype): no result may
    depend on what an earlier call left in them."""
    calls = []
    for k, (shape, dtype) in enumerate([((32, 60, 1, 50), np.float32), ((7, 13, 70, 90), np.float64),
                                        ((64, 9, 300, 200), np.float32), ((5, 40, 33, 17), np.float64)]):
        for cell, gates in (("lstm", 4), ("rnn", 1)):
            args = recurrent_inputs(shape, dtype, gates=gates, seed=k)
            calls.append((cell, args, rand((shape[0], shape[1], shape[3]), dtype, seed=k + 10)))

    def run(cell, args, dh):
        fwd, bwd = getattr(rf, f"{cell}_forward"), getattr(rf, f"{cell}_backward")
        h, cache = fwd(*args)
        return [fwd(*args, cache=False)[0], h, *bwd(dh, cache)]

    first = [run(*c) for c in calls]
    order = list(range(len(calls)))
    for permutation in (order[::-1], order[1::2] + order[::2]):
        for i in permutation:
            for a, e in zip(run(*calls[i]), first[i]):
                assert np.array_equal(a, e), f"call {i} differs after other calls"


# Shapes around the packing edges: tile rows (4, 6, 14), sliver widths (4, 8,
# 16, 32 columns), K blocks (256, 512), the shallow (K <= 4) path, panels of
# eight slivers, a narrow C computed transposed (1920 x 50) and small ones
# whose K is cut in two (50 x 200 and 9 x 13 over 1,920 and 600).
GEMM_SHAPES = [(1, 1, 1), (5, 3, 17), (6, 4, 16), (7, 8, 33), (13, 300, 130), (64, 257, 129), (150, 513, 47),
               (29, 50, 200), (3, 700, 260), (1920, 200, 50), (50, 1920, 200), (9, 600, 13)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GEMM_SHAPES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True])
def test_gemm_against_float64_product(shape, dtype, with_bias):
    # The GEMM under every kernel (through the _matmul test hook), within the
    # rounding bound of a K-term dot product: |error| <= K eps (|a| @ |b| + |bias|).
    M, K, N = shape
    a, b, bias = rand((M, K), dtype, 1), rand((K, N), dtype, 2), rand(N, dtype, 3)
    got = rf._core._matmul(a, b, bias if with_bias else None)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = a64 @ b64 + (bias if with_bias else 0)
    bound = (K + 1) * np.finfo(dtype).eps * (np.abs(a64) @ np.abs(b64) + (np.abs(bias) if with_bias else 0))
    assert got.dtype == dtype and got.shape == (M, N)
    assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) - bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (2, 11), (3, 5, 7), (64, 1025), (5, 26215)], ids=str)
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.95])
def test_dropout_matches_reference(shape, dtype, rate):
    # The mask is a function of (seed, flat index): the kernel and its NumPy
    # twin agree exactly; the input is left as it was. (2, 11): pairs past
    # the last whole vector of draws; (5, 26215): blocks shared by threads,
    # the last one short, and an odd element.
    x = rand(shape, dtype)
    x_before = x.copy()
    y, mask = rf.dropout_forward(x, rate, 2**64 - 3)
    y_ref, mask_ref = ref.dropout_forward(x, rate, 2**64 - 3)
    assert y.dtype == mask.dtype == dtype and y.shape == mask.shape == shape
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(x, x_before)
    assert set(np.unique(mask)) <= {dtype(0), dtype(1) / dtype(1 - rate)}


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64),
                                    (np.float64, np.float32)], ids=str)
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5, 7), (5, 26215)], ids=str)
def test_dropout_backward_matches_reference(shape, dtypes):
    # dy * mask in NumPy's result dtype; the inputs are left as they were;
    # (5, 26215): blocks shared by threads, the last one short.
    dy = rand(shape, dtypes[0])
    mask = rf.dropout_forward(np.ones(shape, dtypes[1]), 0.3, 5)[1]
    before = dy.copy(), mask.copy()
    dx = rf.dropout_backward(dy, mask)
    want = ref.dropout_backward(dy, mask)
    assert dx.dtype == want.dtype and dx.shape == shape
    np.testing.assert_array_equal(dx, want)
    np.testing.assert_array_equal(dy, before[0])
    np.testing.assert_array_equal(mask, before[1])


def test_dropout_statistics():
    # Kept fraction, and pairs sharing one 64-bit draw, within 5 sigma of
    # independent Bernoulli(keep) draws; other seeds give other masks; a
    # strided view is read as its values.
    n, keep = 2_000_000, 0.8
    kept = rf.dropout_forward(np.ones(n, np.float32), 1 - keep, 7)[1] > 0
    sigma = np.sqrt(keep * (1 - keep) / n)
    assert abs(kept.mean() - keep) < 5 * sigma
    both = (kept[0::2] & kept[1::2]).mean()
    assert abs(both - keep**2) < 5 * np.sqrt(keep**2 * (1 - keep**2) / (n // 2))
    across = (kept[1:-1:2] & kept[2::2]).mean()  # neighbours from consecutive draws
    assert abs(across - keep**2) < 5 * np.sqrt(keep**2 * (1 - keep**2) / (n // 2))
    other = rf.dropout_forward(np.ones(n, np.float32), 1 - keep, 8)[1] > 0
    assert abs((kept == other).mean() - (keep**2 + (1 - keep) ** 2)) < 0.01
    x = rand((40, 30), np.float64)[:, ::3]
    np.testing.assert_array_equal(rf.dropout_forward(x, 0.5, 1)[0], ref.dropout_forward(x.copy(), 0.5, 1)[0])


def _zrn(a):
    """Gate blocks r, z, n of the last axis -> z, r, n (or back)."""
    H = a.shape[-1] // 3
    return np.concatenate([a[..., H : 2 * H], a[..., :H], a[..., 2 * H :]], axis=-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3, 2, 5), (16, 3, 40, 48), (7, 2, 9, 50), (33, 4, 20, 19)], ids=shape_id)
@pytest.mark.parametrize("partition", ["auto", "rows", "columns", "row_passes"])
def test_gru_inference_borrowing_steps_and_gate_order(shape, dtype, partition):
    """The GRU's extras: cache=False and GRUInference give the training
    forward's bits; _borrow the copying forward's; its step kernels the
    reference's; gate_order='zrn' (Keras's) the bits of 'rzn' on the weights
    permuted, and the gradients permuted (to rounding: dx sums the gates'
    columns in another order); the caches say so in their repr."""
    cell = CELLS["gru"]
    N, T, D, H = shape
    x, h0, Wx, Wh, b, bh = cell.inputs(shape, dtype)
    dh = rand((N, T, H), dtype, 12)
    before = [a.copy() for a in (x, h0, Wx, Wh, b, bh)]
    rf._core._set_partition(partition)
    try:
        for reverse in (False, True):
            h, hT, cache = rf.gru_forward(x, h0, Wx, Wh, b, bh, reverse=reverse, return_state=True)
            hi, hTi, none = rf.gru_forward(x, h0, Wx, Wh, b, bh, reverse=reverse, return_state=True, cache=False)
            assert none is None
            obj = rf.GRUInference(Wx, Wh, b, bh)
            for got in ((hi, hTi), obj(x, h0, reverse=reverse, return_state=True)):
                np.testing.assert_array_equal(got[0], h)
                np.testing.assert_array_equal(got[1], hT)
            hb, cache_b = rf.gru_forward(x, h0, Wx, Wh, b, bh, reverse=reverse, _borrow=True)
            np.testing.assert_array_equal(hb, h)
            grads = rf.gru_backward(dh, cache)
            for g, w in zip(rf.gru_backward(dh, cache_b), grads):
                np.testing.assert_array_equal(g, w)
            p = [_zrn(w) for w in (Wx, Wh, b, bh)]
            hk, cache_k = rf.gru_forward(x, h0, *p, reverse=reverse, gate_order="zrn")
            np.testing.assert_array_equal(hk, h)
            np.testing.assert_array_equal(rf.GRUInference(*p, gate_order="zrn")(x, h0, reverse=reverse), h)
            got = rf.gru_backward(dh, cache_k)
            assert_all_close(got, list(grads[:2]) + [_zrn(g) for g in grads[2:]], dtype, cell.grads)
            ref_h, ref_cache = ref.gru_forward(x, h0, *p, reverse=reverse, gate_order="zrn")
            assert_all_close([hk], [ref_h], dtype, ["h"])
            assert_all_close(got, ref.gru_backward(dh, ref_cache), dtype, cell.grads)
            assert "gate_order=zrn" in repr(cache_k) and ("reverse" in repr(cache_k)) == reverse
        step_h, step_cache = rf.gru_step_forward(x[:, 1], h0, Wx, Wh, b, bh)
        ref_step_h, ref_step_cache = ref.gru_step_forward(x[:, 1], h0, Wx, Wh, b, bh)
        assert_all_close([step_h], [ref_step_h], dtype, ["next_h"])
        d = rand((N, H), dtype, 13)
        assert_all_close(rf.gru_step_backward(d, step_cache), ref.gru_step_backward(d, ref_step_cache), dtype,
                         ["dx", "dprev_h", "dWx", "dWh", "db", "dbh"])
        assert rf.gru_step_forward(x[:, 1], h0, Wx, Wh, b, bh, cache=False)[1] is None
    finally:
        rf._core._set_partition("auto")
    for a, old in zip((x, h0, Wx, Wh, b, bh), before):
        np.testing.assert_array_equal(a, old)


@pytest.mark.parametrize("fn", ["gru_forward", "gru_step_forward", "GRUInference"])
def test_gru_refuses_an_unknown_gate_order(fn):
    x, h0, Wx, Wh, b, bh = CELLS["gru"].inputs((2, 3, 4, 5), np.float32)
    args = {"gru_forward": (x, h0, Wx, Wh, b, bh), "gru_step_forward": (x[:, 0], h0, Wx, Wh, b, bh),
            "GRUInference": (Wx, Wh, b, bh)}[fn]
    with pytest.raises(ValueError, match=fn + r"\(\): gate_order must be 'rzn' \(PyTorch's\) or 'zrn' "
                                           r"\(Keras's\), got 'zr'"):
        getattr(rf, fn)(*args, gate_order="zr")
    with pytest.raises(ValueError, match=r"gate_order must be 'rzn'"):
        ref.gru_forward(x, h0, Wx, Wh, b, bh, gate_order="zr")
