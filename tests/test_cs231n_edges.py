"""What NumPy code written for cs231n's rnn_layers.py relies on beyond the
documented shapes: a step's row arguments broadcast as NumPy broadcasts them
(a sampling loop's np.squeeze gives a 1-D x for N = 1), integer arrays
promoted as NumPy promotes them, and sigmoid beside the layers. Each checked
against the NumPy reference, which is cs231n's code."""
import warnings

import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

D, H = 3, 4
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def weights(cell, rng, dtype=np.float64):
    g = GATES[cell]
    w = [rng.standard_normal((D, g * H)), 0.5 * rng.standard_normal((H, g * H)), rng.standard_normal(g * H)]
    if cell == "gru":
        w.append(rng.standard_normal(g * H))
    return [a.astype(dtype) for a in w]


def step_args(cell, x, h, rng):
    states = [h, rng.standard_normal(h.shape)] if cell == "lstm" else [h]
    return [x] + states + weights(cell, rng)


def forward(mod, cell, args):
    return getattr(mod, f"{cell}_step_forward")(*args)


def backward(mod, cell, douts, cache):
    return getattr(mod, f"{cell}_step_backward")(*douts, cache)


def n_states(cell):
    return 2 if cell == "lstm" else 1


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("x_shape, h_shape", [((D,), (1, H)), ((D,), (H,)), ((D,), (5, H)), ((5, D), (H,))],
                         ids=["squeezed-x", "all-1d", "x-shared-by-5-rows", "state-shared-by-5-rows"])
def test_step_rows_broadcast_as_numpy_broadcasts_them(cell, x_shape, h_shape):
    rng = np.random.default_rng(1)
    args = step_args(cell, rng.standard_normal(x_shape), rng.standard_normal(h_shape), rng)
    got, expected = forward(rf, cell, args), forward(ref, cell, args)
    k = n_states(cell)
    for g, e in zip(got[:k], expected[:k]):
        assert g.shape == e.shape == np.broadcast_shapes(x_shape[:-1] + (H,), h_shape)
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    # The backward: the gradients of the broadcast arguments as 2-D rows (the reference's), each 1-D
    # argument's summed over the rows that shared it.
    rows = max(np.prod(x_shape[:-1], dtype=int), np.prod(h_shape[:-1], dtype=int))
    wide = [np.broadcast_to(a, (rows, a.shape[-1])).copy() for a in args[:1 + k]] + args[1 + k:]
    douts = [rng.standard_normal(got[0].shape) for _ in range(k)]
    mine = backward(rf, cell, douts, got[-1])
    theirs = backward(ref, cell, [np.broadcast_to(d, (rows, H)) for d in douts], forward(ref, cell, wide)[-1])
    for i, (a, e) in enumerate(zip(mine, theirs)):
        if i <= k and args[i].ndim == 1:
            e = e.sum(axis=0)
        assert a.shape == e.shape, i
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=str(i))


def test_a_sampling_loop_with_squeeze_runs_as_in_numpy():
    """cs231n's captioning sample(): x = np.squeeze(W_embed[word]) for one caption."""
    rng = np.random.default_rng(2)
    W_embed, (Wx, Wh, b), W_vocab = rng.standard_normal((10, D)), weights("lstm", rng), rng.standard_normal((H, 10))
    outs = []
    for mod in (rf, ref):
        h, c, word, words = np.zeros((1, H)), np.zeros((1, H)), np.array([1]), []
        for _ in range(6):
            x = np.squeeze(W_embed[word][:, None, :])
            assert x.shape == (D,)
            h, c, _ = mod.lstm_step_forward(x, h, c, Wx, Wh, b)
            word = np.argmax(h.dot(W_vocab), axis=1)
            words.append(int(word[0]))
        outs.append((words, h))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-12)


@pytest.mark.parametrize("cell", list(GATES))
@pytest.mark.parametrize("dtype, result", [(np.int64, np.float64), (np.int8, np.float32), (np.bool_, np.float32)])
def test_integer_inputs_promote_as_numpy_promotes_them(cell, dtype, result):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, (2, D)).astype(dtype)
    h = rng.standard_normal((2, H)).astype(np.float32)
    args = [x, h] + ([h] if cell == "lstm" else []) + weights(cell, rng, np.float32)
    got, expected = forward(rf, cell, args), forward(ref, cell, args)
    assert got[0].dtype == expected[0].dtype == result
    np.testing.assert_allclose(got[0], expected[0], rtol=2e-6, atol=2e-6)
    dx = backward(rf, cell, [np.ones_like(got[0])] * n_states(cell), got[-1])[0]
    assert dx.dtype == result and dx.shape == x.shape


def test_sigmoid_is_exported_as_cs231n_has_it():
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = rf.sigmoid(x)
    # cs231n's numerically stable form:
    z = np.where(x >= 0, np.exp(-np.abs(x)), np.exp(-np.abs(x)))
    expected = np.where(x >= 0, 1.0, z) / (1 + z)
    np.testing.assert_allclose(s, expected, rtol=1e-15, atol=0)
    assert "sigmoid" in rf.__all__


def test_rows_that_cannot_broadcast_are_refused_by_name():
    rng = np.random.default_rng(4)
    Wx, Wh, b = weights("rnn", rng)
    with pytest.raises(ValueError, match=r"rnn_step_forward\(\): Wx must have shape \(D, H\) = \(4, 4\), got \(3, 4\), "
                                         r"D=4 from x"):
        rf.rnn_step_forward(np.ones(D + 1), np.ones((2, H)), Wx, Wh, b)
    with pytest.raises(ValueError, match=r"prev_h must have shape \(N, H\) = \(2, 4\), got \(3, 4\)"):
        rf.rnn_step_forward(np.ones((2, D)), np.ones((3, H)), Wx, Wh, b)
    with pytest.raises(ValueError, match=r"x must be 2-D with shape \(N, D\), got 3-D"):
        rf.rnn_step_forward(np.ones((1, 2, D)), np.ones(H), Wx, Wh, b)
