"""Benchmark: rnn_fast against the implementations a user could pick instead,
side by side in one process.

    python -m rnn_fast.bench [--quick | --full | --reservoir] [--cell lstm|gru|rnn] [--dtype float32|float64]
                             [--threads N] [--json PATH] [--plot PATH] [--keep-blas-env]

Three passes per configuration: the inference forward ("infer": rnn_fast's
LSTMInference/GRUInference/RNNInference, whose weights are packed once beforehand as ONNX
Runtime's session packs them; PyTorch under no_grad; ONNX Runtime; the NumPy
loop), the training forward ("train": each keeps what its backward needs;
PyTorch in grad mode) and forward+backward ("fwd+bwd"). Each is timed after warm-up in
blocks, peers in alternating order, each peer's threads given time to stop
spinning before the next; the figure is the median. Rows give milliseconds,
GFLOP/s of the GEMM work, and its share of NumPy's sgemm (the "peak"): a
2048^2 matmul timed in every row's alternating rounds beside the peers, its
median over the configuration's rows (the statistic of every other figure,
from calls interleaved with the ones it is set against: a shared host's
speed drifts by 10-20% over a run, and a yardstick taken minutes away
measures the drift). The median over the whole run, the best sgemm block
and the FMA peak of the cores (independent multiply-adds on every thread)
are printed beside it. Then it checks the project's speed targets;
--full adds more configurations, float64, thread scaling, the first call and
the peak memory (each in a fresh process), and the echo state networks'
reservoirs against reservoirpy (float64, the same weights in both), which
--reservoir runs alone.

NumPy's BLAS runs as it would on a user's machine: when OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE is set (some hosts pin OpenBLAS to older kernels with them)
the benchmark re-executes itself with both removed, unless --keep-blas-env,
and prints the kernel OpenBLAS chose (threadpoolctl's 'architecture').
"""
from __future__ import annotations

import argparse
import gc
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

from .peers import (RESERVOIRS, blas_info, load_torch, numpy_peer, onnxruntime_peer, reservoir_peers,
                    rnn_fast_lengths, rnn_fast_peer, torch_peer)

BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
PASSES = ("infer", "train", "fwd+bwd")
PEERS = ("numpy", "torch", "onnxruntime")  # timed against rnn_fast; ONNX Runtime has forwards only
SGEMM = "sgemm"  # the yardstick timed alongside them: NumPy's PEAK_N^2 matmul
PEAK_N = 2048


def gemm_flops_of(n: int) -> float:
    return 2.0 * n**3


@dataclass(frozen=True)
class Config:
    name: str
    cell: str  # "lstm", "gru" or "rnn"
    N: int
    T: int
    D: int
    H: int
    layers: int = 1  # stacked layers, each of H units (the first reads D features)
    full_only: bool = False

    @property
    def gates(self) -> int:
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]

    def gemm_flops(self) -> float:
        """Multiply-adds x 2 of the forward's GEMMs (the element-wise work is not counted)."""
        flops = 0.0
        for layer in range(self.layers):
            D = self.D if layer == 0 else self.H
            flops += 2.0 * self.N * self.T * (D + self.H) * self.gates * self.H
        return flops

    def flops(self, pass_: str) -> float:
        return self.gemm_flops() * (3 if pass_ == "fwd+bwd" else 1)


CONFIGS = [
    Config("seed-like", "lstm", 32, 60, 1, 50),
    Config("keras-stock-4x50", "lstm", 32, 60, 1, 50, layers=4),
    Config("latency", "lstm", 1, 100, 128, 256),
    Config("medium", "lstm", 32, 100, 256, 256),
    Config("lstm-16x512", "lstm", 16, 25, 512, 512),
    Config("large", "lstm", 64, 25, 1024, 1024),
    Config("gru-medium", "gru", 32, 100, 256, 256),
    Config("gru-large", "gru", 64, 50, 1024, 1024),
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
    pass_: str  # one of PASSES
    flops: float
    ms: Dict[str, Optional[float]] = field(default_factory=dict)  # implementation -> median ms
    sgemm_ms: List[float] = field(default_factory=list)  # the yardstick's calls in this row's rounds

    def best_peer(self, among=PEERS):
        """(name, ms) of the fastest peer measured, or None."""
        timed = [(p, self.ms[p]) for p in among if self.ms.get(p) is not None]
        return min(timed, key=lambda pm: pm[1]) if timed else None

    def gflops(self) -> float:
        return self.flops / (self.ms["rnn_fast"] * 1e-3) / 1e9

    def pct_of_peak(self, base: float) -> float:
        return 100 * self.gflops() / base


# ------------------------------------------------------------- timing


def block_ms(fn: Callable[[], object], budget_s: float, min_repeats: int, max_repeats: int) -> List[float]:
    """Wall times (ms) of fn over a block: one or two warm-up calls (the
    first pays for page faults and heap growth), then at least min_repeats
    calls and as many more as fit in budget_s."""
    start = time.perf_counter()
    fn()
    if time.perf_counter() - start < budget_s / 4:
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def settle(seconds: float = 0.15) -> None:
    """Let a peer's worker threads (OpenBLAS, OpenMP, ONNX Runtime) stop
    spinning before the next peer is timed: a spinner would take a core."""
    time.sleep(seconds)


def matmul_closure(dtype, n: int = PEAK_N) -> Callable[[], object]:
    """NumPy's n x n matmul: the yardstick of the '% sgemm' figures."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    return lambda: a @ b


def gemm_gflops(dtype, n: int = PEAK_N, budget_s: float = 1.0) -> float:
    """This machine's matmul throughput through NumPy's BLAS, in GFLOP/s: the
    best of a block's calls."""
    ms = min(block_ms(matmul_closure(dtype, n), budget_s, 3, 20))
    settle()
    return gemm_flops_of(n) / (ms * 1e-3) / 1e9


# ---------------------------------------------------------------- run


def implementations(cfg: Config, dtype, threads: int) -> Dict[str, Dict[str, Callable[[], object]]]:
    """implementation -> pass -> closure, for those installed."""
    out = {}
    for name, make in (("rnn_fast", rnn_fast_peer), ("numpy", numpy_peer), ("torch", torch_peer)):
        fns = make(cfg, dtype)
        if fns is not None:
            out[name] = dict(zip(PASSES, fns))
    ort = onnxruntime_peer(cfg, dtype, threads)
    if ort is not None:
        out["onnxruntime"] = {"infer": ort}
    return out


def run(configs: List[Config], dtype, threads: int, budget_s: float, max_repeats: int, rounds: int,
        progress) -> List[Result]:
    torch = load_torch()
    rnn_fast.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    results = []
    matmul = matmul_closure(dtype)
    for k, cfg in enumerate(configs):
        progress(f"[{k + 1}/{len(configs)}] {cfg.name} ({cfg.cell}, N={cfg.N} T={cfg.T} D={cfg.D} H={cfg.H}"
                 f"{f' x{cfg.layers} layers' if cfg.layers > 1 else ''})")
        impls = None
        gc.collect()  # the previous configuration's sessions and their threads go first
        impls = implementations(cfg, dtype, threads)
        impls[SGEMM] = {p: matmul for p in PASSES}
        settle(0.5)  # new thread pools (ONNX Runtime's session) start up spinning
        for pass_ in PASSES:
            r = Result(cfg.name, cfg.cell, np.dtype(dtype).name, threads, pass_, cfg.flops(pass_))
            names = [n for n in impls if pass_ in impls[n]]
            samples: Dict[str, List[float]] = {n: [] for n in names}
            for round_ in range(rounds):  # alternating order: no peer always runs first
                for name in (names if round_ % 2 == 0 else names[::-1]):
                    # The yardstick needs fewer calls: its blocks are a quarter as long.
                    share = budget_s / rounds / (4 if name == SGEMM else 1)
                    samples[name] += block_ms(impls[name][pass_], share, 3 if name == SGEMM else 2, max_repeats)
                    settle()
            r.sgemm_ms = samples.pop(SGEMM)
            r.ms = {n: statistics.median(v) for n, v in samples.items()}
            results.append(r)
    return results


def fmt_table(results: List[Result], peak: Dict[str, float]) -> str:
    peers = [p for p in PEERS if any(r.ms.get(p) is not None for r in results)]
    head = ["config", "pass", "dtype", "rnn_fast ms", "GFLOP/s", "% sgemm", "sgemm GF/s"] + \
        [f"{p} ms" for p in peers] + ["fastest peer", "x fastest"]
    rows = [head]
    for r in results:
        ms = r.ms["rnn_fast"]
        base = row_base(results, r, peak)
        row = [r.config, r.pass_, r.dtype, f"{ms:.3f}", f"{r.gflops():.1f}", f"{r.pct_of_peak(base):.0f}%",
               f"{base:.1f}"]
        row += ["-" if r.ms.get(p) is None else f"{r.ms[p]:.3f}" for p in peers]
        best = r.best_peer()
        row += ["-", "-"] if best is None else [best[0], f"{best[1] / ms:.2f}x"]
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


def sgemm_base(results: List[Result], dtype: str, config: Optional[str] = None) -> Optional[float]:
    """GFLOP/s of NumPy's matmul, the median of its calls in the rounds of
    the configuration's rows (of every row, config None)."""
    ms = [t for r in results if r.dtype == dtype and config in (None, r.config) for t in r.sgemm_ms]
    return gemm_flops_of(PEAK_N) / (statistics.median(ms) * 1e-3) / 1e9 if ms else None


def row_base(results: List[Result], r: Result, peak: Dict[str, float]) -> float:
    """The '% sgemm' base of row r: its configuration's sgemm median, or
    (no such calls) the run's."""
    return sgemm_base(results, r.dtype, r.config) or peak[r.dtype]


def pct_of_peak(results, config, pass_, peak) -> Optional[float]:
    r = find(results, config, pass_)
    return None if r is None else r.pct_of_peak(row_base(results, r, peak))


def targets(results: List[Result], peak: Dict[str, float], extras: Dict[str, float]) -> List[Target]:
    """Issue 10's targets (and issue 11's GRU rows, issue 12's lengths),
    float32 unless said. Forward+backward must beat the faster of PyTorch and
    the NumPy loop by 1.25x, or run at 85% of the sgemm peak where 1.25x would
    take more than that."""
    ts = []
    for r in results:
        if r.dtype != "float32" or r.pass_ != "infer" or r.best_peer() is None:
            continue
        name, ms = r.best_peer()
        ts.append(Target(f"{r.config} infer vs fastest ({name})", ms / r.ms["rnn_fast"], 1.0))
    for r in results:
        best = r.best_peer(("numpy", "torch"))
        if r.dtype != "float32" or r.pass_ != "fwd+bwd" or best is None:
            continue
        name, ms = best
        at_peak_ms = r.flops / (0.85 * row_base(results, r, peak) * 1e9) * 1e3
        needed = min(1.25, ms / at_peak_ms)  # 1.25x, unless that is beyond 85% of the peak
        ts.append(Target(f"{r.config} fwd+bwd vs faster ({name})", ms / r.ms["rnn_fast"], round(needed, 2)))
    ts += [
        Target("large LSTM infer, % of in-run sgemm", pct_of_peak(results, "large", "infer", peak), 85, "%"),
        Target("large LSTM fwd+bwd, % of in-run sgemm", pct_of_peak(results, "large", "fwd+bwd", peak), 85, "%"),
        Target("seed-like LSTM fwd+bwd vs torch", ratio(results, "seed-like", "fwd+bwd", "torch"), 2),
        Target("gru-medium fwd+bwd vs torch", ratio(results, "gru-medium", "fwd+bwd", "torch"), 1.3),
        Target("gru-large fwd+bwd vs torch", ratio(results, "gru-large", "fwd+bwd", "torch"), 1.3),
        Target("float64 medium LSTM fwd+bwd vs torch", ratio(results, "medium", "fwd+bwd", "torch", "float64"), 1.5),
        Target("large LSTM fwd+bwd, 2 threads vs 1", extras.get("thread_scaling"), 1.8),
        Target("first call / steady state (medium fwd+bwd)", extras.get("first_call"), 1.5, at_most=True),
        Target("peak memory / cache+outputs (large fwd+bwd)", extras.get("peak_memory"), 1.3, at_most=True),
        Target("medium LSTM fwd+bwd, lengths 1..T / all T", extras.get("lengths_fwd+bwd"), 0.65, at_most=True),
        Target("medium LSTM infer, lengths 1..T / all T", extras.get("lengths_infer"), 0.65, at_most=True),
    ]
    return ts + reservoir_targets(extras)


def reservoir_targets(extras: Dict[str, float]) -> List[Target]:
    """Issue 14's: echo state networks' reservoirs against reservoirpy 0.4.2."""
    return [Target("reservoir 100 units x 100k steps vs reservoirpy", extras.get("reservoir-100"), 10),
            Target("reservoir 1000 units x 10k steps vs reservoirpy", extras.get("reservoir-1000"), 3)]


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
    """The targets outside the main table: thread scaling, first call, peak memory, variable lengths."""
    large = next(c for c in CONFIGS if c.name == "large")
    medium = next(c for c in CONFIGS if c.name == "medium")
    out = {}
    progress("thread scaling: large LSTM fwd+bwd at 1 and at %d threads" % threads)
    fwd_bwd = rnn_fast_peer(large, np.float32)[2]
    samples: Dict[int, List[float]] = {1: [], threads: []}
    for round_ in range(2):
        for n in ((1, threads) if round_ == 0 else (threads, 1)):
            rnn_fast.set_num_threads(n)
            samples[n] += block_ms(fwd_bwd, budget_s / 2, 2, max_repeats)
    rnn_fast.set_num_threads(threads)
    out["thread_scaling"] = statistics.median(samples[1]) / statistics.median(samples[threads])
    progress("first call against steady state (fresh process)")
    # One sample per process: the median of nine processes (five left it at the
    # mercy of the host: 1.31 and 1.54 in two runs of one build).
    out["first_call"] = float(np.median([fresh(medium, threads, "first")["ratio"] for _ in range(9)]))
    progress("peak memory of a large fwd+bwd (fresh process)")
    out["peak_memory"] = fresh(large, threads, "memory")["ratio"]
    # Issue 12: lengths spread evenly over 1..T (shuffled), against every
    # row of length T, alternately.
    progress("variable lengths: medium LSTM with lengths 1..T against all T")
    lengths = np.random.default_rng(1).permutation(np.arange(medium.N) * medium.T // medium.N + 1)
    runs = {L is None: rnn_fast_lengths(medium, np.float32, L) for L in (None, lengths)}
    for pass_, k in (("infer", 0), ("fwd+bwd", 2)):
        samples: Dict[bool, List[float]] = {True: [], False: []}
        for round_ in range(2):
            for full in ((True, False) if round_ == 0 else (False, True)):
                samples[full] += block_ms(runs[full][k], budget_s / 2, 2, max_repeats)
        out["lengths_" + pass_] = statistics.median(samples[False]) / statistics.median(samples[True])
    return out


def reservoirs(budget_s: float, max_repeats: int, progress) -> Dict[str, float]:
    """Each reservoir's reservoirpy time / rnn_fast's (RESERVOIRS; float64),
    timed alternately in two rounds; their times (ms) under "<name> ms"."""
    out: Dict[str, float] = {}
    for name, units, steps in RESERVOIRS:
        progress(f"echo state network: {units} units x {steps} steps, rnn_fast against reservoirpy")
        runs = reservoir_peers(units, steps)
        samples: Dict[str, List[float]] = {k: [] for k in runs}
        for round_ in range(2):
            for k in (list(runs) if round_ == 0 else list(runs)[::-1]):
                samples[k] += block_ms(runs[k], budget_s, 2, max_repeats)
        ms = {k: statistics.median(v) for k, v in samples.items()}
        out[f"{name} ms"] = ms["rnn_fast"]
        if "reservoirpy" in ms:
            out[f"{name} reservoirpy ms"] = ms["reservoirpy"]
            out[name] = ms["reservoirpy"] / ms["rnn_fast"]
    return out


def fmt_reservoirs(extra: Dict[str, float]) -> str:
    rows = ["echo state networks (float64, one series of one feature, W 10% full, the same weights in both):"]
    for name, units, steps in RESERVOIRS:
        if f"{name} ms" not in extra:
            continue
        theirs = extra.get(f"{name} reservoirpy ms")
        rows.append(f"  {units:5d} units x {steps:6d} steps: rnn_fast {extra[f'{name} ms']:8.1f} ms"
                    + (f", reservoirpy {theirs:8.1f} ms: {theirs / extra[f'{name} ms']:.1f}x" if theirs else
                       ", reservoirpy not installed"))
    return "\n".join(rows)


def plot(results: List[Result], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'rnn_fast[bench]'")
    peers = [p for p in PEERS if any(r.ms.get(p) for r in results)]
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


def versions() -> str:
    out = [f"numpy {np.__version__}"]
    torch = load_torch()
    out.append(f"torch {torch.__version__}" if torch else "torch not installed")
    try:
        import onnxruntime

        out.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        out.append("onnxruntime not installed")
    return ", ".join(out)


def blas_line() -> str:
    info = blas_info()
    if not info:
        return "NumPy BLAS: unknown (pip install threadpoolctl, in the bench extra, to see its kernel)"
    parts = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
             f"threads={i.get('num_threads')}" for i in info]
    env = ", ".join(f"{v}={os.environ[v]}" if v in os.environ else f"{v} unset" for v in BLAS_VARS)
    return f"NumPy BLAS: {'; '.join(parts)} ({env})"


def reexec_without_blas_env(argv: List[str], progress) -> None:
    """Replaces this process by the same benchmark with BLAS_VARS removed from
    its environment (and so from its children's), if any is set."""
    if not any(v in os.environ for v in BLAS_VARS):
        return
    progress(f"re-running without {' and '.join(BLAS_VARS)} (set here, not on a user's machine; "
             f"--keep-blas-env keeps them)")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "rnn_fast.bench", *argv], env)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m rnn_fast.bench", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: the core matrix, short budgets (~2 min)")
    mode.add_argument("--full", action="store_true", help="every configuration, longer budgets, extras (~6 min)")
    mode.add_argument("--reservoir", action="store_true",
                      help="only the echo state networks' reservoirs against reservoirpy (~30 s)")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], help="only this cell")
    ap.add_argument("--config", action="append", metavar="NAME", help="only this configuration (repeatable)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=rnn_fast.get_num_threads(), help="threads for every peer")
    ap.add_argument("--json", metavar="PATH", help="write the raw results as JSON")
    ap.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of the ratios (needs matplotlib)")
    ap.add_argument("--keep-blas-env", action="store_true",
                    help=f"do not re-run without {' and '.join(BLAS_VARS)}")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    names = {c.name for c in CONFIGS}
    for name in args.config or []:
        if name not in names:
            ap.error(f"--config {name!r}: one of {', '.join(sorted(names))}")

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    if not args.keep_blas_env:
        reexec_without_blas_env(argv, progress)

    configs = [] if args.reservoir else [
        c for c in CONFIGS if (args.full or not c.full_only or c.name in (args.config or []))
        and args.cell in (None, c.cell) and (not args.config or c.name in args.config)]
    # --full: four rounds of alternating blocks per row (the host's speed
    # drifts within a row's seconds too; more, shorter blocks interleave the
    # peers more finely), the same total budget.
    budget, max_repeats, rounds = (2.0, 60, 4) if args.full else (0.3, 15, 2)
    dtype = np.dtype(args.dtype).type

    progress(f"measuring the peaks ({args.dtype}): NumPy matmul, FMA throughput ...")
    rnn_fast.set_num_threads(args.threads)
    peak = {args.dtype: gemm_gflops(dtype)}
    fma = {args.dtype: rnn_fast._core._peak_gflops(0.5, args.dtype)}
    t0 = time.perf_counter()
    results = run(configs, dtype, args.threads, budget, max_repeats, rounds, progress)
    extra: Dict[str, float] = {}
    if args.full and args.dtype == "float32" and args.cell in (None, "lstm") and not args.config:
        progress("float64: medium LSTM")
        peak["float64"] = gemm_gflops(np.float64)
        results += run([c for c in CONFIGS if c.name == "medium"], np.float64, args.threads, budget, max_repeats,
                       rounds, progress)
        extra = extras(args.threads, budget, max_repeats, progress)
    if (args.full or args.reservoir) and args.dtype == "float32" and not args.config and args.cell is None:
        extra.update(reservoirs(budget if args.full else 1.0, max_repeats, progress))
    # The peaks once more at the end: the highest seen is the peak (one
    # measurement can land in a slow moment of a shared host and flatter
    # every percentage).
    progress("measuring the peaks again")
    for name in list(peak):
        peak[name] = max(peak[name], gemm_gflops(np.dtype(name).type))
        fma[name] = max(fma.get(name, 0.0), rnn_fast._core._peak_gflops(0.5, name))
    print(f"rnn_fast {rnn_fast.__version__} | {time.strftime('%Y-%m-%d')} | {cpu_model()} | "
          f"{os.cpu_count()} cores | threads={args.threads} | {args.dtype} | ISA {rnn_fast._core._isa()} | "
          f"{versions()}")
    print(blas_line())
    # The yardstick's median through the run, or (no row of that dtype) its
    # best block: the base of rows whose configuration has no sgemm calls of
    # its own, and a figure printed beside each row's.
    best = dict(peak)
    for name in peak:
        peak[name] = sgemm_base(results, name) or best[name]
    print(f"peak ({args.dtype}): NumPy matmul {PEAK_N}^2 timed in every row's rounds; the '% sgemm' base is the "
          f"median of its calls in the configuration's rows (column 'sgemm GF/s'); over the whole run "
          f"{peak[args.dtype]:.1f} GFLOP/s, best block {best[args.dtype]:.1f}; FMA units {fma[args.dtype]:.1f} GFLOP/s")
    print("ratios: fastest peer's time / rnn_fast's time; infer = inference forward (no cache, no_grad; "
          "rnn_fast and ONNX Runtime with weights packed beforehand), train = training forward")
    if results:
        print(fmt_table(results, peak))
    if any(name.startswith("reservoir") for name in extra):
        print(fmt_reservoirs(extra))
    ts = (reservoir_targets(extra) if args.reservoir else targets(results, peak, extra)) \
        if args.dtype == "float32" else []
    if ts:
        print()
        print(fmt_targets(ts))
        large = [r for r in results if r.config == "large" and r.dtype == "float32" and r.pass_ != "train"]
        if large:
            def against(base):
                return ", ".join(f"{r.pass_} {r.pct_of_peak(base):.1f}%" for r in large)
            print(f"the large LSTM against the run-wide sgemm median: {against(peak['float32'])}; "
                  f"against the run's best sgemm block: {against(best['float32'])}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "best_sgemm_gflops": best, "fma_gflops": fma, "cpu": cpu_model(), "threads": args.threads,
                       "blas": blas_info(), "extras": extra,
                       "targets": [asdict(t) | {"status": t.status} for t in ts],
                       "results": [asdict(r) for r in results]}, f, indent=1, default=str)
    if args.plot:
        plot(results, args.plot)
    return 0
