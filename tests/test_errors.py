"""Bad input gets a clear exception naming the argument, the expected and the
received; never a crash, never a silently wrong array."""
import re

import numpy as np
import pytest

import rnn_fast as rf

from conftest import CELLS, recurrent_inputs

N, T, D, H = 2, 3, 4, 5


def cell_args(cell):
    """A cell's forward arguments by name (float32), positional ones first."""
    return dict(zip(CELLS[cell].args, CELLS[cell].inputs((N, T, D, H), np.float32)))


def rnn_args():
    return dict(zip(["x", "h0", "Wx", "Wh", "b"], recurrent_inputs((N, T, D, H), np.float32, gates=1)))


def lstm_args():
    return dict(zip(["x", "h0", "Wx", "Wh", "b"], recurrent_inputs((N, T, D, H), np.float32, gates=4)))


def call(fn, args, positional=5):
    names = list(args)
    return fn(*[args[k] for k in names[:positional]], **{k: args[k] for k in names[positional:]})


# (function, argument, replacement, message pattern): shape errors -> ValueError
SHAPE_CASES = [
    (rf.rnn_forward, rnn_args, "x", np.zeros((N, D), np.float32), r"x must be 3-D with shape \(N, T, D\), got 2-D shape \(2, 4\)"),
    (rf.rnn_forward, rnn_args, "h0", np.zeros((N + 1, H), np.float32), r"h0 must have shape \(N, H\) = \(2, 6\), got \(3, 5\)|h0 must have shape"),
    (rf.rnn_forward, rnn_args, "Wx", np.zeros((D + 1, H), np.float32), r"Wx must have shape \(D, H\) = \(4, 5\), got \(5, 5\)"),
    (rf.rnn_forward, rnn_args, "Wh", np.zeros((H, H + 1), np.float32), r"Wh must have shape \(H, H\) = \(5, 5\), got \(5, 6\)"),
    (rf.rnn_forward, rnn_args, "b", np.zeros((H, 1), np.float32), r"b must be 1-D with shape \(H,\), got 2-D"),
    (rf.lstm_forward, lstm_args, "Wx", np.zeros((D, 3 * H), np.float32), r"Wx must have shape \(D, 4H\) = \(4, 20\), got \(4, 15\)"),
    (rf.lstm_forward, lstm_args, "Wh", np.zeros((H, 4 * H + 1), np.float32), r"Wh must have shape \(H, 4H\) = \(5, 20\), got \(5, 21\)"),
    (rf.lstm_forward, lstm_args, "b", np.zeros(4 * H - 4, np.float32), r"b must have shape \(4H,\) = \(20,\), got \(16,\)"),
    (rf.lstm_forward, lstm_args, "c0", np.zeros((N, H + 1), np.float32), r"c0 must have shape \(N, H\) = \(2, 5\), got \(2, 6\)"),
    (rf.gru_forward, lambda: cell_args("gru"), "Wx", np.zeros((D, 4 * H), np.float32), r"Wx must have shape \(D, 3H\) = \(4, 15\), got \(4, 20\)"),
    (rf.gru_forward, lambda: cell_args("gru"), "bh", np.zeros(3 * H + 1, np.float32), r"bh must have shape \(3H,\) = \(15,\), got \(16,\)"),
    (rf.gru_forward, lambda: cell_args("gru"), "bh", np.zeros((1, 3 * H), np.float32), r"bh must be 1-D with shape \(3H,\), got 2-D"),
]


@pytest.mark.parametrize("fn,make,name,bad,pattern", SHAPE_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_shape_mismatch_is_a_value_error_naming_the_argument(fn, make, name, bad, pattern):
    args = make()
    args[name] = bad
    with pytest.raises(ValueError, match=pattern):
        call(fn, args, 6 if fn is rf.gru_forward else 5)


def test_first_argument_fixes_the_letters():
    args = lstm_args()
    args["Wx"] = np.zeros((D, 4 * H + 3), np.float32)  # not a multiple of 4
    with pytest.raises(ValueError, match=r"Wx must have shape \(D, 4H\) = \(4, 20\), got \(4, 23\), D=4 from x, H=5 from h0"):
        call(rf.lstm_forward, args)


@pytest.mark.parametrize("dtype", [np.complex128, object, np.longdouble, "U3"])
@pytest.mark.parametrize("cell,name", [(c, a) for c in CELLS for a in CELLS[c].args])
def test_non_real_arrays_are_type_errors(cell, name, dtype):
    args = cell_args(cell)
    args[name] = args[name].astype(dtype)
    with pytest.raises(TypeError, match=rf"{cell}_forward\(\): {name} must be a float32 or float64 array \(or of "
                                        rf"integers, promoted as NumPy promotes them\), got dtype"):
        call(getattr(rf, f"{cell}_forward"), args, len(args))


@pytest.mark.parametrize("dtype, promoted", [(np.int64, np.float64), (np.int32, np.float64), (np.uint8, np.float32),
                                             (np.int16, np.float32), (np.bool_, np.float32), (np.float16, np.float32)])
@pytest.mark.parametrize("cell,name", [(c, a) for c in CELLS for a in CELLS[c].args])
def test_integer_arrays_promote_as_numpy_promotes_them(cell, name, dtype, promoted):
    """cs231n's NumPy code computes x.dot(Wx) with whatever x is: integers
    against float32 weights give float64 (beyond 16 bits) or float32. The
    kernels promote the same way, and give the reference's values."""
    args = cell_args(cell)
    args[name] = (args[name] * 3).astype(dtype)
    got = call(getattr(rf, f"{cell}_forward"), args, len(args))[0]
    expected = call(getattr(rf.reference, f"{cell}_forward"), args, len(args))[0]
    assert got.dtype == np.result_type(np.float32, promoted)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_non_array_arguments_are_type_errors():
    args = rnn_args()
    args["Wx"] = "weights"
    with pytest.raises(TypeError, match="Wx must be a float32 or float64 array"):
        call(rf.rnn_forward, args)
    args["Wx"] = None
    with pytest.raises(TypeError, match="Wx must be a float32 or float64 array"):
        call(rf.rnn_forward, args)


def test_the_cell_state_of_an_lstm_step_is_required():
    x, h0, Wx, Wh, b = recurrent_inputs((N, 1, D, H), np.float32, gates=4)
    with pytest.raises(TypeError, match="prev_c must be a float32 or float64 array, got None"):
        rf.lstm_step_forward(x[:, 0], h0, None, Wx, Wh, b)
    next_h, _, cache = rf.lstm_step_forward(x[:, 0], h0, h0, Wx, Wh, b)
    with pytest.raises(TypeError, match="dnext_c must be a float32 or float64 array, got None"):
        rf.lstm_step_backward(next_h, None, cache)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation must be 'tanh' or 'relu', got 'sigmoid'"):
        call(rf.rnn_forward, {**rnn_args(), "activation": "sigmoid"})


def make_caches():
    x, h0, Wx, Wh, b = recurrent_inputs((N, T, D, H), np.float32, gates=4)
    xr, h0r, Wxr, Whr, br = recurrent_inputs((N, T, D, H), np.float32, gates=1)
    return {
        "rnn_step_backward": rf.rnn_step_forward(xr[:, 0], h0r, Wxr, Whr, br)[1],
        "rnn_backward": rf.rnn_forward(xr, h0r, Wxr, Whr, br)[1],
        "lstm_step_backward": rf.lstm_step_forward(x[:, 0], h0, h0, Wx, Wh, b)[2],
        "lstm_backward": rf.lstm_forward(x, h0, Wx, Wh, b)[1],
        "gru_step_backward": rf.gru_step_forward(x[:, 0], h0, Wx[:, :3 * H], Wh[:, :3 * H], b[:3 * H], b[:3 * H])[1],
        "gru_backward": rf.gru_forward(x, h0, Wx[:, :3 * H], Wh[:, :3 * H], b[:3 * H], b[:3 * H])[1],
        "temporal_affine_backward": rf.temporal_affine_forward(x, Wx, b)[1],
        "word_embedding_backward": rf.word_embedding_forward(np.zeros((N, T), int), Wx)[1],
    }


def backward_call(name, cache):
    dh_step, dh = np.zeros((N, H), np.float32), np.zeros((N, T, H), np.float32)
    return {
        "rnn_step_backward": lambda: rf.rnn_step_backward(dh_step, cache),
        "rnn_backward": lambda: rf.rnn_backward(dh, cache),
        "lstm_step_backward": lambda: rf.lstm_step_backward(dh_step, dh_step, cache),
        "lstm_backward": lambda: rf.lstm_backward(dh, cache),
        "gru_step_backward": lambda: rf.gru_step_backward(dh_step, cache),
        "gru_backward": lambda: rf.gru_backward(dh, cache),
        "temporal_affine_backward": lambda: rf.temporal_affine_backward(np.zeros((N, T, 4 * H), np.float32), cache),
        "word_embedding_backward": lambda: rf.word_embedding_backward(np.zeros((N, T, 4 * H), np.float32), cache),
    }[name]


@pytest.mark.parametrize("backward", list(make_caches()))
def test_a_cache_handed_to_the_wrong_backward_is_a_type_error(backward):
    caches = make_caches()
    backward_call(backward, caches[backward])()  # its own cache works
    for other, cache in caches.items():
        if other != backward:
            with pytest.raises(TypeError, match=r"cache must be the cache returned by \w+_forward, got \w+Cache"):
                backward_call(backward, cache)()
    with pytest.raises(TypeError, match="cache must be the cache returned by"):
        backward_call(backward, (1, 2, 3))()


def test_upstream_gradient_shape_is_checked_against_the_cache():
    args = lstm_args()
    h, cache = call(rf.lstm_forward, args)
    with pytest.raises(ValueError, match=r"dh must have shape \(N, T, H\) = \(2, 3, 5\), got \(2, 4, 5\), N=2 from the cache"):
        rf.lstm_backward(np.zeros((N, T + 1, H), np.float32), cache)
    with pytest.raises(ValueError, match=r"dcT must have shape \(N, H\)"):
        rf.lstm_backward(h, cache, dcT=np.zeros((N, H + 1)))
    with pytest.raises(TypeError, match="dh must be a float32 or float64 array .*, got dtype complex128"):
        rf.lstm_backward(h.astype(np.complex128), cache)


def test_embedding_indices_are_checked():
    W = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"x holds index 10 at flat position 3, outside \[0, 10\)"):
        rf.word_embedding_forward(np.array([[0, 1, 2, 10]]), W)
    with pytest.raises(ValueError, match=r"x holds index -1"):
        rf.word_embedding_forward(np.array([[-1]]), W)
    with pytest.raises(TypeError, match="x must be an integer array, got dtype float64"):
        rf.word_embedding_forward(np.array([[0.0]]), W)


def test_softmax_loss_inputs_are_checked():
    x = np.zeros((2, 3, 4))
    y = np.zeros((2, 3), int)
    mask = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match=r"y holds index 4"):
        rf.temporal_softmax_loss(x, y + 4, mask)
    with pytest.raises(ValueError, match=r"mask must have shape \(N, T\) = \(2, 3\), got \(3, 2\)"):
        rf.temporal_softmax_loss(x, y, mask.T)
    with pytest.raises(TypeError, match="y must be an integer array"):
        rf.temporal_softmax_loss(x, y.astype(float), mask)
    with pytest.raises(TypeError, match="mask must be a boolean or real array, got dtype complex128"):
        rf.temporal_softmax_loss(x, y, mask.astype(complex))


def test_dropout_arguments_are_checked():
    x = np.ones((3, 4), np.float32)
    for rate in (-0.1, 1.0, 2.0, float("nan")):
        with pytest.raises(ValueError, match=r"dropout_forward\(\): rate must be in \[0, 1\)"):
            rf.dropout_forward(x, rate, 0)
    for seed in (-1, 2**64, 1.5, "1"):
        with pytest.raises(TypeError, match=r"dropout_forward\(\): seed must be an integer in \[0, 2\*\*64\)"):
            rf.dropout_forward(x, 0.5, seed)
    with pytest.raises(TypeError, match=r"dropout_forward\(\): x must be a float32 or float64 array .*complex64"):
        rf.dropout_forward(np.ones(3, np.complex64), 0.5, 0)
    with pytest.raises(ValueError, match=r"dropout_backward\(\): mask must have dy's shape \(3, 4\), got \(4, 3\)"):
        rf.dropout_backward(x, x.T)
    with pytest.raises(TypeError, match=r"dropout_backward\(\): mask must be a float32 or float64 array .*object"):
        rf.dropout_backward(x, (x > 0).astype(object))
    np.testing.assert_array_equal(rf.dropout_backward(x, x > 0), x)  # a boolean mask, as NumPy's x * mask


def test_set_num_threads_rejects_non_positive():
    with pytest.raises(ValueError, match=r"n must be in \[1, \d+\] .*, got 0"):
        rf.set_num_threads(0)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_objects_check_their_weights_and_inputs(cell):
    args = cell_args(cell)
    cls = getattr(rf, f"{cell.upper()}Inference")
    g = CELLS[cell].gates
    name = cls.__name__
    W = [args[a] for a in CELLS[cell].args[2:]]
    with pytest.raises(ValueError, match=rf"{name}\(\): Wh must have shape \(H, {g if g > 1 else ''}H\)"):
        cls(W[0], np.zeros((H + 1, g * H), np.float32), *W[2:])
    with pytest.raises(ValueError, match=rf"{name}\(\): b must be 1-D"):
        cls(W[0], W[1], W[2][None], *W[3:])
    with pytest.raises(TypeError, match=rf"{name}\(\): Wx must be a float32 or float64 array .*complex128"):
        cls(W[0].astype(np.complex128), *W[1:])
    if cell == "gru":
        with pytest.raises(ValueError, match=rf"{name}\(\): bh must have shape \(3H,\) = \(15,\), got \(14,\)"):
            cls(*W[:3], W[3][:-1])
    obj = cls(*W)
    with pytest.raises(ValueError, match=rf"{name}\(\): x must have shape \(N, T, D\) = \(2, 3, 4\), got \(2, 3, 5\), "
                                         r"D=4 from the weights"):
        obj(np.zeros((N, T, D + 1), np.float32), args["h0"])
    with pytest.raises(ValueError, match=rf"{name}\(\): h0 must have shape \(N, H\) = \(2, 5\), got \(2, 6\)"):
        obj(args["x"], np.zeros((N, H + 1), np.float32))
    with pytest.raises(TypeError, match=rf"{name}\(\): x must be a float32 or float64 array"):
        obj(args["x"].astype(object), args["h0"])
    if cell == "rnn":
        with pytest.raises(ValueError, match=r"activation must be 'tanh' or 'relu', got 'gelu'"):
            cls(*W, activation="gelu")
        with pytest.raises(TypeError):
            obj(args["x"], args["h0"], c0=args["h0"])  # an RNN has no cell state
    elif cell == "gru":
        with pytest.raises(TypeError):
            obj(args["x"], args["h0"], c0=args["h0"])  # nor a GRU
    else:
        with pytest.raises(ValueError, match=r"c0 must have shape \(N, H\) = \(2, 5\), got \(2, 6\)"):
            obj(args["x"], args["h0"], c0=np.zeros((N, H + 1), np.float32))


def test_messages_name_the_function():
    args = rnn_args()
    args["x"] = np.zeros((N, T), np.float32)
    with pytest.raises(ValueError, match=re.escape("rnn_forward(): x must be 3-D")):
        call(rf.rnn_forward, args)
