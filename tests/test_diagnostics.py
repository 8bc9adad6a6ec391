"""Gradient-flow diagnostics (rnn_fast.diagnostics): the issue's target (a
tanh RNN with Wh = a*I gives the ratio a^(T-1)), every step's gradient
against the sequence kernels' own backward, the step Jacobians against
their formula, models and layers (Bidirectional, go_backwards, the loss's
gradient), the fit callback, the plot, and bad input."""
import warnings

import numpy as np
import pytest

import rnn_fast
from rnn_fast import nn
from rnn_fast.diagnostics import GradientFlow, GradientFlowMonitor, cell_flow, gradient_flow, plot_gradient_flow


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_recurrence_gives_a_to_the_T_minus_1(dtype):
    a, T, H = 0.9, 50, 16
    x = np.zeros((4, T, 3), dtype)
    h0 = np.full((4, H), 1e-4, dtype)  # small: tanh' = 1 - h^2 ~ 1
    f = cell_flow("rnn", x, h0, np.ones((3, H), dtype), (a * np.eye(H)).astype(dtype), np.zeros(H, dtype),
                  jacobians=True)
    assert f.ratios[-1] == pytest.approx(a ** (T - 1), rel=0.05)
    assert f.rate == pytest.approx(a, rel=1e-3)
    np.testing.assert_allclose(f.jacobian_norms, a, rtol=1e-3)
    assert f.verdict == "stable" and f.horizon is None  # 0.9^49 = 0.006 > 1e-3
    assert f.horizon_estimate == pytest.approx(np.log(1e-3) / np.log(a), rel=1e-3)
    # The same through an nn layer given those weights.
    layer = nn.SimpleRNN(H, dtype=dtype)
    layer.build((T, 3))
    layer.set_weights([np.ones((3, H)), a * np.eye(H), np.zeros(H)])
    g = gradient_flow(layer, x)[0]
    assert g.ratios[-1] == pytest.approx(a ** (T - 1), rel=0.05)


def rnn_args(cell, N=3, T=12, D=4, H=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    args = dict(x=rng.standard_normal((N, T, D)).astype(dtype), h0=rng.standard_normal((N, H)).astype(dtype) * 0.5,
                Wx=(rng.standard_normal((D, G)) / 2).astype(dtype), Wh=(rng.standard_normal((H, G)) / 2).astype(dtype),
                b=(rng.standard_normal(G) * 0.1).astype(dtype))
    if cell == "gru":
        args["bh"] = (rng.standard_normal(G) * 0.1).astype(dtype)
    if cell == "lstm":
        args["c0"] = rng.standard_normal((N, H)).astype(dtype) * 0.5
    return args


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_step_matches_the_sequence_kernels_backward(cell):
    """norms[k] is |dL/dstate| k steps before the last: the dh0 (and dc0) of
    the sequence backward over the last k steps, from the state before them."""
    args = rnn_args(cell)
    x, h0, T = args["x"], args["h0"], args["x"].shape[1]
    weights = {k: v for k, v in args.items() if k not in ("x", "h0", "c0")}
    forward = getattr(rnn_fast, f"{cell}_forward")
    backward = getattr(rnn_fast, f"{cell}_backward")
    lstm = {"c0": args["c0"]} if cell == "lstm" else {}
    dh = np.zeros(x.shape[:2] + (h0.shape[1],))
    dh[:, -1] = np.random.default_rng(1).standard_normal(h0.shape)
    f = cell_flow(cell, **args, dh=dh)
    _, hT, *cT, _ = forward(x, h0, **weights, return_state=True, **lstm)
    for k in range(1, T):
        _, h, *c, _ = forward(x[:, :T - k], h0, **weights, return_state=True, cache=False, **lstm)
        out = forward(x[:, T - k:], h, **weights, **({"c0": c[0]} if cell == "lstm" else {}))
        grads = backward(dh[:, T - k:], out[-1], **({"return_dc0": True} if cell == "lstm" else {}))
        want = np.hypot(np.linalg.norm(grads[1]), np.linalg.norm(grads[5])) if cell == "lstm" else \
            np.linalg.norm(grads[1])
        assert f.norms[k] == pytest.approx(want, rel=1e-10), k
    # Running in reverse is running the time-reversed sequence.
    back = cell_flow(cell, **{**args, "x": x[:, ::-1].copy()}, reverse=True, dh=dh[:, ::-1].copy())
    np.testing.assert_allclose(back.norms, f.norms, rtol=1e-12)


def test_jacobians_are_the_step_derivative():
    args = rnn_args("rnn", N=2, T=6, H=4)
    f = cell_flow("rnn", **args, jacobians=True, jacobian_samples=2)
    x, h = args["x"], args["h0"]
    hs = [h]
    for t in range(6):
        hs.append(np.tanh(x[:, t] @ args["Wx"] + hs[-1] @ args["Wh"] + args["b"]))
    for t in range(6):
        # d h_t / d h_(t-1) = diag(1 - h_t^2) Wh^T, per sample
        J = [np.diag(1 - hs[t + 1][n] ** 2) @ args["Wh"].T for n in range(2)]
        want = np.mean([np.linalg.norm(j, 2) for j in J])
        assert f.jacobian_norms[5 - t] == pytest.approx(want, rel=1e-10)


def test_lstm_jacobians_cover_h_and_c():
    args = rnn_args("lstm", N=2, T=3, H=3)
    f = cell_flow("lstm", **args, jacobians=True)
    eps, n = 1e-6, 0
    x, h0, c0 = args["x"], args["h0"], args["c0"]
    w = (args["Wx"], args["Wh"], args["b"])
    # The last step's Jacobian of (h, c) by central differences.
    hs, cs = h0, c0
    for t in range(2):
        hs, cs, _ = rnn_fast.lstm_step_forward(x[:, t], hs, cs, *w)
    J = np.zeros((6, 6))
    for j in range(6):
        d = np.zeros((2, 6))
        d[n, j] = eps
        up = rnn_fast.lstm_step_forward(x[:, 2], hs + d[:, :3], cs + d[:, 3:], *w)
        dn = rnn_fast.lstm_step_forward(x[:, 2], hs - d[:, :3], cs - d[:, 3:], *w)
        J[:, j] = np.concatenate([up[0][n] - dn[0][n], up[1][n] - dn[1][n]]) / (2 * eps)
    mine = cell_flow("lstm", **{**args, "x": x[:1], "h0": h0[:1], "c0": c0[:1]}, jacobians=True)
    assert mine.jacobian_norms[0] == pytest.approx(np.linalg.norm(J, 2), rel=1e-6)
    assert f.cell_norms is not None and f.cell_norms[0] == 0  # the unit gradient is injected into h


def test_models_layers_and_the_loss_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 20, 3)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)
    model = nn.Sequential([nn.LSTM(6, return_sequences=True, go_backwards=True),
                           nn.Bidirectional(nn.GRU(4, return_sequences=True)),
                           nn.SimpleRNN(5, return_sequences=True), nn.SimpleRNN(3), nn.Dense(1)])
    model.compile("adam", "mse")
    flows = gradient_flow(model, x)
    assert [f.name for f in flows] == [model.layers[0].name, f"{model.layers[1].name}/forward",
                                       f"{model.layers[1].name}/backward", model.layers[2].name,
                                       model.layers[3].name]
    assert [f.cell for f in flows] == ["lstm", "gru", "gru", "rnn", "rnn"]
    for f in flows:
        assert f.norms.shape == (20,) and f.norms[0] == pytest.approx(1.0, rel=1e-5)
    loss_flows = gradient_flow(model, x, y, source="loss")
    last = loss_flows[-1]  # the last SimpleRNN: the loss reaches it at its last step only
    dense = model.layers[-1]
    pred = model.predict(x, verbose=0)
    dpred = 2 * (pred - y) / pred.size
    assert last.norms[0] == pytest.approx(np.linalg.norm(dpred @ dense.weights[0].T), rel=1e-4)
    assert loss_flows[-2].verdict == "n/a"  # fed at every step: no propagation to judge
    # The probes are gone and the weights untouched; a stateful layer keeps its state.
    assert all(layer._probe is None for layer in (model.layers[0], model.layers[2], model.layers[3]))


def test_masked_batches_and_bad_input_are_refused():
    x = np.zeros((2, 5, 3), np.float32)
    x[0, 3:] = 0
    model = nn.Sequential([nn.Masking(0.0), nn.LSTM(4)])
    with pytest.raises(ValueError, match="masked batch"):
        gradient_flow(model, x + np.array([1, 1, 1], np.float32) * (np.arange(5)[None, :, None] < 3))
    with pytest.raises(ValueError, match="no recurrent layer"):
        gradient_flow(nn.Sequential([nn.Dense(2)]), x)
    with pytest.raises(TypeError, match="must be a Sequential or a layer"):
        gradient_flow(object(), x)
    with pytest.raises(ValueError, match="source must be 'last' or 'loss'"):
        gradient_flow(model, x, source="all")
    with pytest.raises(ValueError, match="needs the targets y"):
        gradient_flow(nn.Sequential([nn.LSTM(4)]), x, source="loss")
    args = rnn_args("rnn")
    with pytest.raises(ValueError, match="cell must be 'rnn', 'lstm' or 'gru'"):
        cell_flow("elman", **args)
    with pytest.raises(ValueError, match=r"rnn_forward\(\): Wh must have shape"):
        cell_flow("rnn", **{**args, "Wh": args["Wh"][:-1]})
    with pytest.raises(ValueError, match="dh must have the shape of h"):
        cell_flow("rnn", **args, dh=np.zeros((1, 2, 3)))
    with pytest.raises(TypeError, match="a GRU needs bh"):
        cell_flow("gru", **{k: v for k, v in rnn_args("gru").items() if k != "bh"})
    with pytest.raises(ValueError, match="jacobian_samples must be an integer >= 1"):
        cell_flow("rnn", **args, jacobian_samples=0)


def test_monitor_records_and_warns():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 30, 2)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = nn.Sequential([nn.SimpleRNN(8, kernel_initializer="zeros"), nn.Dense(1)])
    model.compile("sgd", "mse")
    model.build((None, 30, 2))
    model.layers[0].weights[1][...] = 0.3 * np.eye(8)  # the gradient falls 0.3x a step: vanishing
    monitor = GradientFlowMonitor(x[:4], every=2)
    with pytest.warns(RuntimeWarning, match="gradient is vanishing"):
        model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[monitor])
    assert [h["epoch"] for h in monitor.history] == [1, 3]
    name = model.layers[0].name
    assert isinstance(monitor.history[0][name], GradientFlow)
    assert monitor.ratios(name).shape == (2, 30)
    quiet = GradientFlowMonitor(x[:4], warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[quiet])
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        GradientFlowMonitor(x, every=0)


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    f = cell_flow("rnn", **rnn_args("rnn", T=30))
    path = tmp_path / "flow.png"
    fig = plot_gradient_flow([f], path=str(path), title="t")
    assert path.stat().st_size > 1000 and fig.axes[0].get_yscale() == "log"
