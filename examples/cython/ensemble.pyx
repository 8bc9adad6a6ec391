# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: extra_compile_args = -fopenmp
# distutils: extra_link_args = -fopenmp
"""An ensemble of small LSTMs, each with its own weights, scoring windows of
a series: member m runs its LSTM over its N windows and a linear read-out
of the last state. The members run in a prange loop, one thread each,
without the GIL, calling rnn_fast's kernels through cimport."""
from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t

from rnn_fast.cython_kernels cimport last_error, lstm_forward


def score(float[:, :, :, ::1] x, float[:, :, ::1] Wx, float[:, :, ::1] Wh, float[:, ::1] b, float[:, ::1] w_out,
          int threads=2):
    """x (M, N, T, D): member m's N windows; Wx (M, D, 4H), Wh (M, H, 4H),
    b (M, 4H), w_out (M, H). Returns scores (M, N): w_out[m] . h_T."""
    import numpy as np

    cdef Py_ssize_t M = x.shape[0], N = x.shape[1], T = x.shape[2], H = Wh.shape[1]
    zeros = np.zeros((N, H), np.float32)
    cdef float[:, ::1] h0 = zeros
    # Each thread's outputs and workspace, reused by its members (threadid()).
    cdef float[:, :, :, ::1] h = np.empty((threads, N, T, H), np.float32)
    cdef float[:, :, ::1] hT = np.empty((threads, N, H), np.float32)
    cdef float[:, :, ::1] cT = np.empty((threads, N, H), np.float32)
    cdef float[:, ::1] work = np.empty((threads, 0), np.float32)  # empty: inference forwards (no backward)
    out = np.empty((M, N), np.float32)
    cdef float[:, ::1] scores = out
    cdef Py_ssize_t m, n, j, t
    cdef int code, failed = 0
    cdef float s
    for m in prange(M, nogil=True, num_threads=threads, schedule="static"):
        t = threadid()
        code = lstm_forward(x[m], h0, h0, Wx[m], Wh[m], b[m], h[t], hT[t], cT[t], work[t], False, True, 1)
        failed |= code  # a reduction: nonzero if any member failed
        for n in range(N):
            s = 0
            for j in range(H):
                s = s + w_out[m, j] * hT[t, n, j]
            scores[m, n] = s
    if failed:
        raise RuntimeError(last_error().decode())
    return out
