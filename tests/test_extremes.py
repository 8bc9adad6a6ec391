"""Extreme values: saturating pre-activations stay finite, NaN and Inf travel
exactly where NumPy's arithmetic (the reference) sends them, and overflowing
gradients come back as Inf.

assert_allclose compares NaN and Inf by position (and Inf by sign) before it
compares the finite values, so "matches the reference" below includes
"non-finite in the same places"."""
import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import CELLS, DTYPES, TOL, rand

SHAPE = (3, 5, 6, 4)  # N, T, D, H


def forward_backward(lib, cell, args, dh=None, **kw):
    h, cache = cell.forward(lib, args, **kw)
    grads = cell.backward(lib, np.ones_like(h) if dh is None else dh, cache)
    return [h, *grads]


def both(cell, args, dh=None, **kw):
    with np.errstate(all="ignore"):  # NumPy warns of the overflows it meets
        expected = forward_backward(ref, cell, args, dh, **kw)
    return forward_backward(rf, cell, args, dh, **kw), expected


def assert_matches(ours, expected, dtype, names):
    assert len(ours) == len(expected) == len(names)
    for a, e, n in zip(ours, expected, names):
        np.testing.assert_allclose(a, e, err_msg=n, **TOL[dtype])


def outputs(cell):
    return ("h",) + cell.grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("scale", [1e4, -1e4, 1e8, -1e8])
def test_saturating_preactivations_give_finite_outputs(cell, dtype, scale):
    # b dominates: every pre-activation is about scale, far past exp's range.
    cell = CELLS[cell]
    args = cell.inputs(SHAPE, dtype)
    b = args[cell.args.index("b")]
    b[...] = (scale * (1 + 0.1 * rand(b.shape, np.float64))).astype(dtype)
    ours, expected = both(cell, args)
    for a in ours:
        assert np.all(np.isfinite(a))
    assert_matches(ours, expected, dtype, outputs(cell))
    # The saturated state is exactly +-1 (tanh) or bounded by |c| (LSTM); a
    # GRU's is a convex mix of tanh values and h0: bounded by max(1, |h0|).
    bound = max(1.0, float(np.abs(args[1]).max())) if cell.name == "gru" else 1.0
    assert np.all(np.abs(ours[0]) <= bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30, -1e30])
def test_huge_inputs_stay_finite(cell, dtype, scale):
    # Inputs of +-1e4 and +-1e30 (finite in float32): pre-activations of
    # either sign and that size, through the weights, at every step.
    cell = CELLS[cell]
    args = cell.inputs(SHAPE, dtype)
    args[0] = (args[0] * scale).astype(dtype)
    ours, expected = both(cell, args)
    for a in ours:
        assert np.all(np.isfinite(a))
    assert_matches(ours, expected, dtype, outputs(cell))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,where", [(c, w) for c in CELLS for w in CELLS[c].args + ("dh",)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("reverse", [False, True])
def test_nan_and_inf_propagate_as_in_numpy(cell, dtype, bad, where, reverse):
    cell = CELLS[cell]
    args = cell.inputs(SHAPE, dtype)
    dh = rand((SHAPE[0], SHAPE[1], SHAPE[3]), dtype)
    target = dh if where == "dh" else args[cell.args.index(where)]
    target[(1,) * target.ndim] = bad  # one element: sample 1, time 1 / unit 1
    ours, expected = both(cell, args, dh, reverse=reverse)
    assert_matches(ours, expected, dtype, outputs(cell))
    # The check is not empty: a NaN always reaches some result, and never all
    # of them (other samples and times keep their finite values).
    flat = np.concatenate([a.ravel() for a in ours])
    assert np.isnan(bad) <= np.isnan(flat).any() and np.isfinite(flat).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflowing_gradients_are_inf(dtype):
    # A ReLU RNN with positive everything: the forward stays finite, while
    # dWx = x^T dA and dWh = h^T dA overflow (every term is positive, so the
    # sums are +Inf in any order); dx, dh0 and db stay finite.
    big = {np.float32: 1e30, np.float64: 1e300}[dtype]
    N, T, D, H = SHAPE
    rng = np.random.default_rng(0)
    x = (1e10 * (1 + rng.random((N, T, D)))).astype(dtype)
    h0 = rng.random((N, H)).astype(dtype)
    Wx, Wh = (rng.random((D, H)) / D).astype(dtype), (rng.random((H, H)) / (4 * H)).astype(dtype)
    b = rng.random(H).astype(dtype)
    dh = (big * (1 + rng.random((N, T, H)))).astype(dtype)
    ours, expected = both(CELLS["rnn"], (x, h0, Wx, Wh, b), dh, activation="relu")
    h, dx, dh0, dWx, dWh, db = ours
    assert np.all(np.isfinite(h))
    assert np.all(dWx == np.inf) and np.all(dWh == np.inf)
    assert_matches(ours, expected, dtype, outputs(CELLS["rnn"]))
    assert np.all(np.isfinite(dx)) == np.all(np.isfinite(expected[1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_overflow_and_nan(dtype):
    big = {np.float32: 1e30, np.float64: 1e300}[dtype]
    x, w, b = rand((2, 3, 4), dtype), rand((4, 5), dtype, 2), rand((5,), dtype, 3)
    x[0, 1, 2] = np.nan
    w[3, 4] = np.inf
    dout = np.full((2, 3, 5), big, dtype)
    with np.errstate(all="ignore"):
        out_ref, cache_ref = ref.temporal_affine_forward(x, w, b)
        grads_ref = ref.temporal_affine_backward(dout, cache_ref)
    out, cache = rf.temporal_affine_forward(x, w, b)
    grads = rf.temporal_affine_backward(dout, cache)
    assert_matches([out, *grads], [out_ref, *grads_ref], dtype, ("out", "dx", "dw", "db"))
    assert np.isnan(out).any() and not np.isfinite(grads[0]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_softmax_loss_with_huge_scores_is_finite(dtype, scale):
    x = rand((3, 4, 7), dtype) * dtype(scale)
    y = np.random.default_rng(0).integers(0, 7, (3, 4))
    mask = np.ones((3, 4), bool)
    loss, dx = rf.temporal_softmax_loss(x, y, mask)
    with np.errstate(all="ignore"):
        loss_ref, dx_ref = ref.temporal_softmax_loss(x, y, mask)
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(loss, loss_ref, **TOL[dtype])
    np.testing.assert_allclose(dx, dx_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_softmax_loss_non_finite_scores_as_in_numpy(dtype, bad):
    x = rand((3, 4, 7), dtype)
    y = np.random.default_rng(0).integers(0, 7, (3, 4))
    x[1, 2, 3] = bad
    x[2, 0, y[2, 0]] = bad  # the target's own score too
    mask = np.ones((3, 4), bool)
    loss, dx = rf.temporal_softmax_loss(x, y, mask)
    with np.errstate(all="ignore"):
        loss_ref, dx_ref = ref.temporal_softmax_loss(x, y, mask)
    np.testing.assert_allclose(loss, loss_ref, **TOL[dtype])
    np.testing.assert_allclose(dx, dx_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_embedding_carries_non_finite_rows(dtype, bad):
    W = rand((5, 3), dtype)
    W[2, 1] = bad
    x = np.array([[2, 0, 2], [1, 2, 4]])
    out, cache = rf.word_embedding_forward(x, W)
    np.testing.assert_array_equal(out, W[x])
    dout = rand(out.shape, dtype)
    dout[0, 1, 0] = bad
    with np.errstate(all="ignore"):
        expected = ref.word_embedding_backward(dout, ref.word_embedding_forward(x, W)[1])
    np.testing.assert_allclose(rf.word_embedding_backward(dout, cache), expected, **TOL[dtype])
