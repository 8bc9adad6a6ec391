# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c
"""rnn_fast's recurrent kernels for Cython code: cimport them from
rnn_fast/cython_kernels.pxd (the interface, with the shapes) and call them
without the GIL. Each function checks its arrays' shapes, then calls the
C++ core through the table that rnn_fast._core hands out as the capsule
_c_api (csrc/capi.h): one copy of the core serves Python and Cython."""
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t
from libc.stdio cimport snprintf

from rnn_fast import _core


cdef extern from "capi.h" nogil:
    ctypedef struct rnn_fast_capi:
        int version
        int (*forward_f)(int cell, int option, const float* x, const float* h0, const float* c0, const float* Wx,
                         const float* Wh, const float* b, const float* bh, float* h, float* hT, float* cT,
                         float* work, int64_t N, int64_t T, int64_t D, int64_t H, int reverse,
                         int nthreads) noexcept nogil
        int (*forward_d)(int cell, int option, const double* x, const double* h0, const double* c0,
                         const double* Wx, const double* Wh, const double* b, const double* bh, double* h,
                         double* hT, double* cT, double* work, int64_t N, int64_t T, int64_t D, int64_t H,
                         int reverse, int nthreads) noexcept nogil
        int (*backward_f)(int cell, int option, const float* dh, const float* dcT, const float* x, const float* h0,
                          const float* c0, const float* Wx, const float* Wh, const float* h, const float* work,
                          float* dx, float* dh0, float* dc0, float* dWx, float* dWh, float* db, float* dbh,
                          int64_t N, int64_t T, int64_t D, int64_t H, int reverse,
                          int nthreads) noexcept nogil
        int (*backward_d)(int cell, int option, const double* dh, const double* dcT, const double* x,
                          const double* h0, const double* c0, const double* Wx, const double* Wh, const double* h,
                          const double* work, double* dx, double* dh0, double* dc0, double* dWx, double* dWh,
                          double* db, double* dbh, int64_t N, int64_t T, int64_t D, int64_t H, int reverse,
                          int nthreads) noexcept nogil
        int64_t (*workspace)(int cell, int64_t N, int64_t T, int64_t H) noexcept nogil
        const char* (*error)() noexcept nogil
        int (*fail)(int code, const char* message) noexcept nogil
    int RNN_FAST_CAPI_VERSION


cdef const rnn_fast_capi* _api = <const rnn_fast_capi*> PyCapsule_GetPointer(_core._c_api, b"rnn_fast._core._c_api")
if _api.version != RNN_FAST_CAPI_VERSION:
    raise ImportError(f"rnn_fast.cython_kernels was built for the C table version {RNN_FAST_CAPI_VERSION}, "
                      f"rnn_fast._core has {_api.version}: reinstall rnn_fast")

# capi.h's cell numbers.
cdef enum:
    _RNN = 0
    _LSTM = 1
    _GRU = 2


cdef const char* last_error() noexcept nogil:
    return _api.error()


cdef int64_t lstm_workspace(int64_t N, int64_t T, int64_t H) noexcept nogil:
    return _api.workspace(_LSTM, N, T, H)


cdef int64_t gru_workspace(int64_t N, int64_t T, int64_t H) noexcept nogil:
    return _api.workspace(_GRU, N, T, H)


cdef int _shape(const char* fn, const char* name, const char* spec, const Py_ssize_t* got, int ndim,
                int64_t a, int64_t b=0, int64_t c=0) noexcept nogil:
    """OK if got[:ndim] is (a, b, c)[:ndim], else ESHAPE with the message
    "fn: name must have shape (spec) = (a, b), got (x, y)"."""
    cdef int64_t want[3]
    want[0] = a
    want[1] = b
    want[2] = c
    cdef int k
    cdef bint same = True
    for k in range(ndim):
        same = same and got[k] == want[k]
    if same:
        return OK
    cdef char message[400]
    if ndim == 1:
        snprintf(message, sizeof(message), "%s: %s must have shape (%s,) = (%lld,), got (%lld,)", fn, name, spec,
                 <long long> a, <long long> got[0])
    elif ndim == 2:
        snprintf(message, sizeof(message), "%s: %s must have shape (%s) = (%lld, %lld), got (%lld, %lld)", fn,
                 name, spec, <long long> a, <long long> b, <long long> got[0], <long long> got[1])
    else:
        snprintf(message, sizeof(message), "%s: %s must have shape (%s) = (%lld, %lld, %lld), got (%lld, %lld, %lld)",
                 fn, name, spec, <long long> a, <long long> b, <long long> c, <long long> got[0],
                 <long long> got[1], <long long> got[2])
    return _api.fail(ESHAPE, message)


cdef inline real* _or_null(real* p, Py_ssize_t size) noexcept nogil:
    """p, or NULL for an empty array (a forward's work: an inference)."""
    return p if size != 0 else NULL


cdef inline int _forward(int cell, int option, const real* x, const real* h0, const real* c0, const real* Wx,
                         const real* Wh, const real* b, const real* bh, real* h, real* hT, real* cT, real* work,
                         int64_t N, int64_t T, int64_t D, int64_t H, bint reverse, int nthreads) noexcept nogil:
    if real is float:
        return _api.forward_f(cell, option, x, h0, c0, Wx, Wh, b, bh, h, hT, cT, work, N, T, D, H, reverse,
                              nthreads)
    else:
        return _api.forward_d(cell, option, x, h0, c0, Wx, Wh, b, bh, h, hT, cT, work, N, T, D, H, reverse,
                              nthreads)


cdef inline int _backward(int cell, int option, const real* dh, const real* dcT, const real* x, const real* h0,
                          const real* c0, const real* Wx, const real* Wh, const real* h, const real* work, real* dx,
                          real* dh0, real* dc0, real* dWx, real* dWh, real* db, real* dbh, int64_t N, int64_t T,
                          int64_t D, int64_t H, bint reverse, int nthreads) noexcept nogil:
    if real is float:
        return _api.backward_f(cell, option, dh, dcT, x, h0, c0, Wx, Wh, h, work, dx, dh0, dc0, dWx, dWh, db, dbh,
                               N, T, D, H, reverse, nthreads)
    else:
        return _api.backward_d(cell, option, dh, dcT, x, h0, c0, Wx, Wh, h, work, dx, dh0, dc0, dWx, dWh, db, dbh,
                               N, T, D, H, reverse, nthreads)


# ------------------------------------------------------------------ RNN

cdef int rnn_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] Wx,
                     const real[:, ::1] Wh, const real[::1] b, real[:, :, ::1] h, real[:, ::1] hT,
                     bint reverse=False, bint relu=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "rnn_forward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "h0", "N, H", h0.shape, 2, N, H) or _shape(fn, "Wx", "D, H", Wx.shape, 2, D, H)
            or _shape(fn, "Wh", "H, H", Wh.shape, 2, H, H) or _shape(fn, "b", "H", b.shape, 1, H)
            or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H) or _shape(fn, "hT", "N, H", hT.shape, 2, N, H)):
        return ESHAPE
    return _forward(_RNN, relu, &x[0, 0, 0], &h0[0, 0], <const real*> NULL, &Wx[0, 0], &Wh[0, 0], &b[0],
                    <const real*> NULL, &h[0, 0, 0], &hT[0, 0], <real*> NULL, <real*> NULL, N, T, D, H, reverse,
                    nthreads)


cdef int rnn_backward(const real[:, :, ::1] dh, const real[:, :, ::1] x, const real[:, ::1] h0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, :, ::1] h,
                      real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db,
                      bint reverse=False, bint relu=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "rnn_backward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "dh", "N, T, H", dh.shape, 3, N, T, H) or _shape(fn, "h0", "N, H", h0.shape, 2, N, H)
            or _shape(fn, "Wx", "D, H", Wx.shape, 2, D, H) or _shape(fn, "Wh", "H, H", Wh.shape, 2, H, H)
            or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H) or _shape(fn, "dx", "N, T, D", dx.shape, 3, N, T, D)
            or _shape(fn, "dh0", "N, H", dh0.shape, 2, N, H) or _shape(fn, "dWx", "D, H", dWx.shape, 2, D, H)
            or _shape(fn, "dWh", "H, H", dWh.shape, 2, H, H) or _shape(fn, "db", "H", db.shape, 1, H)):
        return ESHAPE
    return _backward(_RNN, relu, &dh[0, 0, 0], <const real*> NULL, &x[0, 0, 0], &h0[0, 0], <const real*> NULL,
                     &Wx[0, 0], &Wh[0, 0], &h[0, 0, 0], <const real*> NULL, &dx[0, 0, 0], &dh0[0, 0],
                     <real*> NULL, &dWx[0, 0], &dWh[0, 0], &db[0], <real*> NULL, N, T, D, H, reverse, nthreads)


cdef int rnn_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] Wx,
                          const real[:, ::1] Wh, const real[::1] b, real[:, ::1] next_h,
                          bint relu=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "rnn_step_forward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H) or _shape(fn, "Wx", "D, H", Wx.shape, 2, D, H)
            or _shape(fn, "Wh", "H, H", Wh.shape, 2, H, H) or _shape(fn, "b", "H", b.shape, 1, H)
            or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H)):
        return ESHAPE
    return _forward(_RNN, relu, &x[0, 0], &prev_h[0, 0], <const real*> NULL, &Wx[0, 0], &Wh[0, 0], &b[0],
                    <const real*> NULL, &next_h[0, 0], <real*> NULL, <real*> NULL, <real*> NULL, N, 1, D, H, False,
                    nthreads)


cdef int rnn_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] x, const real[:, ::1] prev_h,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, ::1] next_h,
                           real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dWx, real[:, ::1] dWh,
                           real[::1] db, bint relu=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "rnn_step_backward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "dnext_h", "N, H", dnext_h.shape, 2, N, H) or _shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H)
            or _shape(fn, "Wx", "D, H", Wx.shape, 2, D, H) or _shape(fn, "Wh", "H, H", Wh.shape, 2, H, H)
            or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H) or _shape(fn, "dx", "N, D", dx.shape, 2, N, D)
            or _shape(fn, "dprev_h", "N, H", dprev_h.shape, 2, N, H) or _shape(fn, "dWx", "D, H", dWx.shape, 2, D, H)
            or _shape(fn, "dWh", "H, H", dWh.shape, 2, H, H) or _shape(fn, "db", "H", db.shape, 1, H)):
        return ESHAPE
    return _backward(_RNN, relu, &dnext_h[0, 0], <const real*> NULL, &x[0, 0], &prev_h[0, 0], <const real*> NULL,
                     &Wx[0, 0], &Wh[0, 0], &next_h[0, 0], <const real*> NULL, &dx[0, 0], &dprev_h[0, 0],
                     <real*> NULL, &dWx[0, 0], &dWh[0, 0], &db[0], <real*> NULL, N, 1, D, H, False, nthreads)


# ----------------------------------------------------------------- LSTM

cdef int lstm_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] c0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[::1] b, real[:, :, ::1] h,
                      real[:, ::1] hT, real[:, ::1] cT, real[::1] work,
                      bint reverse=False, bint ifgo=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "lstm_forward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "h0", "N, H", h0.shape, 2, N, H) or _shape(fn, "c0", "N, H", c0.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 4H", Wx.shape, 2, D, 4 * H) or _shape(fn, "Wh", "H, 4H", Wh.shape, 2, H, 4 * H)
            or _shape(fn, "b", "4H", b.shape, 1, 4 * H) or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H)
            or _shape(fn, "hT", "N, H", hT.shape, 2, N, H) or _shape(fn, "cT", "N, H", cT.shape, 2, N, H)
            or (work.shape[0] != 0
                and _shape(fn, "work", "lstm_workspace(N, T, H)", work.shape, 1, lstm_workspace(N, T, H)))):
        return ESHAPE
    return _forward(_LSTM, ifgo, &x[0, 0, 0], &h0[0, 0], &c0[0, 0], &Wx[0, 0], &Wh[0, 0], &b[0], <const real*> NULL,
                    &h[0, 0, 0], &hT[0, 0], &cT[0, 0], _or_null(&work[0], work.shape[0]), N, T, D, H, reverse, nthreads)


cdef int lstm_backward(const real[:, :, ::1] dh, const real[:, ::1] dcT, const real[:, :, ::1] x,
                       const real[:, ::1] h0, const real[:, ::1] c0, const real[:, ::1] Wx,
                       const real[:, ::1] Wh, const real[:, :, ::1] h, const real[::1] work,
                       real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dc0, real[:, ::1] dWx,
                       real[:, ::1] dWh, real[::1] db, bint reverse=False, bint ifgo=False,
                       int nthreads=1) noexcept nogil:
    cdef const char* fn = "lstm_backward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "dh", "N, T, H", dh.shape, 3, N, T, H) or _shape(fn, "dcT", "N, H", dcT.shape, 2, N, H)
            or _shape(fn, "h0", "N, H", h0.shape, 2, N, H) or _shape(fn, "c0", "N, H", c0.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 4H", Wx.shape, 2, D, 4 * H) or _shape(fn, "Wh", "H, 4H", Wh.shape, 2, H, 4 * H)
            or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H)
            or _shape(fn, "work", "lstm_workspace(N, T, H)", work.shape, 1, lstm_workspace(N, T, H))
            or _shape(fn, "dx", "N, T, D", dx.shape, 3, N, T, D) or _shape(fn, "dh0", "N, H", dh0.shape, 2, N, H)
            or _shape(fn, "dc0", "N, H", dc0.shape, 2, N, H) or _shape(fn, "dWx", "D, 4H", dWx.shape, 2, D, 4 * H)
            or _shape(fn, "dWh", "H, 4H", dWh.shape, 2, H, 4 * H) or _shape(fn, "db", "4H", db.shape, 1, 4 * H)):
        return ESHAPE
    return _backward(_LSTM, ifgo, &dh[0, 0, 0], &dcT[0, 0], &x[0, 0, 0], &h0[0, 0], &c0[0, 0], &Wx[0, 0],
                     &Wh[0, 0], &h[0, 0, 0], &work[0], &dx[0, 0, 0], &dh0[0, 0], &dc0[0, 0], &dWx[0, 0], &dWh[0, 0],
                     &db[0], <real*> NULL, N, T, D, H, reverse, nthreads)


cdef int lstm_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] prev_c,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[::1] b,
                           real[:, ::1] next_h, real[:, ::1] next_c, real[::1] work,
                           bint ifgo=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "lstm_step_forward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H) or _shape(fn, "prev_c", "N, H", prev_c.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 4H", Wx.shape, 2, D, 4 * H) or _shape(fn, "Wh", "H, 4H", Wh.shape, 2, H, 4 * H)
            or _shape(fn, "b", "4H", b.shape, 1, 4 * H) or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H)
            or _shape(fn, "next_c", "N, H", next_c.shape, 2, N, H)
            or (work.shape[0] != 0
                and _shape(fn, "work", "lstm_workspace(N, 1, H)", work.shape, 1, lstm_workspace(N, 1, H)))):
        return ESHAPE
    return _forward(_LSTM, ifgo, &x[0, 0], &prev_h[0, 0], &prev_c[0, 0], &Wx[0, 0], &Wh[0, 0], &b[0],
                    <const real*> NULL, &next_h[0, 0], <real*> NULL, &next_c[0, 0],
                    _or_null(&work[0], work.shape[0]), N, 1, D, H, False, nthreads)


cdef int lstm_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] dnext_c, const real[:, ::1] x,
                            const real[:, ::1] prev_h, const real[:, ::1] prev_c, const real[:, ::1] Wx,
                            const real[:, ::1] Wh, const real[:, ::1] next_h, const real[::1] work,
                            real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dprev_c, real[:, ::1] dWx,
                            real[:, ::1] dWh, real[::1] db, bint ifgo=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "lstm_step_backward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "dnext_h", "N, H", dnext_h.shape, 2, N, H) or _shape(fn, "dnext_c", "N, H", dnext_c.shape, 2, N, H)
            or _shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H)
            or _shape(fn, "prev_c", "N, H", prev_c.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 4H", Wx.shape, 2, D, 4 * H) or _shape(fn, "Wh", "H, 4H", Wh.shape, 2, H, 4 * H)
            or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H)
            or _shape(fn, "work", "lstm_workspace(N, 1, H)", work.shape, 1, lstm_workspace(N, 1, H))
            or _shape(fn, "dx", "N, D", dx.shape, 2, N, D) or _shape(fn, "dprev_h", "N, H", dprev_h.shape, 2, N, H)
            or _shape(fn, "dprev_c", "N, H", dprev_c.shape, 2, N, H)
            or _shape(fn, "dWx", "D, 4H", dWx.shape, 2, D, 4 * H) or _shape(fn, "dWh", "H, 4H", dWh.shape, 2, H, 4 * H)
            or _shape(fn, "db", "4H", db.shape, 1, 4 * H)):
        return ESHAPE
    return _backward(_LSTM, ifgo, &dnext_h[0, 0], &dnext_c[0, 0], &x[0, 0], &prev_h[0, 0], &prev_c[0, 0],
                     &Wx[0, 0], &Wh[0, 0], &next_h[0, 0], &work[0], &dx[0, 0], &dprev_h[0, 0], &dprev_c[0, 0],
                     &dWx[0, 0], &dWh[0, 0], &db[0], <real*> NULL, N, 1, D, H, False, nthreads)


# ------------------------------------------------------------------ GRU

cdef int gru_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] Wx,
                     const real[:, ::1] Wh, const real[::1] b, const real[::1] bh, real[:, :, ::1] h,
                     real[:, ::1] hT, real[::1] work, bint reverse=False, bint zrn=False,
                     int nthreads=1) noexcept nogil:
    cdef const char* fn = "gru_forward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "h0", "N, H", h0.shape, 2, N, H) or _shape(fn, "Wx", "D, 3H", Wx.shape, 2, D, 3 * H)
            or _shape(fn, "Wh", "H, 3H", Wh.shape, 2, H, 3 * H) or _shape(fn, "b", "3H", b.shape, 1, 3 * H)
            or _shape(fn, "bh", "3H", bh.shape, 1, 3 * H) or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H)
            or _shape(fn, "hT", "N, H", hT.shape, 2, N, H)
            or (work.shape[0] != 0
                and _shape(fn, "work", "gru_workspace(N, T, H)", work.shape, 1, gru_workspace(N, T, H)))):
        return ESHAPE
    return _forward(_GRU, zrn, &x[0, 0, 0], &h0[0, 0], <const real*> NULL, &Wx[0, 0], &Wh[0, 0], &b[0], &bh[0],
                    &h[0, 0, 0], &hT[0, 0], <real*> NULL, _or_null(&work[0], work.shape[0]), N, T, D, H, reverse,
                    nthreads)


cdef int gru_backward(const real[:, :, ::1] dh, const real[:, :, ::1] x, const real[:, ::1] h0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, :, ::1] h,
                      const real[::1] work, real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx,
                      real[:, ::1] dWh, real[::1] db, real[::1] dbh,
                      bint reverse=False, bint zrn=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "gru_backward"
    cdef int64_t N = x.shape[0], T = x.shape[1], D = x.shape[2], H = Wh.shape[0]
    if (_shape(fn, "dh", "N, T, H", dh.shape, 3, N, T, H) or _shape(fn, "h0", "N, H", h0.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 3H", Wx.shape, 2, D, 3 * H) or _shape(fn, "Wh", "H, 3H", Wh.shape, 2, H, 3 * H)
            or _shape(fn, "h", "N, T, H", h.shape, 3, N, T, H)
            or _shape(fn, "work", "gru_workspace(N, T, H)", work.shape, 1, gru_workspace(N, T, H))
            or _shape(fn, "dx", "N, T, D", dx.shape, 3, N, T, D) or _shape(fn, "dh0", "N, H", dh0.shape, 2, N, H)
            or _shape(fn, "dWx", "D, 3H", dWx.shape, 2, D, 3 * H) or _shape(fn, "dWh", "H, 3H", dWh.shape, 2, H, 3 * H)
            or _shape(fn, "db", "3H", db.shape, 1, 3 * H) or _shape(fn, "dbh", "3H", dbh.shape, 1, 3 * H)):
        return ESHAPE
    return _backward(_GRU, zrn, &dh[0, 0, 0], <const real*> NULL, &x[0, 0, 0], &h0[0, 0], <const real*> NULL,
                     &Wx[0, 0], &Wh[0, 0], &h[0, 0, 0], &work[0], &dx[0, 0, 0], &dh0[0, 0], <real*> NULL,
                     &dWx[0, 0], &dWh[0, 0], &db[0], &dbh[0], N, T, D, H, reverse, nthreads)


cdef int gru_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] Wx,
                          const real[:, ::1] Wh, const real[::1] b, const real[::1] bh, real[:, ::1] next_h,
                          real[::1] work, bint zrn=False, int nthreads=1) noexcept nogil:
    cdef const char* fn = "gru_step_forward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H) or _shape(fn, "Wx", "D, 3H", Wx.shape, 2, D, 3 * H)
            or _shape(fn, "Wh", "H, 3H", Wh.shape, 2, H, 3 * H) or _shape(fn, "b", "3H", b.shape, 1, 3 * H)
            or _shape(fn, "bh", "3H", bh.shape, 1, 3 * H) or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H)
            or (work.shape[0] != 0
                and _shape(fn, "work", "gru_workspace(N, 1, H)", work.shape, 1, gru_workspace(N, 1, H)))):
        return ESHAPE
    return _forward(_GRU, zrn, &x[0, 0], &prev_h[0, 0], <const real*> NULL, &Wx[0, 0], &Wh[0, 0], &b[0], &bh[0],
                    &next_h[0, 0], <real*> NULL, <real*> NULL, _or_null(&work[0], work.shape[0]), N, 1, D, H, False,
                    nthreads)


cdef int gru_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] x, const real[:, ::1] prev_h,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, ::1] next_h,
                           const real[::1] work, real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dWx,
                           real[:, ::1] dWh, real[::1] db, real[::1] dbh, bint zrn=False,
                           int nthreads=1) noexcept nogil:
    cdef const char* fn = "gru_step_backward"
    cdef int64_t N = x.shape[0], D = x.shape[1], H = Wh.shape[0]
    if (_shape(fn, "dnext_h", "N, H", dnext_h.shape, 2, N, H) or _shape(fn, "prev_h", "N, H", prev_h.shape, 2, N, H)
            or _shape(fn, "Wx", "D, 3H", Wx.shape, 2, D, 3 * H) or _shape(fn, "Wh", "H, 3H", Wh.shape, 2, H, 3 * H)
            or _shape(fn, "next_h", "N, H", next_h.shape, 2, N, H)
            or _shape(fn, "work", "gru_workspace(N, 1, H)", work.shape, 1, gru_workspace(N, 1, H))
            or _shape(fn, "dx", "N, D", dx.shape, 2, N, D) or _shape(fn, "dprev_h", "N, H", dprev_h.shape, 2, N, H)
            or _shape(fn, "dWx", "D, 3H", dWx.shape, 2, D, 3 * H) or _shape(fn, "dWh", "H, 3H", dWh.shape, 2, H, 3 * H)
            or _shape(fn, "db", "3H", db.shape, 1, 3 * H) or _shape(fn, "dbh", "3H", dbh.shape, 1, 3 * H)):
        return ESHAPE
    return _backward(_GRU, zrn, &dnext_h[0, 0], <const real*> NULL, &x[0, 0], &prev_h[0, 0], <const real*> NULL,
                     &Wx[0, 0], &Wh[0, 0], &next_h[0, 0], &work[0], &dx[0, 0], &dprev_h[0, 0], <real*> NULL,
                     &dWx[0, 0], &dWh[0, 0], &db[0], &dbh[0], N, 1, D, H, False, nthreads)
