"""Issue 17's parity suite for the functional API and the new layer
options, against the real Keras 3.15.1 on its torch backend: each model is
built by one function in both (keras.layers or rnn_fast.nn.layers), the
weights copied, and predictions, the loss and one training step compared
to float32 rounding; then the same graphs in float64 by finite differences.

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

float32 = floatx("float32")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
TOL = dict(rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------- the models
def encoder_decoder(m, n_in=7, n_out=6, units=16):
    """Keras's seq2seq tutorial: the encoder LSTM's states start the
    decoder LSTM (teacher forcing: the decoder reads the target shifted),
    a softmax over the output vocabulary at every step."""
    enc_in = m.Input(shape=(None, n_in))
    _, h, c = m.layers.LSTM(units, return_state=True)(enc_in)
    dec_in = m.Input(shape=(None, n_out))
    dec_seq, _, _ = m.layers.LSTM(units, return_sequences=True, return_state=True)(dec_in, initial_state=[h, c])
    out = m.layers.TimeDistributed(m.layers.Dense(n_out, activation="softmax"))(dec_seq)
    return m.Model([enc_in, dec_in], out)


def two_inputs(m):
    """A sequence and static features, joined by concatenate."""
    seq = m.Input(shape=(9, 3))
    static = m.Input(shape=(4,))
    a = m.layers.LSTM(8)(seq)
    b = m.layers.Dense(5, activation="relu")(static)
    joined = m.layers.concatenate([a, b])
    return m.Model(inputs=[seq, static], outputs=m.layers.Dense(1)(joined))


def shared_embedding(m):
    """One Embedding (mask_zero) read by two inputs, each through its own
    LSTM; the two summaries added (add) and compared."""
    left, right = m.Input(shape=(8,), dtype="int32"), m.Input(shape=(8,), dtype="int32")
    embed = m.layers.Embedding(20, 6, mask_zero=True)
    a = m.layers.LSTM(5)(embed(left))
    b = m.layers.GRU(5)(embed(right))
    merged = m.layers.add([a, b])
    return m.Model([left, right], m.layers.Dense(1, activation="sigmoid")(merged))


def shared_lstm(m):
    """A siamese model: one LSTM applied to both inputs (shared weights),
    the two outputs concatenated, subtracted and multiplied."""
    a, b = m.Input(shape=(6, 3)), m.Input(shape=(6, 3))
    lstm = m.layers.LSTM(4)
    ha, hb = lstm(a), lstm(b)
    feats = m.layers.Concatenate()([ha, hb, m.layers.Subtract()([ha, hb]), m.layers.Multiply()([ha, hb]),
                                    m.layers.Average()([ha, hb])])
    return m.Model([a, b], m.layers.Dense(2, activation="softmax")(feats))


def stock_relu(m):
    """The seed's stock-price model with LSTM(activation='relu'), as the
    tutorials write it."""
    return m.Sequential([m.Input((12, 1)), m.layers.LSTM(50, activation="relu", return_sequences=True),
                         m.layers.Dropout(0.2), m.layers.LSTM(50, activation="relu"), m.layers.Dropout(0.2),
                         m.layers.Dense(1)])


def residual_sequence(m):
    """Masking, a bidirectional layer and a residual add over time, then a
    concatenation along time."""
    x = m.Input(shape=(7, 4))
    masked = m.layers.Masking()(x)
    h = m.layers.Bidirectional(m.layers.SimpleRNN(2, return_sequences=True))(masked)
    res = m.layers.add([h, m.layers.Dense(4)(masked)])
    joined = m.layers.Concatenate(axis=1)([m.layers.TimeDistributed(m.layers.Dense(4))(x), res])
    return m.Model(x, m.layers.Dense(1)(m.layers.GRU(3)(joined)))


def data_for(name, rng):
    if name == "encoder_decoder":
        xe = rng.standard_normal((10, 5, 7)).astype(np.float32)
        tgt = rng.integers(0, 6, (10, 4))
        dec = np.eye(6, dtype=np.float32)[np.concatenate([np.zeros((10, 1), int), tgt[:, :-1]], axis=1)]
        return [xe, dec], np.eye(6, dtype=np.float32)[tgt], "categorical_crossentropy"
    if name == "two_inputs":
        return ([rng.standard_normal((10, 9, 3)).astype(np.float32), rng.standard_normal((10, 4)).astype(np.float32)],
                rng.standard_normal((10, 1)).astype(np.float32), "mse")
    if name == "shared_embedding":
        ids = rng.integers(1, 20, (2, 10, 8))
        for k, n in enumerate([8, 5, 3, 1, 6, 8, 2, 7, 4, 8]):  # right-padded with index 0
            ids[0, k, n:] = 0
            ids[1, k, max(n - 1, 1):] = 0
        return [ids[0], ids[1]], rng.integers(0, 2, (10, 1)).astype(np.float32), "binary_crossentropy"
    if name == "shared_lstm":
        return ([rng.standard_normal((10, 6, 3)).astype(np.float32) for _ in range(2)],
                np.eye(2, dtype=np.float32)[rng.integers(0, 2, 10)], "categorical_crossentropy")
    if name == "stock_relu":
        return rng.standard_normal((10, 12, 1)).astype(np.float32), rng.standard_normal((10, 1)).astype(np.float32), \
            "mean_squared_error"
    if name == "residual_sequence":
        x = rng.standard_normal((10, 7, 4)).astype(np.float32)
        for k, n in enumerate([7, 5, 3, 1, 6, 7, 2, 7, 4, 7]):
            x[k, n:] = 0.0
        return x, rng.standard_normal((10, 1)).astype(np.float32), "mse"
    raise KeyError(name)


MODELS = {f.__name__: f for f in (encoder_decoder, two_inputs, shared_embedding, shared_lstm, stock_relu,
                                  residual_sequence)}


def _made(model):
    """The model's layers in the order make() created them: by class, then
    by the number Keras and rnn_fast both append to a class's default name."""
    def key(layer):
        stem, _, num = layer.name.rpartition("_")
        return (type(layer).__name__, int(num) if stem and num.isdigit() else 0)
    return sorted(model.layers, key=key)


def built_pair(make, rng, same_order: bool = True):
    """make(keras) and make(nn), the Keras model's weights perturbed and
    copied. same_order: the layers (and so get_weights) come in Keras's
    order; Keras also orders the graph by its mask operations, which
    rnn_fast does not build, so graphs whose merge layers join masks may
    order equal-depth layers differently; they are paired by creation."""
    keras.utils.set_random_seed(0)
    theirs = make(keras)
    theirs.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32) for w in theirs.get_weights()])
    mine = make(nn)
    if same_order:
        assert [type(l).__name__ for l in mine.layers] == [type(l).__name__ for l in theirs.layers]
        assert [w.shape for w in mine.get_weights()] == [w.shape for w in theirs.get_weights()]
        mine.set_weights(theirs.get_weights())
    else:
        for a, b in zip(_made(mine), _made(theirs)):
            assert type(a).__name__ == type(b).__name__
            a.set_weights(b.get_weights())
    return theirs, mine


def same_weights(mine, theirs, same_order: bool = True, **tol):
    pairs = zip(mine.layers, theirs.layers) if same_order else zip(_made(mine), _made(theirs))
    for a, b in pairs:
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(x, y, **(tol or dict(rtol=1e-4, atol=2e-6)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_predicts_loses_and_trains_as_in_keras(name, tmp_path):
    rng = np.random.default_rng(5)
    order = name != "residual_sequence"
    theirs, mine = built_pair(MODELS[name], rng, same_order=order)
    x, y, loss = data_for(name, rng)
    for model, m in ((theirs, keras), (mine, nn)):
        model.compile(optimizer=m.optimizers.SGD(0.1), loss=loss)
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)
    assert mine.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
    loss = mine.train_on_batch(x, y)
    same_dropout_masks(mine, theirs)  # Keras's Dropout layers given the masks rnn_fast's drew
    assert loss == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    same_weights(mine, theirs, order)
    if not any(type(l).__name__ == "Dropout" for l in mine.layers):
        # and more steps, from the updated weights, in a fit with batches
        h_mine = mine.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
        h_theirs = theirs.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
        np.testing.assert_allclose(h_mine, h_theirs, rtol=1e-4)
    # rnn_fast's own file keeps the graph, the weights and the optimizer state
    mine.save(tmp_path / "m.npz")
    again = nn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(x, verbose=0), mine.predict(x, verbose=0))
    again_json = nn.model_from_json(mine.to_json())
    again_json.set_weights(mine.get_weights())
    np.testing.assert_array_equal(again_json.predict(x, verbose=0), mine.predict(x, verbose=0))


def test_functional_summary_and_config_follow_keras():
    """Keras's layer order (inputs first, then by depth), output shapes, the
    counts of parameters, and the graph in get_config (Keras's layout:
    inbound_nodes with __keras_tensor__ arguments, input_layers, output_layers)."""
    theirs, mine = built_pair(encoder_decoder, np.random.default_rng(0))
    assert mine.count_params() == theirs.count_params()
    lines = []
    mine.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "[(None, 16), (None, 16), (None, 16)]" in text
    assert f"Total params: {theirs.count_params():,}" in text
    mine_cfg, their_cfg = mine.get_config(), theirs.get_config()
    assert [l["class_name"] for l in mine_cfg["layers"]] == [l["class_name"] for l in their_cfg["layers"]]

    def graph(cfg):  # the connections, by layer position
        names = [l["name"] for l in cfg["layers"]]
        out = []
        for l in cfg["layers"]:
            for node in l["inbound_nodes"]:
                args = node["args"][0] if isinstance(node["args"][0], list) else [node["args"][0]]
                states = node["kwargs"].get("initial_state") or []
                out.append([(names.index(t["config"]["keras_history"][0]),) + tuple(t["config"]["keras_history"][1:])
                            for t in args + states])
        return out
    assert graph(mine_cfg) == graph(their_cfg)
    assert [r[1:] for r in mine_cfg["input_layers"]] == [r[1:] for r in their_cfg["input_layers"]]
    assert mine_cfg["output_layers"][1:] == their_cfg["output_layers"][1:]


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("options", [
    dict(activation="relu"), dict(activation="sigmoid"), dict(activation="elu"), dict(activation="softsign"),
    dict(activation="relu", recurrent_activation="hard_sigmoid"), dict(activation="selu", go_backwards=True),
    dict(activation="swish", return_sequences=True), dict(recurrent_activation="tanh", return_sequences=True),
    dict(activation="linear", recurrent_activation="softplus"),
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_recurrent_activations_run_as_in_keras(cls, options):
    """Every activation Keras's recurrent layers take that rnn_fast has,
    on masked, right-padded sequences: predictions, loss and a step."""
    if cls == "SimpleRNN":
        options = {k: v for k, v in options.items() if k != "recurrent_activation"}
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    x[1, 3:] = x[4, 1:] = 0.0
    seq = options.get("return_sequences", False)
    y = rng.standard_normal((6, 5, 1) if seq else (6, 1)).astype(np.float32)

    def make(m):
        return m.Sequential([m.Input((5, 3)), m.layers.Masking(), getattr(m.layers, cls)(4, **options),
                             m.layers.Dense(1)])
    theirs, mine = built_pair(make, rng)
    for model, m in ((theirs, keras), (mine, nn)):
        model.compile(optimizer=m.optimizers.SGD(0.1), loss="mse")
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)
    assert mine.train_on_batch(x, y) == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def same_dropout_masks(mine, theirs):
    """Each Keras Dropout layer multiplies by the mask (already scaled by
    1 / (1 - rate)) that the matching rnn_fast layer drew in its last
    training forward."""
    import torch
    for a, b in zip(_made(mine), _made(theirs)):
        if type(a).__name__ == "Dropout":
            mask = torch.tensor(a._ctx)

            def call(inputs, training=False, mask=mask):
                return inputs * mask if training and inputs.device.type != "meta" else inputs
            b.call = call


def _keras_masks(layer, masks):
    """Makes Keras's cell use the given dropout masks (its _create_dropout_mask draws them)."""
    import torch
    cell = layer.cell
    queue = [torch.tensor(m) for m in masks]
    real = cell._create_dropout_mask

    def create(step_input, rate):
        if isinstance(step_input, keras.KerasTensor) or step_input.device.type == "meta":
            return real(step_input, rate)  # Keras's symbolic build of the train step, on torch's meta device
        m = queue.pop(0)
        return [x for x in m] if getattr(cell, "dropout_mask_count", None) else m
    cell._create_dropout_mask = create


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_recurrent_dropout_trains_as_in_keras_with_the_same_masks(cls, dropout, monkeypatch):
    """recurrent_dropout (and dropout with it): rnn_fast draws one mask per
    sequence for each gate block's recurrent input (and each block's input),
    as Keras's cells do; given the same masks, Keras computes the same loss
    and the same step. Without training, nothing is dropped."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    y = rng.standard_normal((6, 1)).astype(np.float32)

    def make(m):
        return m.Sequential([m.Input((5, 3)), getattr(m.layers, cls)(4, dropout=dropout, recurrent_dropout=0.4),
                             m.layers.Dense(1)])
    theirs, mine = built_pair(make, rng)
    for model, m in ((theirs, keras), (mine, nn)):
        model.compile(optimizer=m.optimizers.SGD(0.1), loss="mse")
    np.testing.assert_allclose(mine.predict(x, verbose=0), theirs.predict(x, verbose=0), **TOL)
    drawn = []
    real = mine.layers[0]._dropout_masks
    monkeypatch.setattr(mine.layers[0], "_dropout_masks", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    loss = mine.train_on_batch(x, y)
    gates = 4 if cls == "LSTM" else 1
    assert [m.shape for m in drawn] == ([(gates, 6, 3)] if dropout and gates == 4 else
                                        [(1, 6, 3)] if dropout else []) + [(gates, 6, 4)]
    for m, rate in zip(drawn, ([dropout] if dropout else []) + [0.4]):
        assert set(np.unique(m)) <= {0.0, np.float32(1 / (1 - rate))}
    _keras_masks(theirs.layers[0], [m if m.shape[0] > 1 else m[0] for m in drawn])
    assert loss == pytest.approx(theirs.train_on_batch(x, y), rel=1e-5)
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


# ------------------------------------------------- finite differences (float64)
def _fd_check(model, x, y, loss, eps=1e-6, picks=6, seed=0):
    """The model's gradients of the loss against central differences, at a
    few entries of every weight array."""
    model.compile(optimizer="sgd", loss=loss)
    x = model._check_x(x, "test")
    _, grads, _ = model.compute_gradients(x, y, training=False)
    rng = np.random.default_rng(seed)
    for w, g in zip(model.trainable_weights, grads):
        for idx in [tuple(rng.integers(0, s) for s in w.shape) for _ in range(picks)]:
            old = w[idx]
            w[idx] = old + eps
            up = model.loss(y, model._forward(x, training=False, keep_cache=False), mask=model._output_mask)[0]
            w[idx] = old - eps
            down = model.loss(y, model._forward(x, training=False, keep_cache=False), mask=model._output_mask)[0]
            w[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), idx


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_gradients_match_finite_differences(name):
    nn.set_floatx("float64")
    try:
        nn.set_random_seed(3)
        model = MODELS[name](nn)
        x, y, loss = data_for(name, np.random.default_rng(8))
        x = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in x] if isinstance(x, list) else \
            x.astype(np.float64)
        _fd_check(model, x, y.astype(np.float64), loss)
    finally:
        nn.set_floatx("float32")


@pytest.mark.parametrize("options", [dict(cls="LSTM", activation="relu", recurrent_activation="hard_sigmoid"),
                                     dict(cls="SimpleRNN", activation="elu", go_backwards=True),
                                     dict(cls="LSTM", activation="softsign", return_state=True)])
def test_general_path_gradients_match_finite_differences(options):
    """The general path (NumPy loop) of activations the kernels lack, with
    initial states fed from another input and a masked sequence."""
    options = dict(options)
    cls = getattr(nn.layers, options.pop("cls"))
    nn.set_floatx("float64")
    try:
        nn.set_random_seed(4)
        x_in, h_in = nn.Input((5, 3)), nn.Input((4,))
        states = [h_in] * (2 if cls is nn.LSTM else 1)
        out = cls(4, **options)(nn.layers.Masking()(x_in), initial_state=states)
        if isinstance(out, list):
            out = nn.layers.concatenate(out)
        model = nn.Model([x_in, h_in], nn.layers.Dense(1)(out))
        rng = np.random.default_rng(9)
        x = rng.standard_normal((5, 5, 3))
        x[2, 3:] = x[4, 1:] = 0.0
        _fd_check(model, [x, rng.standard_normal((5, 4))], rng.standard_normal((5, 1)), "mse")
    finally:
        nn.set_floatx("float32")


def test_shared_layer_gradient_is_the_sum_over_its_calls():
    """A layer called twice gets the sum of both calls' gradients; a layer
    whose output is unused by the loss gets zeros (not last step's)."""
    nn.set_random_seed(1)
    a = nn.Input((3,))
    dense = nn.layers.Dense(3)
    twice = dense(dense(a))
    model = nn.Model(a, twice)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.zeros((4, 3), np.float32)
    _, grads, _ = model.compute_gradients(x, y)
    W, b = (w.astype(np.float64) for w in dense.weights)
    x64 = x.astype(np.float64)
    h = x64 @ W + b
    out = h @ W + b
    d = 2 * out / out.size
    dW = h.T @ d + x64.T @ (d @ W.T)
    np.testing.assert_allclose(grads[0], dW, rtol=1e-5, atol=1e-6)


def test_functional_errors_name_the_problem():
    x = nn.Input((5, 3))
    with pytest.raises(ValueError, match="initial_state must hold 2 tensor"):
        nn.LSTM(4)(x, initial_state=[nn.Input((4,))])
    with pytest.raises(ValueError, match="expects a list of at least 2"):
        nn.layers.Concatenate()(x)
    with pytest.raises(ValueError, match="same shape except on axis"):
        nn.layers.concatenate([nn.Input((5, 3)), nn.Input((4, 3))])
    with pytest.raises(ValueError, match="inputs must have the same shape"):
        nn.layers.add([nn.Input((3,)), nn.Input((4,))])
    with pytest.raises(ValueError, match="graph is disconnected"):
        nn.Model(x, nn.layers.Dense(1)(nn.Input((2,))))
    dense = nn.layers.Dense(2)
    dense(nn.Input((3,)))
    with pytest.raises(ValueError, match="was built for input shape"):
        dense(nn.Input((4,)))
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(x)
    model = two_inputs(nn)
    with pytest.raises(ValueError, match="x must be a list of 2 arrays"):
        model.predict(np.zeros((3, 9, 3), np.float32))
    with pytest.raises(ValueError, match="the same number of samples"):
        model.predict([np.zeros((3, 9, 3), np.float32), np.zeros((2, 4), np.float32)])
    names = model._input_keys
    out = model.predict({names[0]: np.zeros((3, 9, 3), np.float32), names[1]: np.zeros((3, 4), np.float32)},
                        verbose=0)
    assert out.shape == (3, 1)
    with pytest.raises(ValueError, match="dict whose keys must be the model's input names"):
        model.predict({"nope": np.zeros((3, 4))})
    two_out = nn.Model(x, [nn.layers.LSTM(2)(x), nn.layers.GRU(3)(x)])
    outs = two_out.predict(np.zeros((4, 5, 3), np.float32), batch_size=3, verbose=0)
    assert [o.shape for o in outs] == [(4, 2), (4, 3)]
    with pytest.raises(ValueError, match="GRU: recurrent_dropout is not supported"):
        nn.GRU(3, recurrent_dropout=0.1)


def two_outputs(m):
    """One LSTM, two heads: a regression and a 3-class softmax."""
    x = m.Input((5, 3))
    h = m.layers.LSTM(4, return_sequences=True)(x)
    seq = m.layers.TimeDistributed(m.layers.Dense(2), name="steps")(h)
    a = m.layers.GRU(4)(h)
    return m.Model(x, [m.layers.Dense(1, name="reg")(a), m.layers.Dense(3, activation="softmax", name="cls")(a), seq])


@pytest.mark.parametrize("form", ["lists", "dicts"])
def test_several_outputs_train_and_log_as_in_keras(form, tmp_path):
    """Keras's several outputs: a loss per output (list or dict by output
    name), loss_weights, metrics per output, targets and sample weights per
    output; the logs hold the total loss, <output>_loss and
    <output>_<metric>, in Keras's order; histories of a fit with validation."""
    rng = np.random.default_rng(11)
    theirs, mine = built_pair(two_outputs, rng)
    x = rng.standard_normal((12, 5, 3)).astype(np.float32)
    ys = [rng.standard_normal((12, 1)).astype(np.float32), rng.integers(0, 3, 12),
          rng.standard_normal((12, 5, 2)).astype(np.float32)]
    sw = [rng.uniform(0.5, 2, 12), None, rng.uniform(0.5, 2, (12, 5))]
    names = ["reg", "cls", "steps"]
    assert mine.output_names == theirs.output_names == names
    if form == "lists":
        spec = dict(loss=["mse", "sparse_categorical_crossentropy", "mae"], loss_weights=[1.0, 0.5, 2.0],
                    metrics=[["mae"], ["accuracy"], []])
        y, w = ys, sw
    else:
        spec = dict(loss={"reg": "mse", "cls": "sparse_categorical_crossentropy", "steps": "mae"},
                    loss_weights={"cls": 0.5, "reg": 1.0, "steps": 2.0}, metrics={"cls": "accuracy", "reg": ["mae"]})
        y = dict(zip(names, ys))
        w = None  # Keras 3.15 matches sample weights to dict targets inconsistently (list or dict both fail)
    for model, m in ((theirs, keras), (mine, nn)):
        model.compile(optimizer=m.optimizers.SGD(0.1), **spec)
    np.testing.assert_allclose(mine.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    ours, keras_logs = mine.train_on_batch(x, y, sample_weight=w, return_dict=True), \
        theirs.train_on_batch(x, y, sample_weight=w, return_dict=True)
    assert list(ours) == list(keras_logs)
    for key in keras_logs:
        assert ours[key] == pytest.approx(keras_logs[key], rel=1e-5), key
    same_weights(mine, theirs)
    h_mine = mine.fit(x, y, sample_weight=w, batch_size=5, epochs=2, shuffle=False, validation_split=0.25,
                      verbose=0).history
    h_theirs = theirs.fit(x, y, sample_weight=w, batch_size=5, epochs=2, shuffle=False, validation_split=0.25,
                          verbose=0).history
    assert sorted(h_mine) == sorted(h_theirs)
    for key in h_theirs:
        np.testing.assert_allclose(h_mine[key], h_theirs[key], rtol=1e-4, err_msg=key)
    preds = mine.predict(x, verbose=0)
    for a, b in zip(preds, theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, **TOL)
    mine.save(tmp_path / "m.npz")
    again = nn.load_model(tmp_path / "m.npz")
    assert again.evaluate(x, y, verbose=0, return_dict=True) == mine.evaluate(x, y, verbose=0, return_dict=True)
    with pytest.raises(ValueError, match="class_weight is only supported for models of one output"):
        mine.fit(x, y, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="y must be a list of 3 arrays"):
        mine.evaluate(x, ys[0], verbose=0)
    with pytest.raises(ValueError, match="give one entry per output"):
        mine.compile(optimizer="sgd", loss=["mse", "mse"])
    with pytest.raises(ValueError, match="unknown output names"):
        mine.compile(optimizer="sgd", loss={"nope": "mse"})


@pytest.mark.parametrize("name", sorted(MODELS) + ["two_outputs"])
def test_keras_files_of_functional_models_go_both_ways(name, tmp_path):
    """A functional model (and the new layers) saved by Keras loads in
    rnn_fast with Keras's names, weights, compile settings and optimizer
    state; saved by rnn_fast, Keras's load_model reads it; both predict
    alike and train on to the same weights."""
    make = MODELS.get(name, two_outputs)
    rng = np.random.default_rng(12)
    keras.utils.set_random_seed(0)
    theirs = make(keras)
    theirs.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32) for w in theirs.get_weights()])
    if name == "two_outputs":
        x = rng.standard_normal((8, 5, 3)).astype(np.float32)
        y = [rng.standard_normal((8, 1)).astype(np.float32), rng.integers(0, 3, 8),
             rng.standard_normal((8, 5, 2)).astype(np.float32)]
        spec = dict(loss=["mse", "sparse_categorical_crossentropy", "mae"], loss_weights=[1.0, 0.5, 2.0],
                    metrics=[["mae"], ["accuracy"], None])
    else:
        x, y, loss = data_for(name, rng)
        spec = dict(loss=loss)
    theirs.compile(optimizer=keras.optimizers.Adam(0.01), **spec)
    if name != "stock_relu":  # (dropout: the steps below would differ)
        theirs.train_on_batch(x, y)
    theirs.save(tmp_path / "k.keras")
    mine = nn.load_model(tmp_path / "k.keras")
    assert type(mine).__name__ == ("Sequential" if name == "stock_relu" else "Model")
    if name == "residual_sequence":  # Keras's order also follows its mask operations (see built_pair)
        assert sorted(l.name for l in mine.layers) == sorted(l.name for l in theirs.layers)
    else:
        assert [l.name for l in mine.layers] == [l.name for l in theirs.layers]
    if name != "stock_relu":
        assert mine.output_names == theirs.output_names
    outs = zip(*(np.atleast_1d(m.predict(x, verbose=0)) if name != "two_outputs" else m.predict(x, verbose=0)
                 for m in (mine, theirs))) if name == "two_outputs" else \
        [(mine.predict(x, verbose=0), theirs.predict(x, verbose=0))]
    for a, b in outs:
        np.testing.assert_allclose(a, b, **TOL)
    if name == "stock_relu":
        return
    mine.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    for a, b in (zip(again.predict(x, verbose=0), mine.predict(x, verbose=0)) if name == "two_outputs"
                 else [(again.predict(x, verbose=0), mine.predict(x, verbose=0))]):
        np.testing.assert_allclose(a, b, **TOL)
    # the optimizer's state crossed both ways: one more step lands on the same weights
    mine.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    again.train_on_batch(x, y)
    same_weights(mine, theirs, name != "residual_sequence", rtol=2e-4, atol=2e-5)
    for a, b in zip(again.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_flatten_time_distributed_and_merges_gradients_match_finite_differences():
    nn.set_floatx("float64")
    try:
        nn.set_random_seed(5)
        x = nn.layers.Input((4, 3))
        h = nn.layers.LSTM(3, return_sequences=True, activation="relu")(x)
        t = nn.layers.TimeDistributed(nn.layers.Dense(2, activation="tanh"))(h)
        flat = nn.layers.Flatten()(nn.layers.concatenate([t, nn.layers.multiply([h, h])], axis=-1))
        model = nn.Model(x, nn.layers.Dense(2)(nn.layers.average([nn.layers.Dense(5)(flat), nn.layers.Dense(5)(flat)])))
        rng = np.random.default_rng(10)
        _fd_check(model, rng.standard_normal((3, 4, 3)), rng.standard_normal((3, 2)), "mse")
    finally:
        nn.set_floatx("float32")
