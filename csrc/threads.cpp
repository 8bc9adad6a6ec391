#include "threads.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace rnn_fast {
namespace {

// The pool's stack size as libgomp takes it (OMP_STACKSIZE, else
// GOMP_STACKSIZE: a number with an optional B, K, M or G suffix, K by
// default), or 0 for the system's default.
std::size_t pool_stack_size() {
    const char* v = std::getenv("OMP_STACKSIZE");
    if (v == nullptr) v = std::getenv("GOMP_STACKSIZE");
    if (v == nullptr) return 0;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    while (end != nullptr && *end == ' ') ++end;
    const char unit = end != nullptr && *end != 0 ? static_cast<char>(std::toupper(*end)) : 'K';
    const int shift = unit == 'B' ? 0 : unit == 'M' ? 20 : unit == 'G' ? 30 : 10;
    return static_cast<std::size_t>(n) << shift;
}

// Whether n - 1 threads (a team of n, with the caller) can run at once now:
// made, all alive together, then joined.
bool can_start(int n) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return false;
    const std::size_t stack = pool_stack_size();
    if (stack != 0) pthread_attr_setstacksize(&attr, stack);
    static std::mutex gate;
    std::vector<pthread_t> made;
    bool ok = true;
    {
        std::lock_guard<std::mutex> hold(gate);  // every probe thread waits here until all are made
        for (int k = 1; k < n && ok; ++k) {
            pthread_t t;
            ok = pthread_create(&t, &attr, [](void*) -> void* {
                std::lock_guard<std::mutex> wait(gate);
                return nullptr;
            }, nullptr) == 0;
            if (ok) made.push_back(t);
        }
    }
    for (pthread_t t : made) pthread_join(t, nullptr);
    pthread_attr_destroy(&attr);
    return ok;
}

// Starts the calling thread's pool for a team of n (a region whose body
// cannot be dropped); returns the team it got.
int start_pool(int n) {
    std::atomic<int> members{0};
#pragma omp parallel num_threads(n)
    members.fetch_add(1, std::memory_order_relaxed);
    return members.load();
}

std::atomic<bool> g_forked{false};
// Registered when the library is loaded, before any fork that matters.
const int g_atfork = pthread_atfork(nullptr, nullptr, [] { g_forked.store(true); });

}  // namespace

bool in_forked_child() { return g_forked.load(std::memory_order_relaxed); }

int max_threads() {
    static const int cap = static_cast<int>(std::max(1L, std::min<long>(omp_get_thread_limit(),
                                                                       4L * omp_get_num_procs())));
    return cap;
}

bool ensure_team(int n) {
    thread_local int started = 1;  // the largest team this thread's pool has run
    if (n <= started || in_forked_child() || omp_get_active_level() >= omp_get_max_active_levels()) return true;
    if (!can_start(n)) return false;
    started = std::max(started, start_pool(n));
    return true;
}

}  // namespace rnn_fast
