"""Variable-length batches (issue 12): lengths= on the sequence kernels, with
the semantics of PyTorch's packed sequences (pack_padded_sequence with
enforce_sorted=False). Row n runs its steps t < lengths[n] only (from
lengths[n] - 1 down to 0 when reverse); its outputs past them are 0, its
final state is the state after its last step (the initial state when its
length is 0), and gradients flowing into its padded outputs are ignored,
its padded inputs get none.

The kernels and the NumPy reference alike (LIBS). Against PyTorch (a bidirectional module on packed sequences: its
forward direction is ours, its backward direction ours with reverse=True),
and against the definition for what PyTorch cannot pack (length 0)."""
import inspect

import numpy as np
import pytest

import rnn_fast as rf
from rnn_fast import reference as ref

from conftest import CELLS, DTYPES, TOL, assert_all_close, cell_variants, rand, shape_id

LIBS = {"reference": ref, "kernels": rf}

SHAPE = (5, 7, 4, 6)  # N, T, D, H
LENGTHS = np.array([3, 7, 1, 6, 7])  # unsorted, T among them


def run(m, cell, args, lengths, reverse, kwargs, c0=None):
    """(h, hT[, cT], cache) of the cell's forward with lengths."""
    extra = {"c0": c0} if c0 is not None else {}
    return cell.forward(m, args, reverse=reverse, return_state=True, lengths=lengths, **kwargs, **extra)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torchs_packed_sequences(lib, cell, kwargs, dtype):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from test_torch_oracle import ORACLE_TOL, torch_twin

    m, cell = LIBS[lib], CELLS[cell]
    N, T, D, H = SHAPE
    lstm = cell.name == "lstm"
    fwd = cell.inputs(SHAPE, dtype, seed=1)
    rev = cell.inputs(SHAPE, dtype, seed=2)
    x = fwd[0]
    rev[0] = x
    c0 = [rand((N, H), dtype, 30), rand((N, H), dtype, 31)] if lstm else [None, None]
    dh = [rand((N, T, H), dtype, 40), rand((N, T, H), dtype, 41)]
    # Ours: each direction on its own.
    ours = []
    for k, (args, reverse) in enumerate(((fwd, False), (rev, True))):
        out = run(m, cell, args, LENGTHS, reverse, kwargs, c0[k])
        grads = cell.backward(m, dh[k], out[-1], **({"return_dc0": True} if lstm else {}))
        ours.append((out[:-1], grads))
    # torch: one bidirectional module on the packed batch.
    module, back = torch_twin(cell.name, kwargs, D, H, dtype, fwd[2:], rev[2:])
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(np.stack([fwd[1], rev[1]]), requires_grad=True)
    c0t = torch.tensor(np.stack(c0), requires_grad=True) if lstm else None
    packed = pack_padded_sequence(xt, torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
    out_p, state = module(packed, (h0t, c0t) if lstm else h0t)
    out, _ = pad_packed_sequence(out_p, batch_first=True, total_length=T)
    hn = state[0] if lstm else state

    def close(a, e, name):
        np.testing.assert_allclose(a, e, err_msg=name, **ORACLE_TOL[dtype])

    for k in range(2):
        (h, hT, *cT), _ = ours[k]
        close(h, out[:, :, k * H:(k + 1) * H].detach().numpy(), f"h, direction {k}")
        close(hT, hn[k].detach().numpy(), f"hT, direction {k}")
        if lstm:
            close(cT[0], state[1][k].detach().numpy(), f"cT, direction {k}")
    torch.sum(out * torch.from_numpy(np.concatenate(dh, axis=2))).backward()
    close(ours[0][1][0] + ours[1][1][0], xt.grad.numpy(), "dx")
    for k, suffix in enumerate(("", "_reverse")):
        grads = ours[k][1]
        close(grads[1], h0t.grad[k].numpy(), f"dh0{suffix}")
        close(grads[2], back(getattr(module, "weight_ih_l0" + suffix).grad.numpy().T), f"dWx{suffix}")
        close(grads[3], back(getattr(module, "weight_hh_l0" + suffix).grad.numpy().T), f"dWh{suffix}")
        close(grads[4], back(getattr(module, "bias_ih_l0" + suffix).grad.numpy()), f"db{suffix}")
        if cell.name == "gru":
            close(grads[5], getattr(module, "bias_hh_l0" + suffix).grad.numpy(), f"dbh{suffix}")
        if lstm:
            close(grads[5], c0t.grad[k].numpy(), f"dc0{suffix}")


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_is_never_read_and_gets_no_gradient(lib, cell, kwargs, reverse):
    """Lengths 0 and T among the rows: a length-0 row keeps h0 (outputs 0, its
    dh0 is what reaches it: nothing), changing padded inputs changes nothing,
    gradients into padded outputs are ignored, padded inputs get 0; each row
    is the same as a run of its valid prefix alone."""
    m, cell = LIBS[lib], CELLS[cell]
    N, T, D, H = SHAPE
    lengths = np.array([0, 7, 2, 5, 0])
    args = cell.inputs(SHAPE, np.float64, seed=4)
    pad = np.arange(T)[None, :] >= lengths[:, None]  # (N, T)
    h, hT, *_, cache = run(m, cell, args, lengths, reverse, kwargs)
    dh = rand((N, T, H), np.float64, 5)
    grads = cell.backward(m, dh, cache)
    assert np.all(h[pad] == 0)
    np.testing.assert_array_equal(hT[lengths == 0], args[1][lengths == 0])
    assert np.all(grads[0][pad] == 0) and np.all(grads[1][lengths == 0] == 0)
    # Padded inputs and the gradients of padded outputs do not matter.
    other = [a.copy() for a in args]
    other[0][pad] = 1e3
    h2, hT2, *_, cache2 = run(m, cell, other, lengths, reverse, kwargs)
    noisy = dh.copy()
    noisy[pad] = 7.0
    np.testing.assert_array_equal(h2, h)
    np.testing.assert_array_equal(hT2, hT)
    for a, b in zip(cell.backward(m, noisy, cache2), grads):
        np.testing.assert_array_equal(a, b)
    # Row n alone over its valid prefix (no lengths) gives the same.
    for n in np.flatnonzero(lengths):
        L = lengths[n]
        sub = [args[0][n:n + 1, :L], args[1][n:n + 1]] + args[2:]
        hs, hTs, *_, cs = cell.forward(m, sub, reverse=reverse, return_state=True, **kwargs)
        np.testing.assert_allclose(h[n:n + 1, :L], hs, **TOL[np.float64])
        np.testing.assert_allclose(hT[n:n + 1], hTs, **TOL[np.float64])
        gs = cell.backward(m, dh[n:n + 1, :L], cs)
        np.testing.assert_allclose(grads[0][n:n + 1, :L], gs[0], **TOL[np.float64])
        np.testing.assert_allclose(grads[1][n:n + 1], gs[1], **TOL[np.float64])


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("bad,error,match", [
    (np.array([1, 2, 3, 4]), ValueError, r"lengths must have shape \(N,\) = \(5,\), got \(4,\)"),
    (np.array([1, 2, 3, 4, 8]), ValueError, r"lengths must be in \[0, T\] = \[0, 7\]"),
    (np.array([1, -1, 3, 4, 5]), ValueError, r"lengths must be in \[0, T\] = \[0, 7\]"),
    (np.array([1.0, 2, 3, 4, 5]), TypeError, "lengths must be an integer array, got dtype float64"),
])
def test_bad_lengths_are_clear_errors(lib, bad, error, match):
    m, cell = LIBS[lib], CELLS["lstm"]
    with pytest.raises(error, match=match):
        cell.forward(m, cell.inputs(SHAPE, np.float64), lengths=bad)


@pytest.mark.parametrize("lib", LIBS)
def test_lengths_equal_to_T_change_nothing(lib):
    """Every length T: the bits of the call without lengths (the kernels
    then run their plain loops)."""
    m, cell = LIBS[lib], CELLS["gru"]
    args = cell.inputs(SHAPE, np.float64, seed=8)
    h, cache = cell.forward(m, args)
    hl, cache_l = cell.forward(m, args, lengths=np.full(SHAPE[0], SHAPE[1]))
    np.testing.assert_array_equal(hl, h)
    dh = rand(h.shape, np.float64, 9)
    for a, b in zip(cell.backward(m, dh, cache_l), cell.backward(m, dh, cache)):
        np.testing.assert_array_equal(a, b)
    assert "lengths" in inspect.signature(ref.lstm_forward).parameters


def spread_lengths(N, T, seed):
    """Unsorted lengths over [0, T], with 0 and T among them when N allows."""
    lengths = np.random.default_rng(seed).integers(0, T + 1, size=N)
    lengths[:2] = [T, 0][:N]
    return np.random.default_rng(seed + 1).permutation(lengths)


# (N, T, D, H) that reach every path of the time loops: one row; up to 8 rows
# (a dense step operand); x·Wx and dx taken in the loops (N >= 3, small
# weights: 7 x 50 x 50, 13 x 32 x 32, 32 x 50 x 50 in several row blocks); a
# shallow input's sums (D <= 4); products after the loops (D = 260); units
# that leave a sliver part-filled (H = 37, 50).
LENGTH_SHAPES = [(1, 5, 3, 4), (5, 7, 4, 6), (7, 4, 50, 50), (13, 5, 32, 32), (32, 6, 50, 50), (33, 4, 3, 19),
                 (20, 3, 260, 37)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LENGTH_SHAPES, ids=shape_id)
@pytest.mark.parametrize("cell,kwargs", cell_variants(), ids=str)
def test_kernels_match_the_reference_on_every_path(cell, kwargs, shape, dtype):
    """The kernels' h, final states and gradients with lengths are the
    reference's, in both directions; the same bits for every partition of the
    time loop on 1 to 3 threads; the inference forward, and the inference
    object, give the training forward's outputs bit for bit."""
    cell = CELLS[cell]
    N, T, D, H = shape
    lengths = spread_lengths(N, T, seed=N + T)
    args = cell.inputs(shape, dtype, seed=3)
    c0 = {"c0": rand((N, H), dtype, 6)} if cell.states > 1 else {}
    dh = rand((N, T, H), dtype, 7)
    extra = {"return_dc0": True} if cell.states > 1 else {}
    names = ["h", "hT", "cT"][:1 + cell.states] + list(cell.grads) + ["dc0"][:cell.states - 1]
    inference = cell.inference(rf, args[2:], **{k: v for k, v in kwargs.items() if k != "reverse"})
    for reverse in (False, True):
        out_ref = run(ref, cell, args, lengths, reverse, kwargs, **c0)
        want = [*out_ref[:-1], *cell.backward(ref, dh, out_ref[-1], **extra)]
        first = None
        try:
            for how in ("rows", "columns", "row_passes"):
                rf._core._set_partition(how)
                for n in (1, 2, 3):
                    rf.set_num_threads(n)
                    out = run(rf, cell, args, lengths, reverse, kwargs, **c0)
                    got = [*out[:-1], *cell.backward(rf, dh, out[-1], **extra)]
                    assert_all_close(got, want, dtype, names)
                    first = first or got
                    for k, (a, e) in enumerate(zip(got, first)):
                        assert np.array_equal(a, e), f"{names[k]} differs with partition {how} on {n} threads"
                    inferred = cell.forward(rf, args, reverse=reverse, return_state=True, cache=False,
                                            lengths=lengths, **kwargs, **c0)
                    for a, e in zip(inferred[:-1], out[:-1]):
                        np.testing.assert_array_equal(a, e)
                    for a, e in zip(inference(args[0], args[1], reverse=reverse, return_state=True,
                                              lengths=lengths, **c0), out[:-1]):
                        np.testing.assert_array_equal(a, e)
        finally:
            rf._core._set_partition("auto")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape,lengths", [((4, 5, 3, 2), [0, 0, 0, 0]), ((3, 0, 3, 2), [0, 0, 0]),
                                           ((0, 4, 3, 2), [])], ids=["all-0", "T=0", "N=0"])
def test_nothing_to_run(cell, shape, lengths):
    """No step at all: h of zeros, the initial states back, zero gradients
    but for those that reach the initial states (dc0 = dcT)."""
    cell = CELLS[cell]
    args = cell.inputs(shape, np.float64, seed=2)
    lengths = np.array(lengths, dtype=np.int32)
    for m in (rf, ref):
        h, hT, *cT, cache = cell.forward(m, args, return_state=True, lengths=lengths)
        assert h.shape == shape[:2] + shape[3:] and not h.any()
        np.testing.assert_array_equal(hT, args[1])
        extra = {}
        if cell.states > 1:
            assert not cT[0].any()
            extra = {"dcT": np.ones_like(args[1]), "return_dc0": True}
        grads = cell.backward(m, np.ones(h.shape), cache, **extra)
        assert all(not g.any() for g in grads[:len(cell.grads)]), m.__name__
        if cell.states > 1:
            np.testing.assert_array_equal(grads[-1], extra["dcT"])


def test_lengths_of_any_integer_type_and_the_cache_repr():
    cell = CELLS["lstm"]
    args = cell.inputs(SHAPE, np.float32, seed=5)
    h = cell.forward(rf, args, lengths=LENGTHS)[0]
    for kind in (np.int8, np.uint16, np.int32):
        np.testing.assert_array_equal(cell.forward(rf, args, lengths=LENGTHS.astype(kind))[0], h)
    np.testing.assert_array_equal(cell.forward(rf, args, lengths=list(LENGTHS))[0], h)
    assert " lengths>" in repr(cell.forward(rf, args, lengths=LENGTHS)[1])
    assert " lengths>" not in repr(cell.forward(rf, args, lengths=np.full(5, 7))[1])  # all T: no packing
    with pytest.raises(TypeError, match=r"lstm_forward\(\): lengths must be an integer array, got dtype bool"):
        cell.forward(rf, args, lengths=LENGTHS > 2)
    with pytest.raises(ValueError, match=r"LSTMInference\(\): lengths must have shape \(N,\) = \(5,\), got \(5, 1\)"):
        cell.inference(rf, args[2:])(args[0], args[1], lengths=LENGTHS[:, None])
