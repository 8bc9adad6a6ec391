// The kernels' thread teams: how many a call may ask for, and making sure a
// team can start before OpenMP is asked for it (libgomp ends the process,
// "Thread creation failed", when it cannot make a team's thread). Shared by
// the bindings (set_num_threads) and the C API (each call's nthreads).
#pragma once

#include <stdexcept>
#include <string>

namespace rnn_fast {

// The most threads a call takes: four per core of the machine (more only
// slows the kernels: at 4,096 threads a call took 14x as long as at 2) and
// no more than OpenMP's thread limit.
int max_threads();

// Whether a team of n threads can run for the calling thread: true at once
// when it already has (OpenMP keeps a pool for each thread that starts
// teams), or when its regions run single-threaded (inside another's team);
// otherwise its n - 1 threads are first made and joined as plain pthreads of
// the pool's stack size (OMP_STACKSIZE), and only if that works is OpenMP's
// pool started. False: the system cannot start them now (memory, its thread
// limit); nothing was started.
bool ensure_team(int n);

// GNU OpenMP's thread pool does not survive fork(): a forked child's first
// parallel region would wait forever for threads that live only in the
// parent. True in a child made by fork() (from the moment it starts): its
// kernels run on one thread, as PyTorch's do, with the same results.
bool in_forked_child();

// What a kernel throws when ensure_team(n) fails for its thread count.
struct ThreadStartError : std::runtime_error {
    explicit ThreadStartError(int n)
        : std::runtime_error("the system cannot start " + std::to_string(n) +
                             " threads now (memory or its thread limit)") {}
};

}  // namespace rnn_fast
