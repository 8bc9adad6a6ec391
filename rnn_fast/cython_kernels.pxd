# cython: language_level=3
# rnn_fast's recurrent kernels for Cython: cimport them, call them without
# the GIL (as scipy.linalg.cython_blas's BLAS). Built against this file
# alone: put rnn_fast.get_include() on the include path (see the README's
# "From Cython").
#
#     from rnn_fast.cython_kernels cimport lstm_forward, lstm_workspace, last_error
#
# Arrays are C-contiguous typed memoryviews of float or double (every array
# of one call the same), shaped as the Python functions' (rnn_fast.
# lstm_forward & co.; letters N batch, T time, D features, H units); the
# caller supplies every output. The LSTM and GRU forwards also fill `work`
# (lstm_workspace / gru_workspace elements), which their backward reads, as
# the Python functions' cache; given an empty `work` (0 elements) they run
# an inference forward instead, as cache=False does: faster, no backward. Each function returns OK (0) or an error code
# and then writes nothing it promised; last_error() is the calling thread's
# message. nthreads: the threads one call may use, 1 (inside prange) to four
# per core (more: EVALUE; ENOMEM when the system cannot start them now; one in
# a child made by fork()); the results are the same bits for any count. The results are those of the
# Python functions, bit for bit.

from libc.stdint cimport int64_t

ctypedef fused real:
    float
    double

cdef enum:
    OK = 0
    ESHAPE = 1     # arrays whose shapes do not fit together
    EVALUE = 2     # a bad option or thread count
    ENOMEM = 3     # an allocation failed
    EINTERNAL = 4  # anything else

# The calling thread's last error message ("" after none).
cdef const char* last_error() noexcept nogil

# Elements of `work` for a forward over N x T steps of H units (a step: T = 1).
cdef int64_t lstm_workspace(int64_t N, int64_t T, int64_t H) noexcept nogil
cdef int64_t gru_workspace(int64_t N, int64_t T, int64_t H) noexcept nogil

# ---- vanilla RNN: h_t = tanh (relu=True: relu) (x_t Wx + h_{t-1} Wh + b)
# x (N,T,D), h0 (N,H), Wx (D,H), Wh (H,H), b (H); out: h (N,T,H), hT (N,H)
# (the state after the last step: time 0 when reverse; h0 when T = 0).
cdef int rnn_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] Wx,
                     const real[:, ::1] Wh, const real[::1] b, real[:, :, ::1] h, real[:, ::1] hT,
                     bint reverse=*, bint relu=*, int nthreads=*) noexcept nogil
# dh (N,T,H): the upstream gradient of each step's h; x, h0, Wx, Wh, h: the
# forward's. Out: dx (N,T,D), dh0 (N,H), dWx (D,H), dWh (H,H), db (H).
cdef int rnn_backward(const real[:, :, ::1] dh, const real[:, :, ::1] x, const real[:, ::1] h0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, :, ::1] h,
                      real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx, real[:, ::1] dWh, real[::1] db,
                      bint reverse=*, bint relu=*, int nthreads=*) noexcept nogil
# One step: x (N,D), prev_h (N,H); out next_h (N,H).
cdef int rnn_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] Wx,
                          const real[:, ::1] Wh, const real[::1] b, real[:, ::1] next_h,
                          bint relu=*, int nthreads=*) noexcept nogil
cdef int rnn_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] x, const real[:, ::1] prev_h,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, ::1] next_h,
                           real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dWx, real[:, ::1] dWh,
                           real[::1] db, bint relu=*, int nthreads=*) noexcept nogil

# ---- LSTM: gates i, f, o, g (ifgo=True: i, f, g, o, Keras's and PyTorch's)
# x (N,T,D), h0 and c0 (N,H), Wx (D,4H), Wh (H,4H), b (4H); out: h (N,T,H),
# hT and cT (N,H), work (lstm_workspace(N, T, H)).
cdef int lstm_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] c0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[::1] b, real[:, :, ::1] h,
                      real[:, ::1] hT, real[:, ::1] cT, real[::1] work,
                      bint reverse=*, bint ifgo=*, int nthreads=*) noexcept nogil
# dh (N,T,H), dcT (N,H) the final cell state's gradient; the forward's x,
# h0, c0, Wx, Wh, h and work. Out: dx, dh0, dc0, dWx, dWh, db.
cdef int lstm_backward(const real[:, :, ::1] dh, const real[:, ::1] dcT, const real[:, :, ::1] x,
                       const real[:, ::1] h0, const real[:, ::1] c0, const real[:, ::1] Wx,
                       const real[:, ::1] Wh, const real[:, :, ::1] h, const real[::1] work,
                       real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dc0, real[:, ::1] dWx,
                       real[:, ::1] dWh, real[::1] db, bint reverse=*, bint ifgo=*, int nthreads=*) noexcept nogil
# One step: out next_h, next_c (N,H), work (lstm_workspace(N, 1, H)).
cdef int lstm_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] prev_c,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[::1] b,
                           real[:, ::1] next_h, real[:, ::1] next_c, real[::1] work,
                           bint ifgo=*, int nthreads=*) noexcept nogil
cdef int lstm_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] dnext_c, const real[:, ::1] x,
                            const real[:, ::1] prev_h, const real[:, ::1] prev_c, const real[:, ::1] Wx,
                            const real[:, ::1] Wh, const real[:, ::1] next_h, const real[::1] work,
                            real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dprev_c, real[:, ::1] dWx,
                            real[:, ::1] dWh, real[::1] db, bint ifgo=*, int nthreads=*) noexcept nogil

# ---- GRU: PyTorch's equations, gates r, z, n (zrn=True: z, r, n, Keras's)
# x (N,T,D), h0 (N,H), Wx (D,3H), Wh (H,3H), b and bh (3H); out: h (N,T,H),
# hT (N,H), work (gru_workspace(N, T, H)).
cdef int gru_forward(const real[:, :, ::1] x, const real[:, ::1] h0, const real[:, ::1] Wx,
                     const real[:, ::1] Wh, const real[::1] b, const real[::1] bh, real[:, :, ::1] h,
                     real[:, ::1] hT, real[::1] work, bint reverse=*, bint zrn=*, int nthreads=*) noexcept nogil
cdef int gru_backward(const real[:, :, ::1] dh, const real[:, :, ::1] x, const real[:, ::1] h0,
                      const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, :, ::1] h,
                      const real[::1] work, real[:, :, ::1] dx, real[:, ::1] dh0, real[:, ::1] dWx,
                      real[:, ::1] dWh, real[::1] db, real[::1] dbh,
                      bint reverse=*, bint zrn=*, int nthreads=*) noexcept nogil
cdef int gru_step_forward(const real[:, ::1] x, const real[:, ::1] prev_h, const real[:, ::1] Wx,
                          const real[:, ::1] Wh, const real[::1] b, const real[::1] bh, real[:, ::1] next_h,
                          real[::1] work, bint zrn=*, int nthreads=*) noexcept nogil
cdef int gru_step_backward(const real[:, ::1] dnext_h, const real[:, ::1] x, const real[:, ::1] prev_h,
                           const real[:, ::1] Wx, const real[:, ::1] Wh, const real[:, ::1] next_h,
                           const real[::1] work, real[:, ::1] dx, real[:, ::1] dprev_h, real[:, ::1] dWx,
                           real[:, ::1] dWh, real[::1] db, real[::1] dbh, bint zrn=*, int nthreads=*) noexcept nogil
