// Stopping a long kernel call when its caller asks (the bindings: Python's
// signal handlers, Ctrl-C), without the core knowing who asks or why.
//
// A caller sets a hook for its own thread (ScopedStop) around a kernel call.
// The kernels' long loops hold a Stop, made on the calling thread before
// their parallel region, and call stop.poll() at each step or block of work
// from every thread: on the calling thread (thread 0 of the region; the hook
// runs only there) it calls the hook when kPollInterval has passed since the
// last call, and on the others it reads whether the call is stopped. Once the
// hook says stop, every thread's loop skips its remaining work at its next
// poll, and after the region the kernel throws Interrupted (stop.check()),
// its buffers freed as it unwinds; the outputs are then partly written, and
// the caller drops them. Without a hook (the C API, other threads) nothing is
// polled and nothing stops.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>

#include "common.h"

namespace rnn_fast {

// What a kernel throws when its caller's hook stopped it.
struct Interrupted : std::exception {
    const char* what() const noexcept override { return "rnn_fast: kernel call interrupted by its caller"; }
};

// The hook is called at most this often (and at most once per 10 times as
// long as it last took: a hook that waits, as for a GIL another thread
// holds, costs the kernel at most a tenth of its time).
constexpr auto kPollInterval = std::chrono::milliseconds(10);

using StopClock = std::chrono::steady_clock;

// One call's stop: the hook (true: stop) and whether it said so.
struct StopState {
    bool (*hook)(void* context) = nullptr;
    void* context = nullptr;
    pthread_t owner{};  // the thread that set it: the only one that calls the hook
    std::atomic<bool> stopped{false};
    StopClock::time_point next_poll{};  // the owner's only; unset until the first clock read
};

// The calling thread's stop, if it set one.
inline StopState*& current_stop() {
    static thread_local StopState* state = nullptr;
    return state;
}

// Sets the calling thread's hook for its lifetime (nested: the inner one).
class ScopedStop {
public:
    ScopedStop(bool (*hook)(void*), void* context) : previous_(current_stop()) {
        state_.hook = hook;
        state_.context = context;
        state_.owner = pthread_self();
        current_stop() = &state_;
    }
    ~ScopedStop() { current_stop() = previous_; }
    ScopedStop(const ScopedStop&) = delete;
    ScopedStop& operator=(const ScopedStop&) = delete;

private:
    StopState state_;
    StopState* previous_;
};

// A loop's view of its caller's stop. Made on the calling thread, outside the
// loop's parallel region; poll() from any thread of it, check() after it.
class Stop {
public:
    Stop() : state_(current_stop()) {}

    // Whether the call is stopped; on the caller's thread, asking the hook
    // first when it is due. The clock is read about every millisecond, the
    // polls between reads counted down (a step of a small layer takes less
    // than a microsecond; a clock read, 20 ns).
    bool poll() {
        if (state_ == nullptr) return false;
        if (!pthread_equal(pthread_self(), state_->owner)) return requested();
        if (--countdown_ > 0) return requested();
        const StopClock::time_point now = StopClock::now();
        if (now - last_read_ < std::chrono::microseconds(500)) stride_ = std::min(stride_ * 2, 1 << 20);
        else if (now - last_read_ > std::chrono::milliseconds(2)) stride_ = std::max(stride_ / 2, 1);
        countdown_ = stride_;
        last_read_ = now;
        if (state_->next_poll == StopClock::time_point{}) state_->next_poll = now + kPollInterval;
        if (requested() || now < state_->next_poll) return requested();
        const bool stop = state_->hook(state_->context);
        const StopClock::time_point after = StopClock::now();
        state_->next_poll = after + std::max<StopClock::duration>(kPollInterval, 10 * (after - now));
        if (stop) state_->stopped.store(true, std::memory_order_relaxed);
        return stop;
    }

    // Whether this thread is the one that calls the hook.
    bool owner() const { return state_ != nullptr && pthread_equal(pthread_self(), state_->owner); }

    bool requested() const { return state_ != nullptr && state_->stopped.load(std::memory_order_relaxed); }

    // After the loop's region: throws Interrupted if the call was stopped.
    void check() const {
        if (requested()) throw Interrupted();
    }

private:
    StopState* state_;
    int countdown_ = 1, stride_ = 1;
    StopClock::time_point last_read_{};
};

}  // namespace rnn_fast
