// The one way the shim holds a thread: every wait it adds (an injected `delay`, a blocking
// call held by a `blackhole`) sleeps here, in slices of at most kWaitSliceNs, asking between
// slices whether what holds the thread still does. A slice sleeps in the real ppoll (a
// cancellation point) when the interposed call is one, so pthread_cancel unwinds the thread
// through the shim's frames as it would through the real call; in a raw, non-cancellable
// syscall when the call is not one (malloc, dup, socket...), which a cancel must not end.
// The reentrancy guard is released while the thread sleeps: it holds no shim state then, so a
// signal handler's calls are faulted like the program's own, and a handler that siglongjmps
// out of the sleep leaves no guard behind.
#pragma once

#include <cstdint>

#include "shim/engine/shim.h"

namespace faultline::shim {

// A lifted fault (disable, remove, edit, panic, TTL) releases the thread within one slice.
inline constexpr std::int64_t kWaitSliceNs = 50'000'000;

enum class WaitEnd {
  kDeadline,     // the deadline passed (a delay served, a socket timeout)
  kLifted,       // `holds` said the wait is over
  kInterrupted,  // a signal handler ran, and OnSignal says that ends the wait
};

// What a caught signal does to the wait.
enum class OnSignal {
  kRestart,           // nothing: the wait goes on (a delay)
  kEnd,               // ends it (a blocking call on a socket with a timeout: signal(7))
  kEndUnlessRestart,  // ends it unless every caught signal has SA_RESTART
};

// Asked before each slice, with the guard held: false ends the wait (kLifted). It may move
// `deadline_ns` (a live edit shortened a delay).
using WaitHolds = bool (*)(void* ctx, std::int64_t& deadline_ns);

// Waits until `deadline_ns` on CLOCK_MONOTONIC (-1: no deadline). `call` (a CallId) says
// whether the wait is a cancellation point. errno is kept. Deliberately not noexcept, nor
// may any caller between it and the exported wrapper be: glibc's forced unwind of a
// cancelled thread through a noexcept frame calls std::terminate.
WaitEnd shim_wait(const Guard& guard, std::uint32_t call, std::int64_t deadline_ns,
                  OnSignal on_signal, WaitHolds holds, void* ctx);

// Would the kernel have ended a blocking call that a caught signal interrupted? True when
// some caught signal's handler lacks SA_RESTART (the program is prepared for EINTR).
bool interrupted_without_restart();

// Is the interposed call a cancellation point in glibc (not declared __THROW)?
bool call_is_cancellation_point(std::uint32_t call) noexcept;

}  // namespace faultline::shim
