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

from conftest import floatx  # noqa: E402
from rnn_fast import nn  # noqa: E402
from rnn_fast.nn import callbacks as C  # noqa: E402
from rnn_fast.nn import layers as L  # noqa: E402
from rnn_fast.nn import losses  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
              pytest.mark.filterwarnings("ignore:Your input ran out of data"),
              pytest.mark.filterwarnings("ignore:`shuffle=True` was passed")]

TOL = dict(rtol=2e-5, atol=2e-6)  # float32, sums in different orders
TRAIN_TOL = dict(rtol=1e-4, atol=1e-5)  # after a few epochs of updates
RNG = np.random.default_rng(11)


float32 = floatx("float32")  # every test here runs in float32


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


# ---------------------------------------------------------------------------
# 7. the callback protocol, in Keras's order, with Keras's logs
# ---------------------------------------------------------------------------
class Recorder:
    """Any object with callback methods (no base class): records each call."""

    def __init__(self):
        self.calls = []

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)

        def hook(*args, logs=None):
            index = args
            if len(args) == 2 or (len(args) == 1 and not isinstance(args[0], int)):
                *index, logs = args
            self.calls.append((name, tuple(index), None if logs is None else
                               {k: v for k, v in logs.items() if k != "outputs"}))
        return hook


def assert_calls(mine, theirs):
    assert [c[:2] for c in mine] == [c[:2] for c in theirs]
    for a, b in zip(mine, theirs):
        if b[2] is None or not b[2]:
            assert not a[2], (a, b)
            continue
        assert list(a[2]) == list(b[2]), (a, b)
        np.testing.assert_allclose(list(a[2].values()), list(b[2].values()), err_msg=str(b[:2]), **TRAIN_TOL)


def test_every_callback_method_is_called_as_keras_calls_it():
    x, y = binary_data(20)
    xv, yv = binary_data(6)

    def compile_args(m):
        return dict(optimizer=opt(m), loss="binary_crossentropy", metrics=["accuracy"])
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1, activation="sigmoid")], x.shape[1:], compile_args)
    rec_k, rec_m = Recorder(), Recorder()
    kw = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(xv, yv))
    theirs.fit(x, y, callbacks=[rec_k], **kw)
    mine.fit(x, y, callbacks=[rec_m], **kw)
    assert_calls(rec_m.calls, rec_k.calls)
    for model, rec in ((theirs, rec_k), (mine, rec_m)):
        rec.calls.clear()
        model.evaluate(xv, yv, batch_size=4, verbose=0, callbacks=[rec])
        model.predict(xv, batch_size=4, verbose=0, callbacks=[rec])
    assert_calls(rec_m.calls, rec_k.calls)
    assert [c[0] for c in rec_m.calls][:2] == ["on_test_begin", "on_test_batch_begin"]


def test_a_keras_callback_object_runs_in_rnn_fast():
    x, y = binary_data(16)
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))),
                                        on_train_batch_end=lambda batch, logs: seen.append(batch))
    model = nn.Sequential([L.SimpleRNN(3, input_shape=x.shape[1:]), L.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    assert seen == [0, 1, (0, ["loss"]), 0, 1, (1, ["loss"])]
    with pytest.raises(TypeError, match="has none of the callback methods"):
        model.fit(x, y, verbose=0, callbacks=[object()])


# ---------------------------------------------------------------------------
# 2. EarlyStopping: Keras 3's rules, on a scripted monitor
# ---------------------------------------------------------------------------
def scripted(values, module, key="score"):
    """A callback that logs values[epoch] as `key` before the callbacks after it read the logs."""
    class Script(module.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs[key] = values[epoch]
    return Script()


SCORES = [1.0, 0.8, 0.85, 0.79, 0.795, 0.9, 0.7, 0.95, 0.96, 0.97, 0.98, 0.99]


@pytest.mark.parametrize("kw", [dict(patience=0), dict(patience=1), dict(patience=2), dict(patience=2, min_delta=0.02),
                                dict(patience=1, mode="max"), dict(patience=1, baseline=0.75),
                                dict(patience=1, start_from_epoch=3), dict(patience=2, restore_best_weights=True),
                                dict(patience=20, restore_best_weights=True),
                                dict(patience=1, restore_best_weights=True, start_from_epoch=4)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_early_stopping_stops_and_restores_as_keras_does(kw):
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.GRU(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=opt(m, 0.2), loss="mse"))
    runs = []
    for model, module in ((theirs, keras), (mine, nn)):
        es = module.callbacks.EarlyStopping(monitor="score", mode=kw.get("mode", "min"),
                                            **{k: v for k, v in kw.items() if k != "mode"})
        h = model.fit(x, y, batch_size=8, epochs=len(SCORES), shuffle=False, verbose=0,
                      callbacks=[scripted(SCORES, module), es])
        runs.append((len(h.epoch), es.stopped_epoch, es.best, es.best_epoch, es.wait))
    assert runs[0] == pytest.approx(runs[1])
    assert_weights(mine, theirs)


def test_early_stopping_on_a_metric_finds_its_direction_as_keras_does():
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.SimpleRNN(3), m.Dense(1, activation="sigmoid")], x.shape[1:],
                        lambda m: dict(optimizer=opt(m), loss="binary_crossentropy",
                                       metrics=["accuracy", "mae", m.metrics.AUC(name="auc")]))
    for monitor, op in (("accuracy", np.greater), ("val_mae", np.less), ("auc", np.greater), ("loss", np.less)):
        es = C.EarlyStopping(monitor=monitor)
        es.set_model(mine)
        mine.fit(x, y, epochs=1, verbose=0)
        es._set_monitor_op()
        assert es.monitor_op is op, monitor
    es = C.EarlyStopping(monitor="my_number")
    with pytest.raises(ValueError, match="Pass `mode='max'` in order to monitor based on the highest"):
        mine.fit(x, y, epochs=2, verbose=0, callbacks=[scripted([1, 2], nn, "my_number"), es])


# ---------------------------------------------------------------------------
# Keras's other callbacks
# ---------------------------------------------------------------------------
def test_model_checkpoint_saves_when_keras_saves(tmp_path):
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1)], x.shape[1:], lambda m: dict(optimizer=opt(m), loss="mse"))
    saved = []
    for model, module, where in ((theirs, keras, tmp_path / "k"), (mine, nn, tmp_path / "m")):
        cbs = [scripted(SCORES, module),
               module.callbacks.ModelCheckpoint(str(where / "best-{epoch:02d}-{score:.2f}.keras"), monitor="score",
                                                mode="min", save_best_only=True),
               module.callbacks.ModelCheckpoint(str(where / "every.weights.h5"), save_weights_only=True,
                                                save_freq=3)]
        model.fit(x, y, batch_size=4, epochs=6, shuffle=False, verbose=0, callbacks=cbs)
        saved.append(sorted(p.name for p in where.iterdir()))
    assert saved[0] == saved[1] == ["best-01-1.00.keras", "best-02-0.80.keras", "best-04-0.79.keras",
                                    "every.weights.h5"]
    # Each side reads the other's files: the best model, and the weights.
    back = nn.load_model(tmp_path / "k" / "best-04-0.79.keras", compile=False)
    theirs_best = keras.models.load_model(tmp_path / "m" / "best-04-0.79.keras", compile=False)
    assert_weights(back, theirs_best)
    probe = nn.Sequential([L.LSTM(3), L.Dense(1)])
    probe.build((None,) + x.shape[1:])
    probe.load_weights(tmp_path / "k" / "every.weights.h5")
    assert_weights(probe, theirs)
    theirs.load_weights(tmp_path / "m" / "every.weights.h5")
    assert_weights(mine, theirs)


def test_reduce_lr_on_plateau_and_learning_rate_scheduler_as_keras():
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.SimpleRNN(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=m.optimizers.SGD(0.1, momentum=0.5), loss="mse"))
    for model, module in ((theirs, keras), (mine, nn)):
        model.fit(x, y, batch_size=4, epochs=len(SCORES), shuffle=False, verbose=0,
                  callbacks=[scripted(SCORES, module),
                             module.callbacks.ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=1, cooldown=1,
                                                                min_lr=0.02)])
    assert mine.history.history["learning_rate"] == pytest.approx(theirs.history.history["learning_rate"])
    assert len(set(mine.history.history["learning_rate"])) > 2
    assert_weights(mine, theirs)
    for model, module in ((theirs, keras), (mine, nn)):
        model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0,
                  callbacks=[module.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9 if epoch else 0.3)])
    assert_history(mine.history, theirs.history)
    assert_weights(mine, theirs)


def test_csv_logger_writes_what_keras_writes(tmp_path):
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.GRU(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=opt(m), loss="mse", metrics=["mae"]))
    rows = []
    for model, module, name in ((theirs, keras, "k.csv"), (mine, nn, "m.csv")):
        for append in (False, True):
            model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(x[:4], y[:4]),
                      callbacks=[module.callbacks.CSVLogger(str(tmp_path / name), separator=";", append=append)])
        with open(tmp_path / name) as f:
            rows.append(list(csv.reader(f, delimiter=";")))
    assert rows[0][0] == rows[1][0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert len(rows[0]) == len(rows[1]) == 5
    for a, b in zip(rows[1][1:], rows[0][1:]):
        np.testing.assert_allclose([float(v) for v in a], [float(v) for v in b], **TRAIN_TOL)


def test_terminate_on_nan_stops_at_the_batch_keras_stops_at():
    x, y = binary_data(16)
    x[9, 2, 1] = np.nan  # the third batch of 4
    theirs, mine = pair(lambda m: [m.SimpleRNN(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=opt(m), loss="mse"))
    recs = []
    for model, module in ((theirs, keras), (mine, nn)):
        rec = Recorder()
        model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                  callbacks=[module.callbacks.TerminateOnNaN(), rec])
        recs.append([c[:2] for c in rec.calls])
    assert recs[0] == recs[1]
    assert ("on_train_batch_end", (2,)) in recs[1] and ("on_train_batch_begin", (3,)) not in recs[1]
    model = nn.Sequential([L.SimpleRNN(3, input_shape=x.shape[1:]), L.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[nn.callbacks.TerminateOnNaN(raise_error=True)])


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda s: s.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5),
    lambda s: s.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5, staircase=True),
    lambda s: s.PiecewiseConstantDecay([2, 5], [0.1, 0.05, 0.01]),
    lambda s: s.CosineDecay(0.1, decay_steps=6, alpha=0.1),
    lambda s: s.CosineDecay(0.0, decay_steps=4, warmup_target=0.2, warmup_steps=3),
], ids=["exponential", "staircase", "piecewise", "cosine", "cosine-warmup"])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "RMSprop"])
def test_learning_rate_schedules_train_as_in_keras(make, optimizer):
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=getattr(m.optimizers, optimizer)(
                            learning_rate=make(m.optimizers.schedules)), loss="mse"))
    for step in range(12):
        assert mine.optimizer.learning_rate == pytest.approx(float(theirs.optimizer.learning_rate), rel=1e-6), step
        theirs.train_on_batch(x[:4], y[:4])
        mine.train_on_batch(x[:4], y[:4])
    assert_weights(mine, theirs)
    with pytest.raises(TypeError, match="not settable"):
        mine.optimizer.learning_rate = 0.1


# ---------------------------------------------------------------------------
# 4. trainable = False
# ---------------------------------------------------------------------------
def test_a_frozen_model_or_layer_trains_as_in_keras():
    x, y = binary_data(16)

    def make(m):
        return [m.LSTM(4, kernel_regularizer=(keras.regularizers if m is keras.layers else nn).l2(0.1)), m.Dense(1)]
    theirs, mine = pair(make, x.shape[1:], lambda m: dict(optimizer=opt(m), loss="mse"))
    before = mine.get_weights()
    for model in (theirs, mine):
        model.trainable = False
    for model in (theirs, mine):
        with pytest.warns(UserWarning, match="does not have any trainable weights"):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b, c in zip(mine.get_weights(), theirs.get_weights(), before):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    lines = []
    mine.summary(print_fn=lines.append)
    assert "Trainable params: 0" in lines[0]
    # The first layer alone frozen: the Dense trains, the loss has no penalty of frozen weights (Keras's
    # regularization losses come from trainable weights only).
    theirs.trainable = mine.trainable = True
    theirs.layers[0].trainable = mine.layers[0].trainable = False
    theirs.compile(optimizer=opt(keras), loss="mse")
    mine.compile(optimizer=opt(nn), loss="mse")
    assert_history(mine.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0),
                   theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0))
    assert_weights(mine, theirs)
    np.testing.assert_array_equal(mine.layers[0].get_weights()[0], before[0])


# ---------------------------------------------------------------------------
# 3. dropout: one mask per sequence
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
def test_recurrent_dropout_of_inputs_keeps_one_mask_per_sequence_as_keras(cls):
    """With dropout, a layer sees x * m, m of shape (N, 1, D): a sample's
    features dropped at every step alike (Keras). Shown on Keras's SimpleRNN
    made an identity on positive inputs (relu, kernel I, recurrent 0: its
    output is its input, so of ones m itself, per step), and on
    rnn_fast's layers as: the dropped output equals the undropped output of
    x * m for the m recovered from the identity run with the same seed."""
    N, T, D = 64, 7, 5
    ones = np.ones((N, T, D), np.float32)
    eye = [np.eye(D, dtype=np.float32), np.zeros((D, D), np.float32), np.zeros(D, np.float32)]
    k = keras.layers.SimpleRNN(D, activation="relu", dropout=0.5, return_sequences=True)
    k.build((None, T, D))
    k.set_weights(eye)
    masks = [keras.ops.convert_to_numpy(k(ones, training=True)), None]
    r = L.SimpleRNN(D, activation="relu", dropout=0.5, return_sequences=True)
    r.build((T, D))
    r.set_weights(eye)
    nn.set_random_seed(3)
    masks[1] = r.forward(ones, training=True)
    for m in masks:
        assert set(np.unique(m)) == {0.0, 2.0}
        np.testing.assert_array_equal(m, np.broadcast_to(m[:, :1], m.shape))  # the same at every step
        assert 0.35 < np.mean(m == 0) < 0.65
    layer = getattr(L, cls)(4, dropout=0.5, return_sequences=True)
    x = RNG.standard_normal((N, T, D)).astype(np.float32)
    layer.build((T, D))
    nn.set_random_seed(3)
    dropped = layer.forward(x, training=True)
    np.testing.assert_allclose(dropped, layer.forward(x * masks[1], training=False), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------
# custom losses and metrics, and the built-in losses added
# ---------------------------------------------------------------------------
def test_custom_metric_functions_and_new_losses_train_as_in_keras():
    x = RNG.standard_normal((16, 5, 3)).astype(np.float32)
    y = np.abs(RNG.standard_normal((16, 2))).astype(np.float32)

    def worst(y_true, y_pred):  # NumPy here, keras.ops there: the same function of the same arrays
        ops = np if isinstance(y_pred, np.ndarray) else keras.ops
        return ops.max(ops.abs(y_true - y_pred), axis=-1)
    for loss in ("huber", "msle", "mean_squared_logarithmic_error"):
        theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(2, activation="sigmoid")], x.shape[1:],
                            lambda m: dict(optimizer=opt(m, 0.3), loss=loss, metrics=[worst, "msle"]))
        assert_history(mine.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0),
                       theirs.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0))
        assert_weights(mine, theirs)
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(2)], x.shape[1:],
                        lambda m: dict(optimizer=opt(m, 0.3), loss=m.losses.Huber(delta=0.3)))
    assert_history(mine.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0),
                   theirs.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0))


class LogCosh(losses.Loss):
    """A custom loss as rnn_fast takes one: each row's value and its gradient."""

    def call(self, y_true, y_pred):
        return np.mean(np.log(np.cosh(y_pred - y_true)), axis=-1)

    def gradient(self, y_true, y_pred):
        return np.tanh(y_pred - y_true) / y_pred.shape[-1]


def test_a_custom_loss_with_its_gradient_trains_as_keras_with_the_same_function(tmp_path):
    x, y = binary_data(16)

    def log_cosh(y_true, y_pred):
        return keras.ops.mean(keras.ops.log(keras.ops.cosh(y_pred - y_true)), axis=-1)

    def squared(y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2, axis=-1)
    squared.gradient = lambda y_true, y_pred: 2 * (y_pred - y_true) / y_pred.shape[-1]
    sw = RNG.uniform(0, 2, len(x))
    for theirs_loss, mine_loss in ((log_cosh, LogCosh()), ("mse", squared)):
        theirs, mine = pair(lambda m: [m.GRU(3), m.Dense(1)], x.shape[1:], lambda m: dict(optimizer=opt(m), loss="mse"))
        theirs.compile(optimizer=opt(keras), loss=theirs_loss)
        mine.compile(optimizer=opt(nn), loss=mine_loss)
        fit = dict(batch_size=4, epochs=2, shuffle=False, verbose=0, sample_weight=sw)
        assert_history(mine.fit(x, y, **fit), theirs.fit(x, y, **fit))
        assert_weights(mine, theirs)
    with pytest.raises(TypeError, match="must come with its gradient"):
        mine.compile("sgd", loss=log_cosh)
    with pytest.raises(TypeError, match="must define gradient"):
        type("NoGrad", (losses.Loss,), {"call": lambda self, t, p: p})()
    mine.compile("sgd", loss=LogCosh(), metrics=[squared])
    mine.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="custom_objects"):
        nn.load_model(tmp_path / "m.npz")
    back = nn.load_model(tmp_path / "m.npz", custom_objects={"log_cosh": LogCosh, "squared": squared})
    assert isinstance(back.loss, LogCosh)


# ---------------------------------------------------------------------------
# data from generators and datasets
# ---------------------------------------------------------------------------
def batches_of(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_generators_and_datasets_train_as_in_keras():
    x, y = binary_data(20)
    xv, yv = binary_data(8)
    parts = batches_of(x, y, 6)

    class Dataset(keras.utils.PyDataset):  # Keras's base class; rnn_fast needs only __len__ and __getitem__
        def __init__(self, batches=parts):
            super().__init__()
            self.epochs, self.batches = 0, batches

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, i):
            return self.batches[i]

        def on_epoch_end(self):
            self.epochs += 1

    def forever():
        while True:
            yield from parts

    def compile_args(m):
        return dict(optimizer=opt(m), loss="binary_crossentropy", metrics=["accuracy"])
    cases = [
        (lambda: Dataset(), dict(epochs=3, shuffle=False)),
        (lambda: forever(), dict(epochs=3, steps_per_epoch=3)),
        (lambda: forever(), dict(epochs=3, steps_per_epoch=5)),  # epochs cross the data's end
        (lambda: (b for b in parts), dict(epochs=1)),  # a finite generator: one epoch
        (lambda: (x, y), dict(epochs=4, batch_size=6, shuffle=False, steps_per_epoch=3)),  # arrays, stepped
        (lambda: Dataset(), dict(epochs=4, shuffle=False, validation_data=lambda: Dataset(batches_of(xv, yv, 3)),
                                 validation_steps=2, validation_freq=2)),
        (lambda: Dataset(), dict(epochs=3, shuffle=False, validation_data=(xv, yv), validation_freq=[1, 3])),
    ]
    for make_data, kw in cases:
        theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1, activation="sigmoid")], x.shape[1:], compile_args)
        histories = []
        for model in (theirs, mine):
            data = make_data()
            args = data if isinstance(data, tuple) else (data,)
            fit = {k: v() if callable(v) else v for k, v in kw.items()}  # a fresh generator for each
            histories.append(model.fit(*args, verbose=0, **fit))
            if isinstance(data, Dataset):  # Keras once more: at fit's start, after a batch drawn to build
                assert data.epochs == kw["epochs"] + (model is theirs)
        assert_history(histories[1], histories[0])
        assert_weights(mine, theirs)
        assert mine.evaluate(Dataset(), verbose=0) == pytest.approx(theirs.evaluate(Dataset(), verbose=0), rel=1e-5)
        np.testing.assert_allclose(mine.predict(forever(), steps=2, verbose=0),
                                   theirs.predict(forever(), steps=2, verbose=0), **TOL)


def test_data_rnn_fast_cannot_take_is_refused_clearly():
    model = nn.Sequential([L.Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match="x must be an array, a PyDataset-like object"):
        model.fit(object(), verbose=0)
    with pytest.raises(TypeError, match="x is a dict; named inputs need a functional Model"):
        model.fit({"x": np.ones((2, 3))}, np.ones((2, 1)), verbose=0)
    with pytest.raises(ValueError, match="batch_size must not be given when x is a generator"):
        model.fit(iter([(np.ones((2, 3)), np.ones((2, 1)))]), batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="y must not be given when x is a generator"):
        model.fit(iter([(np.ones((2, 3)), np.ones((2, 1)))]), np.ones(2), verbose=0)
    with pytest.raises(ValueError, match=r"a batch must be x, \(x,\), \(x, y\)"):
        model.fit(iter([(1, 2, 3, 4)]), verbose=0)
    with pytest.raises(ValueError, match="must hold targets"):
        model.fit(iter([np.ones((2, 3))]), verbose=0)
    with pytest.raises(ValueError, match="validation_split needs array data"):
        model.fit(iter([(np.ones((2, 3)), np.ones((2, 1)))]), validation_split=0.5, verbose=0)
    with pytest.warns(UserWarning, match="ran out of data"):
        h = model.fit(iter([(np.ones((2, 3)), np.ones((2, 1)))]), epochs=3, verbose=0)
    assert h.epoch == [0]


# ---------------------------------------------------------------------------
# 5. saving under Keras's file names
# ---------------------------------------------------------------------------
def unnamed(config):
    """A Keras config without what differs between two equal models: names and object ids."""
    if isinstance(config, dict):
        return {k: unnamed(v) for k, v in config.items() if k not in ("name", "shared_object_id")}
    if isinstance(config, (list, tuple)):  # a shape is a tuple in memory, a list once read from JSON
        return [unnamed(v) for v in config]
    return config


@pytest.mark.parametrize("make, shape", [
    (lambda m: [m.LSTM(4, return_sequences=True), m.Dropout(0.1), m.GRU(3), m.Dense(2, activation="softmax")],
     (5, 3)),
    (lambda m: [m.Embedding(10, 4, mask_zero=True), m.Bidirectional(m.LSTM(3)), m.Dense(1)], (6,)),
    (lambda m: [m.Masking(), m.SimpleRNN(3, activation="relu", return_sequences=True, go_backwards=True),
                m.Dense(2, activation="sigmoid")], (5, 3)),
], ids=["lstm-gru", "embedding-bidirectional", "masking-simple-rnn"])
def test_a_keras_file_rnn_fast_writes_is_read_by_keras(tmp_path, make, shape):
    if len(shape) == 1:
        x = RNG.integers(1, 10, (4,) + shape)
        x[1:, 4:] = 0  # right-padded
    else:
        x = RNG.standard_normal((4,) + shape).astype(np.float32)
    theirs, mine = pair(make, shape, lambda m: dict(optimizer=m.optimizers.Adam(0.01), loss="mse",
                                                    metrics=["mae"]))
    mine.save(tmp_path / "model.keras")
    back = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), mine.predict(x, verbose=0), **TOL)
    assert unnamed(back.get_config()["layers"]) == unnamed(theirs.get_config()["layers"])
    assert type(back.optimizer).__name__ == "Adam" and float(back.optimizer.learning_rate) == pytest.approx(0.01)
    again = nn.load_model(tmp_path / "model.keras")
    assert_weights(again, mine, tol=dict(rtol=0, atol=0))


def test_the_legacy_h5_format_is_refused_by_name(tmp_path):
    model = nn.Sequential([L.Dense(1, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"legacy HDF5 model format \(.h5\) is not written by rnn_fast"):
        model.save(tmp_path / "model.h5")
    assert not (tmp_path / "model.h5").exists()


@pytest.mark.parametrize("optimizer", [
    lambda m: m.optimizers.Adam(0.01), lambda m: m.optimizers.Adam(0.01, amsgrad=True),
    lambda m: m.optimizers.SGD(0.05, momentum=0.9), lambda m: m.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda m: m.optimizers.RMSprop(m.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5)),
], ids=["adam", "amsgrad", "sgd-momentum", "rmsprop-centered", "rmsprop-schedule"])
def test_optimizer_state_crosses_a_keras_file_both_ways(tmp_path, optimizer):
    """Trained some steps on one side, saved, loaded on the other: the next
    steps are the same as where training continued without the file."""
    x, y = binary_data(16)
    theirs, mine = pair(lambda m: [m.LSTM(3), m.Dense(1)], x.shape[1:],
                        lambda m: dict(optimizer=optimizer(m), loss="mse"))
    for step in range(3):
        mine.train_on_batch(x[:8], y[:8])
        theirs.train_on_batch(x[:8], y[:8])
    mine.save(tmp_path / "m.keras")
    theirs.save(tmp_path / "k.keras")
    from_mine, from_theirs = keras.models.load_model(tmp_path / "m.keras"), nn.load_model(tmp_path / "k.keras")
    assert from_theirs.optimizer.iterations == 3
    for model in (mine, theirs, from_mine, from_theirs):
        for step in range(2):
            model.train_on_batch(x[8:], y[8:])
    assert_weights(from_mine, theirs)
    assert_weights(from_theirs, mine)
    assert_weights(mine, theirs)


def test_binary_accuracy_on_soft_labels_counts_as_keras_does():
    """A soft label (0.7) equals neither thresholded prediction: never right, in Keras."""
    y_true = np.array([[0.0], [1.0], [0.7], [0.7]], np.float32)
    y_pred = np.array([[0.2], [0.9], [0.9], [0.1]], np.float32)
    theirs = keras.metrics.BinaryAccuracy()
    theirs.update_state(y_true, y_pred)
    mine = nn.metrics.BinaryAccuracy()
    mine.update_state(y_true, y_pred)
    assert mine.result() == pytest.approx(float(theirs.result())) == 0.5
