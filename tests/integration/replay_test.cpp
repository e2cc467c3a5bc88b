// Exact replay: the same policy, seed and single-threaded program give byte-identical event
// logs (timestamps and pids aside) and the same program output, run after run; the seed can be
// overridden with --seed or FAULTLINE_SEED, and the run summary names the seed it used, so a
// run with a random seed can be replayed too.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "targeting_util.h"

namespace fltest {
namespace {

// 200 writes with an fsync every 10, then reads everything back; prints what each call did
// and a digest of what is on disk.
constexpr const char* kWorkloadPy = R"PY(
import hashlib, os, sys
d = sys.argv[1]
out = []
fd = os.open(os.path.join(d, "data.bin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(200):
    chunk = bytes((i * 7 + j) % 251 for j in range(64))
    try:
        out.append("w%d:%d" % (i, os.write(fd, chunk)))
    except OSError as e:
        out.append("w%d:e%d" % (i, e.errno))
    if i % 10 == 9:
        try:
            os.fsync(fd)
            out.append("s")
        except OSError as e:
            out.append("s:e%d" % e.errno)
os.lseek(fd, 0, 0)
data = b""
while True:
    try:
        block = os.read(fd, 100)
    except OSError as e:
        out.append("r:e%d" % e.errno)
        continue
    if not block:
        break
    data += block
os.close(fd)
print(" ".join(out))
print(hashlib.sha256(data).hexdigest())
)PY";

// Every kind of random decision: probabilities, short lengths, corrupted bit positions,
// jittered delays, and a stack in the log.
constexpr const char* kFaults = R"(
[[fault]]
name = "eio"
calls = ["write"]
path = "*/data.bin"
error = "EIO"
probability = 0.1
[[fault]]
name = "half"
calls = ["write"]
path = "*/data.bin"
short = "50%"
probability = 0.1
[[fault]]
name = "flip"
calls = ["write"]
path = "*/data.bin"
corrupt = 3
probability = 0.1
log_stack = true
[[fault]]
name = "slow-sync"
calls = ["fsync"]
delay = "1ms"
jitter = "900us"
probability = 0.5
[[fault]]
name = "bad-read"
calls = ["read"]
path = "*/data.bin"
error = "EIO"
probability = 0.2
times = 5
)";

class ReplayTest : public TargetingTest {
 protected:
  void SetUp() override {
    TargetingTest::SetUp();
    ASSERT_TRUE(write_file(path("workload.py"), kWorkloadPy));
  }
  struct Outcome {
    std::string log;  // without time, ts_ns, pid, tid
    std::string out;
    std::string err;
    int status;
  };
  // One run of the workload; `seed_line` goes into the policy ("" for none).
  Outcome run_once(const std::string& seed_line, const std::vector<std::string>& extra = {},
                   RunOptions options = {}) {
    std::remove(path("events.jsonl").c_str());
    const std::string policy =
        "version = 1\n" + seed_line + "[log]\npath = \"" + path("events.jsonl") + "\"\n" + kFaults;
    const RunResult r =
        run_under(policy, {kPython, path("workload.py"), dir_.path()}, options, extra);
    static const std::regex varying(R"("time":"[^"]+","ts_ns":"\d+","pid":\d+,"tid":\d+,)");
    return {std::regex_replace(events(), varying, ""), r.out, r.err, r.status()};
  }
  static std::string seed_in_summary(const std::string& err) {
    std::smatch m;
    static const std::regex seed(R"(faultline: session \S+, seed (\d+):)");
    return std::regex_search(err, m, seed) ? m[1].str() : "";
  }
};

TEST_F(ReplayTest, SameSeedGivesByteIdenticalLogsFiveTimes) {
  const Outcome first = run_once("seed = 42\n");
  ASSERT_EQ(first.status, 0) << first.err;
  // Every kind of decision happened, so the comparison covers them all.
  for (const char* action : {"\"action\":\"error\"", "\"action\":\"short\"",
                             "\"action\":\"corrupt\"", "\"delay_ns\":", "\"stack\":["})
    EXPECT_NE(first.log.find(action), std::string::npos) << action << "\n" << first.log;
  for (int run = 2; run <= 5; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    const Outcome again = run_once("seed = 42\n");
    EXPECT_EQ(again.log, first.log);
    EXPECT_EQ(again.out, first.out);
  }
}

// The control: another seed injects elsewhere, so the comparison above can fail.
TEST_F(ReplayTest, AnotherSeedGivesAnotherRun) {
  const Outcome a = run_once("seed = 42\n");
  const Outcome b = run_once("seed = 43\n");
  EXPECT_NE(a.log, b.log);
  EXPECT_NE(a.out, b.out);
}

TEST_F(ReplayTest, SeedFlagAndEnvironmentOverrideThePolicy) {
  const Outcome policy7 = run_once("seed = 7\n");
  EXPECT_EQ(seed_in_summary(policy7.err), "7") << policy7.err;

  const Outcome flag = run_once("seed = 1\n", {"--seed", "7"});
  EXPECT_EQ(seed_in_summary(flag.err), "7") << flag.err;
  EXPECT_EQ(flag.log, policy7.log);

  RunOptions env;
  env.env = {{"FAULTLINE_SEED", "7"}};
  const Outcome from_env = run_once("seed = 1\n", {}, env);
  EXPECT_EQ(seed_in_summary(from_env.err), "7") << from_env.err;
  EXPECT_EQ(from_env.log, policy7.log);

  // --seed wins over FAULTLINE_SEED.
  const Outcome both = run_once("seed = 1\n", {"--seed", "7"}, [] {
    RunOptions o;
    o.env = {{"FAULTLINE_SEED", "1"}};
    return o;
  }());
  EXPECT_EQ(seed_in_summary(both.err), "7") << both.err;
  EXPECT_EQ(both.log, policy7.log);
  EXPECT_NE(policy7.log.find("\"seed\":\"7\"}"), std::string::npos);
}

// No seed anywhere: one is drawn, printed in the summary and in every event line, and passing
// it back replays the run.
TEST_F(ReplayTest, ARandomSeedIsPrintedAndReplays) {
  const Outcome random = run_once("");
  const std::string seed = seed_in_summary(random.err);
  ASSERT_FALSE(seed.empty()) << random.err;
  EXPECT_NE(random.log.find("\"seed\":\"" + seed + "\"}"), std::string::npos) << random.log;
  const Outcome replay = run_once("", {"--seed", seed});
  EXPECT_EQ(replay.log, random.log);
  EXPECT_EQ(replay.out, random.out);
}

}  // namespace
}  // namespace fltest
