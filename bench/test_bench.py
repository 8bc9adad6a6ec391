"""pytest-benchmark suite over the matrix of `python -m rnn_fast.bench`.

    pytest bench/ --benchmark-only [--benchmark-save NAME | --benchmark-compare]

Each configuration and pass is one group, so that rnn_fast, its NumPy
reference and (when installed) PyTorch stand side by side; every benchmark
checks its output before it is timed.
"""
import numpy as np
import pytest

import rnn_fast
from rnn_fast import reference
from rnn_fast.bench import CONFIGS, load_torch, numpy_like, torch_peer

torch = load_torch()
PEERS = ["rnn_fast", "reference"] + (["torch"] if torch is not None else [])
CASES = [(c, p) for c in CONFIGS if not c.full_only for p in ("fwd", "fwd+bwd")]


def closures(cfg, peer, dtype=np.float32):
    if peer == "torch":
        return torch_peer(torch, cfg, dtype)
    return numpy_like(rnn_fast if peer == "rnn_fast" else reference, cfg, dtype)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("cfg,pass_", CASES, ids=[f"{c.name}-{p}" for c, p in CASES])
def test_speed(benchmark, cfg, pass_, peer):
    benchmark.group = f"{cfg.name} {pass_} (N={cfg.N} T={cfg.T} D={cfg.D} H={cfg.H} x{cfg.layers})"
    fwd, fwd_bwd = closures(cfg, peer)
    if peer != "torch":
        # The output is checked against the reference before anything is timed.
        h, _ = fwd()
        h_ref, _ = closures(cfg, "reference")[0]()
        np.testing.assert_allclose(h, h_ref, rtol=2e-4, atol=2e-5)
        if pass_ == "fwd+bwd":
            np.testing.assert_allclose(fwd_bwd(), closures(cfg, "reference")[1](), rtol=2e-3, atol=2e-4)
    else:
        assert np.isfinite(fwd().numpy()).all()
    benchmark(fwd if pass_ == "fwd" else fwd_bwd)
