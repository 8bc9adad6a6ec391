# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: extra_compile_args = -fopenmp
# distutils: extra_link_args = -fopenmp
"""A downstream module, as a user writes one: it cimports every kernel of
rnn_fast.cython_kernels (tests/test_cython.py builds it in a temporary
directory against the installed package) and wraps each in a def function
that returns the kernel's code."""
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from rnn_fast.cython_kernels cimport (
    ESHAPE, OK, real, last_error, lstm_workspace, gru_workspace,
    rnn_forward, rnn_backward, rnn_step_forward, rnn_step_backward,
    lstm_forward, lstm_backward, lstm_step_forward, lstm_step_backward,
    gru_forward, gru_backward, gru_step_forward, gru_step_backward,
)

CODES = {"OK": OK, "ESHAPE": ESHAPE}


def error():
    return last_error().decode()


def workspace(str cell, int64_t N, int64_t T, int64_t H):
    return lstm_workspace(N, T, H) if cell == "lstm" else gru_workspace(N, T, H)


def rnn_fwd(real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b, real[:, :, ::1] h,
            real[:, ::1] hT, bint reverse, bint relu, int nthreads):
    cdef int code
    with nogil:
        code = rnn_forward(x, h0, Wx, Wh, b, h, hT, reverse, relu, nthreads)
    return code


def rnn_bwd(real[:, :, ::1] dh, real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] Wx, real[:, ::1] Wh,
            real[:, :, ::1] h, real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db,
            bint reverse, bint relu, int nthreads):
    cdef int code
    with nogil:
        code = rnn_backward(dh, x, h0, Wx, Wh, h, dx, dh0, dWx, dWh, db, reverse, relu, nthreads)
    return code


def rnn_step_fwd(real[:, ::1] x, real[:, ::1] h, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b, real[:, ::1] out,
                 bint relu, int nthreads):
    cdef int code
    with nogil:
        code = rnn_step_forward(x, h, Wx, Wh, b, out, relu, nthreads)
    return code


def rnn_step_bwd(real[:, ::1] dout, real[:, ::1] x, real[:, ::1] h, real[:, ::1] Wx, real[:, ::1] Wh,
                 real[:, ::1] out, real[:, ::1] dx, real[:, ::1] dh, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db,
                 bint relu, int nthreads):
    cdef int code
    with nogil:
        code = rnn_step_backward(dout, x, h, Wx, Wh, out, dx, dh, dWx, dWh, db, relu, nthreads)
    return code


def lstm_fwd(real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] c0, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b,
             real[:, :, ::1] h, real[:, ::1] hT, real[:, ::1] cT, real[::1] work, bint reverse, bint ifgo,
             int nthreads):
    cdef int code
    with nogil:
        code = lstm_forward(x, h0, c0, Wx, Wh, b, h, hT, cT, work, reverse, ifgo, nthreads)
    return code


def lstm_bwd(real[:, :, ::1] dh, real[:, ::1] dcT, real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] c0,
             real[:, ::1] Wx, real[:, ::1] Wh, real[:, :, ::1] h, real[::1] work, real[:, :, ::1] dx,
             real[:, ::1] dh0, real[:, ::1] dc0, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db, bint reverse,
             bint ifgo, int nthreads):
    cdef int code
    with nogil:
        code = lstm_backward(dh, dcT, x, h0, c0, Wx, Wh, h, work, dx, dh0, dc0, dWx, dWh, db, reverse, ifgo,
                             nthreads)
    return code


def lstm_step_fwd(real[:, ::1] x, real[:, ::1] h, real[:, ::1] c, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b,
                  real[:, ::1] next_h, real[:, ::1] next_c, real[::1] work, bint ifgo, int nthreads):
    cdef int code
    with nogil:
        code = lstm_step_forward(x, h, c, Wx, Wh, b, next_h, next_c, work, ifgo, nthreads)
    return code


def lstm_step_bwd(real[:, ::1] dnext_h, real[:, ::1] dnext_c, real[:, ::1] x, real[:, ::1] h, real[:, ::1] c,
                  real[:, ::1] Wx, real[:, ::1] Wh, real[:, ::1] next_h, real[::1] work, real[:, ::1] dx,
                  real[:, ::1] dh, real[:, ::1] dc, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db, bint ifgo,
                  int nthreads):
    cdef int code
    with nogil:
        code = lstm_step_backward(dnext_h, dnext_c, x, h, c, Wx, Wh, next_h, work, dx, dh, dc, dWx, dWh, db, ifgo,
                                  nthreads)
    return code


def gru_fwd(real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b, real[::1] bh,
            real[:, :, ::1] h, real[:, ::1] hT, real[::1] work, bint reverse, bint zrn, int nthreads):
    cdef int code
    with nogil:
        code = gru_forward(x, h0, Wx, Wh, b, bh, h, hT, work, reverse, zrn, nthreads)
    return code


def gru_bwd(real[:, :, ::1] dh, real[:, :, ::1] x, real[:, ::1] h0, real[:, ::1] Wx, real[:, ::1] Wh,
            real[:, :, ::1] h, real[::1] work, real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx,
            real[:, ::1] dWh, real[::1] db, real[::1] dbh, bint reverse, bint zrn, int nthreads):
    cdef int code
    with nogil:
        code = gru_backward(dh, x, h0, Wx, Wh, h, work, dx, dh0, dWx, dWh, db, dbh, reverse, zrn, nthreads)
    return code


def gru_step_fwd(real[:, ::1] x, real[:, ::1] h, real[:, ::1] Wx, real[:, ::1] Wh, real[::1] b, real[::1] bh,
                 real[:, ::1] next_h, real[::1] work, bint zrn, int nthreads):
    cdef int code
    with nogil:
        code = gru_step_forward(x, h, Wx, Wh, b, bh, next_h, work, zrn, nthreads)
    return code


def gru_step_bwd(real[:, ::1] dnext_h, real[:, ::1] x, real[:, ::1] h, real[:, ::1] Wx, real[:, ::1] Wh,
                 real[:, ::1] next_h, real[::1] work, real[:, ::1] dx, real[:, ::1] dh, real[:, ::1] dWx,
                 real[:, ::1] dWh, real[::1] db, real[::1] dbh, bint zrn, int nthreads):
    cdef int code
    with nogil:
        code = gru_step_backward(dnext_h, x, h, Wx, Wh, next_h, work, dx, dh, dWx, dWh, db, dbh, zrn, nthreads)
    return code


def lstm_ensemble(float[:, :, :, ::1] x, float[:, :, ::1] h0, float[:, :, ::1] c0, float[:, :, ::1] Wx,
                  float[:, :, ::1] Wh, float[:, ::1] b, float[:, :, :, ::1] h, float[:, :, ::1] hT,
                  float[:, :, ::1] cT, float[:, ::1] work, int threads):
    """Member m's LSTM (weights m) over its batch x[m], members shared out
    in prange, one thread each, without the GIL. Returns 0, or the codes of failed calls or-ed."""
    cdef Py_ssize_t m
    cdef int code, worst = 0
    for m in prange(x.shape[0], nogil=True, num_threads=threads, schedule="static"):
        code = lstm_forward(x[m], h0[m], c0[m], Wx[m], Wh[m], b[m], h[m], hT[m], cT[m], work[m], False, False, 1)
        worst |= code  # a reduction: nonzero if any call failed
    return worst


def lstm_hold_gil_free(float[:, :, ::1] x, float[:, ::1] h0, float[:, ::1] c0, float[:, ::1] Wx, float[:, ::1] Wh,
                       float[::1] b, float[:, :, ::1] h, float[:, ::1] hT, float[:, ::1] cT, float[::1] work,
                       int repeats):
    """repeats forwards in one nogil block (the GIL test's long call)."""
    cdef int k, code = 0
    with nogil:
        for k in range(repeats):
            code = lstm_forward(x, h0, c0, Wx, Wh, b, h, hT, cT, work, False, False, 1)
    return code
