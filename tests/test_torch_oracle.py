"""PyTorch's nn.RNN, nn.LSTM and nn.GRU as an outside oracle: with the
weights mapped (transposed; LSTM gates reordered from i,f,o,g to torch's
i,f,g,o, one bias; the GRU's r, z, n and two biases as they are), they must
give the same outputs and the same gradients.

Skipped when torch is missing, unless RNN_FAST_REQUIRE_TORCH=1 (set by CI),
where a missing torch fails instead."""
import os

import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import CELLS, TOL, cell_variants, rand, recurrent_inputs

if os.environ.get("RNN_FAST_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
# torch's reduction order differs from ours; float32 needs room for that.
ORACLE_TOL = {np.float64: TOL[np.float64], np.float32: dict(rtol=1e-3, atol=1e-4)}


def to_torch_gates(a, H):
    """Columns (or entries) ordered i,f,o,g -> torch's i,f,g,o."""
    i, f, o, g = (a[..., k * H : (k + 1) * H] for k in range(4))
    return np.concatenate([i, f, g, o], axis=-1)


def from_torch_gates(a, H):
    i, f, g, o = (a[..., k * H : (k + 1) * H] for k in range(4))
    return np.concatenate([i, f, o, g], axis=-1)


def tensor(a, dtype, grad=True):
    return torch.tensor(a.copy(), dtype=TORCH_DTYPE[dtype], requires_grad=grad)


def close(actual, expected, dtype, name):
    np.testing.assert_allclose(actual, expected, err_msg=name, **ORACLE_TOL[dtype])


def flip(a):
    return a[:, ::-1].copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 7, 5, 37), (16, 12, 64, 48)], ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_matches_torch(shape, dtype, reverse):
    N, T, D, H = shape
    x, h0, Wx, Wh, b = recurrent_inputs(shape, dtype, gates=4)
    c0 = rand((N, H), dtype, 5)
    dh, dcT = rand((N, T, H), dtype, 6), rand((N, H), dtype, 7)
    h, hT, cT, cache = rf.lstm_forward(x, h0, Wx, Wh, b, c0=c0, reverse=reverse, return_state=True)
    dx, dh0, dWx, dWh, db, dc0 = rf.lstm_backward(dh, cache, dcT=dcT, return_dc0=True)

    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=TORCH_DTYPE[dtype])
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(to_torch_gates(Wx, H).T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(to_torch_gates(Wh, H).T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(to_torch_gates(b, H)))
        lstm.bias_hh_l0.zero_()
    # torch runs forward in time; a reversed sequence is the flipped one.
    xt = tensor(flip(x) if reverse else x, dtype)
    h0t, c0t = tensor(h0[None], dtype), tensor(c0[None], dtype)
    out, (hTt, cTt) = lstm(xt, (h0t, c0t))
    out_np = out.detach().numpy()
    close(h, flip(out_np) if reverse else out_np, dtype, "h")
    close(hT, hTt[0].detach().numpy(), dtype, "hT")
    close(cT, cTt[0].detach().numpy(), dtype, "cT")

    dh_t = torch.from_numpy(flip(dh) if reverse else dh)
    (torch.sum(out * dh_t) + torch.sum(cTt[0] * torch.from_numpy(dcT))).backward()
    xg = xt.grad.numpy()
    close(dx, flip(xg) if reverse else xg, dtype, "dx")
    close(dh0, h0t.grad[0].numpy(), dtype, "dh0")
    close(dc0, c0t.grad[0].numpy(), dtype, "dc0")
    close(dWx, from_torch_gates(lstm.weight_ih_l0.grad.numpy().T, H), dtype, "dWx")
    close(dWh, from_torch_gates(lstm.weight_hh_l0.grad.numpy().T, H), dtype, "dWh")
    close(db, from_torch_gates(lstm.bias_ih_l0.grad.numpy(), H), dtype, "db")
    close(db, from_torch_gates(lstm.bias_hh_l0.grad.numpy(), H), dtype, "db (hh bias)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (16, 12, 64, 48)], ids=str)
def test_lstm_in_torchs_gate_order_takes_its_weights_as_they_are(shape, dtype):
    """gate_order='ifgo': torch's weight_ih_l0.T, weight_hh_l0.T and summed
    biases go in unpermuted, and the gradients come out in torch's order."""
    N, T, D, H = shape
    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=TORCH_DTYPE[dtype])
    Wx, Wh = lstm.weight_ih_l0.detach().numpy().T, lstm.weight_hh_l0.detach().numpy().T
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()
    x, h0, c0 = rand((N, T, D), dtype, 1), rand((N, H), dtype, 2), rand((N, H), dtype, 3)
    h, hT, cT, cache = rf.lstm_forward(x, h0, Wx, Wh, b, c0=c0, return_state=True, gate_order="ifgo")
    dh = rand((N, T, H), dtype, 4)
    dx, dh0, dWx, dWh, db = rf.lstm_backward(dh, cache)
    np.testing.assert_array_equal(rf.LSTMInference(Wx, Wh, b, gate_order="ifgo")(x, h0, c0=c0), h)
    xt = tensor(x, dtype)
    out, _ = lstm(xt, (tensor(h0[None], dtype, grad=False), tensor(c0[None], dtype, grad=False)))
    close(h, out.detach().numpy(), dtype, "h")
    torch.sum(out * torch.from_numpy(dh)).backward()
    close(dx, xt.grad.numpy(), dtype, "dx")
    close(dWx, lstm.weight_ih_l0.grad.numpy().T, dtype, "dWx")
    close(dWh, lstm.weight_hh_l0.grad.numpy().T, dtype, "dWh")
    close(db, lstm.bias_ih_l0.grad.numpy(), dtype, "db")


def torch_twin(cell, kwargs, D, H, dtype, weights, reverse_weights=None):
    """torch's module for a cell (and its variant) holding rnn_fast's weights
    (Wx, Wh, b[, bh]), bidirectional with reverse_weights as its backward
    direction's; and the map of a torch weight's columns (or entries) to
    rnn_fast's gate order."""
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    extra = {"nonlinearity": kwargs["activation"]} if cell == "rnn" else {}
    module = kind(D, H, batch_first=True, dtype=TORCH_DTYPE[dtype], bidirectional=reverse_weights is not None, **extra)
    to = (lambda a: to_torch_gates(a, H)) if cell == "lstm" else (lambda a: a)
    back = (lambda a: from_torch_gates(a, H)) if cell == "lstm" else (lambda a: a)
    with torch.no_grad():
        for suffix, direction in (("", weights), ("_reverse", reverse_weights)):
            if direction is None:
                continue
            Wx, Wh, b, *bh = direction
            getattr(module, "weight_ih_l0" + suffix).copy_(torch.from_numpy(to(Wx).T.copy()))
            getattr(module, "weight_hh_l0" + suffix).copy_(torch.from_numpy(to(Wh).T.copy()))
            getattr(module, "bias_ih_l0" + suffix).copy_(torch.from_numpy(to(b)))
            getattr(module, "bias_hh_l0" + suffix).copy_(
                torch.from_numpy(bh[0]) if bh else torch.zeros(b.shape[0], dtype=TORCH_DTYPE[dtype]))
    return module, back


LIBS = {"kernels": rf, "reference": ref}


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (4, 7, 5, 37), (16, 12, 64, 48)], ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_torch(lib, cell, kwargs, shape, dtype, reverse):
    """Every cell (its forward's variants), kernels and reference: outputs,
    final state and every gradient against torch's module (the LSTM's cell
    state from zero; its c0 and dcT: test_lstm_matches_torch)."""
    m, cell = LIBS[lib], CELLS[cell]
    N, T, D, H = shape
    args = cell.inputs(shape, dtype)
    dh = rand((N, T, H), dtype, 6)
    h, hT, *_, cache = cell.forward(m, args, reverse=reverse, return_state=True, **kwargs)
    grads = cell.backward(m, dh, cache)
    module, back = torch_twin(cell.name, kwargs, D, H, dtype, args[2:])
    xt = tensor(flip(args[0]) if reverse else args[0], dtype)
    h0t = tensor(args[1][None], dtype)
    out, state = module(xt, (h0t, torch.zeros_like(h0t)) if cell.name == "lstm" else h0t)
    hTt = state[0] if cell.name == "lstm" else state
    close(hT, hTt[0].detach().numpy(), dtype, "hT")
    out_np = out.detach().numpy()
    close(h, flip(out_np) if reverse else out_np, dtype, "h")
    torch.sum(out * torch.from_numpy(flip(dh) if reverse else dh)).backward()
    xg = xt.grad.numpy()
    want = [flip(xg) if reverse else xg, h0t.grad[0].numpy(), back(module.weight_ih_l0.grad.numpy().T),
            back(module.weight_hh_l0.grad.numpy().T), back(module.bias_ih_l0.grad.numpy())]
    if cell.name == "gru":
        want.append(module.bias_hh_l0.grad.numpy())
    for g, w, name in zip(grads, want, cell.grads):
        close(g, w, dtype, name)
    assert len(grads) == len(want) == len(cell.grads)
