"""Issue 17's parity suite (the model-building API Keras 3 users write),
against the real Keras 3.15.1 on its torch backend: initializers so far.

Skipped when keras is missing, unless RNN_FAST_REQUIRE_KERAS=1 (CI)."""
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
from rnn_fast.nn import initializers  # noqa: E402

float32 = floatx("float32")  # every test here runs in float32, Keras's default
# Keras 3.15's variables hand NumPy 2 an __array__ without the copy keyword: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                                  "lecun_normal"])
@pytest.mark.parametrize("shape", [(400, 300), (300, 1200), (1000,)])
def test_variance_scaling_initializers_draw_as_keras_draws(name, shape):
    """The same distribution as Keras's: its standard deviation, its tail
    (the 99.9th percentile of |w|), its bound (the uniform limit, or two
    standard deviations of the truncated normal's parent; Keras on torch
    lets through the rare draw whose four candidates all fell outside), and
    a two-sample Kolmogorov-Smirnov distance as small as that of two Keras
    draws."""
    keras.utils.set_random_seed(1)
    theirs = keras.ops.convert_to_numpy(keras.initializers.get(name)(shape)).ravel()
    again = keras.ops.convert_to_numpy(keras.initializers.get(name)(shape)).ravel()
    nn.set_random_seed(1)
    mine = initializers.initialize(name, shape, np.float32).ravel()
    assert mine.dtype == np.float32
    assert np.std(mine) == pytest.approx(np.std(theirs), rel=0.03)
    scale, mode, distribution = initializers.VARIANCE_SCALING[name]
    fan_in, fan_out = initializers.fans(shape)
    n = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2
    bound = np.sqrt(3 * scale / n) if distribution == "uniform" else 2 * np.sqrt(scale / n) / 0.87962566103423978
    assert np.abs(mine).max() <= bound * (1 + 1e-6)
    assert np.quantile(np.abs(mine), 0.999) == pytest.approx(np.quantile(np.abs(theirs), 0.999), rel=0.03)

    def ks(a, b):
        grid = np.sort(np.concatenate([a, b]))
        return np.max(np.abs(np.searchsorted(np.sort(a), grid, "right") / a.size -
                             np.searchsorted(np.sort(b), grid, "right") / b.size))
    assert ks(mine, theirs) < max(3 * ks(again, theirs), 0.03)


def test_layers_take_the_new_initializers_by_name():
    layer = nn.LSTM(8, kernel_initializer="he_normal", recurrent_initializer="lecun_normal",
                    bias_initializer="zeros")
    layer.build((5, 3))
    assert layer.get_config()["kernel_initializer"] == "he_normal"
    with pytest.raises(ValueError, match="initializer must be one of"):
        nn.Dense(3, kernel_initializer="he_normall")


@pytest.mark.parametrize("make", [
    lambda m: m.optimizers.AdamW(0.01),
    lambda m: m.optimizers.AdamW(0.01, weight_decay=0.05, amsgrad=True),
    lambda m: m.optimizers.Adam(0.01, weight_decay=0.02),
    lambda m: m.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.1, global_clipnorm=0.5),
    lambda m: m.optimizers.RMSprop(m.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5), weight_decay=0.1),
], ids=["adamw", "adamw-amsgrad", "adam-weight-decay", "sgd-weight-decay-clipped", "rmsprop-weight-decay-schedule"])
def test_weight_decay_trains_as_in_keras(make, tmp_path):
    """Keras's decoupled decay (w -= w * weight_decay * lr before each step,
    after clipping), on every optimizer; and through a .keras file both ways."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 5, 3)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    mine = nn.Sequential([nn.LSTM(4), nn.Dense(1)])
    mine.build((None, 5, 3))
    mine.set_weights(theirs.get_weights())
    theirs.compile(optimizer=make(keras), loss="mse")
    mine.compile(optimizer=make(nn), loss="mse")
    for step in range(6):
        theirs.train_on_batch(x[step % 2::2], y[step % 2::2])
        mine.train_on_batch(x[step % 2::2], y[step % 2::2])
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    theirs.save(tmp_path / "k.keras")
    mine.save(tmp_path / "m.keras")
    back = nn.load_model(tmp_path / "k.keras")
    assert type(back.optimizer) is type(mine.optimizer) and back.optimizer.iterations == 6
    assert back.optimizer.weight_decay == pytest.approx(mine.optimizer.weight_decay)
    assert type(keras.models.load_model(tmp_path / "m.keras").optimizer).__name__ == type(mine.optimizer).__name__


def test_optimizer_options_rnn_fast_lacks_are_refused_when_reading_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    model.save(tmp_path / "ema.keras")
    with pytest.raises(ValueError, match="optimizer Adam with use_ema=True is not supported"):
        nn.load_model(tmp_path / "ema.keras")
    assert nn.load_model(tmp_path / "ema.keras", compile=False).built
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        nn.Adam(weight_decay=-1.0)


@pytest.mark.parametrize("case", ["time-distributed-softmax", "time-distributed-masked", "flatten"])
def test_time_distributed_and_flatten_predict_lose_and_train_as_in_keras(case, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6, 3)).astype(np.float32)
    if case == "time-distributed-softmax":
        make = lambda m: [m.LSTM(5, return_sequences=True), m.TimeDistributed(m.Dense(4, activation="softmax"))]  # noqa
        y, loss = rng.integers(0, 4, (8, 6)), "sparse_categorical_crossentropy"
    elif case == "time-distributed-masked":
        x[:3, 4:] = 0.0
        make = lambda m: [m.Masking(), m.GRU(5, return_sequences=True), m.TimeDistributed(m.Dense(2))]  # noqa
        y, loss = rng.standard_normal((8, 6, 2)).astype(np.float32), "mse"
    else:
        make = lambda m: [m.SimpleRNN(4, return_sequences=True), m.Flatten(), m.Dense(1)]  # noqa
        y, loss = rng.standard_normal((8, 1)).astype(np.float32), "mse"
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((6, 3))] + make(keras.layers))
    theirs.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32) for w in theirs.get_weights()])
    mine = nn.Sequential(make(nn.layers))
    mine.build((None, 6, 3))
    assert [w.shape for w in mine.weights] == [w.shape for w in theirs.get_weights()]
    mine.set_weights(theirs.get_weights())
    for model, m in ((theirs, keras), (mine, nn)):
        model.compile(optimizer=m.optimizers.SGD(0.1), loss=loss)
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=2e-5, atol=2e-6)
    assert mine.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
    mine.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    mine.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(nn.load_model(tmp_path / "m.npz").predict(x, verbose=0), mine.predict(x, verbose=0))


def nameless(config):
    """A config without layer names (fresh layers get new ones)."""
    if isinstance(config, dict):
        return {k: nameless(v) for k, v in config.items() if k != "name"}
    return [nameless(v) for v in config] if isinstance(config, list) else config


def test_sequential_from_config_to_json_and_pop_as_keras():
    """Keras's: from_config/model_from_json give the same architecture with
    fresh weights (same shapes and options, same predictions once the
    weights are copied); pop removes the last layer."""
    layers = lambda m: [m.Embedding(10, 4), m.LSTM(5, return_sequences=True),  # noqa: E731
                        m.TimeDistributed(m.Dense(3, activation="softmax")), m.Flatten(), m.Dense(2)]
    model = nn.Sequential(layers(nn.layers))
    model.build((None, 6))
    x = np.random.default_rng(4).integers(1, 10, (3, 6))
    for again in (nn.Sequential.from_config(model.get_config()), nn.model_from_json(model.to_json(indent=1))):
        assert nameless(again.get_config()["layers"]) == nameless(model.get_config()["layers"])
        assert [w.shape for w in again.weights] == [w.shape for w in model.weights]
        assert [type(l) for l in again.layers] == [type(l) for l in model.layers]
        again.set_weights(model.get_weights())
        np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    theirs = keras.Sequential([keras.Input((6,))] + layers(keras.layers))
    assert [w.shape for w in theirs.get_weights()] == [w.shape for w in model.weights]
    for m in (model, theirs):
        last = m.pop()
        assert type(last).__name__ == "Dense" and len(m.layers) == 4
    with pytest.raises(ValueError, match="expected a Sequential or Functional model"):
        nn.model_from_json('{"class_name": "Foo"}')
    with pytest.raises(IndexError, match="no layers"):
        nn.Sequential().pop()
