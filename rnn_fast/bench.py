"""Benchmark: rnn_fast against its NumPy reference and PyTorch, in one process.

    python -m rnn_fast.bench [--quick | --full] [--cell lstm|rnn] [--dtype float32|float64]
                             [--threads N] [--json PATH] [--plot PATH]

For each configuration it times forward and forward+backward after warm-up,
taking the median of repeats, and prints milliseconds, GFLOP/s, the share of
this machine's GEMM throughput (NumPy matmul on a large square of the same
dtype, measured in the same run) and the speed-up against each peer.
PyTorch (nn.RNN / nn.LSTM, called as a user would) is timed when installed.
Then it checks the speed targets it can judge from what it measured; --full
adds float64, 2-against-1-thread scaling, the first call against the steady
state and the peak memory of a large forward+backward (each in a fresh process).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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
    """Median wall time of fn after warm-up: at least three calls and a fifth
    of the budget (the first calls pay for page faults and heap growth)."""
    start = time.perf_counter()
    for k in range(max_repeats):
        fn()
        if k >= 2 and time.perf_counter() - start > budget_s / 5:
            break
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def settle(seconds: float = 0.25) -> None:
    """Let a peer's worker threads (OpenBLAS, OpenMP) stop spinning before the
    next peer is timed: an idle spinner would take a core from it."""
    time.sleep(seconds)


def gemm_gflops(dtype, n: int = 2048, budget_s: float = 1.0) -> float:
    """This machine's matmul throughput through NumPy's BLAS, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    ms = median_ms(lambda: a @ b, budget_s, 3, 20)
    settle()
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
        rows = [Result(cfg.name, cfg.cell, np.dtype(dtype).name, threads, pass_, cfg.gemm_flops() * (1 if pass_ == "fwd" else 3))
                for pass_ in ("fwd", "fwd+bwd")]
        for peer, fns in peers.items():
            for r, fn in zip(rows, fns):
                r.ms[peer] = median_ms(fn, budget_s, 3, max_repeats)
            settle()
        results += rows
    return results


def fmt_table(results: List[Result], gemm: Dict[str, float]) -> str:
    peers = [p for p in ("reference", "torch") if any(r.ms.get(p) is not None for r in results)]
    head = ["config", "pass", "dtype", "rnn_fast ms", "GFLOP/s", "% gemm"] + [f"{p} ms" for p in peers] + [f"x {p}" for p in peers]
    rows = [head]
    for r in results:
        ms = r.ms["rnn_fast"]
        gflops = r.flops / (ms * 1e-3) / 1e9
        row = [r.config, r.pass_, r.dtype, f"{ms:.3f}", f"{gflops:.1f}", f"{100 * gflops / gemm[r.dtype]:.0f}%"]
        row += [f"{r.ms[p]:.3f}" for p in peers]
        row += [f"{r.ms[p] / ms:.2f}x" for p in peers]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------ targets


@dataclass
class Target:
    name: str
    value: Optional[float]  # None: not measured in this run
    needed: float
    unit: str = "x"
    at_most: bool = False  # the value must stay at or below `needed`

    @property
    def status(self) -> str:
        if self.value is None:
            return "not run"
        ok = self.value <= self.needed if self.at_most else self.value >= self.needed
        return "PASS" if ok else "FAIL"


def find(results: List[Result], config: str, pass_: str, dtype: str = "float32") -> Optional[Result]:
    for r in results:
        if r.config == config and r.pass_ == pass_ and r.dtype == dtype:
            return r
    return None


def ratio(results, config, pass_, peer, dtype="float32") -> Optional[float]:
    r = find(results, config, pass_, dtype)
    if r is None or r.ms.get(peer) is None:
        return None
    return r.ms[peer] / r.ms["rnn_fast"]


def targets(results: List[Result], gemm: Dict[str, float], extras: Dict[str, float]) -> List[Target]:
    large = find(results, "large", "fwd")
    large_pct = None if large is None else 100 * large.flops / (large.ms["rnn_fast"] * 1e-3) / 1e9 / gemm["float32"]
    return [
        Target("seed-like LSTM fwd+bwd vs reference", ratio(results, "seed-like", "fwd+bwd", "reference"), 10),
        Target("seed-like LSTM fwd+bwd vs torch", ratio(results, "seed-like", "fwd+bwd", "torch"), 4),
        Target("latency LSTM fwd vs torch", ratio(results, "latency", "fwd", "torch"), 3),
        Target("medium LSTM fwd vs torch", ratio(results, "medium", "fwd", "torch"), 1.0),
        Target("medium LSTM fwd+bwd vs torch", ratio(results, "medium", "fwd+bwd", "torch"), 1.3),
        Target("large LSTM fwd vs torch", ratio(results, "large", "fwd", "torch"), 0.95),
        Target("large LSTM fwd, % of in-run sgemm", large_pct, 85, "%"),
        Target("large LSTM fwd+bwd vs torch", ratio(results, "large", "fwd+bwd", "torch"), 1.1),
        Target("rnn-medium fwd+bwd vs torch", ratio(results, "rnn-medium", "fwd+bwd", "torch"), 1.2),
        Target("rnn-large fwd+bwd vs torch", ratio(results, "rnn-large", "fwd+bwd", "torch"), 1.2),
        Target("float64 medium LSTM fwd+bwd vs torch", ratio(results, "medium", "fwd+bwd", "torch", "float64"), 1.5),
        Target("large LSTM fwd+bwd, 2 threads vs 1", extras.get("thread_scaling"), 1.7),
        Target("first call / steady state (medium fwd+bwd)", extras.get("first_call"), 1.5, at_most=True),
        Target("peak memory / cache+outputs (large fwd+bwd)", extras.get("peak_memory"), 1.3, at_most=True),
    ]


def fmt_targets(ts: List[Target]) -> str:
    rows = [["target", "measured", "needed", "status"]]
    for t in ts:
        value = "-" if t.value is None else f"{t.value:.2f}{t.unit}"
        rows.append([t.name, value, f"{'<=' if t.at_most else '>='} {t.needed:g}{t.unit}", t.status])
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# A script run in a fresh interpreter: the first call there pays for thread
# creation and first-touch page faults, and the peak RSS belongs to one call.
# It pauses before the first call as settle() does between peers: importing
# NumPy starts OpenBLAS's workers, which spin for ~0.1 s and would take a core
# from whatever runs then (measured: 1.3x becomes 2.0x).
_FRESH = r"""
import json, resource, sys, time
import numpy as np
import rnn_fast
N, T, D, H, threads, what = [int(v) for v in sys.argv[1:6]] + [sys.argv[6]]
rnn_fast.set_num_threads(threads)
rng = np.random.default_rng(0)
x = rng.standard_normal((N, T, D), dtype=np.float32)
h0 = np.zeros((N, H), np.float32)
Wx = rng.standard_normal((D, 4 * H), dtype=np.float32) / np.float32(D ** 0.5)
Wh = rng.standard_normal((H, 4 * H), dtype=np.float32) / np.float32(H ** 0.5)
b = np.zeros(4 * H, np.float32)
dh = np.ones((N, T, H), np.float32)
def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
def run():
    h, cache = rnn_fast.lstm_forward(x, h0, Wx, Wh, b)
    return h, rnn_fast.lstm_backward(dh, cache), cache
if what == "first":
    time.sleep(0.25)
    t0 = time.perf_counter(); run(); first = time.perf_counter() - t0
    times = []
    for _ in range(7):
        t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    print(json.dumps({"ratio": first / sorted(times)[3]}))
else:
    before = rss("VmRSS:")
    out = run()
    peak = rss("VmHWM:") - before
    f = 4
    need = f * (N * T * D + 2 * N * H + D * 4 * H + H * 4 * H + 2 * N * T * H + N * T * 4 * H)  # cache
    need += f * (N * T * H + N * T * D + N * H + D * 4 * H + H * 4 * H + 4 * H)  # h, dx, dh0, dWx, dWh, db
    print(json.dumps({"ratio": peak / need, "peak": peak, "need": need}))
"""


def fresh(cfg: Config, threads: int, what: str) -> Dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _FRESH, str(cfg.N), str(cfg.T), str(cfg.D), str(cfg.H), str(threads), what],
        capture_output=True, text=True, check=True, timeout=600,
    )
    return json.loads(out.stdout)


def extras(threads: int, budget_s: float, max_repeats: int, progress) -> Dict[str, float]:
    """The targets outside the main table: thread scaling, first call, peak memory."""
    large = next(c for c in CONFIGS if c.name == "large")
    medium = next(c for c in CONFIGS if c.name == "medium")
    out = {}
    progress("thread scaling: large LSTM fwd+bwd at 1 thread")
    fwd_bwd = numpy_like(rnn_fast, large, np.float32)[1]
    rnn_fast.set_num_threads(1)
    one = median_ms(fwd_bwd, budget_s, 3, max_repeats)
    rnn_fast.set_num_threads(threads)
    out["thread_scaling"] = one / median_ms(fwd_bwd, budget_s, 3, max_repeats)
    progress("first call against steady state (fresh process)")
    # One sample per process: the median of five processes.
    out["first_call"] = float(np.median([fresh(medium, threads, "first")["ratio"] for _ in range(5)]))
    progress("peak memory of a large fwd+bwd (fresh process)")
    out["peak_memory"] = fresh(large, threads, "memory")["ratio"]
    return out


def plot(results: List[Result], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'rnn_fast[bench]'")
    peers = [p for p in ("reference", "torch") if any(r.ms.get(p) for r in results)]
    labels = [f"{r.config}\n{r.pass_} {r.dtype}" for r in results]
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(results)), 4.5))
    width = 0.8 / len(peers)
    for k, peer in enumerate(peers):
        values = [r.ms[peer] / r.ms["rnn_fast"] if r.ms.get(peer) else 0 for r in results]
        ax.bar([i + k * width for i in range(len(results))], values, width, label=f"{peer} time / rnn_fast time")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + width * (len(peers) - 1) / 2 for i in range(len(results))])
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("speed-up of rnn_fast (log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
    ap.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the ratios (needs matplotlib)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")

    configs = [c for c in CONFIGS if (args.full or not c.full_only) and (args.cell in (None, c.cell))]
    budget, max_repeats = (2.0, 60) if args.full else (0.25, 15)
    dtype = np.dtype(args.dtype).type

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    progress(f"measuring NumPy matmul throughput ({args.dtype}) ...")
    gemm = {args.dtype: gemm_gflops(dtype)}
    t0 = time.perf_counter()
    results = run(configs, dtype, args.threads, budget, max_repeats, progress)
    extra: Dict[str, float] = {}
    if args.full and args.dtype == "float32" and args.cell in (None, "lstm"):
        progress("float64: medium LSTM")
        gemm["float64"] = gemm_gflops(np.float64)
        results += run([c for c in CONFIGS if c.name == "medium"], np.float64, args.threads, budget, max_repeats, progress)
        extra = extras(args.threads, budget, max_repeats, progress)
    torch = load_torch()
    print(f"rnn_fast {rnn_fast.__version__} | {time.strftime('%Y-%m-%d')} | {cpu_model()} | "
          f"{os.cpu_count()} cores | threads={args.threads} | {args.dtype} | "
          f"torch {torch.__version__ if torch else 'not installed'}")
    print(f"NumPy matmul ({args.dtype}, 2048^2): {gemm[args.dtype]:.1f} GFLOP/s; ratios are peer time / rnn_fast time")
    print(fmt_table(results, gemm))
    ts = targets(results, gemm, extra) if args.dtype == "float32" else []
    if ts:
        print()
        print(fmt_targets(ts))
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gemm_gflops": gemm, "cpu": cpu_model(), "threads": args.threads, "extras": extra,
                       "targets": [asdict(t) | {"status": t.status} for t in ts],
                       "results": [asdict(r) for r in results]}, f, indent=1)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
