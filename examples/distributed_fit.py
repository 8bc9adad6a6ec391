"""Data-parallel training on MPI: the seed's stock-price model (4 x LSTM(50)
with Dropout(0.2), Dense(1), adam, MSE, batches of 32 over 60-step windows)
trained by K processes, each taking its part of every batch.

    pip install -e ".[examples,mpi]"
    mpirun -np 2 python examples/distributed_fit.py        # as root: add --allow-run-as-root

Under mpirun, rank 0 then trains the same model in one process (this script
again, without MPI) and checks that both reach the same weights, to float
rounding: PASS or FAIL (exit status 1). Run without mpirun, it trains in one
process and reports. --model larger trains an LSTM(256) instead (the
README's timing); --epochs, --dtype as named.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from rnn_fast import nn
from rnn_fast.nn import distributed

WINDOWS, STEPS = 1198, 60


def data(dtype):
    """A noisy price-like series (seeded), cut into 60-step windows and next values."""
    rng = np.random.default_rng(0)
    t = np.arange(WINDOWS + STEPS + 1)
    series = 0.5 + 0.3 * np.sin(t / 11.0) + 0.1 * np.sin(t / 37.0) + np.cumsum(rng.normal(0, 0.01, t.shape))
    series = (series - series.min()) / (series.max() - series.min())  # min-max scaled, as the seed does
    x = np.stack([series[i:i + STEPS] for i in range(WINDOWS)])[..., None].astype(dtype)
    y = series[STEPS:STEPS + WINDOWS].astype(dtype)
    return x, y


def build(model_name):
    model = nn.Sequential()
    if model_name == "seed":
        for k in range(4):
            model.add(nn.LSTM(50, return_sequences=k < 3))
            model.add(nn.Dropout(0.2))
    else:
        model.add(nn.LSTM(256))
    model.add(nn.Dense(1))
    model.compile(optimizer="adam", loss="mean_squared_error")
    return model


def train(args):
    nn.backend.set_floatx(args.dtype)
    nn.backend.set_random_seed(0)
    x, y = data(args.dtype)
    model = build(args.model)
    t0 = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - t0
    return model, history, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--model", choices=["seed", "larger"], default="seed")
    ap.add_argument("--one-process", metavar="PATH", help="(internal) train without MPI, save the weights to PATH")
    args = ap.parse_args(argv)

    if args.one_process:
        model, history, seconds = train(args)
        np.savez(args.one_process, *model.get_weights())
        return 0

    try:
        ctx = distributed.init()
    except ImportError:
        ctx = None
    ranks = 1 if ctx is None else ctx.size
    model, history, seconds = train(args)
    grad_bytes = sum(w.nbytes for w in model.trainable_weights)
    if ranks == 1 or ctx.is_root:
        print(f"{args.model} model, {args.dtype}: {ranks} process(es) x {os.environ.get('OMP_NUM_THREADS', 'all')} "
              f"thread(s): {args.epochs} epochs in {seconds:.2f} s ({seconds / args.epochs:.2f} s an epoch); "
              f"loss {history.history['loss'][-1]:.5f}; {grad_bytes / 1e6:.2f} MB of gradients summed a step",
              flush=True)
    if ranks == 1:
        return 0
    ok = None
    if ctx.is_root:  # the same script in one process, without MPI
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "one.npz")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
            subprocess.run([sys.executable, os.path.abspath(__file__), "--one-process", path, "--epochs",
                            str(args.epochs), "--dtype", args.dtype, "--model", args.model], check=True, env=env)
            with np.load(path) as one:
                diffs = [float(np.max(np.abs(w - one[f"arr_{i}"]))) for i, w in enumerate(model.get_weights())]
            scale = max(float(np.max(np.abs(w))) for w in model.get_weights())
        # float rounding: float32's sums in another order, over every step's update
        tolerance = (1e-4 if args.dtype == "float32" else 1e-10) * scale
        ok = max(diffs) <= tolerance
        print(f"{'PASS' if ok else 'FAIL'}: {ranks} processes reach one process's weights: largest difference "
              f"{max(diffs):.2e} (weights up to {scale:.2f}; tolerance {tolerance:.1e})", flush=True)
    ok = ctx.bcast(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
