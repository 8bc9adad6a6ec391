"""Recurrent stacks from PyTorch to rnn_fast and back (rnn_fast.nn.exchange):
the converted layers give the module's outputs, writing them back gives the
same state_dict, and the kernels' helper gives the module's layer."""
import os

import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import nn

if os.environ.get("RNN_FAST_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

TOL = dict(rtol=1e-4, atol=1e-5)  # float32, torch's sums in another order
MODULES = {
    "lstm-2-layers-bidirectional": lambda: torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True),
    "gru": lambda: torch.nn.GRU(3, 6, batch_first=True),
    "gru-bidirectional-seq-first": lambda: torch.nn.GRU(3, 4, bidirectional=True),
    "rnn-relu-no-bias-2-layers": lambda: torch.nn.RNN(3, 5, num_layers=2, nonlinearity="relu", bias=False,
                                                      batch_first=True),
    "lstm-no-bias": lambda: torch.nn.LSTM(3, 4, bias=False, batch_first=True),
}


def randomized(make, seed):
    torch.manual_seed(seed)
    module = make()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    return module


def torch_output(module, x):
    """The module's output sequence (N, T, dirs*H) and h_n for batch-first x."""
    xt = torch.from_numpy(x if module.batch_first else x.transpose(1, 0, 2).copy())
    with torch.no_grad():
        out, state = module(xt)
    out = out.numpy() if module.batch_first else out.numpy().transpose(1, 0, 2)
    return out, (state[0] if isinstance(state, tuple) else state).numpy()


@pytest.mark.parametrize("name", MODULES)
def test_converted_layers_give_the_modules_outputs_and_write_back_exactly(name):
    module = randomized(MODULES[name], 0)
    x = np.random.default_rng(1).standard_normal((4, 7, 3)).astype(np.float32)
    want, hn = torch_output(module, x)
    model = nn.Sequential(nn.from_torch(module))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, **TOL)
    # The last layer's final state: return_sequences=False.
    last = nn.Sequential(nn.from_torch(module, return_sequences=False)).predict(x, verbose=0)
    dirs = 2 if module.bidirectional else 1
    np.testing.assert_allclose(last, np.concatenate(list(hn[-dirs:]), axis=-1), **TOL)
    # Back into a module initialized otherwise: the same state_dict, bit for bit.
    other = randomized(MODULES[name], 2)
    nn.to_torch(model.layers, other)
    for (k, a), (k2, b) in zip(module.state_dict().items(), other.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


def test_trained_layers_write_back_the_module_that_computes_what_they_compute():
    module = randomized(MODULES["lstm-2-layers-bidirectional"], 3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 3)).astype(np.float32)
    model = nn.Sequential(nn.from_torch(module, return_sequences=False) + [nn.Dense(1)])
    model.compile(nn.Adam(learning_rate=0.01), "mse")
    model.fit(x, rng.standard_normal((8, 1)).astype(np.float32), epochs=3, verbose=0)
    nn.to_torch(model.layers[:-1], module)
    ours = nn.Sequential(model.layers[:-1]).predict(x, verbose=0)
    _, hn = torch_output(module, x)
    np.testing.assert_allclose(ours, np.concatenate(list(hn[-2:]), axis=-1), **TOL)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_torch_weights_feed_the_kernels(kind):
    module = randomized(lambda: getattr(torch.nn, kind)(3, 5, batch_first=True), 5)
    x = np.random.default_rng(6).standard_normal((4, 7, 3)).astype(np.float32)
    want, _ = torch_output(module, x)
    weights, keywords = nn.torch_weights(module)
    h, _ = getattr(rf, f"{kind.lower()}_forward")(x, np.zeros((4, 5), np.float32), *weights, **keywords)
    np.testing.assert_allclose(h, want, **TOL)


def test_mismatches_are_clear_errors():
    module = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    layers = nn.from_torch(module)
    with pytest.raises(ValueError, match="2 layers for a module of num_layers=1"):
        nn.to_torch(layers, torch.nn.LSTM(3, 4, batch_first=True))
    with pytest.raises(ValueError, match="layer 0 is a LSTM, the module a GRU"):
        nn.to_torch(layers, torch.nn.GRU(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="does not match bidirectional=True"):
        nn.to_torch(layers, torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True))
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(16, 5\), the layer's is \(16, 3\)"):
        nn.to_torch(layers, torch.nn.LSTM(5, 4, num_layers=2))
    with pytest.raises(TypeError, match="expected a torch.nn.RNN, LSTM or GRU, got Linear"):
        nn.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="proj_size"):
        nn.from_torch(torch.nn.LSTM(3, 4, proj_size=2))
