"""Keras's masks in rnn_fast.nn (issue 12): made by Masking and
Embedding(mask_zero=True), passed on by Dense, Dropout and Activation,
consumed by the recurrent layers (as the kernels' lengths=) and by the loss
and metrics. Keras itself is the oracle in test_keras_oracle.py; here, what
needs no Keras: the gradients by finite differences, the refusals, the
mask's path through a model."""
import numpy as np
import pytest

from conftest import floatx
from rnn_fast import nn
from rnn_fast.nn import layers as L

RNG = np.random.default_rng(3)
N, T, D, H = 4, 5, 3, 2
LENGTHS = np.array([5, 2, 0, 1])
MASK = np.arange(T)[None, :] < LENGTHS[:, None]


float64 = floatx("float64")  # every test here runs in float64


def masked_layer(cls, **kw):
    layer = getattr(L, cls)(H, return_state=True, **kw)
    layer.build((T, D))
    layer.set_weights([RNG.standard_normal(w.shape) * 0.5 for w in layer.weights])
    return layer


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_masked_gradients_by_finite_differences(cls, return_sequences, go_backwards, zero_output_for_mask):
    """Every output (the sequence or last output, the final states) weighted
    at random: dx, the initial states' and the weights' gradients are those
    of finite differences, through the copies Keras's masked outputs make."""
    layer = masked_layer(cls, return_sequences=return_sequences, go_backwards=go_backwards,
                         zero_output_for_mask=zero_output_for_mask)
    x = RNG.standard_normal((N, T, D))
    init = [RNG.standard_normal((N, H)) for _ in range(layer._n_states)]
    outs = layer.forward(x, mask=MASK, initial_state=init)
    weights = [RNG.standard_normal(o.shape) for o in outs]

    def loss():
        return sum(np.sum(o * w) for o, w in zip(layer.forward(x, mask=MASK, initial_state=init), weights))

    layer.forward(x, mask=MASK, initial_state=init)
    dx = layer.backward(weights)
    got = [dx] + list(layer.state_grads) + [g.copy() for g in layer.grads]
    wanted = []
    for a in [x] + init + layer.weights:
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + 1e-6
            up = loss()
            a[i] = old - 1e-6
            g[i] = (up - loss()) / 2e-6
            a[i] = old
        wanted.append(g)
    for k, (g, w) in enumerate(zip(got, wanted)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-8, err_msg=f"gradient {k}")
    assert not dx[~MASK].any()


def test_a_mask_with_a_gap_is_refused_with_the_reason():
    layer = masked_layer("LSTM")
    gap = MASK.copy()
    gap[0, 2] = False
    with pytest.raises(ValueError, match=r"only masks whose unmasked steps come first in every row \(right-padded "
                                         r"sequences\).*row 0 of this mask"):
        layer.forward(RNG.standard_normal((N, T, D)), mask=gap)
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, timesteps\) = \(4, 5\), got \(4, 4\)"):
        layer.forward(RNG.standard_normal((N, T, D)), mask=MASK[:, :4])


def test_the_mask_reaches_the_loss_through_dropout_and_dense():
    """Embedding(mask_zero) -> Dropout -> LSTM(return_sequences) -> Dense:
    the loss and metric are means over the unmasked steps alone, so the
    targets at padded steps change nothing; Masking's output is 0 there."""
    model = nn.Sequential([L.Embedding(7, 3, mask_zero=True), L.Dropout(0.3),
                           L.LSTM(4, return_sequences=True), L.Dense(1)])
    x = RNG.integers(1, 7, (N, T))
    x[~MASK] = 0
    model.build((None, T))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    y = RNG.standard_normal((N, T, 1))
    noisy = y.copy()
    noisy[~MASK] = 1e3
    a, b = model.evaluate(x, y, verbose=0), model.evaluate(x, noisy, verbose=0)
    assert a == b
    pred = model.predict(x, verbose=0)
    errors = (pred - y)[MASK]
    assert a[0] == pytest.approx(np.mean(errors ** 2)) and a[1] == pytest.approx(np.mean(np.abs(errors)))
    g1, g2 = model.compute_gradients(x, y)[1], model.compute_gradients(x, noisy)[1]
    masking = L.Masking(mask_value=-1.0)
    xm = np.where(MASK[:, :, None], RNG.standard_normal((N, T, D)), -1.0)
    assert not masking(xm)[~MASK].any() and np.array_equal(masking.compute_mask(xm, None), MASK)
    assert model._output_mask is not None and np.array_equal(model._output_mask, MASK)
    for p, q in zip(g1, g2):
        assert np.isfinite(p).all() and p.shape == q.shape


def test_every_step_masked_gives_a_zero_loss():
    model = nn.Sequential([L.Masking(), L.SimpleRNN(3, return_sequences=True), L.Dense(1)])
    model.build((None, T, D))
    model.compile(optimizer="sgd", loss="mse")
    assert model.evaluate(np.zeros((N, T, D)), np.ones((N, T, 1)), verbose=0) == 0.0
