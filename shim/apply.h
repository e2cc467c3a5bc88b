// Applying a decision: the one place where an injecting Decision becomes what the program
// sees. Every family's slow path decides (engine.h) and then hands the decision here: the
// delay is held, the event is written, and the action is carried out — the call's own way to
// fail, a crash before or after the call, or the call itself. A family only supplies what is
// its own: how its call runs, where its failure goes (a stream, the *_r out-parameters; the
// shape itself is the call's row, fail_as.h) and the actions only it has (lie, resolve_to, reset,
// blackhole, eof). Byte-moving calls (io.h) carry more actions (short, corrupt, quota) but crash
// through the same apply_crash. Everything here is header-only templates so a wrapper's frame grows
// by nothing (the 1 KiB handler-stack budget, docs/reliability.md).
#pragma once

#include <errno.h>

#include <cstdint>

#include "shim/engine/engine.h"
#include "shim/fail_as.h"

namespace faultline::shim {

// A crash, the one implementation. Before: the event, then the signal. After: the call runs
// first; `run` returns what the event reports as `bytes` (what the call moved, or -1), then
// the event, then the signal. The call's own effects are what a crash after leaves behind.
template <class Run>
[[noreturn]] void apply_crash(const Decision& d, const CallArgs& args, Run&& run) {
  std::int64_t bytes = -1;
  if (d.crash_when == kCrashAfter) bytes = run();
  emit_event(d, args, bytes);
  crash_now(d);
}

// A call whose event must be written before it runs even when it crashes after (close: the
// event names the file through the fd the call ends).
template <class Run>
[[noreturn]] void apply_crash_event_first(const Decision& d, const CallArgs& args, Run&& run) {
  emit_event(d, args, -1);
  if (d.crash_when == kCrashAfter) run();
  crash_now(d);
}

// What a decision's fault reports (fail_as.h).
inline FailCause cause_of(const Decision& d) { return {d.error, d.dns_error}; }

// apply_decision's `fail` for a call whose failure needs nothing but the fault's error: the
// call's own shape (its row's `failure` column), as the R its slow path returns.
template <class R>
auto fail_call(const CallArgs& args) {
  return [call = args.call](const Decision& d) { return fail_as<R>(call, cause_of(d)); };
}

// The family has no action of its own.
struct NoOwnAction {
  template <class R>
  bool operator()(const Decision&, R&) const {
    return false;
  }
};

// The shared applier of calls that move no bytes. `run()` is the real call (with whatever
// bookkeeping its result needs); `fail(d)` reports the fault's error the call's way and
// returns what the call then returns; `own(d, out)` carries out an action of the family's own
// (it writes its event) and returns true, or returns false for the common ones. The order is
// fixed: delay (apply_delay: a cancellation point; a lifted fault turns the decision into a
// delay-only one), crash, the family's own action, then error or the call, each after its
// event.
template <class Run, class Fail, class Own = NoOwnAction>
auto apply_decision(const Guard& guard, Decision& d, const CallArgs& args, Run&& run, Fail&& fail,
                    Own&& own = {}) -> decltype(run()) {
  apply_delay(guard, d, args);
  if (d.action == kActCrash)
    apply_crash(d, args, [&] {
      run();
      return std::int64_t{-1};
    });
  decltype(run()) out{};
  if (own(d, out)) return out;
  emit_event(d, args, -1);
  if (d.action == kActError) return fail(d);
  return run();
}

}  // namespace faultline::shim
