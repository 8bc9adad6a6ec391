"""Benchmark: rnn_fast against its NumPy reference and PyTorch, in one process.

    python -m rnn_fast.bench [--quick | --full] [--cell lstm|rnn] [--dtype float32|float64]
                             [--threads N] [--json PATH]

For each configuration it times forward and forward+backward after warm-up,
taking the median of repeats, and prints milliseconds, GFLOP/s, the share of
this machine's GEMM throughput (NumPy matmul on a large square of the same
dtype, measured in the same run) and the speed-up against each peer.
PyTorch (nn.RNN / nn.LSTM, called as a user would) is timed when installed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

import rnn_fast
from rnn_fast import reference


@dataclass(frozen=True)
class Config:
    name: str
    cell: str  # "lstm" or "rnn"
    N: int
    T: int
    D: int
    H: int
    layers: int = 1  # stacked layers, each of H units (the first reads D features)
    full_only: bool = False

    def gemm_flops(self) -> float:
        """Multiply-adds x 2 of the forward's GEMMs (the element-wise work is not counted)."""
        G = self.H * (4 if self.cell == "lstm" else 1)
        flops = 0.0
        for layer in range(self.layers):
            D = self.D if layer == 0 else self.H
            flops += 2.0 * self.N * self.T * (D + self.H) * G
        return flops


CONFIGS = [
    Config("seed-like", "lstm", 32, 60, 1, 50),
    Config("keras-stock-4x50", "lstm", 32, 60, 1, 50, layers=4),
    Config("latency", "lstm", 1, 100, 128, 256),
    Config("medium", "lstm", 32, 100, 256, 256),
    Config("large", "lstm", 64, 25, 1024, 1024),
    Config("rnn-medium", "rnn", 32, 100, 256, 256),
    Config("rnn-large", "rnn", 64, 50, 1024, 1024),
    Config("medium-long", "lstm", 32, 400, 256, 256, full_only=True),
    Config("large-batch", "lstm", 256, 25, 512, 512, full_only=True),
]


@dataclass
class Result:
    config: str
    cell: str
    dtype: str
    threads: int
    pass_: str  # "fwd" or "fwd+bwd"
    flops: float
    ms: Dict[str, Optional[float]] = field(default_factory=dict)  # peer -> median ms


# ------------------------------------------------------------- timing


def median_ms(fn: Callable[[], object], budget_s: float, min_repeats: int, max_repeats: int) -> float:
    """Median wall time of fn after two warm-up calls."""
    fn()
    fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def gemm_gflops(dtype, n: int = 2048, budget_s: float = 1.0) -> float:
    """This machine's matmul throughput through NumPy's BLAS, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    ms = median_ms(lambda: a @ b, budget_s, 3, 20)
    return 2.0 * n**3 / (ms * 1e-3) / 1e9


# ------------------------------------------------------------- peers


def make_inputs(cfg: Config, dtype):
    rng = np.random.default_rng(0)
    G = cfg.H * (4 if cfg.cell == "lstm" else 1)
    x = rng.standard_normal((cfg.N, cfg.T, cfg.D)).astype(dtype)
    layers = []
    for layer in range(cfg.layers):
        D = cfg.D if layer == 0 else cfg.H
        layers.append(
            (
                np.zeros((cfg.N, cfg.H), dtype),
                (rng.standard_normal((D, G)) / np.sqrt(D)).astype(dtype),
                (rng.standard_normal((cfg.H, G)) / np.sqrt(cfg.H)).astype(dtype),
                np.zeros(G, dtype),
            )
        )
    dh = np.ones((cfg.N, cfg.T, cfg.H), dtype)
    return x, layers, dh


def numpy_like(lib, cfg: Config, dtype):
    """(forward, forward+backward) closures for rnn_fast or its reference."""
    x, layers, dh = make_inputs(cfg, dtype)
    fwd_fn = getattr(lib, f"{cfg.cell}_forward")
    bwd_fn = getattr(lib, f"{cfg.cell}_backward")

    def forward():
        h, caches = x, []
        for h0, Wx, Wh, b in layers:
            h, cache = fwd_fn(h, h0, Wx, Wh, b)
            caches.append(cache)
        return h, caches

    def forward_backward():
        _, caches = forward()
        d = dh
        for cache in reversed(caches):
            d = bwd_fn(d, cache)[0]
        return d

    return forward, forward_backward


def torch_peer(torch, cfg: Config, dtype):
    tdtype = {np.float32: torch.float32, np.float64: torch.float64}[np.dtype(dtype).type]
    module = (torch.nn.LSTM if cfg.cell == "lstm" else torch.nn.RNN)(
        cfg.D, cfg.H, num_layers=cfg.layers, batch_first=True, dtype=tdtype
    )
    x = torch.randn(cfg.N, cfg.T, cfg.D, dtype=tdtype)
    xg = x.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            return module(x)[0]

    def forward_backward():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        module(xg)[0].sum().backward()

    return forward, forward_backward


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------- run


def run(configs: List[Config], dtype, threads: int, budget_s: float, max_repeats: int, progress) -> List[Result]:
    torch = load_torch()
    rnn_fast.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    results = []
    for k, cfg in enumerate(configs):
        progress(f"[{k + 1}/{len(configs)}] {cfg.name} ({cfg.cell}, N={cfg.N} T={cfg.T} D={cfg.D} H={cfg.H}"
                 f"{f' x{cfg.layers} layers' if cfg.layers > 1 else ''})")
        peers = {
            "rnn_fast": numpy_like(rnn_fast, cfg, dtype),
            "reference": numpy_like(reference, cfg, dtype),
        }
        if torch is not None:
            peers["torch"] = torch_peer(torch, cfg, dtype)
        for p, pass_ in enumerate(["fwd", "fwd+bwd"]):
            flops = cfg.gemm_flops() * (1 if pass_ == "fwd" else 3)
            r = Result(cfg.name, cfg.cell, np.dtype(dtype).name, threads, pass_, flops)
            for peer, fns in peers.items():
                r.ms[peer] = median_ms(fns[p], budget_s, 3, max_repeats)
            results.append(r)
    return results


def fmt_table(results: List[Result], gemm: float) -> str:
    peers = [p for p in ("reference", "torch") if any(r.ms.get(p) is not None for r in results)]
    head = ["config", "pass", "rnn_fast ms", "GFLOP/s", "% gemm"] + [f"{p} ms" for p in peers] + [f"x {p}" for p in peers]
    rows = [head]
    for r in results:
        ms = r.ms["rnn_fast"]
        gflops = r.flops / (ms * 1e-3) / 1e9
        row = [r.config, r.pass_, f"{ms:.3f}", f"{gflops:.1f}", f"{100 * gflops / gemm:.0f}%"]
        row += [f"{r.ms[p]:.3f}" for p in peers]
        row += [f"{r.ms[p] / ms:.2f}x" for p in peers]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rnn_fast.bench", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: the core matrix, short budgets (< 60 s)")
    mode.add_argument("--full", action="store_true", help="every configuration, longer budgets")
    ap.add_argument("--cell", choices=["lstm", "rnn"], help="only this cell")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=rnn_fast.get_num_threads(), help="threads for rnn_fast and torch")
    ap.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")

    configs = [c for c in CONFIGS if (args.full or not c.full_only) and (args.cell in (None, c.cell))]
    budget, max_repeats = (1.0, 50) if args.full else (0.25, 15)
    dtype = np.dtype(args.dtype).type

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    progress(f"measuring NumPy matmul throughput ({args.dtype}) ...")
    gemm = gemm_gflops(dtype)
    t0 = time.perf_counter()
    results = run(configs, dtype, args.threads, budget, max_repeats, progress)
    torch = load_torch()
    print(f"rnn_fast {rnn_fast.__version__} | {time.strftime('%Y-%m-%d')} | {cpu_model()} | "
          f"{os.cpu_count()} cores | threads={args.threads} | {args.dtype} | "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"NumPy matmul ({args.dtype}, 2048^2): {gemm:.1f} GFLOP/s; ratios are peer time / rnn_fast time")
    print(fmt_table(results, gemm))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm_gflops": gemm, "cpu": cpu_model(), "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
