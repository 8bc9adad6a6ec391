"""The real Keras (3.15.1, on its torch backend) as the oracle of rnn_fast.nn
where it claims Keras's semantics: the same layers with the same weights
(get_weights / set_weights, Keras's layout) predict what Keras predicts, in
float32 (Keras's default) to float32's rounding. Not in float64: with floatx
float64, Keras on torch still rounds somewhere to float32 (a SimpleRNN 6e-8
from the float64 recurrence written out in NumPy, which rnn_fast.nn meets to
1e-16).

Skipped when keras is missing, unless RNN_FAST_REQUIRE_KERAS=1 (set by CI,
which installs it beside torch), where a missing keras fails instead."""
import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: TensorFlow stays out of the environment
if os.environ.get("RNN_FAST_REQUIRE_KERAS") == "1":
    import keras
else:
    keras = pytest.importorskip("keras")

from rnn_fast import nn  # noqa: E402
from rnn_fast.nn import layers as L  # noqa: E402

# Keras 3.15's variables hand NumPy 2 an __array__ without the copy keyword
# (keras/src/backend/common/variables.py): its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

TOL = dict(rtol=2e-5, atol=2e-6)  # float32: both sides' sums, in different orders
RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 6, 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def float32():
    assert keras.config.floatx() == "float32"
    old = nn.floatx()
    nn.set_floatx("float32")
    yield
    nn.set_floatx(old)


def test_keras_runs_on_torch():
    assert keras.backend.backend() == "torch"
    assert keras.__version__ == "3.15.1"


def twins(make_keras, make_ours, x=X):
    """Keras's layer (weights drawn by Keras, biases made non-zero) and ours
    with its weights; both called on x. Returns (keras output(s), ours)."""
    theirs = make_keras()
    theirs.build(x.shape)
    weights = [(w + 0.1 * RNG.standard_normal(w.shape)).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    mine = make_ours()
    mine.build(x.shape[1:])
    mine.set_weights(weights)
    expected = theirs(keras.ops.convert_to_tensor(x))
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    expected = [keras.ops.convert_to_numpy(e) for e in expected]
    got = mine(x)
    return expected, got if isinstance(got, list) else [got]


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_matches_keras(return_sequences, go_backwards):
    kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    expected, got = twins(lambda: keras.layers.LSTM(5, **kw), lambda: L.LSTM(5, **kw))
    assert len(got) == len(expected) == 3
    for e, g, name in zip(expected, got, ["output", "h", "c"]):
        np.testing.assert_allclose(g, e, err_msg=name, **TOL)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_simple_rnn_matches_keras(activation, go_backwards):
    kw = dict(activation=activation, return_sequences=True, return_state=True, go_backwards=go_backwards)
    expected, got = twins(lambda: keras.layers.SimpleRNN(4, **kw), lambda: L.SimpleRNN(4, **kw))
    for e, g, name in zip(expected, got, ["output", "h"]):
        np.testing.assert_allclose(g, e, err_msg=name, **TOL)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
def test_bidirectional_lstm_matches_keras(merge_mode):
    expected, got = twins(
        lambda: keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), merge_mode=merge_mode),
        lambda: L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=merge_mode),
    )
    np.testing.assert_allclose(got[0], expected[0], **TOL)


def test_the_seeds_model_predicts_what_keras_predicts():
    """4 x LSTM(50) + Dropout(0.2), Dense(1): the seed's model, weights
    copied from Keras's model whole (Dropout is the identity in predict)."""
    x = RNG.standard_normal((8, 12, 1)).astype(np.float32)

    def build(layers, models, **input_kw):
        model = models.Sequential()
        for k in range(4):
            kwargs = input_kw if k == 0 else {}
            model.add(layers.LSTM(units=50, return_sequences=k < 3, **kwargs))
            model.add(layers.Dropout(0.2))
        model.add(layers.Dense(units=1))
        return model

    theirs = build(keras.layers, keras.models)
    theirs.build((None, 12, 1))
    mine = build(L, nn.models, input_shape=(12, 1))
    mine.set_weights(theirs.get_weights())
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_gru_matches_keras(return_sequences, go_backwards, use_bias):
    kw = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards, use_bias=use_bias)
    expected, got = twins(lambda: keras.layers.GRU(5, **kw), lambda: L.GRU(5, **kw))
    assert len(got) == len(expected) == 2
    for e, g, name in zip(expected, got, ["output", "h"]):
        np.testing.assert_allclose(g, e, err_msg=name, **TOL)


def test_bidirectional_gru_matches_keras():
    expected, got = twins(
        lambda: keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True)),
        lambda: L.Bidirectional(L.GRU(3, return_sequences=True)),
    )
    np.testing.assert_allclose(got[0], expected[0], **TOL)


def test_a_gru_model_predicts_what_keras_predicts():
    """GRU(8) x 2 + Dense(1), weights copied from Keras's model whole."""
    x = RNG.standard_normal((8, 12, 2)).astype(np.float32)

    def build(layers, models, **input_kw):
        model = models.Sequential()
        model.add(layers.GRU(units=8, return_sequences=True, **input_kw))
        model.add(layers.GRU(units=6))
        model.add(layers.Dense(units=1))
        return model

    theirs = build(keras.layers, keras.models)
    theirs.build((None, 12, 2))
    weights = [(w + 0.1 * RNG.standard_normal(w.shape)).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    mine = build(L, nn.models, input_shape=(12, 2))
    mine.set_weights(weights)
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)


def test_gru_weights_have_keras_shapes():
    theirs, mine = keras.layers.GRU(4), L.GRU(4)
    theirs.build((None, 6, 3))
    mine.build((6, 3))
    assert [w.shape for w in mine.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
