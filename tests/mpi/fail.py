"""One rank raises (argv[1] == "raise") or dies (SIGKILL, "kill") in its third
forward; tests/test_distributed.py checks that the job ends with an error."""
import os
import signal
import sys

import numpy as np

from rnn_fast import nn
from rnn_fast.nn import distributed

how = sys.argv[1]
ctx = distributed.init()
nn.backend.set_random_seed(0)

class Boom(nn.layers.Layer):
    calls = 0
    def forward(self, x, training=False):
        Boom.calls += 1
        if ctx.rank == 1 and Boom.calls == 3:
            if how == 'raise':
                raise ValueError("boom on rank 1")
            os.kill(os.getpid(), signal.SIGKILL)
        return x
    def backward(self, dy):
        return dy

x = np.random.default_rng(0).standard_normal((64, 5, 2)).astype(np.float32)
y = np.zeros((64, 1), np.float32)
m = nn.Sequential([nn.LSTM(4), Boom(), nn.Dense(1)])
m.compile('adam', 'mse')
try:
    m.fit(x, y, batch_size=8, epochs=2, verbose=0)
except Exception as e:
    print(f"rank {ctx.rank}: {type(e).__name__}: {e}", flush=True)
    raise
print(f"rank {ctx.rank} finished", flush=True)
