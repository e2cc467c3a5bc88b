// Never the cause: the waits the shim adds (docs/reliability.md, "Waits: cancellation, jumps,
// panic"). A thread held by an injected `delay` or a `blackhole` must be cancellable the way
// the real call is (fl_cancel_wait), a signal handler that siglongjmps out of a delay must not
// leave the shim's reentrancy guard set (fl_longjmp_delay), and `panic`, `disable` and the TTL
// must end a wait within 100 ms (fl_held_call; asserted with a generous 2 s bound). Every
// outcome is what the program itself prints.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

const std::string kCancelWait = std::string(FL_PROGRAMS_DIR) + "/fl_cancel_wait";
const std::string kLongjmpDelay = std::string(FL_PROGRAMS_DIR) + "/fl_longjmp_delay";
const std::string kHeldCall = std::string(FL_PROGRAMS_DIR) + "/fl_held_call";

class HostileWaitsTest : public IntegrationTest {
 protected:
  std::string policy(const std::string& body) {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(file, "version = 1\nseed = 7\n" + body));
    return file;
  }

  // Starts fl_held_call under `faultline run`, waits (bounded) until its call is held by
  // fault `fault`, runs `lift` (a faultline command), and returns how long after it the
  // program's call came back, with the program's own line.
  struct Lifted {
    std::string line;
    std::chrono::milliseconds after{-1};
  };
  Lifted hold_then_lift(const std::string& name, const std::string& policy_file,
                        const std::vector<std::string>& program, const std::string& fault,
                        const std::vector<std::string>& lift) {
    Background child;
    std::vector<std::string> argv = {cli(), "run", "-s", name, "-p", policy_file, "--"};
    argv.insert(argv.end(), program.begin(), program.end());
    EXPECT_TRUE(child.start(argv));
    EXPECT_EQ(child.read_line(15s).value_or("<nothing>"), "holding") << child.err();
    for (int i = 0; i < 200; ++i) {
      const RunResult status = faultline({"status", name, "--json"});
      if (status_json_injected(status.out, fault).value_or(0) == 1) break;
      std::this_thread::sleep_for(25ms);
    }
    std::this_thread::sleep_for(200ms);  // well inside the wait
    const auto start = std::chrono::steady_clock::now();
    const RunResult lifted = faultline(lift);
    EXPECT_EQ(lifted.status(), 0) << lifted.err;
    Lifted out;
    out.line = child.read_line(20s).value_or("<nothing>");
    out.after = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    const RunResult end = child.stop(10s);
    EXPECT_EQ(end.status(), 0) << end.err;
    return out;
  }
};

// pthread_cancel of a thread in an injected delay, a blackholed blocking connect and a
// blackholed blocking recv, and a cancel pending when a thread enters a write an `error`
// fault fails (with an event log): each thread is cancelled where the real call would cancel
// it (cleanup handler and destructor run), the process lives on, and a later write is still
// injected (no guard left behind).
TEST_F(HostileWaitsTest, CancellingAHeldThreadUnwindsItCleanly) {
  const std::string file = policy(R"(
[log]
path = ")" + path("events.jsonl") +
                                  R"("

[[fault]]
name = "slow"
calls = ["write"]
path = "*/slow.txt"
delay = "10s"

[[fault]]
name = "partition-connect"
calls = ["connect"]
blackhole = true
timeout = "5s"

[[fault]]
name = "partition-recv"
calls = ["recv"]
blackhole = true

[[fault]]
name = "later"
calls = ["write"]
path = "*/later.txt"
error = "EIO"
)");
  RunOptions options;
  options.timeout = 60s;
  const RunResult r = faultline({"run", "-p", file, "--", kCancelWait, dir_.path()}, options);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_NE(r.out.find("a: cancelled, cleanup ran, destructor ran"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("b: cancelled, cleanup ran, destructor ran"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("c: cancelled, cleanup ran, destructor ran"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("d: cancelled at the write, cleanup ran, destructor ran"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("later write: EIO"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
}

// A SIGALRM handler jumps out of a delayed write; the thread's later writes are faulted again.
TEST_F(HostileWaitsTest, JumpingOutOfADelayLeavesNoGuardSet) {
  const std::string file = policy(R"(
[[fault]]
name = "slow"
calls = ["write"]
path = "*/slow.txt"
delay = "10s"

[[fault]]
name = "later"
calls = ["write"]
path = "*/later.txt"
error = "EIO"
)");
  RunOptions options;
  options.timeout = 30s;
  const RunResult r = faultline({"run", "-p", file, "--", kLongjmpDelay, dir_.path()}, options);
  EXPECT_NE(r.out.find("jumped out of the slow write"), std::string::npos) << r.out << r.err;
  for (int i = 0; i < 3; ++i)
    EXPECT_NE(r.out.find("later write " + std::to_string(i) + ": EIO"), std::string::npos) << r.out;
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(summary_injected(r.err, "later").value_or(0), 3u) << r.err;
}

constexpr const char* kSlowWrite = R"(
[[fault]]
name = "slow"
calls = ["write"]
path = "*/slow.txt"
delay = "15s"
)";

// After panic, disable or remove the held write runs unfaulted at once: the fault no longer
// holds it, and nothing else of it applies.
TEST_F(HostileWaitsTest, PanicDisableAndRemoveEndAnInFlightDelay) {
  for (const char* command : {"panic", "disable", "remove"}) {
    SCOPED_TRACE(command);
    const std::string name = session(std::string(command) + "delay");
    std::vector<std::string> lift{command, name};
    if (lift[0] != "panic") lift.push_back("slow");
    const Lifted r =
        hold_then_lift(name, policy(kSlowWrite), {kHeldCall, "write", dir_.path()}, "slow", lift);
    EXPECT_EQ(r.line.rfind("returned 1 after", 0), 0u) << r.line;
    EXPECT_LT(r.after, 2s) << r.line;
  }
}

// A live edit that shortens the delay below what was waited ends it, and the rest of the
// decision stands (the fault still applies): the write fails with the fault's error. A
// disabled fault's error does not apply: the write runs.
constexpr const char* kSlowFailingWrite = R"(
[[fault]]
name = "slow"
calls = ["write"]
path = "*/slow.txt"
delay = "15s"
error = "EIO"
)";

TEST_F(HostileWaitsTest, ShorterDelayEndsItAndTheErrorStands) {
  const std::string name = session("setdelay");
  const Lifted r =
      hold_then_lift(name, policy(kSlowFailingWrite), {kHeldCall, "write", dir_.path()}, "slow",
                     {"set", name, "slow", "delay=10ms"});
  EXPECT_EQ(r.line.rfind("returned -1 after", 0), 0u) << r.line;
  EXPECT_NE(r.line.find("Input/output error"), std::string::npos) << r.line;
  EXPECT_LT(r.after, 2s) << r.line;
}

TEST_F(HostileWaitsTest, DisabledFaultsErrorDoesNotApplyAfterItsDelay) {
  const std::string name = session("disableerr");
  const Lifted r =
      hold_then_lift(name, policy(kSlowFailingWrite), {kHeldCall, "write", dir_.path()}, "slow",
                     {"disable", name, "slow"});
  EXPECT_EQ(r.line.rfind("returned 1 after", 0), 0u) << r.line;
  EXPECT_LT(r.after, 2s) << r.line;
}

// A 15 s delay under a 1 s TTL ends when the TTL does (the program says how long it waited).
TEST_F(HostileWaitsTest, TtlEndsAnInFlightDelay) {
  const std::string file = policy(std::string("[safety]\nttl = \"1s\"\n") + kSlowWrite);
  RunOptions options;
  options.timeout = 30s;
  const RunResult r =
      faultline({"run", "-p", file, "--", kHeldCall, "write", dir_.path()}, options);
  EXPECT_EQ(r.status(), 0) << r.err;
  long long waited = -1;
  const auto at = r.out.find("returned 1 after ");
  ASSERT_NE(at, std::string::npos) << r.out;
  std::sscanf(r.out.c_str() + at, "returned 1 after %lld ms", &waited);
  EXPECT_GE(waited, 0) << r.out;
  EXPECT_LT(waited, 3000) << r.out;  // 1 s TTL + 100 ms, generously; 15000 if it ran on
}

// A blocking recv held by a blackhole gets the data its peer sent once the partition is
// disabled.
TEST_F(HostileWaitsTest, DisableEndsABlackholedRecv) {
  const std::string name = session("disablerecv");
  const Lifted r = hold_then_lift(name, policy(R"(
[[fault]]
name = "partition"
calls = ["recv"]
blackhole = true
)"),
                                  {kHeldCall, "recv"}, "partition", {"disable", name, "partition"});
  EXPECT_EQ(r.line.rfind("returned 5 after", 0), 0u) << r.line;
  EXPECT_LT(r.after, 2s) << r.line;
}

}  // namespace
}  // namespace fltest
