// Live control of a running session: a python3 process writes a file on command while the
// test flips its fault with `faultline enable/disable/set/panic/resume` from outside. The
// program and the test take turns over stdin/stdout (the program prints "done" after each batch
// of writes), so every phase is exact and no step depends on timing.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

// Commands on stdin: "w N" makes N writes (at most 3000 over the whole run), printing "ok" or
// "err ERRNO" for each and "done" after the batch; "q" quits.
constexpr const char* kLoopPy = R"PY(
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
print("ready", flush=True)
budget = 3000
while True:
    line = sys.stdin.readline()
    if not line:
        break
    words = line.split()
    if not words:
        continue
    if words[0] == "q":
        break
    if words[0] == "w":
        n = min(int(words[1]), budget)
        budget -= n
        for _ in range(n):
            try:
                os.write(fd, b"0123456789abcdef")
                print("ok", flush=True)
            except OSError as e:
                print("err %d" % e.errno, flush=True)
        print("done", flush=True)
os.close(fd)
print("bye", flush=True)
)PY";

class LiveControlTest : public IntegrationTest {
 protected:
  struct Batch {
    int ok = 0;
    int err = 0;  // "err 5" lines
    int other = 0;
  };

  Batch writes(int n) {
    Batch batch;
    EXPECT_TRUE(program_.write_stdin("w " + std::to_string(n) + "\n"));
    bool done = false;
    for (const auto& line : program_.read_until("done", done)) {
      if (line == "ok")
        ++batch.ok;
      else if (line == "err 5")
        ++batch.err;
      else
        ++batch.other;
    }
    EXPECT_TRUE(done) << "no 'done' after " << n << " writes; stderr:\n" << program_.err();
    EXPECT_EQ(batch.other, 0) << "unexpected lines; stderr:\n" << program_.err();
    EXPECT_EQ(batch.ok + batch.err, n);
    total_err_ += batch.err;
    return batch;
  }

  void control(const std::vector<std::string>& args) {
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
  }

  Background program_;
  int total_err_ = 0;
};

TEST_F(LiveControlTest, FlipsReachTheRunningProgram) {
  const std::string name = session("live");
  ASSERT_TRUE(write_file(path("loop.py"), kLoopPy));
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "f"
calls = ["write"]
path = "*/live.dat"
error = "EIO"
enabled = false
)"));
  ASSERT_TRUE(program_.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--",
                              "/usr/bin/python3", path("loop.py"), path("live.dat")}));
  const auto ready = program_.read_line(15s);
  ASSERT_EQ(ready.value_or("<nothing>"), "ready") << program_.err();

  // Loaded disabled: nothing fails.
  EXPECT_EQ(writes(20).ok, 20) << "phase: disabled at start";

  // Each command takes effect before it returns: the very next write sees it.
  control({"enable", name, "f"});
  EXPECT_EQ(writes(20).err, 20) << "phase: enabled";

  control({"set", name, "f", "probability=0.5"});
  const Batch half = writes(200);
  EXPECT_GE(half.err, 50) << "phase: probability=0.5";
  EXPECT_LE(half.err, 150) << "phase: probability=0.5";

  control({"set", name, "f", "probability=1"});
  EXPECT_EQ(writes(20).err, 20) << "phase: probability back to 1";

  control({"disable", name, "f"});
  EXPECT_EQ(writes(20).ok, 20) << "phase: disabled";

  control({"enable", name, "f"});
  EXPECT_EQ(writes(10).err, 10) << "phase: enabled again";

  control({"panic", name});
  EXPECT_EQ(writes(20).ok, 20) << "phase: panicked";

  control({"resume", name});
  EXPECT_EQ(writes(20).err, 20) << "phase: resumed";

  // The program is idle (waiting for a command): the shared counter is final.
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_EQ(status.status(), 0) << status.err;
  const auto injected = status_json_injected(status.out, "f");
  ASSERT_TRUE(injected.has_value()) << status.out;
  EXPECT_EQ(*injected, static_cast<std::uint64_t>(total_err_)) << status.out;

  EXPECT_TRUE(program_.write_stdin("q\n"));
  const auto bye = program_.read_line(10s);
  EXPECT_EQ(bye.value_or("<nothing>"), "bye");
  const RunResult end = program_.stop(10s);
  EXPECT_FALSE(end.timed_out);
  EXPECT_EQ(end.status(), 0) << end.err;
  const auto summary = summary_injected(end.err, "f");
  ASSERT_TRUE(summary.has_value()) << end.err;
  EXPECT_EQ(*summary, static_cast<std::uint64_t>(total_err_)) << end.err;
}

}  // namespace
}  // namespace fltest
