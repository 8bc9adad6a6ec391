"""rnn_fast.nn: every layer's gradients against finite differences (float64),
the Keras semantics it promises (weight layout, go_backwards, Bidirectional,
stateful state and truncated BPTT, optimizers' update rules), training,
saving, and that it all runs on the C++ kernels."""
import os

import numpy as np
import pytest

import rnn_fast
from rnn_fast import nn
from rnn_fast.nn import layers as L
from rnn_fast.nn import losses


@pytest.fixture(autouse=True)
def _float64_and_seed():
    nn.set_floatx("float64")
    nn.set_random_seed(0)
    yield
    nn.set_floatx("float32")


def numeric_grad(f, a, eps=1e-6, count=25, rng=None):
    """Central differences of scalar f() w.r.t. up to `count` entries of a (in place)."""
    rng = rng or np.random.default_rng(1)
    flat = a.reshape(-1)
    idx = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    out = {}
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        out[int(i)] = (fp - fm) / (2 * eps)
    return out


def check_layer(layer, x, training=False, seed_each_forward=False, check_input=True, tol=1e-6):
    """f = sum(forward(x) * dy); compares backward's dx and weight grads to f's differences."""
    rng = np.random.default_rng(2)

    def fwd():
        if seed_each_forward:
            nn.set_random_seed(123)
        return layer(x, training=training)

    y = fwd()
    ys = y if isinstance(y, list) else [y]
    dys = [rng.standard_normal(v.shape) for v in ys]

    def f():
        out = fwd()
        out = out if isinstance(out, list) else [out]
        return sum(float(np.sum(o * d)) for o, d in zip(out, dys))

    fwd()
    dx = layer.backward(dys if isinstance(y, list) else dys[0])
    grads = [g.copy() for g in layer.grads]
    if check_input:
        for i, v in numeric_grad(f, x).items():
            assert dx.reshape(-1)[i] == pytest.approx(v, rel=tol, abs=tol), f"d input [{i}]"
    for name, w, g in zip(layer.weight_names, layer.weights, grads):
        for i, v in numeric_grad(f, w).items():
            assert g.reshape(-1)[i] == pytest.approx(v, rel=tol, abs=tol), f"d {name} [{i}]"
    return dx


RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((3, 5, 4))


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent_layer_gradients(cls, return_sequences, go_backwards):
    layer = cls(6, return_sequences=return_sequences, go_backwards=go_backwards,
                kernel_regularizer=nn.l2(0.1))
    check_layer(layer, X3.copy())


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.LSTM, L.GRU])
def test_recurrent_layer_gradients_through_returned_states_and_initial_state(cls):
    layer = cls(6, return_sequences=True, return_state=True)
    check_layer(layer, X3.copy())
    # The gradient of the initial state (for encoder-decoder use) matches too.
    n_states = 2 if cls is L.LSTM else 1
    init = [RNG.standard_normal((3, 6)) for _ in range(n_states)]
    dys = [RNG.standard_normal((3, 5, 6))] + [RNG.standard_normal((3, 6)) for _ in range(n_states)]

    def f():
        out = layer.forward(X3, initial_state=init)
        return sum(float(np.sum(o * d)) for o, d in zip(out, dys))

    layer.forward(X3, initial_state=init)
    layer.backward(dys)
    for s, g in zip(init, layer.state_grads):
        for i, v in numeric_grad(f, s).items():
            assert g.reshape(-1)[i] == pytest.approx(v, rel=1e-6, abs=1e-6)


def test_simple_rnn_relu_and_input_dropout_gradients():
    check_layer(L.SimpleRNN(5, activation="relu", return_sequences=True), X3.copy())
    check_layer(L.LSTM(5, dropout=0.3), X3.copy(), training=True, seed_each_forward=True)


def test_gru_gradients_without_bias_and_bidirectional():
    check_layer(L.GRU(5, use_bias=False, return_sequences=True, go_backwards=True), X3.copy())
    check_layer(L.Bidirectional(L.GRU(4, return_sequences=True)), X3.copy())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients(merge_mode, return_sequences):
    layer = L.Bidirectional(L.LSTM(4, return_sequences=return_sequences), merge_mode=merge_mode)
    check_layer(layer, X3.copy())


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax"])
@pytest.mark.parametrize("shape", [(4, 7), (3, 5, 7)])
def test_dense_gradients(activation, shape):
    check_layer(L.Dense(3, activation=activation, kernel_regularizer=nn.l2(0.01)), RNG.standard_normal(shape))


def test_other_layer_gradients():
    check_layer(L.Activation("softmax"), RNG.standard_normal((4, 6)))
    check_layer(L.Dropout(0.4), RNG.standard_normal((4, 6)), training=True, seed_each_forward=True)
    check_layer(L.RepeatVector(3), RNG.standard_normal((4, 6)))
    check_layer(L.Flatten(), RNG.standard_normal((4, 3, 2)))
    check_layer(L.TimeDistributed(L.Dense(3, activation="tanh", kernel_regularizer=nn.l2(0.1))),
                RNG.standard_normal((4, 5, 6)))
    emb = L.Embedding(10, 4)
    check_layer(emb, RNG.integers(0, 10, (3, 5)), check_input=False)


@pytest.mark.parametrize("name, from_logits", [("mse", False), ("mae", False), ("binary_crossentropy", False),
                                               ("binary_crossentropy", True), ("categorical_crossentropy", False),
                                               ("categorical_crossentropy", True), ("msle", False),
                                               ("huber", False)])
def test_loss_gradients(name, from_logits):
    loss = losses.Huber(delta=0.2) if name == "huber" else losses.Loss(name, from_logits=from_logits)  # both sides
    rng = np.random.default_rng(3)
    p = rng.standard_normal((4, 3, 5)) if from_logits else rng.uniform(0.05, 0.95, (4, 3, 5))
    y = rng.uniform(0, 1, p.shape)
    if name == "categorical_crossentropy":
        y = np.eye(5)[rng.integers(0, 5, (4, 3))]
    _, g = loss(y, p)
    for i, v in numeric_grad(lambda: loss(y, p)[0], p, eps=1e-7).items():
        assert g.reshape(-1)[i] == pytest.approx(v, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("weights_shape", [(4,), (4, 3), (4, 3, 1)])
def test_weighted_masked_loss_gradients(weights_shape):
    """Sample weights (per sample or per step) and a mask: Keras's
    sum(loss * weight) / rows, and its exact gradient."""
    loss = losses.Loss("mse")
    rng = np.random.default_rng(5)
    p, y = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    w = rng.uniform(0, 2, weights_shape)
    mask = rng.random((4, 3)) > 0.3
    value, g = loss(y, p, mask=mask, sample_weight=w)
    rows = np.mean((p - y) ** 2, axis=-1)
    ww = np.broadcast_to(w[..., 0] if w.ndim == 3 else w[:, None] if w.ndim == 1 else w, rows.shape)
    assert value == pytest.approx(np.sum(rows * ww * mask * mask.size / mask.sum()) / rows.size)
    for i, v in numeric_grad(lambda: loss(y, p, mask=mask, sample_weight=w)[0], p, eps=1e-7).items():
        assert g.reshape(-1)[i] == pytest.approx(v, rel=1e-5, abs=1e-8)


def test_sparse_categorical_crossentropy_equals_categorical_of_one_hot():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(6), size=(5, 3))
    y = rng.integers(0, 6, (5, 3))
    a = losses.Loss("sparse_categorical_crossentropy")(y, p)
    b = losses.Loss("categorical_crossentropy")(np.eye(6)[y], p)
    assert a[0] == pytest.approx(b[0])
    np.testing.assert_allclose(a[1], b[1])
    # Keras's per-sample value: -log p[label], averaged.
    assert a[0] == pytest.approx(-np.mean(np.log(np.take_along_axis(p, y[..., None], -1))))
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 6\)"):
        losses.Loss("sparse_categorical_crossentropy")(y + 6, p)


def stacked_bidirectional_model():
    model = nn.Sequential([
        L.Embedding(12, 5, input_shape=(6,)),
        L.Bidirectional(L.LSTM(4, return_sequences=True, kernel_regularizer=nn.l2(0.01))),
        L.Dropout(0.2),
        L.Bidirectional(L.SimpleRNN(3, recurrent_regularizer=nn.l1_l2(0.01, 0.02)), merge_mode="sum"),
        L.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_stacked_bidirectional_model_gradients():
    model = stacked_bidirectional_model()
    rng = np.random.default_rng(5)
    x = rng.integers(0, 12, (7, 6))
    y = rng.integers(0, 4, 7)
    _, grads, _ = model.compute_gradients(x, y, training=False)
    grads = [g.copy() for g in grads]
    assert len(grads) == len(model.trainable_weights) == 1 + 2 * 3 + 2 * 3 + 2

    def f():
        return model.compute_gradients(x, y, training=False)[0]

    for w, g in zip(model.trainable_weights, grads):
        for i, v in numeric_grad(f, w, count=8).items():
            assert g.reshape(-1)[i] == pytest.approx(v, rel=1e-5, abs=1e-7)


# ---------------------------------------------------------------------------
# Keras semantics
# ---------------------------------------------------------------------------
def keras_lstm(x, kernel, recurrent, bias, go_backwards=False):
    """Keras's LSTM written from its definition: gates i, f, c, o."""
    N, T, _ = x.shape
    H = recurrent.shape[0]
    h, c = np.zeros((N, H)), np.zeros((N, H))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    outs = []
    for t in (range(T - 1, -1, -1) if go_backwards else range(T)):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_layer_follows_keras_layout_and_go_backwards_order(go_backwards):
    layer = L.LSTM(5, return_sequences=True, return_state=True, go_backwards=go_backwards)
    seq, h, c = layer(X3)
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (4, 20) and recurrent.shape == (5, 20) and bias.shape == (20,)
    np.testing.assert_array_equal(bias[5:10], 1)  # unit forget bias
    np.testing.assert_array_equal(bias[:5], 0)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(5), atol=1e-12)  # orthogonal rows
    ref_seq, ref_h, ref_c = keras_lstm(X3, kernel, recurrent, bias, go_backwards)
    np.testing.assert_allclose(seq, ref_seq, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, ref_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c, ref_c, rtol=1e-10, atol=1e-12)


def test_bidirectional_aligns_the_backward_sequence_with_input_time():
    layer = L.Bidirectional(L.LSTM(3, return_sequences=True))
    y = layer(X3)
    fw, bw = layer.forward_layer.get_weights(), layer.backward_layer.get_weights()
    np.testing.assert_allclose(y[..., :3], keras_lstm(X3, *fw)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y[..., 3:], keras_lstm(X3, *bw, go_backwards=True)[0][:, ::-1], rtol=1e-10, atol=1e-12)
    last = L.Bidirectional(L.LSTM(3), merge_mode="ave")
    last.build((5, 4))
    last.set_weights(fw + bw)
    np.testing.assert_allclose(last(X3), (y[:, -1, :3] + y[:, 0, 3:]) / 2, rtol=1e-10, atol=1e-12)


def test_simple_rnn_layer_matches_its_definition():
    layer = L.SimpleRNN(4, activation="relu")
    out = layer(X3)
    k, r, b = layer.get_weights()
    h = np.zeros((3, 4))
    for t in range(5):
        h = np.maximum(X3[:, t] @ k + h @ r + b, 0)
    np.testing.assert_allclose(out, h, rtol=1e-10, atol=1e-12)


def test_stateful_layer_carries_state_and_cuts_the_gradient_at_chunk_borders():
    x = RNG.standard_normal((2, 8, 3))
    full = L.LSTM(4, return_sequences=True)
    whole = full(x)
    chunked = L.LSTM(4, return_sequences=True, stateful=True)
    chunked.build((4, 3))
    chunked.set_weights(full.get_weights())
    a, b = chunked(x[:, :4]), chunked(x[:, 4:])
    np.testing.assert_allclose(np.concatenate([a, b], 1), whole, rtol=1e-12, atol=1e-14)
    # The second chunk's gradient treats the carried state as a constant.
    dy = RNG.standard_normal(b.shape)
    carried = [s.copy() for s in chunked.states]
    chunked.states = [s.copy() for s in carried]
    chunked.forward(x[:, 4:])  # note: advances the state again; the gradient is what we check
    chunked.backward(dy)
    g_stateful = [g.copy() for g in chunked.grads]
    plain = L.LSTM(4, return_sequences=True)
    plain.build((4, 3))
    plain.set_weights(full.get_weights())
    plain.forward(x[:, 4:], initial_state=carried)
    plain.backward(dy)
    for g1, g2 in zip(g_stateful, plain.grads):
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    chunked.reset_states()
    np.testing.assert_allclose(chunked(x[:, :4]), a, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="stateful and holds states of batch size 2, got a batch of 3"):
        chunked(RNG.standard_normal((3, 4, 3)))


def test_stateful_model_trains_on_consecutive_chunks():
    """Truncated BPTT: a long series cut into chunks, state carried by the layer."""
    nn.set_floatx("float32")
    series = np.sin(np.arange(4 * 400) * 0.15).astype(np.float32).reshape(4, 400, 1)
    x, y = series[:, :-1], series[:, 1:]
    model = nn.Sequential([L.LSTM(16, return_sequences=True, stateful=True, input_shape=(20, 1)), L.Dense(1)])
    model.compile(optimizer=nn.Adam(0.01), loss="mse")
    losses_per_epoch = []
    for epoch in range(6):
        model.reset_states()
        total = 0.0
        for t0 in range(0, 380, 20):
            total += model.train_on_batch(x[:, t0:t0 + 20], y[:, t0:t0 + 20])
        losses_per_epoch.append(total / 19)
    assert losses_per_epoch[-1] < 0.1 * losses_per_epoch[0]


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------
def test_optimizers_follow_keras_update_rules():
    g = np.array([0.5, -2.0, 3.0])
    w0 = np.array([1.0, 2.0, -1.0])

    w = w0.copy(); opt = nn.Adam(0.1)
    opt.apply([w], [g]); opt.apply([w], [g])
    m = 0.1 * g; v = 0.001 * g * g
    w1 = w0 - 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9) * m / (np.sqrt(v) + 1e-7)
    m = m + (g - m) * 0.1; v = v + (g * g - v) * 0.001
    w2 = w1 - 0.1 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(w, w2, rtol=1e-12)

    w = w0.copy(); opt = nn.SGD(0.1, momentum=0.9)
    opt.apply([w], [g]); opt.apply([w], [g])
    np.testing.assert_allclose(w, w0 - 0.1 * g + (0.9 * -0.1 * g - 0.1 * g), rtol=1e-12)

    w = w0.copy(); opt = nn.RMSprop(0.1)
    opt.apply([w], [g])
    np.testing.assert_allclose(w, w0 - 0.1 * g / np.sqrt(0.1 * g * g + 1e-7), rtol=1e-12)


def test_gradient_clipping():
    g = np.array([3.0, 4.0])
    assert np.allclose(nn.SGD(clipnorm=1.0).clip([g])[0], [0.6, 0.8])
    assert np.allclose(nn.SGD(clipvalue=3.5).clip([g])[0], [3.0, 3.5])
    a, b = nn.SGD(global_clipnorm=6.5).clip([g, np.array([0.0, 12.0])])
    assert np.allclose(np.sqrt(np.sum(a * a) + np.sum(b * b)), 6.5)
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue, global_clipnorm"):
        nn.Adam(clipnorm=1.0, clipvalue=1.0)
    model = nn.Sequential([L.Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse", clipnorm=0.5)
    assert isinstance(model.optimizer, nn.SGD) and model.optimizer.clipnorm == 0.5
    # Exploding gradients stay bounded: one step moves each weight array by at most lr * clipnorm.
    before = model.get_weights()
    model.train_on_batch(np.full((4, 2), 1e6), np.zeros((4, 1)))
    for w0, w1 in zip(before, model.get_weights()):
        assert np.linalg.norm(w1 - w0) <= 0.01 * 0.5 * (1 + 1e-9)


# ---------------------------------------------------------------------------
# Training, the Keras import swap, the kernels underneath
# ---------------------------------------------------------------------------
KERAS_CODE = '''
import numpy as np
from keras.models import Sequential
from keras.layers import LSTM
from keras.layers import Dropout
from keras.layers import Dense

X_train = np.random.rand(96, 60, 1)
y_train = X_train[:, -1, 0] * 0.5 + 0.25

regressor = Sequential()
regressor.add(LSTM(units = 50, return_sequences = True, input_shape = (X_train.shape[1], 1)))
regressor.add(Dropout(0.2))
regressor.add(LSTM(units = 50, return_sequences = True))
regressor.add(Dropout(0.2))
regressor.add(LSTM(units = 50, return_sequences = True))
regressor.add(Dropout(0.2))
regressor.add(LSTM(units = 50))
regressor.add(Dropout(0.2))
regressor.add(Dense(units = 1))
regressor.compile(optimizer = 'adam', loss = 'mean_squared_error')
history = regressor.fit(X_train, y_train, epochs = 3, batch_size = 32)
predicted = regressor.predict(X_train[:10])
'''


def test_keras_code_runs_after_swapping_its_imports(capsys):
    nn.set_floatx("float32")
    code = KERAS_CODE.replace("from keras.", "from rnn_fast.nn.")
    assert code.count("rnn_fast.nn") == 4 and "keras" not in code.replace("rnn_fast.nn", "")
    scope = {}
    exec(compile(code, "keras_example", "exec"), scope)
    assert scope["predicted"].shape == (10, 1) and scope["predicted"].dtype == np.float32
    assert len(scope["history"].history["loss"]) == 3
    assert scope["regressor"].count_params() == 71051  # Keras's count for this model
    assert "Epoch 3/3" in capsys.readouterr().out


def test_training_reduces_the_loss_and_learns():
    nn.set_floatx("float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 10, 2)).astype(np.float32)
    y = (x[:, :, 0].sum(1) > 0).astype(np.float32)[:, None]  # the sign of a running sum
    model = nn.Sequential([L.SimpleRNN(16, input_shape=(10, 2)), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)
    hist = model.fit(x, y, epochs=20, batch_size=32, validation_split=0.25, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.9
    assert model.evaluate(x, y, verbose=0)[0] < 0.5 * before[0]


def test_inference_passes_write_no_cache_and_predict_what_the_training_pass_computes(monkeypatch):
    model = stacked_bidirectional_model()
    x = np.random.default_rng(0).integers(0, 12, (16, 6))
    expected = model._forward(x, training=False, keep_cache=True)
    flags = []
    for name in ["lstm_forward", "rnn_forward"]:
        kernel = getattr(rnn_fast._core, name)

        def spy(*args, _k=kernel, **kwargs):
            flags.append(kwargs["cache"])
            return _k(*args, **kwargs)

        monkeypatch.setattr(rnn_fast._core, name, spy)
    np.testing.assert_array_equal(model.predict(x, batch_size=16, verbose=0), expected)
    np.testing.assert_array_equal(model(x), expected)
    assert flags and not any(flags)
    model.evaluate(x, np.zeros(16, int), verbose=0)
    assert not any(flags)
    # Layers keep their caches again for training, and refuse a backward after an inference pass.
    flags.clear()
    model.compute_gradients(x, np.zeros(16, int))
    assert flags and all(flags)
    model.predict(x, verbose=0)
    with pytest.raises(RuntimeError, match="inference forward"):
        model._backward(np.ones_like(expected))


def test_predict_and_evaluate_pack_the_weights_once_per_pass(monkeypatch):
    """predict/evaluate over many batches: each recurrent layer packs its
    weights once per pass (LSTMInference, GRUInference, RNNInference), with the same bits as
    packing in every call, and a later pass sees weights trained since."""
    model = stacked_bidirectional_model()
    x = np.random.default_rng(0).integers(0, 12, (20, 6))
    y = np.zeros(20, int)
    made = []
    for name in ["LSTMInference", "RNNInference"]:
        cls = getattr(rnn_fast._core, name)
        monkeypatch.setattr(rnn_fast._core, name, lambda *a, _c=cls, _n=name, **k: made.append(_n) or _c(*a, **k))
    per_call = np.concatenate([model(x[i:i + 3]) for i in range(0, 20, 3)])
    assert not made  # a single call packs inside the kernel, as before
    np.testing.assert_array_equal(model.predict(x, batch_size=3, verbose=0), per_call)
    assert sorted(made) == ["LSTMInference"] * 2 + ["RNNInference"] * 2  # both directions of each layer, once
    made.clear()
    loss = model.evaluate(x, y, batch_size=3, verbose=0)
    assert len(made) == 4 and np.all(np.isfinite(loss))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    np.testing.assert_array_equal(model.predict(x, batch_size=3, verbose=0), model(x))
    assert all(layer._packed is None for layer in (model.layers[1].forward_layer, model.layers[3].backward_layer))


def test_fit_runs_on_the_cpp_kernels(monkeypatch):
    calls = []
    for name in ["lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward", "temporal_affine_forward",
                 "temporal_affine_backward", "word_embedding_forward", "word_embedding_backward"]:
        kernel = getattr(rnn_fast._core, name)
        assert type(kernel).__name__ == "builtin_function_or_method"

        def spy(*args, _k=kernel, _n=name, **kwargs):
            calls.append(_n)
            return _k(*args, **kwargs)

        monkeypatch.setattr(rnn_fast._core, name, spy)
        monkeypatch.setattr(rnn_fast.reference, name, lambda *a, _n=name, **k: pytest.fail(f"reference.{_n} called"))
    model = stacked_bidirectional_model()
    model.fit(np.random.default_rng(0).integers(0, 12, (16, 6)), np.zeros(16, int), epochs=1, batch_size=8, verbose=0)
    for name in ["lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward", "temporal_affine_forward",
                 "temporal_affine_backward", "word_embedding_forward", "word_embedding_backward"]:
        assert calls.count(name) >= 2, name


def test_fit_progress_bar_and_history(capsys):
    nn.set_floatx("float32")
    model = nn.Sequential([L.Dense(1, input_shape=(3,))])
    model.compile("adam", "mse", metrics=["mae"])
    x, y = np.ones((10, 3)), np.ones((10, 1))
    hist = model.fit(x, y, epochs=2, batch_size=4, validation_data=(x, y))
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "3/3 [==============================]" in out
    assert "loss:" in out and "mae:" in out and "val_loss:" in out
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"} and hist.epoch == [0, 1]
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_the_best_weights():
    model = nn.Sequential([L.Dense(1, input_shape=(1,))])
    model.compile(nn.SGD(10.0), "mse")  # diverges: val_loss grows from the first epoch
    x = np.linspace(-1, 1, 20)[:, None]
    stop = nn.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    hist = model.fit(x, 3 * x, epochs=20, verbose=0, callbacks=[stop])
    assert len(hist.epoch) < 20
    best = int(np.argmin(hist.history["loss"]))
    assert stop.best == hist.history["loss"][best]


def test_summary_prints_shapes_and_parameter_counts():
    model = stacked_bidirectional_model()
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "(None, 6, 8)" in text and "(None, 3)" in text and "(None, 4)" in text
    assert f"Total params: {model.count_params():,}" in text
    with pytest.raises(ValueError, match="not yet been built"):
        nn.Sequential([L.Dense(2)]).summary()


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------
def test_save_and_load_round_trip_weights_and_optimizer_state_bit_for_bit(tmp_path):
    model = stacked_bidirectional_model()
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 12, (16, 6)), rng.integers(0, 4, 16)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = nn.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 4
    for sa, sb in zip(model.optimizer.state, loaded.optimizer.state):
        for a, b in zip(sa, sb):
            assert np.array_equal(a, b)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    # Training on continues identically (no dropout randomness: inference-only layers removed).
    nn.set_random_seed(9)
    model.train_on_batch(x, y)
    nn.set_random_seed(9)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_load_model_refuses_damaged_and_foreign_files(tmp_path):
    model = nn.Sequential([L.LSTM(3, input_shape=(4, 2)), L.Dense(1)])
    model.compile("adam", "mse")
    path = tmp_path / "m.npz"
    model.save(path)
    data = bytearray(path.read_bytes())

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an rnn_fast model file"):
        nn.load_model(foreign)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(200))
    with pytest.raises(ValueError, match="not a readable rnn_fast model file"):
        nn.load_model(garbage)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError):
        nn.load_model(truncated)

    # An array altered inside a well-formed archive: caught by the checksums.
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["weights/0/kernel"] = arrays["weights/0/kernel"] + 1
    altered = tmp_path / "altered.npz"
    np.savez(altered, **arrays)
    with pytest.raises(ValueError, match="damaged: array 'weights/0/kernel' does not match its checksum"):
        nn.load_model(altered)

    # A flipped byte anywhere: zip's CRC or the checksums refuse it.
    for pos in range(100, len(data), max(1, len(data) // 15)):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad = tmp_path / "flipped.npz"
        bad.write_bytes(bytes(flipped))
        try:
            loaded = nn.load_model(bad)
        except ValueError:
            continue
        # Bytes outside any array's data (zip padding) may change nothing: then the model is intact.
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        L.LSTM(0)
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        L.LSTM(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match="GRU: recurrent_dropout is not supported"):
        L.GRU(3, recurrent_dropout=0.1)
    with pytest.raises(ValueError, match=r"only reset_after=True .* runs on the fused kernels"):
        L.GRU(3, reset_after=False)
    with pytest.raises(ValueError, match="only activation='tanh' with recurrent_activation='sigmoid'"):
        L.GRU(3, activation="relu")
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        L.Bidirectional(L.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, timesteps, features\)"):
        L.LSTM(3)(np.zeros((2, 3)))
    layer = L.LSTM(3)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="input's last axis must be 5"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(TypeError, match="real numeric array"):
        L.Dense(2)(np.array([["a"]]))
    model = nn.Sequential([L.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match="compile the model first"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 1)))
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(np.zeros((3, 2)), np.zeros((2, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"y must have the model output's shape \(2, 1\), got \(2, 3\)"):
        model.fit(np.zeros((2, 2)), np.zeros((2, 3)), verbose=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.compile("adagrad", "mse")
    with pytest.raises(ValueError, match="loss must be one of"):
        model.compile("adam", "hinge")
    with pytest.raises(ValueError, match="return_state=True"):
        nn.Sequential([L.LSTM(3, return_state=True, input_shape=(4, 2)), L.Dense(1)])


def test_a_gru_model_trains_saves_and_loads(tmp_path):
    """GRU layers in a Sequential model: fit lowers the loss, predict runs on
    the packed weights (the training forward's values), and the model saves
    and loads bit for bit."""
    nn.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 10, 2))
    y = x[:, :, :1].sum(axis=1) * 0.3
    model = nn.Sequential([L.GRU(8, return_sequences=True, input_shape=(10, 2)),
                           L.Bidirectional(L.GRU(4)), L.Dense(1)])
    model.compile(nn.Adam(learning_rate=0.01), "mse")
    hist = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    np.testing.assert_allclose(model.predict(x, verbose=0), model(x), rtol=1e-12, atol=1e-12)
    path = tmp_path / "gru.npz"
    model.save(path)
    loaded = nn.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
