/* rnn_fast's recurrent kernels as a C table of function pointers: what the
 * Cython module rnn_fast.cython_kernels calls, without the GIL. The
 * extension module rnn_fast._core hands the table out as the capsule
 * rnn_fast._core._c_api (so that one copy of the core, its ISA choice and
 * its memory serves Python and Cython alike); rnn_fast/cython_kernels.pxd
 * is the interface to cimport.
 *
 * Arrays are dense, row-major, batch first, as the Python functions': x
 * (N,T,D), h0 and c0 (N,H), Wx (D,G), Wh (H,G), b and bh (G), h (N,T,H),
 * G = gates * H (cell 0, RNN: 1 gate; 1, LSTM: 4; 2, GRU: 3). A step is a
 * sequence with T = 1. `option` is the cell's: the RNN's activation (0
 * tanh, 1 relu), the LSTM's gate order (0 ifog, 1 ifgo), the GRU's (0 rzn,
 * 1 zrn). `work` holds what the forward keeps for the backward, workspace()
 * elements (none for the RNN: may be NULL); a forward without it (NULL) is
 * an inference, which keeps nothing and runs faster. nthreads: the threads a call
 * may use, 1 (inside a caller's parallel loop) to four per core (1 in a child
 * made by fork(); a count the system cannot start now is RNN_FAST_ENOMEM).
 * Every function returns 0 or an error code (RNN_FAST_E*), and error()
 * gives the calling thread's last message. */
#ifndef RNN_FAST_CAPI_H
#define RNN_FAST_CAPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RNN_FAST_CAPI_VERSION 1

enum {
    RNN_FAST_OK = 0,
    RNN_FAST_ESHAPE = 1,   /* arrays whose shapes do not fit together */
    RNN_FAST_EVALUE = 2,   /* a bad cell, option or thread count */
    RNN_FAST_ENOMEM = 3,   /* an allocation failed */
    RNN_FAST_EINTERNAL = 4 /* anything else the core threw */
};

typedef struct rnn_fast_capi {
    int version; /* RNN_FAST_CAPI_VERSION */
    /* Forward over a sequence: h, the final states hT (and cT, LSTM; NULL
     * for none) and work. bh: the GRU's only (else NULL); c0: the LSTM's. */
    int (*forward_f)(int cell, int option, const float* x, const float* h0, const float* c0, const float* Wx,
                     const float* Wh, const float* b, const float* bh, float* h, float* hT, float* cT, float* work,
                     int64_t N, int64_t T, int64_t D, int64_t H, int reverse, int nthreads);
    int (*forward_d)(int cell, int option, const double* x, const double* h0, const double* c0, const double* Wx,
                     const double* Wh, const double* b, const double* bh, double* h, double* hT, double* cT,
                     double* work, int64_t N, int64_t T, int64_t D, int64_t H, int reverse, int nthreads);
    /* Backward, from the forward's inputs, h and work: dh (N,T,H) the
     * upstream gradient of each step's h; dcT (LSTM, or NULL for 0) of the
     * final cell state. Out: dx, dh0, dc0 (LSTM), dWx, dWh, db, dbh (GRU). */
    int (*backward_f)(int cell, int option, const float* dh, const float* dcT, const float* x, const float* h0,
                      const float* c0, const float* Wx, const float* Wh, const float* h, const float* work, float* dx,
                      float* dh0, float* dc0, float* dWx, float* dWh, float* db, float* dbh, int64_t N, int64_t T,
                      int64_t D, int64_t H, int reverse, int nthreads);
    int (*backward_d)(int cell, int option, const double* dh, const double* dcT, const double* x, const double* h0,
                      const double* c0, const double* Wx, const double* Wh, const double* h, const double* work,
                      double* dx, double* dh0, double* dc0, double* dWx, double* dWh, double* db, double* dbh,
                      int64_t N, int64_t T, int64_t D, int64_t H, int reverse, int nthreads);
    /* Elements of `work` for a cell's forward of N x T x H (-1: no such cell). */
    int64_t (*workspace)(int cell, int64_t N, int64_t T, int64_t H);
    /* The calling thread's last error message ("" after none). */
    const char* (*error)(void);
    /* Records message as the calling thread's last error; returns code. */
    int (*fail)(int code, const char* message);
} rnn_fast_capi;

/* The table (C++ core; rnn_fast._core exports it as a capsule). */
const rnn_fast_capi* rnn_fast_capi_table(void);

#ifdef __cplusplus
}
#endif

#endif
