"""Keras parity II: training runs set up and driven as in Keras 3 (3.15.1 on
its torch backend) give what Keras gives. Each test runs the same script in
Keras and in rnn_fast.nn, on Keras's weights copied over and the same data
in the same order (shuffle=False), and compares what a user sees: metrics,
histories, epochs run, restored weights, files, return values; to float32
rounding. Where rnn_fast refuses something, the refusal is checked to name
it.

Skipped when keras is missing, unless RNN_FAST_REQUIRE_KERAS=1 (CI)."""
import csv
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: TensorFlow stays out of the environment
if os.environ.get("RNN_FAST_REQUIRE_KERAS") == "1":
    import keras
else:
    keras = pytest.importorskip("keras")

from rnn_fast import nn  # noqa: E402
from rnn_fast.nn import callbacks as C  # noqa: E402
from rnn_fast.nn import layers as L  # noqa: E402
from rnn_fast.nn import losses, metrics  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:Your input ran out of data")]

TOL = dict(rtol=2e-5, atol=2e-6)  # float32, sums in different orders
TRAIN_TOL = dict(rtol=1e-4, atol=1e-5)  # after a few epochs of updates
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def float32():
    old = nn.floatx()
    nn.set_floatx("float32")
    yield
    nn.set_floatx(old)


def pair(make, shape, compile_args=None, seed=0):
    """The same model in Keras and in rnn_fast.nn (make(layers module) ->
    its layers), Keras's weights (biases made non-zero) in both; both
    compiled with compile_args(module) -> compile's keywords."""
    keras.utils.set_random_seed(seed)
    theirs = keras.Sequential([keras.Input(shape)] + make(keras.layers))
    rng = np.random.default_rng(seed)
    theirs.set_weights([(w + 0.1 * rng.standard_normal(w.shape)).astype(np.float32) for w in theirs.get_weights()])
    mine = nn.Sequential(make(L))
    mine.build((None,) + tuple(shape))
    mine.set_weights(theirs.get_weights())
    if compile_args is not None:
        theirs.compile(**compile_args(keras))
        mine.compile(**compile_args(nn))
    return theirs, mine


def assert_history(mine, theirs, tol=TRAIN_TOL):
    assert list(mine.history) == list(theirs.history)
    for k in theirs.history:
        np.testing.assert_allclose(mine.history[k], theirs.history[k], err_msg=k, **tol)


def assert_weights(mine, theirs, tol=TRAIN_TOL):
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, **tol)


def binary_data(n=24, T=5, D=3):
    x = RNG.standard_normal((n, T, D)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)[:, None]
    return x, y


def opt(m, lr=0.05):
    return m.optimizers.SGD(lr)


# ---------------------------------------------------------------------------
# 1. metrics=['accuracy'] chosen as Keras 3 chooses it
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["mse-one-column", "logits", "sparse", "categorical", "sparse-sequence",
                                  "one-column-targets-against-several"])
def test_accuracy_is_chosen_from_the_shapes_as_keras_does(case):
    x, yb = binary_data()
    if case == "mse-one-column":  # Keras: binary accuracy (0.5 threshold), whatever the loss
        make, y, loss = (lambda m: [m.SimpleRNN(4), m.Dense(1, activation="sigmoid")]), yb, "mse"
    elif case == "logits":  # Keras thresholds logits at 0.5 too
        make, y, loss = (lambda m: [m.SimpleRNN(4), m.Dense(1)]), yb, None
    elif case == "sparse":
        make, y, loss = (lambda m: [m.LSTM(4), m.Dense(3, activation="softmax")]), \
            RNG.integers(0, 3, len(x)), "sparse_categorical_crossentropy"
    elif case == "categorical":
        make, y, loss = (lambda m: [m.LSTM(4), m.Dense(3, activation="softmax")]), \
            np.eye(3, dtype=np.float32)[RNG.integers(0, 3, len(x))], "categorical_crossentropy"
    elif case == "sparse-sequence":
        make, y, loss = (lambda m: [m.GRU(4, return_sequences=True), m.Dense(3, activation="softmax")]), \
            RNG.integers(0, 3, x.shape[:2]), "sparse_categorical_crossentropy"
    else:  # (N, 1) labels against 3 columns: sparse
        make, y, loss = (lambda m: [m.LSTM(4), m.Dense(3, activation="softmax")]), \
            RNG.integers(0, 3, (len(x), 1)), "sparse_categorical_crossentropy"

    def compile_args(m):
        the_loss = loss if loss is not None else m.losses.BinaryCrossentropy(from_logits=True)
        return dict(optimizer=opt(m), loss=the_loss, metrics=["accuracy", "acc"])
    theirs, mine = pair(make, x.shape[1:], compile_args)
    expected = theirs.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    got = mine.evaluate(x, y, batch_size=7, verbose=0, return_dict=True)
    assert list(got) == list(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-5), k
    assert 0 < got["accuracy"] < 1
    h1 = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h2 = mine.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert_history(h2, h1)


def test_every_built_in_metric_matches_keras():
    x, y = binary_data(40)
    names = ["accuracy", "binary_accuracy", "mae", "mse", "msle", "mean_squared_error", "binary_crossentropy"]

    def compile_args(m):
        return dict(optimizer=opt(m), loss="binary_crossentropy",
                    metrics=names + [m.metrics.AUC(), m.metrics.Precision(), m.metrics.Recall(),
                                     m.metrics.AUC(curve="PR", name="pr"),
                                     m.metrics.AUC(num_thresholds=7, summation_method="minoring", name="auc7"),
                                     m.metrics.Precision(thresholds=[0.3, 0.6], name="p2")])
    theirs, mine = pair(lambda m: [m.LSTM(5), m.Dense(1, activation="sigmoid")], x.shape[1:], compile_args)
    expected = theirs.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    got = mine.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert list(got) == list(expected)
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert_history(mine.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0),
                   theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0))


def test_a_metric_name_rnn_fast_lacks_is_refused_at_compile():
    model = nn.Sequential([L.Dense(1, input_shape=(3,))])
    with pytest.raises(ValueError, match="unknown metric 'f1_score'"):
        model.compile("sgd", "mse", metrics=["f1_score"])
    with pytest.raises(TypeError, match=r"must be a list of metrics.*\['mae'\]"):
        model.compile("sgd", "mse", metrics="mae")


# ---------------------------------------------------------------------------
# sample_weight, class_weight, weighted_metrics
# ---------------------------------------------------------------------------
def test_sample_weights_weigh_the_loss_and_weighted_metrics_as_in_keras():
    x, y = binary_data(30)
    sw = RNG.uniform(0, 2, len(x)).astype(np.float32)

    def compile_args(m):
        return dict(optimizer=opt(m), loss="binary_crossentropy", metrics=["accuracy", "mae"],
                    weighted_metrics=["accuracy", "mse", m.metrics.AUC()])
    theirs, mine = pair(lambda m: [m.SimpleRNN(4), m.Dense(1, activation="sigmoid")], x.shape[1:], compile_args)
    kw = dict(batch_size=8, verbose=0, sample_weight=sw)
    expected = theirs.evaluate(x, y, return_dict=True, **kw)
    got = mine.evaluate(x, y, return_dict=True, **kw)
    assert list(got) == list(expected)
    assert {"loss", "accuracy", "mae", "weighted_accuracy", "mse"} < set(got)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-5), k
    assert got["accuracy"] != pytest.approx(got["weighted_accuracy"])
    vsw = RNG.uniform(0, 2, 10).astype(np.float32)
    xv, yv = binary_data(10)
    fit = dict(batch_size=8, epochs=3, shuffle=False, verbose=0, sample_weight=sw, validation_data=(xv, yv, vsw))
    assert_history(mine.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_weights(mine, theirs)


def test_class_weights_as_in_keras():
    x, _ = binary_data(30)
    y = RNG.integers(0, 3, len(x))
    cw = {0: 0.5, 1: 2.0}  # class 2 unlisted: 1

    def compile_args(m):
        return dict(optimizer=opt(m), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    weighted_metrics=["accuracy"])
    theirs, mine = pair(lambda m: [m.GRU(4), m.Dense(3, activation="softmax")], x.shape[1:], compile_args)
    fit = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, class_weight=cw)
    assert_history(mine.fit(x, y, **fit), theirs.fit(x, y, **fit))
    assert_weights(mine, theirs)
    np.testing.assert_allclose(mine.train_on_batch(x[:8], y[:8], class_weight=cw),
                               theirs.train_on_batch(x[:8], y[:8], class_weight=cw), **TRAIN_TOL)
    with pytest.raises(ValueError, match="sample_weight and class_weight cannot both be given"):
        mine.fit(x, y, class_weight=cw, sample_weight=np.ones(len(x)), verbose=0)


def test_per_step_sample_weights_and_masks_as_in_keras():
    """Sequence outputs with (N, T) sample weights, on a masked input."""
    x = RNG.standard_normal((12, 6, 3)).astype(np.float32)
    x[:4, 4:] = 0.0  # padding, masked
    y = RNG.standard_normal((12, 6, 2)).astype(np.float32)
    sw = RNG.uniform(0, 2, (12, 6)).astype(np.float32)

    def compile_args(m):
        return dict(optimizer=opt(m), loss="mse", metrics=["mae"], weighted_metrics=["mae"])
    theirs, mine = pair(lambda m: [m.Masking(), m.LSTM(4, return_sequences=True), m.Dense(2)], x.shape[1:],
                        compile_args)
    # One batch: everything as Keras.
    expected = theirs.evaluate(x, y, sample_weight=sw, batch_size=12, verbose=0, return_dict=True)
    got = mine.evaluate(x, y, sample_weight=sw, batch_size=12, verbose=0, return_dict=True)
    assert list(got) == list(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-5), k
    # Several batches: the loss, the unweighted metric and the training as Keras; the weighted metric is the
    # sum of |error| * weight over the unmasked steps over the sum of their weights, which Keras on torch
    # is not: its loss scales the batch's weight tensor in place (sw *= mask * steps / unmasked steps,
    # keras/src/losses/loss.py apply_mask) before the weighted metrics read it, so each batch counts in
    # proportion to that factor. On one batch the factor cancels (above).
    fit = dict(batch_size=5, epochs=2, shuffle=False, verbose=0, sample_weight=sw)
    h_mine, h_theirs = mine.fit(x, y, **fit), theirs.fit(x, y, **fit)
    for k in ("loss", "mae"):
        np.testing.assert_allclose(h_mine.history[k], h_theirs.history[k], err_msg=k, **TRAIN_TOL)
    assert_weights(mine, theirs)
    got = mine.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)["weighted_mae"]
    pred, valid = mine.predict(x, verbose=0), np.abs(x).sum(-1) > 0
    err = np.abs(pred - y).mean(-1)
    assert got == pytest.approx(np.sum(err * sw * valid) / np.sum(sw * valid), rel=1e-5)
    leaked = [np.sum(valid[s:s + 5]) / valid[s:s + 5].size for s in range(0, 12, 5)]
    w = sw * valid / np.repeat(leaked, [5, 5, 2])[:, None]
    assert theirs.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)["weighted_mae"] == \
        pytest.approx(np.sum(err * w) / np.sum(w), rel=1e-4)


def test_a_sample_weight_of_the_wrong_shape_is_refused_by_name():
    model = nn.Sequential([L.Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    x, y = np.ones((4, 3)), np.ones((4, 1))
    with pytest.raises(ValueError, match="x and sample_weight must hold the same number of samples"):
        model.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4,\)"):
        model.train_on_batch(x, y, sample_weight=np.ones((4, 2)))


# ---------------------------------------------------------------------------
# 6. train_on_batch / test_on_batch return what Keras returns
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_metrics", [False, True])
def test_on_batch_methods_return_what_keras_returns(with_metrics):
    x, y = binary_data(8)

    def compile_args(m):
        return dict(optimizer=opt(m), loss="binary_crossentropy", metrics=["accuracy"] if with_metrics else None)
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1, activation="sigmoid")], x.shape[1:], compile_args)
    for step in range(2):  # Keras resets the metrics at each call: the second is that batch's alone
        sl = slice(4 * step, 4 * step + 4)
        for method, args in (("train_on_batch", {}), ("test_on_batch", {}), ("train_on_batch", {"return_dict": True}),
                             ("test_on_batch", {"return_dict": True})):
            a = getattr(mine, method)(x[sl], y[sl], **args)
            b = getattr(theirs, method)(x[sl], y[sl], **args)
            assert type(a) is type(b) or (isinstance(a, float) and isinstance(b, float)), (method, a, b)
            if isinstance(b, dict):
                assert list(a) == list(b)
                a, b = list(a.values()), list(b.values())
            np.testing.assert_allclose(a, b, **TRAIN_TOL)
    assert isinstance(mine.evaluate(x, y, verbose=0), list if with_metrics else float)
