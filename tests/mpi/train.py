"""Trains a small model for tests/test_distributed.py, in one process (no
MPI: argv[3] == '0') or as one rank of mpirun (argv[3] == '1'), and writes
its weights, predictions and History (rank 0) to argv[2] (.npz and .json);
every rank also saves the model to argv[2] + '.rank<r>.model.npz', which
only rank 0 may write."""
import json
import sys

import numpy as np

from rnn_fast import nn
from rnn_fast.nn import distributed

kind, out, use_mpi = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if use_mpi:
    distributed.init()
nn.backend.set_floatx("float64")
nn.backend.set_random_seed(0)
rng = np.random.default_rng(1)
x = rng.standard_normal((50, 12, 3))
y = rng.standard_normal((50, 1))
if kind == "lstm":  # input dropout in the layer, and a Dropout layer
    layers = [nn.LSTM(8, dropout=0.2), nn.Dropout(0.3), nn.Dense(1)]
elif kind == "masked":  # the loss and metrics over unmasked steps: parts weighted by them, not by samples
    lengths = rng.integers(1, 13, 50)
    x = np.where(np.arange(12)[None, :] < lengths[:, None], rng.integers(1, 9, (50, 12)), 0)
    y = rng.standard_normal((50, 12, 1))
    layers = [nn.Embedding(9, 4, mask_zero=True), nn.LSTM(6, return_sequences=True), nn.Dense(1)]
elif kind == "weighted":  # sample weights, and metrics whose states (confusion counts) are summed over ranks
    y = (x[:, :, 0].sum(1) > 0).astype(float)[:, None]
    layers = [nn.LSTM(6), nn.Dense(1, activation="sigmoid")]
elif kind == "gru":
    layers = [nn.GRU(8, return_sequences=True), nn.GRU(4, kernel_regularizer="l2"), nn.Dense(1)]
elif kind == "functional":  # two inputs (a list of arrays split by rows), a recurrent and a dense branch
    layers = None
else:
    layers = [nn.Bidirectional(nn.LSTM(5)), nn.Dense(1)]
inputs = x
if layers is None:
    seq, static = nn.Input((12, 3)), nn.Input((4,))
    joined = nn.concatenate([nn.LSTM(6, dropout=0.2)(seq), nn.Dense(3, activation="relu")(static)])
    model = nn.Model([seq, static], nn.Dense(1)(nn.Dropout(0.3)(joined)))
    inputs = [x, rng.standard_normal((50, 4))]
else:
    model = nn.Sequential(layers)
weights = None
if kind == "weighted":
    weights = rng.uniform(0, 2, len(x))
    model.compile(nn.optimizers.Adam(0.01), "binary_crossentropy",
                  metrics=["accuracy", nn.metrics.AUC(name="auc"), nn.metrics.Precision(name="precision")],
                  weighted_metrics=["accuracy", "mae"])
else:
    model.compile(nn.optimizers.Adam(0.01, global_clipnorm=1.0), "mse", metrics=["mae"])
# Batches of 16 over 40 samples: parts of 8/8, and 6/5/5 and 3/3/2 on 3 ranks.
history = model.fit(inputs, y, batch_size=16, epochs=3, verbose=0, validation_split=0.2, sample_weight=weights)
pred = model.predict([a[:7] for a in inputs] if isinstance(inputs, list) else inputs[:7], verbose=0)
evaluation = model.evaluate(inputs, y, verbose=0, sample_weight=weights)
model.save(f"{out}.rank{distributed.rank()}.model.npz")
if distributed.rank() == 0:
    np.savez(out, *model.get_weights(), pred=pred)
    with open(out + ".json", "w") as f:
        json.dump({**history.history, "evaluate": evaluation, "size": distributed.size()}, f)
