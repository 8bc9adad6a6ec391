"""The implementations the benchmark times against each other, each as three
closures over the same inputs: inference forward, training forward (keeping
what its backward needs) and forward+backward.

- ``rnn_fast``: the compiled kernels; for inference, each layer's weights
  packed once beforehand (``LSTMInference`` / ``RNNInference``), as ONNX
  Runtime packs them once per session.
- ``numpy``: the loop a NumPy user writes when speed matters: x·Wx for every
  step in one GEMM, then one ``h @ Wh`` per step, in-place element-wise work,
  time-major buffers; the backward likewise, weight gradients as one GEMM
  each after the loop. It runs on whatever BLAS NumPy has.
- ``torch``: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` as a user calls them: ``no_grad`` for
  inference, grad mode for training.
- ``onnxruntime``: a one-node-per-layer ONNX graph (the LSTM/GRU/RNN operators
  people deploy with), built with ``onnx.helper``; forwards only.
- ``reservoirpy`` (echo state networks, ``reservoir_peers``): its
  ``Reservoir.run``, against ``rnn_fast.reservoir.Reservoir.run`` with the
  same weights.

Letters as in rnn_fast: N batch, T time, D features, H units, G = gates * H.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

Closures = Tuple[Callable[[], object], Callable[[], object], Callable[[], object]]


def make_inputs(cfg, dtype):
    """x (N,T,D), one (h0, Wx, Wh, b[, bh]) per layer in rnn_fast's layout
    (bh: the GRU's recurrent bias), dh (N,T,H)."""
    rng = np.random.default_rng(0)
    G = cfg.H * cfg.gates
    x = rng.standard_normal((cfg.N, cfg.T, cfg.D)).astype(dtype)
    layers = []
    for layer in range(cfg.layers):
        D = cfg.D if layer == 0 else cfg.H
        layers.append((
            np.zeros((cfg.N, cfg.H), dtype),
            (rng.standard_normal((D, G)) / np.sqrt(D)).astype(dtype),
            (rng.standard_normal((cfg.H, G)) / np.sqrt(cfg.H)).astype(dtype),
            (0.1 * rng.standard_normal(G)).astype(dtype),
        ) + (((0.1 * rng.standard_normal(G)).astype(dtype),) if cfg.cell == "gru" else ()))
    dh = np.ones((cfg.N, cfg.T, cfg.H), dtype)
    return x, layers, dh


def stacked(forward_fn, backward_fn, cfg, dtype, infer_kwargs, inputs=None) -> Closures:
    """The three closures of a cs231n-style (forward, backward) pair over the
    config's stacked layers (on make_inputs' arrays, or the `inputs` given)."""
    x, layers, dh = inputs or make_inputs(cfg, dtype)

    def forward(**kwargs):
        h, caches = x, []
        for h0, *weights in layers:
            h, cache = forward_fn(h, h0, *weights, **kwargs)
            caches.append(cache)
        return h, caches

    def forward_backward():
        _, caches = forward()
        d = dh
        for cache in reversed(caches):
            d = backward_fn(d, cache)[0]
        return d

    return (lambda: forward(**infer_kwargs)[0]), forward, forward_backward


def rnn_fast_peer(cfg, dtype) -> Closures:
    import rnn_fast

    lib = rnn_fast
    inputs = make_inputs(cfg, dtype)
    _, train, fwd_bwd = stacked(getattr(lib, f"{cfg.cell}_forward"), getattr(lib, f"{cfg.cell}_backward"), cfg,
                                dtype, {"cache": False}, inputs)
    x, layers, _ = inputs
    packed = [(h0, getattr(lib, f"{cfg.cell.upper()}Inference")(*weights)) for h0, *weights in layers]

    def infer():
        h = x
        for h0, layer in packed:
            h = layer(h, h0)
        return h

    return infer, train, fwd_bwd


def rnn_fast_lengths(cfg, dtype, lengths) -> Closures:
    """rnn_fast_peer's closures with every forward given lengths= (None: all T)."""
    import functools

    import rnn_fast

    inputs = make_inputs(cfg, dtype)
    forward = functools.partial(getattr(rnn_fast, f"{cfg.cell}_forward"), lengths=lengths)
    _, train, fwd_bwd = stacked(forward, getattr(rnn_fast, f"{cfg.cell}_backward"), cfg, dtype, {"cache": False},
                                inputs)
    x, layers, _ = inputs
    packed = [(h0, getattr(rnn_fast, f"{cfg.cell.upper()}Inference")(*weights)) for h0, *weights in layers]

    def infer():
        h = x
        for h0, layer in packed:
            h = layer(h, h0, lengths=lengths)
        return h

    return infer, train, fwd_bwd


# Echo state networks: (name, units, steps), one series of one feature, W 10%
# full (reservoirpy's default), float64 (its default dtype).
RESERVOIRS = [("reservoir-100", 100, 100_000), ("reservoir-1000", 1000, 10_000)]


def reservoir_peers(units: int, steps: int) -> dict:
    """{"rnn_fast": run, "reservoirpy": run} of one reservoir (sr 1.25, lr
    0.3), each run from a zero state over the same series: reservoirpy's
    Reservoir and its weights (drawn by reservoirpy), and rnn_fast's given
    those weights. Without reservoirpy, rnn_fast's alone, with its own."""
    from rnn_fast.reservoir import Reservoir

    u = np.random.default_rng(0).standard_normal((steps, 1))
    peers = {}
    try:
        from reservoirpy.nodes import Reservoir as RpyReservoir
    except ImportError:
        ours = Reservoir(units, sr=1.25, lr=0.3, seed=0)
    else:
        theirs = RpyReservoir(units, sr=1.25, lr=0.3, seed=0)
        theirs.initialize(u)
        ours = Reservoir(W=theirs.W, Win=theirs.Win, bias=theirs.bias, lr=0.3)

        def reservoirpy_run():
            theirs.reset()
            return theirs.run(u)

        peers["reservoirpy"] = reservoirpy_run

    def rnn_fast_run():
        ours.reset()
        return ours.run(u)

    return {"rnn_fast": rnn_fast_run, **peers}


def reference_peer(cfg, dtype) -> Closures:
    from rnn_fast import reference

    return stacked(getattr(reference, f"{cfg.cell}_forward"), getattr(reference, f"{cfg.cell}_backward"), cfg,
                   dtype, {"cache": False})


# ------------------------------------------------------------ NumPy loop


def _sigmoid_(a):
    """a := 1 / (1 + exp(-a)), in place."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


def numpy_lstm_forward(x, h0, Wx, Wh, b, keep=True):
    """h (N,T,H) and, if keep, what numpy_lstm_backward needs."""
    N, T, D = x.shape
    H = h0.shape[1]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * N, D)
    A = (xt @ Wx).reshape(T, N, 4 * H)  # pre-activations, then post-activation gates i, f, o, g
    A += b
    hs = np.empty((T + 1, N, H), x.dtype)
    cs = np.empty((T + 1, N, H), x.dtype)
    hs[0], cs[0] = h0, 0
    tmp = np.empty((N, H), x.dtype)
    for t in range(T):
        a = A[t]
        a += hs[t] @ Wh
        _sigmoid_(a[:, :3 * H])
        np.tanh(a[:, 3 * H:], out=a[:, 3 * H:])
        np.multiply(a[:, H:2 * H], cs[t], out=cs[t + 1])
        np.multiply(a[:, :H], a[:, 3 * H:], out=tmp)
        cs[t + 1] += tmp
        np.tanh(cs[t + 1], out=tmp)
        np.multiply(a[:, 2 * H:3 * H], tmp, out=hs[t + 1])
    h = hs[1:].transpose(1, 0, 2).copy()
    return h, ((xt, A, hs, cs, Wx, Wh, (N, T, D)) if keep else None)


def numpy_lstm_backward(dh, cache):
    xt, A, hs, cs, Wx, Wh, (N, T, D) = cache
    H = hs.shape[2]
    dht = np.ascontiguousarray(dh.transpose(1, 0, 2))
    dA = np.empty_like(A)
    dnext = np.zeros((N, H), A.dtype)
    dc = np.zeros((N, H), A.dtype)
    WhT = np.ascontiguousarray(Wh.T)
    for t in range(T - 1, -1, -1):
        i, f, o, g = A[t, :, :H], A[t, :, H:2 * H], A[t, :, 2 * H:3 * H], A[t, :, 3 * H:]
        tc = np.tanh(cs[t + 1])
        dhs = dht[t] + dnext
        dc += dhs * o * (1 - tc * tc)
        da = dA[t]
        np.multiply(dc * g, i * (1 - i), out=da[:, :H])
        np.multiply(dc * cs[t], f * (1 - f), out=da[:, H:2 * H])
        np.multiply(dhs * tc, o * (1 - o), out=da[:, 2 * H:3 * H])
        np.multiply(dc * i, 1 - g * g, out=da[:, 3 * H:])
        dc *= f
        dnext = da @ WhT
    dA2 = dA.reshape(T * N, 4 * H)
    dx = (dA2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2).copy()
    dWx = xt.T @ dA2
    dWh = hs[:-1].reshape(T * N, H).T @ dA2
    return dx, dnext, dWx, dWh, dA2.sum(axis=0)


def numpy_rnn_forward(x, h0, Wx, Wh, b, keep=True):
    N, T, D = x.shape
    H = h0.shape[1]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * N, D)
    hs = np.empty((T + 1, N, H), x.dtype)
    hs[0] = h0
    hs[1:] = (xt @ Wx).reshape(T, N, H)
    hs[1:] += b
    for t in range(T):
        hs[t + 1] += hs[t] @ Wh
        np.tanh(hs[t + 1], out=hs[t + 1])
    h = hs[1:].transpose(1, 0, 2).copy()
    return h, ((xt, hs, Wx, Wh, (N, T, D)) if keep else None)


def numpy_rnn_backward(dh, cache):
    xt, hs, Wx, Wh, (N, T, D) = cache
    H = hs.shape[2]
    dA = np.ascontiguousarray(dh.transpose(1, 0, 2))  # becomes the pre-activation gradients
    dnext = np.zeros((N, H), hs.dtype)
    WhT = np.ascontiguousarray(Wh.T)
    for t in range(T - 1, -1, -1):
        da = dA[t]
        da += dnext
        da *= 1 - hs[t + 1] * hs[t + 1]
        dnext = da @ WhT
    dA2 = dA.reshape(T * N, H)
    dx = (dA2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2).copy()
    return dx, dnext, xt.T @ dA2, hs[:-1].reshape(T * N, H).T @ dA2, dA2.sum(axis=0)


def numpy_gru_forward(x, h0, Wx, Wh, b, bh, keep=True):
    """h (N,T,H) and, if keep, what numpy_gru_backward needs: r, z, n and
    h Wh_n + bh_n of every step (A, time-major)."""
    N, T, D = x.shape
    H = h0.shape[1]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * N, D)
    A = np.empty((T, N, 4 * H), x.dtype)  # x Wx + b, then r, z, n, hn
    A[:, :, :3 * H] = (xt @ Wx).reshape(T, N, 3 * H)
    A[:, :, :3 * H] += b
    hs = np.empty((T + 1, N, H), x.dtype)
    hs[0] = h0
    for t in range(T):
        a = A[t]
        ah = hs[t] @ Wh
        ah += bh
        a[:, :2 * H] += ah[:, :2 * H]
        _sigmoid_(a[:, :2 * H])
        a[:, 3 * H:] = ah[:, 2 * H:]
        n = a[:, 2 * H:3 * H]
        n += a[:, :H] * ah[:, 2 * H:]
        np.tanh(n, out=n)
        np.subtract(hs[t], n, out=hs[t + 1])  # h' = n + z (h - n)
        hs[t + 1] *= a[:, H:2 * H]
        hs[t + 1] += n
    h = hs[1:].transpose(1, 0, 2).copy()
    return h, ((xt, A, hs, Wx, Wh, (N, T, D)) if keep else None)


def numpy_gru_backward(dh, cache):
    xt, A, hs, Wx, Wh, (N, T, D) = cache
    H = hs.shape[2]
    dht = np.ascontiguousarray(dh.transpose(1, 0, 2))
    dA = np.empty((T, N, 3 * H), A.dtype)  # of x Wx + b
    dAh = np.empty((T, N, 3 * H), A.dtype)  # of h Wh + bh
    dnext = np.zeros((N, H), A.dtype)
    WhT = np.ascontiguousarray(Wh.T)
    for t in range(T - 1, -1, -1):
        r, z, n, hn = A[t, :, :H], A[t, :, H:2 * H], A[t, :, 2 * H:3 * H], A[t, :, 3 * H:]
        d = dht[t] + dnext
        dn = d * (1 - z) * (1 - n * n)
        dz = d * (hs[t] - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dA[t, :, :H] = dr
        dA[t, :, H:2 * H] = dz
        dA[t, :, 2 * H:] = dn
        dAh[t, :, :2 * H] = dA[t, :, :2 * H]
        np.multiply(dn, r, out=dAh[t, :, 2 * H:])
        dnext = dAh[t] @ WhT
        dnext += d * z
    dA2, dAh2 = dA.reshape(T * N, 3 * H), dAh.reshape(T * N, 3 * H)
    dx = (dA2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2).copy()
    dWh = hs[:-1].reshape(T * N, H).T @ dAh2
    return dx, dnext, xt.T @ dA2, dWh, dA2.sum(axis=0), dAh2.sum(axis=0)


def numpy_peer(cfg, dtype) -> Closures:
    fwd, bwd = {"lstm": (numpy_lstm_forward, numpy_lstm_backward), "gru": (numpy_gru_forward, numpy_gru_backward),
                "rnn": (numpy_rnn_forward, numpy_rnn_backward)}[cfg.cell]
    return stacked(lambda *a, keep=True: fwd(*a, keep=keep), bwd, cfg, dtype, {"keep": False})


# ----------------------------------------------------------------- PyTorch


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_peer(cfg, dtype) -> Optional[Closures]:
    torch = load_torch()
    if torch is None:
        return None
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[np.dtype(dtype).type]
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell](
        cfg.D, cfg.H, num_layers=cfg.layers, batch_first=True, dtype=tdtype
    )
    x = torch.randn(cfg.N, cfg.T, cfg.D, dtype=tdtype)
    xg = x.clone().requires_grad_(True)

    def infer():
        with torch.no_grad():
            return module(x)[0]

    def train_forward():
        return module(xg)[0]

    def forward_backward():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        module(xg)[0].sum().backward()

    return infer, train_forward, forward_backward


# ------------------------------------------------------------ ONNX Runtime


def onnx_model(cfg, layers, dtype):
    """A graph of one LSTM, GRU or RNN node per layer (seq-first, as the
    operators expect), weights as initializers in ONNX's layout: W (1, G, D),
    R (1, G, H), B (1, 2G), LSTM gates ordered i, o, f, c (rnn_fast's i, f,
    o, g), GRU gates z, r, h (rnn_fast's r, z, n) with linear_before_reset=1
    (PyTorch's and rnn_fast's GRU: r applied to h Wh_n + bh_n)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = cfg.H
    elem = TensorProto.FLOAT
    order = {"lstm": np.r_[0:H, 2 * H:3 * H, H:2 * H, 3 * H:4 * H], "gru": np.r_[H:2 * H, 0:H, 2 * H:3 * H],
             "rnn": np.arange(H)}[cfg.cell]
    nodes, inits = [], []
    prev = "X"
    for k, (_, Wx, Wh, b, *bh) in enumerate(layers):
        names = [f"W{k}", f"R{k}", f"B{k}"]
        rb = bh[0][order] if bh else np.zeros(b.shape[0], dtype)
        for name, value in zip(names, (Wx[:, order].T[None], Wh[:, order].T[None],
                                       np.concatenate([b[order], rb])[None])):
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        op = cfg.cell.upper()
        extra = {"linear_before_reset": 1} if cfg.cell == "gru" else {}
        nodes.append(helper.make_node(op, [prev] + names, [f"Y{k}"], hidden_size=H, **extra))
        # Y is (T, 1, N, H): drop the direction axis for the next layer.
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"H{k}"]))
        prev = f"H{k}"
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    graph = helper.make_graph(
        nodes, "rnn", [helper.make_tensor_value_info("X", elem, [cfg.T, cfg.N, cfg.D])],
        [helper.make_tensor_value_info(prev, elem, [cfg.T, cfg.N, H])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


def onnxruntime_peer(cfg, dtype, threads: int):
    """The inference closure, or None without onnxruntime and onnx or for
    float64. Its input
    is handed over seq-first (the operators' layout), prepared outside the
    timing; it returns the output batch-first, as the other peers."""
    if np.dtype(dtype) != np.float32:
        return None  # ONNX Runtime's CPU LSTM has no float64 kernel
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None
    import onnxruntime as ort

    x, layers, _ = make_inputs(cfg, dtype)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    session = ort.InferenceSession(onnx_model(cfg, layers, dtype).SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    out = session.get_outputs()[0].name

    def infer():
        return session.run([out], {"X": xt})[0].transpose(1, 0, 2)

    return infer


def blas_info() -> List[dict]:
    """threadpoolctl's view of the BLAS libraries loaded (NumPy's), [] without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
