"""Sizes: counts past 2^31 computed with 64-bit indices; counts no array can
hold refused before anything is allocated; allocations that fail raise
MemoryError and leave the process working. Each scenario runs in a process
of its own (an address-space limit, or 8.5 GiB of arrays)."""
import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent("""
    import resource
    import numpy as np
    import rnn_fast as rf
    f32 = np.float32

    def view(shape, dtype=f32):  # a broadcast view: any size, no memory
        return np.broadcast_to(np.ones((1,) * len(shape), dtype), shape)

    def expect(error, pattern, call):
        try:
            call()
        except error as e:
            assert pattern in str(e), f"{type(e).__name__}: {e}"
            return
        raise AssertionError(f"no {error.__name__} ({pattern})")

    def small_calls():  # every kernel once, on tiny inputs: the process still works
        x, h0 = np.ones((2, 3, 4), f32), np.ones((2, 5), f32)
        h, cache = rf.lstm_forward(x, h0, np.ones((4, 20), f32), np.ones((5, 20), f32), np.ones(20, f32))
        rf.lstm_backward(h, cache)
        h, cache = rf.rnn_forward(x, h0, np.ones((4, 5), f32), np.ones((5, 5), f32), np.ones(5, f32))
        rf.rnn_backward(h, cache)
        out, cache = rf.temporal_affine_forward(x, np.ones((4, 6), f32), np.ones(6, f32))
        rf.temporal_affine_backward(out, cache)
        out, cache = rf.word_embedding_forward(np.zeros((2, 3), int), np.ones((3, 4), f32))
        rf.word_embedding_backward(out, cache)
        rf.temporal_softmax_loss(x, np.zeros((2, 3), int), np.ones((2, 3), bool))

    small_calls()
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    # From here on the process may map at most 1.5 GiB more.
    resource.setrlimit(resource.RLIMIT_AS, (vm + 1536 * 2**20, resource.RLIM_INFINITY))
""")


def run(code, timeout=300):
    out = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code) + "\nprint('OK')"],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr


def test_counts_no_array_can_hold_are_refused_before_allocating():
    # Under the address-space limit, any attempt to allocate would be a
    # MemoryError: a ValueError shows the refusal came first.
    run("""
        # Views are limited to 2^63 bytes each, but not their combinations.
        N, T, H = 2**20, 2**20, 2**28  # h would have 2^68 elements
        expect(ValueError, "lstm_forward(): h would have shape (N, T, H) = (1048576, 1048576, 268435456), "
               "more elements than any array can hold",
               lambda: rf.lstm_forward(view((N, T, 1)), view((N, H)), view((1, 4 * H)), view((H, 4 * H)), view((4 * H,))))
        expect(ValueError, "rnn_forward(): h would have shape", lambda: rf.rnn_forward(
            view((N, T, 1)), view((N, H)), view((1, H)), view((H, H)), view((H,))))
        N, H = 2**31, 2**28  # prev_h has 2^59 elements, the gates would have 2^61 (2^64 bytes in float64)
        expect(ValueError, "lstm_step_forward(): the saved gates would have shape (N, T, 4H) = (2147483648, 1, 4, "
               "268435456)", lambda: rf.lstm_step_forward(
               view((N, 1)), view((N, H)), view((N, H)), view((1, 4 * H)), view((H, 4 * H)), view((4 * H,))))
        expect(ValueError, "temporal_affine_forward(): out would have shape", lambda: rf.temporal_affine_forward(
            view((2**30, 2**30, 1)), view((1, 2**40)), view((2**40,))))
        expect(ValueError, "word_embedding_forward(): out would have shape", lambda: rf.word_embedding_forward(
            view((2**29, 2**30), np.int64), view((1, 2**40))))
        small_calls()
    """)


def test_allocations_that_fail_raise_memory_error():
    run("""
        N, T, H = 2**14, 2**10, 256
        # The copy of a 16 GiB input (a broadcast view made contiguous).
        expect(MemoryError, "Unable to allocate", lambda: rf.lstm_forward(
            view((2**16, 2**10, 64)), np.ones((2**16, 5), f32), np.ones((64, 20), f32), np.ones((5, 20), f32),
            np.ones(20, f32)))
        # The outputs: 16 GiB of saved gates for 64 MiB of input.
        expect(MemoryError, "Unable to allocate", lambda: rf.lstm_forward(
            np.ones((N, T, 1), f32), np.ones((N, H), f32), np.ones((1, 4 * H), f32), view((H, 4 * H)),
            np.ones(4 * H, f32)))
        expect(MemoryError, "Unable to allocate", lambda: rf.temporal_affine_forward(
            np.ones((N, T, 1), f32), np.ones((1, 2**10), f32), np.ones(2**10, f32)))
        expect(MemoryError, "Unable to allocate", lambda: rf.word_embedding_forward(
            np.zeros((N, T), int), np.ones((1, 2**10), f32)))
        # The core's workspace: Wh (1 GiB) fits once, not twice (its packed copy).
        H = 2**14
        expect(MemoryError, "out of memory for a kernel's workspace", lambda: rf.rnn_forward(
            np.ones((1, 1, 1), f32), np.ones((1, H), f32), np.ones((1, H), f32), view((H, H)), np.ones(H, f32)))
        # A backward's outputs: dWh of a float32 cache met by a float64 dh.
        h, cache = rf.rnn_forward(np.ones((1, 1, 1), f32), np.ones((1, 2**13), f32), np.ones((1, 2**13), f32),
                                  view((2**13, 2**13)), np.ones(2**13, f32))
        expect(MemoryError, "", lambda: rf.rnn_backward(h.astype(np.float64), cache))
        del h, cache
        small_calls()
    """)


def available_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


@pytest.mark.skipif(available_gib() < 12, reason="needs 12 GiB of free memory for 8.5 GiB of arrays")
def test_counts_past_2_to_the_31_are_computed_with_64_bit_indices():
    # Outputs of 2^31 + 2^15 float32 elements (8 GiB): a 32-bit index would
    # wrap before the last rows. Small integers make every sum exact in
    # float32 (all partial sums stay below 2^24), so results must be equal.
    code = """
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        T, M = 2**16 + 1, 2**15
        xs = (np.arange(T) % 3 - 1).astype(f32)  # -1, 0, 1
        w = (np.arange(M) % 7 - 3).astype(f32)
        b = (np.arange(M) % 5 - 2).astype(f32)
        out, cache = rf.temporal_affine_forward(xs.reshape(1, T, 1), w.reshape(1, M), b)
        assert out.size > 2**31
        for t in (0, 1, T // 2, T - 2, T - 1):
            np.testing.assert_array_equal(out[0, t], xs[t] * w + b)
        dx, dw, db = rf.temporal_affine_backward(out, cache)
        # out = x w + b, so dw = sum_t x_t out_t, db = sum_t out_t, dx_t = out_t . w
        x64, w64, b64 = xs.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
        np.testing.assert_array_equal(dw[0], (x64 @ x64) * w64 + x64.sum() * b64)
        np.testing.assert_array_equal(db, x64.sum() * w64 + T * b64)
        np.testing.assert_array_equal(dx[0, :, 0], x64 * (w64 @ w64) + b64 @ w64)
        del out, cache
        idx = (np.arange(T) % 3).reshape(1, T)
        W = np.stack([w, b, -w])
        out, cache = rf.word_embedding_forward(idx, W)
        assert out.size > 2**31
        np.testing.assert_array_equal(out[0, [0, 1, T - 2, T - 1]], W[idx[0, [0, 1, T - 2, T - 1]]])
        dW = rf.word_embedding_backward(out, cache)
        np.testing.assert_array_equal(dW, np.bincount(idx[0], minlength=3)[:, None] * W.astype(np.float64))
    """
    run(code, timeout=600)
