"""Centered finite differences in float64, of the reference and of the kernels.

For a random upstream gradient dout, the scalar L = sum(out * dout) has
dL/dinput equal to what backward returns; each input is perturbed by +-eps.
"""
import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import CELLS, cell_variants, rand, recurrent_inputs

EPS = 1e-6
TOL = dict(rtol=1e-6, atol=1e-8)  # central differences: O(eps^2) truncation + O(1e-16/eps) rounding


def numeric_grad(f, arrays, index):
    """dL/d arrays[index] by centered differences, L = f(*arrays) a scalar."""
    a = arrays[index]
    grad = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i]
        a[i] = old + EPS
        plus = f(*arrays)
        a[i] = old - EPS
        minus = f(*arrays)
        a[i] = old
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


LIBS = {"kernels": rf, "reference": ref}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_sequence_gradients(lib, cell, kwargs, reverse):
    m, cell = LIBS[lib], CELLS[cell]
    args = cell.inputs((2, 3, 4, 5), np.float64, scale=1.0)
    dh = rand((2, 3, 5), np.float64, 12)
    h, cache = cell.forward(m, args, reverse=reverse, **kwargs)
    grads = cell.backward(m, dh, cache)

    def loss(*a):
        return np.sum(cell.forward(m, a, reverse=reverse, **kwargs)[0] * dh)

    for k, name in enumerate(cell.args):
        np.testing.assert_allclose(grads[k], numeric_grad(loss, list(args), k), err_msg=name, **TOL)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_gradients_with_initial_and_final_cell_state(lib, reverse):
    m = LIBS[lib]
    x, h0, Wx, Wh, b = recurrent_inputs((2, 3, 4, 5), np.float64, gates=4, scale=1.0)
    c0 = rand((2, 5), np.float64, 11)
    dh, dcT = rand((2, 3, 5), np.float64, 12), rand((2, 5), np.float64, 13)
    arrays = [x, h0, Wx, Wh, b, c0]
    _, _, _, cache = m.lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=reverse, return_state=True)
    grads = m.lstm_backward(dh, cache, dcT=dcT, return_dc0=True)

    def loss(x, h0, Wx, Wh, b, c0):
        h, _, cT, _ = m.lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=reverse, return_state=True)
        return np.sum(h * dh) + np.sum(cT * dcT)

    for k, name in enumerate(["x", "h0", "Wx", "Wh", "b", "c0"]):
        np.testing.assert_allclose(grads[k], numeric_grad(loss, arrays, k), err_msg=name, **TOL)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
def test_step_gradients(lib, cell, kwargs):
    """A step's gradients (of x, the previous states and the weights, in that
    order) under upstream gradients of every state it returns."""
    m, cell = LIBS[lib], CELLS[cell]
    args = cell.step_inputs(3, 4, 5, np.float64, seed=3, scale=1.0)
    douts = [rand((3, 5), np.float64, 6 + k) for k in range(cell.states)]
    grads = cell.step_backward(m, douts, cell.step_forward(m, args, **kwargs)[-1])

    def loss(*a):
        outs = cell.step_forward(m, a, **kwargs)[:-1]
        return sum(np.sum(o * d) for o, d in zip(outs, douts))

    for k in range(len(args)):
        np.testing.assert_allclose(grads[k], numeric_grad(loss, list(args), k), err_msg=f"argument {k}", **TOL)


@pytest.mark.parametrize("lib", LIBS)
def test_temporal_affine_gradients(lib):
    m = LIBS[lib]
    args = [rand((2, 3, 4), np.float64, 1), rand((4, 5), np.float64, 2), rand((5,), np.float64, 3)]
    dout = rand((2, 3, 5), np.float64, 4)
    grads = m.temporal_affine_backward(dout, m.temporal_affine_forward(*args)[1])
    for k, name in enumerate(["x", "w", "b"]):
        num = numeric_grad(lambda *a: np.sum(m.temporal_affine_forward(*a)[0] * dout), list(args), k)
        np.testing.assert_allclose(grads[k], num, err_msg=name, **TOL)


@pytest.mark.parametrize("lib", LIBS)
def test_word_embedding_gradient(lib):
    m = LIBS[lib]
    x = np.array([[0, 3, 3], [1, 0, 4]])
    W = rand((5, 3), np.float64)
    dout = rand((2, 3, 3), np.float64, 2)
    dW = m.word_embedding_backward(dout, m.word_embedding_forward(x, W)[1])
    num = numeric_grad(lambda W: np.sum(m.word_embedding_forward(x, W)[0] * dout), [W], 0)
    np.testing.assert_allclose(dW, num, **TOL)


@pytest.mark.parametrize("lib", LIBS)
def test_temporal_softmax_loss_gradient(lib):
    m = LIBS[lib]
    rng = np.random.default_rng(0)
    x = rand((3, 4, 6), np.float64)
    y = rng.integers(0, 6, size=(3, 4))
    mask = rng.random((3, 4)) > 0.3
    _, dx = m.temporal_softmax_loss(x, y, mask)
    num = numeric_grad(lambda x: m.temporal_softmax_loss(x, y, mask)[0], [x], 0)
    np.testing.assert_allclose(dx, num, **TOL)
