"""Data-parallel training across processes on MPI (through mpi4py), as
Horovod and PyTorch's DistributedDataParallel do it. One line switches it on
in a script that every process runs::

    from rnn_fast.nn import distributed
    distributed.init()          # before building the model; mpirun -np K python train.py

From then on, in every process:

- ``fit`` starts by broadcasting rank 0's weights, optimizer state and
  random generators (so initial weights, shuffling and dropout masks agree);
  every global batch of ``batch_size`` samples is split into K contiguous
  parts (sizes differing by at most one), each rank computes the gradient
  of its part, and one ``Allreduce`` per step sums them, weighted by each
  part's share of the loss (samples, or unmasked steps), fused into one
  buffer with the loss and an error flag; the compiled metrics' states
  (sums, in float64) follow in a second small Allreduce. Penalties,
  clipping and the optimizer then run on the sum, identically everywhere:
  K processes reach the weights one process reaches with the same
  ``batch_size``, to float rounding. Dropout masks are drawn for the whole
  global batch and sliced, so they are the one-process run's too.
- ``train_on_batch`` does one such step on the batch it is given.
- ``evaluate`` splits every batch as ``fit`` does (the same means over each
  batch's samples or unmasked steps as one process), one small Allreduce a
  batch; ``predict`` takes each rank's share of the samples and gathers the
  predictions on every rank.
- The loss, metrics and ``History`` are the global batch's; the progress bar
  prints on rank 0 only; callbacks run on every rank with the same logs and
  rank 0's ``stop_training`` decides for all; ``save`` writes on rank 0 only.
- A rank whose step raises tells the others through the step's buffer: all
  raise (the others a RuntimeError naming it) rather than wait. An uncaught
  exception anywhere aborts the whole job (MPI_Abort, as ``python -m
  mpi4py`` does), and mpirun ends the job when a rank dies.

Without ``init()`` nothing changes, and importing rnn_fast.nn never imports
mpi4py. Needs ``pip install "rnn_fast[mpi]"`` (mpi4py and Open MPI).
"""
from __future__ import annotations

import sys
from typing import Optional, Tuple

import numpy as np

from . import backend, data

__all__ = ["Context", "init", "active", "rank", "size", "finalize"]

_context: Optional["Context"] = None


class Context:
    """The processes training together: an MPI communicator and this
    process's place in it."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def __repr__(self):
        return f"Context(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def part(self, n: int, rank: Optional[int] = None) -> Tuple[int, int]:
        """[start, stop) of this rank's share of n samples: contiguous, the
        first n % K ranks one more than the rest."""
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.size)
        start = r * base + min(r, extra)
        return start, start + base + (1 if r < extra else 0)

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def exchange(self, buf: np.ndarray, error: Optional[BaseException], doing: str) -> np.ndarray:
        """Sums buf over the ranks; its last `size` slots flag the ranks
        that failed (error: this one did, its own slots then zeros). Every
        rank raises if any failed: its own error, or one naming that rank."""
        if error is not None:
            buf[:] = 0
            buf[-self.size + self.rank] = 1
        self.allreduce(buf)
        if error is not None:
            raise error
        failed = np.flatnonzero(buf[-self.size:])
        if failed.size:
            raise RuntimeError(f"rnn_fast.nn.distributed: rank {int(failed[0])} raised {doing} (its traceback is "
                               f"in its output); rank {self.rank} stops too")
        return buf

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def gather_rows(self, local: np.ndarray, n: int) -> np.ndarray:
        """The rows of every rank's share, in rank order, on every rank."""
        rest = local.shape[1:]
        counts = [self.part(n, r)[1] - self.part(n, r)[0] for r in range(self.size)]
        row = int(np.prod(rest, dtype=np.int64))
        out = np.empty((n,) + rest, local.dtype)
        sizes = [c * row for c in counts]
        self.comm.Allgatherv(np.ascontiguousarray(local), [out, sizes])
        return out


def init(comm=None) -> Context:
    """Switches rnn_fast.nn to data-parallel training over comm (default
    MPI.COMM_WORLD) and returns the Context. An uncaught exception in any
    process then aborts the job instead of leaving the others waiting."""
    global _context
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError('rnn_fast.nn.distributed needs mpi4py and an MPI: pip install "rnn_fast[mpi]"') from e
    _context = Context(MPI.COMM_WORLD if comm is None else comm)
    if _context.size > 1:
        previous = sys.excepthook

        def abort_on_uncaught(kind, value, tb):
            previous(kind, value, tb)
            sys.stderr.flush()
            _context.comm.Abort(1)

        sys.excepthook = abort_on_uncaught
    return _context


def active() -> Optional[Context]:
    """The Context of init(), or None (one process)."""
    return _context


def rank() -> int:
    return 0 if _context is None else _context.rank


def size() -> int:
    return 1 if _context is None else _context.size


def finalize() -> None:
    """Back to one-process training (the communicator stays as mpi4py keeps it)."""
    global _context
    _context = None


# ------------------------------------------------------- what the models call

def sync_random(ctx: Context, model) -> None:
    """Rank 0's random generators everywhere (shuffling, initializers, dropout)."""
    state = ctx.bcast(backend.rng().bit_generator.state)
    backend.rng().bit_generator.state = state
    for layer in model.layers:
        own = getattr(layer, "_rng", None)
        if own is not None:
            own.bit_generator.state = ctx.bcast(own.bit_generator.state)


def sync_weights(ctx: Context, model) -> None:
    """Rank 0's weights and optimizer state everywhere."""
    for w in model.weights:
        ctx.comm.Bcast(w, root=0)
    opt = model.optimizer
    if opt is not None:
        shapes = ctx.bcast([[s.shape for s in slots] for slots in opt.state])
        if [[s.shape for s in slots] for slots in opt.state] != shapes:
            opt.state = [[np.zeros(shape, w.dtype) for shape in slot_shapes]
                         for slot_shapes, w in zip(shapes, model.trainable_weights)]
        for slots in opt.state:
            for s in slots:
                ctx.comm.Bcast(s, root=0)
        opt.iterations = ctx.bcast(opt.iterations)


def _trainable_layers(model):
    return [layer for layer in model.layers if layer.trainable]


def _weights(model, pred: np.ndarray) -> float:
    """A part's loss weight: what its loss averages over (the output's
    unmasked rows, or its rows), so that weighted sums over the parts give
    the whole batch's loss."""
    mask = model._output_mask
    if mask is not None:
        return float(np.sum(mask))
    return float(pred.size // pred.shape[-1] if pred.ndim > 1 else pred.size)


def _metric_deltas(model, y: np.ndarray, pred: np.ndarray, sample_weight) -> np.ndarray:
    """What this part adds to the compiled metrics' states (sums, so the
    parts' additions add up to the whole batch's)."""
    before = [m.state.copy() for m in model._compiled_metrics]
    for m in model._compiled_metrics:
        m.reset_state()
    model._update_metrics(y, pred, sample_weight)
    deltas = [m.state.copy() for m in model._compiled_metrics]
    for m, b in zip(model._compiled_metrics, before):
        m.state[...] = b
    return np.concatenate(deltas) if deltas else np.zeros(0)


def _make_metrics(model, y: np.ndarray) -> int:
    """Every rank makes the compiled metrics from the global batch's shapes
    (a rank with no rows has no output to take them from); returns the size
    of their states."""
    out = model.output_shape[1:]
    model._make_metrics(y.shape, (y.shape[0],) + tuple(1 if d is None else d for d in out))
    return sum(m.state.size for m in model._compiled_metrics)


def _part_weights(sample_weight, start: int, stop: int):
    return None if sample_weight is None else np.asarray(sample_weight)[start:stop]


def train_step(ctx: Context, model, x: np.ndarray, y: np.ndarray, sample_weight=None, sync: bool = False) -> None:
    """One data-parallel step on the global batch (x, y, sample_weight):
    this rank's part forward and backward, one Allreduce, then penalties,
    clipping and the update; the loss tracker and the metrics take the
    global batch's values. sync: first build the model if need be (drawing
    its weights where one process would: at its first batch) and take rank
    0's weights and optimizer state."""
    n = data.nsamples(x)
    if sync or not model.built:
        if not model.built:
            model.build((None,) + tuple(np.shape(x)[1:]))
        sync_weights(ctx, model)
    start, stop = ctx.part(n)
    layers = _trainable_layers(model)
    grads_of = [g for layer in layers for g in layer.grads]
    error: Optional[BaseException] = None
    local_n = stop - start
    weight = loss = 0.0
    deltas = None
    try:
        n_metrics = _make_metrics(model, y)
        with backend.batch_part(start, stop, n):
            if local_n > 0:
                sw = _part_weights(sample_weight, start, stop)
                pred = model._forward(data.take(x, slice(start, stop)), training=True)
                loss, dpred = model._losses(y[start:stop], pred, sw, gradient=True)
                model._backward(dpred)
                weight = _weights(model, pred)
                deltas = _metric_deltas(model, y[start:stop], pred, sw)
    except BaseException as e:  # told to the others through the buffer, then raised here
        error = e
        n_metrics = sum(m.state.size for m in model._compiled_metrics or [])
    total = sum(g.size for g in grads_of)
    # [weight * grads..., weight, weight * loss, metric state deltas..., failed ranks...] in the gradients'
    # dtype (a float32 model's step sends 4 bytes a weight, as Horovod's and DDP's do); the metric states,
    # sums of counts, in float64 (a second, small buffer).
    dtype = np.result_type(*grads_of) if grads_of else np.float64
    buf = np.zeros(total + 2 + ctx.size, dtype)
    states = np.zeros(n_metrics, np.float64)
    if error is None and local_n > 0:
        at = 0
        for g in grads_of:
            buf[at:at + g.size] = g.ravel()
            at += g.size
        buf[:total] *= weight
        buf[total] = weight
        buf[total + 1] = weight * loss
        states[:] = deltas
    ctx.exchange(buf, error, "during a training step")
    if n_metrics:
        ctx.allreduce(states)
    W = buf[total]
    at = 0
    for g in grads_of:
        g[...] = (buf[at:at + g.size] / W if W else 0).reshape(g.shape)
        at += g.size
    penalty = model._regularization()  # of the weights the step started from, as one process reports it
    grads = []
    for layer in layers:
        layer.add_regularization_grads()
        grads += layer.grads
    if grads:
        model.optimizer.apply(model.trainable_weights, grads)
    model._loss_tracker.update_state((buf[total + 1] / W if W else 0.0) + penalty, np.float64(n))
    _add_states(model, states)


def _add_states(model, states: np.ndarray) -> None:
    at = 0
    for m in model._compiled_metrics:
        m.state += states[at:at + m.state.size]
        at += m.state.size


def test_step(ctx: Context, model, x: np.ndarray, y: np.ndarray, sample_weight=None) -> None:
    """The loss and metrics of the global batch (x, y, sample_weight) in
    inference mode, each rank computing its part: one Allreduce of the
    weighted sums and the metric states (and an error flag)."""
    n = data.nsamples(x)
    start, stop = ctx.part(n)
    error: Optional[BaseException] = None
    n_metrics = 0
    deltas = None
    weight = loss = 0.0
    try:
        n_metrics = _make_metrics(model, y)
        if stop > start:
            sw = _part_weights(sample_weight, start, stop)
            pred = model._forward(data.take(x, slice(start, stop)), training=False, keep_cache=False)
            loss = model._losses(y[start:stop], pred, sw, gradient=False)[0]
            weight = _weights(model, pred)
            deltas = _metric_deltas(model, y[start:stop], pred, sw)
    except BaseException as e:
        error = e
        n_metrics = sum(m.state.size for m in model._compiled_metrics or [])
    buf = np.zeros(2 + n_metrics + ctx.size, np.float64)
    if error is None and stop > start:
        buf[0], buf[1] = weight * loss, weight
        buf[2:2 + n_metrics] = deltas
    ctx.exchange(buf, error, "while evaluating")
    W = buf[1]
    model._loss_tracker.update_state((buf[0] / W if W else 0.0) + model._regularization(), np.float64(n))
    _add_states(model, buf[2:2 + n_metrics])
