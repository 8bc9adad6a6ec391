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

from conftest import floatx  # noqa: E402
from rnn_fast import nn  # noqa: E402
from rnn_fast.nn import layers as L  # noqa: E402

# Keras 3.15's variables hand NumPy 2 an __array__ without the copy keyword
# (keras/src/backend/common/variables.py): its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

TOL = dict(rtol=2e-5, atol=2e-6)  # float32: both sides' sums, in different orders
RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 6, 3)).astype(np.float32)


float32 = floatx("float32")  # every test here runs in float32, Keras's default


def test_keras_runs_on_torch():
    assert keras.backend.backend() == "torch"
    assert keras.config.floatx() == "float32"
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


# ---------------------------------------------------------------- .keras files


def perturbed(model):
    """Keras's weights drawn anew, biases non-zero: nothing coincides by chance."""
    model.set_weights([(w + 0.1 * RNG.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model


def test_the_seeds_keras_file_loads_predicts_and_trains_on(tmp_path):
    """The seed's stock-price model (4 x LSTM(50) + Dropout(0.2), Dense(1)),
    saved by Keras 3 as .keras, loads in rnn_fast.nn, predicts what Keras
    predicts, and trains on (compiled as Keras's was)."""
    x = RNG.standard_normal((16, 12, 1)).astype(np.float32)
    y = RNG.standard_normal((16, 1)).astype(np.float32)
    model = keras.models.Sequential([keras.Input((12, 1))])
    for k in range(4):
        model.add(keras.layers.LSTM(units=50, return_sequences=k < 3))
        model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(units=1))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002), loss="mean_squared_error")
    perturbed(model)
    path = tmp_path / "stock.keras"
    model.save(path)
    mine = nn.load_model(path)
    np.testing.assert_allclose(mine.predict(x, verbose=0), model.predict(x, verbose=0), **TOL)
    assert type(mine.optimizer).__name__ == "Adam" and mine.optimizer.learning_rate == pytest.approx(0.002)
    # Trains on: the loss without dropout falls (the noisy training losses, with dropout, need not each time).
    nn.set_random_seed(0)
    before = mine.evaluate(x, y, verbose=0)
    history = mine.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and mine.evaluate(x, y, verbose=0) < before


def test_a_keras_file_of_every_layer_rnn_fast_reads(tmp_path):
    x = RNG.integers(0, 10, (5, 7))
    model = keras.models.Sequential([
        keras.Input((7,)), keras.layers.Embedding(10, 4),
        keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), merge_mode="sum"),
        keras.layers.SimpleRNN(5, activation="relu", return_sequences=True), keras.layers.LSTM(4),
        keras.layers.RepeatVector(2), keras.layers.GRU(3, return_sequences=True, go_backwards=True),
        keras.layers.Dense(2, activation="softmax"), keras.layers.Activation("relu"),
    ])
    perturbed(model)
    model.save(tmp_path / "all.keras")
    mine = nn.load_model(tmp_path / "all.keras", compile=False)
    np.testing.assert_allclose(mine.predict(x, verbose=0), model.predict(x, verbose=0), **TOL)


@pytest.mark.parametrize("make,shape,match", [
    (lambda: keras.layers.Conv1D(2, 3), (4, 2), r"rnn_fast.nn has no Conv1D layer"),
    (lambda: keras.layers.GRU(3, recurrent_dropout=0.1), (4, 2), r"recurrent_dropout=0.1 is not supported"),
    (lambda: keras.layers.GRU(3, reset_after=False), (4, 2), r"only reset_after=True"),
    (lambda: keras.layers.Embedding(5, 3, embeddings_constraint="non_neg"), (4,),
     r"embeddings_constraint=.* is not supported"),
])
def test_a_keras_file_rnn_fast_cannot_run_is_refused_by_name(tmp_path, make, shape, match):
    model = keras.models.Sequential([keras.Input(shape), make()])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=match):
        nn.load_model(tmp_path / "m.keras")


# ---------------------------------------------------------------- masks

# Right-padded rows of X (lengths 6, 3, 0, 1): what Masking and
# Embedding(mask_zero=True) make of sequences padded at the end.
LENGTHS = np.array([6, 3, 0, 1])
MASK = np.arange(6)[None, :] < LENGTHS[:, None]
XM = np.where(MASK[:, :, None], X, 0).astype(np.float32)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_a_masked_recurrent_layer_matches_keras(cls, return_sequences, go_backwards, zero_output_for_mask):
    """The layer called with a mask: Keras's outputs at the masked steps (the
    step before's output, or zeros), its last output and its final states
    (carried past the masked steps; h0 for a row with no step)."""
    kw = dict(return_sequences=return_sequences, go_backwards=go_backwards, return_state=True,
              zero_output_for_mask=zero_output_for_mask)
    theirs = getattr(keras.layers, cls)(3, **kw)
    theirs.build(XM.shape)
    weights = [(w + 0.1 * RNG.standard_normal(w.shape)).astype(np.float32) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    mine = getattr(L, cls)(3, **kw)
    mine.build(XM.shape[1:])
    mine.set_weights(weights)
    h0 = [RNG.standard_normal((4, 3)).astype(np.float32) for _ in range(2 if cls == "LSTM" else 1)]
    expected = theirs(keras.ops.convert_to_tensor(XM), mask=keras.ops.convert_to_tensor(MASK),
                      initial_state=[keras.ops.convert_to_tensor(s) for s in h0])
    got = mine.forward(XM, mask=MASK, initial_state=h0)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, keras.ops.convert_to_numpy(e), **TOL)


def keras_grads(model, x, y):
    """Keras's loss on (x, y) and the gradients of its trainable weights (torch backend)."""
    import torch

    pred = model(keras.ops.convert_to_tensor(x), training=False)
    loss = model.compute_loss(x=None, y=keras.ops.convert_to_tensor(y), y_pred=pred)
    loss.backward()
    return float(loss.detach()), [v.value.grad.numpy() for v in model.trainable_weights]


@pytest.mark.parametrize("case", ["embedding-lstm", "masking-bidirectional-gru"])
def test_masked_models_predict_lose_and_train_as_keras_does(case):
    """Issue 12's two models, Keras's weights in rnn_fast.nn: Embedding(mask_zero)
    -> LSTM -> Dense, and Masking -> Bidirectional(GRU, return_sequences) ->
    Dense (an output masked at each row's padding, which the loss skips):
    the same predictions, loss (evaluate) and gradients of every weight."""
    if case == "embedding-lstm":
        x = RNG.integers(1, 9, (4, 6))
        x[~MASK] = 0
        y = RNG.standard_normal((4, 2)).astype(np.float32)
        make = lambda m: [m.Embedding(9, 4, mask_zero=True), m.LSTM(5), m.Dense(2)]  # noqa: E731
        shape = (6,)
    else:
        x = XM
        y = RNG.standard_normal((4, 6, 2)).astype(np.float32)
        make = lambda m: [m.Masking(), m.Bidirectional(m.GRU(3, return_sequences=True)), m.Dense(2)]  # noqa: E731
        shape = (6, 3)
    theirs = keras.Sequential([keras.Input(shape)] + make(keras.layers))
    perturbed(theirs)
    theirs.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    mine = nn.Sequential(make(L))
    mine.build((None,) + shape)
    mine.set_weights(theirs.get_weights())
    mine.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)
    loss, grads = keras_grads(theirs, x, y)
    # In batches of 3 and 1: the loss a mean of the batches' by samples, the metric by unmasked steps.
    np.testing.assert_allclose(mine.evaluate(x, y, batch_size=3, verbose=0),
                               theirs.evaluate(x, y, batch_size=3, verbose=0), rtol=1e-5)
    my_loss, my_grads, _ = mine.compute_gradients(x, y)
    assert my_loss == pytest.approx(loss, rel=1e-5)
    for g, e, w in zip(my_grads, grads, mine.trainable_weights):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6, err_msg=str(w.shape))


def test_a_keras_file_with_masks_loads(tmp_path):
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(mask_value=0.0),
                              keras.layers.LSTM(4, return_sequences=True, zero_output_for_mask=True),
                              keras.layers.Dense(1)])
    perturbed(model)
    model.save(tmp_path / "masked.keras")
    mine = nn.load_model(tmp_path / "masked.keras", compile=False)
    np.testing.assert_allclose(mine.predict(XM, verbose=0), model.predict(XM, verbose=0), **TOL)
