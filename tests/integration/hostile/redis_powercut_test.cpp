// redis-server with `appendonly yes` and `appendfsync always` through a power cut, the
// durability issue's acceptance test: redis replies OK to a SET only after the AOF write was
// fdatasync'ed, so every key acknowledged before the cut must be there when redis restarts on
// the same directory (under no fault). The cut is a `powercut` fault on the 10th sync of the
// AOF's incremental file, before it runs (the SET being synced is never acknowledged); the
// keys are sent one at a time by redis-cli, whose OK lines are the acknowledgements, kept by
// the test outside the tracked directory. On a drive that lies about fsync the same load
// loses acknowledged keys. Also `faultline powercut` live in the middle of a load. redis 7 syncs
// its AOF with fdatasync in the main thread (strace: `fdatasync(fd of appendonly.aof.1.incr.aof)`
// after each SET), hence `@fsync` on that file.
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

const char* const kServer = "/usr/bin/redis-server";
const char* const kCli = "/usr/bin/redis-cli";
constexpr int kKeys = 30;

class DurabilityRedisTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    ASSERT_EQ(::mkdir(path("data").c_str(), 0755), 0);
    port_ = free_port();
    // A first start makes the AOF directory and its manifest, durable before any session:
    // redis does not fsync the directory holding `appendonlydir` after making it.
    Background warm;
    ASSERT_TRUE(warm.start(server()));
    ASSERT_TRUE(wait_ready());
    redis_cli({"shutdown", "nosave"});
    EXPECT_FALSE(warm.stop(10s).timed_out);
    ASSERT_TRUE(file_exists(path("data/appendonlydir/appendonly.aof.manifest")));
  }

  std::vector<std::string> server() const {
    return {kServer,
            "--port",
            std::to_string(port_),
            "--bind",
            "127.0.0.1",
            "--dir",
            path("data"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            path("redis.log")};
  }

  RunResult redis_cli(std::vector<std::string> args, const std::optional<std::string>& input = {}) {
    std::vector<std::string> argv = {kCli, "-h", "127.0.0.1", "-p", std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.stdin_text = input;
    o.timeout = 20s;
    return run(argv, o);
  }

  bool wait_ready() {
    for (int i = 0; i < 100; ++i) {  // 10 s at most
      if (redis_cli({"ping"}).out == "PONG\n") return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // [durability] on the data directory, a cut before the 10th sync of the AOF, `extra` faults.
  std::string policy(const std::string& extra = "") {
    const std::string file = path("redis.toml");
    EXPECT_TRUE(write_file(file, "version = 1\n[durability]\npath = \"" + path("data") +
                                     "/*\"\n[[fault]]\nname = \"cut\"\ncalls = [\"@fsync\"]\n"
                                     "path = \"*.incr.aof\"\npowercut = true\nwhen = \"before\"\n"
                                     "after = 9\ntimes = 1\n" +
                                     extra));
    return file;
  }

  // Loads the keys under the policy until the cut; returns how many were acknowledged (the
  // OK lines of redis-cli, one SET at a time, in order).
  int load_until_cut(const std::string& policy_file) {
    Background redis;
    std::vector<std::string> argv = {
        IntegrationTest::cli(), "run", "-s", session("redis"), "-p", policy_file, "--"};
    const std::vector<std::string> s = server();
    argv.insert(argv.end(), s.begin(), s.end());
    EXPECT_TRUE(redis.start(argv));
    EXPECT_TRUE(wait_ready()) << redis.err();
    std::string input;
    for (int k = 1; k <= kKeys; ++k)
      input += "SET key" + std::to_string(k) + " value" + std::to_string(k) + "\n";
    const RunResult load = redis_cli({}, input);
    const RunResult r = redis.stop(10s);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status(), 137) << r.err;  // the cut ended it
    EXPECT_NE(r.err.find("power cut"), std::string::npos) << r.err;
    return static_cast<int>(count_substr(load.out, "OK\n"));
  }

  // Restarts redis on the same directory, without faultline, and lists the acknowledged keys
  // it does not have.
  std::string missing_after_restart(int acknowledged) {
    Background redis;
    EXPECT_TRUE(redis.start(server()));
    EXPECT_TRUE(wait_ready()) << read_file(path("redis.log")).value_or("");
    std::string missing;
    for (int k = 1; k <= acknowledged; ++k) {
      const RunResult get = redis_cli({"get", "key" + std::to_string(k)});
      if (get.out != "value" + std::to_string(k) + "\n") missing += " key" + std::to_string(k);
    }
    redis_cli({"shutdown", "nosave"});
    EXPECT_FALSE(redis.stop(10s).timed_out);
    return missing;
  }

  int port_ = 0;
};

TEST_F(DurabilityRedisTest, AcknowledgedKeysSurviveThePowerCut) {
  const int acknowledged = load_until_cut(policy());
  // The cut came at the 10th sync of the AOF: not every key, but some, was acknowledged.
  EXPECT_GE(acknowledged, 1);
  EXPECT_LT(acknowledged, kKeys);
  EXPECT_EQ(missing_after_restart(acknowledged), "") << acknowledged << " keys acknowledged";
}

// `faultline powercut SESSION` live, mid-load: redis-cli sends 2000 SETs one after the other;
// once 20 were acknowledged the power is cut, and every OK redis-cli printed before the
// connection dropped is a key that must be there after the restart.
TEST_F(DurabilityRedisTest, LivePowercutMidLoadKeepsAcknowledgedKeys) {
  const std::string file = path("live.toml");
  ASSERT_TRUE(write_file(file, "version = 1\n[durability]\npath = \"" + path("data") + "/*\"\n"));
  const std::string name = session("live");
  Background redis;
  std::vector<std::string> argv = {
      IntegrationTest::cli(), "run", "-q", "-s", name, "-p", file, "--"};
  const std::vector<std::string> s = server();
  argv.insert(argv.end(), s.begin(), s.end());
  ASSERT_TRUE(redis.start(argv));
  ASSERT_TRUE(wait_ready()) << redis.err();
  constexpr int kMany = 2000;
  Background load;
  ASSERT_TRUE(load.start({kCli, "-h", "127.0.0.1", "-p", std::to_string(port_)}));
  std::string input;
  for (int k = 1; k <= kMany; ++k)
    input += "SET key" + std::to_string(k) + " value" + std::to_string(k) + "\n";
  ASSERT_TRUE(load.write_stdin(input));
  load.close_stdin();
  int acknowledged = 0;
  bool cut = false;
  for (int i = 0; i < kMany; ++i) {  // every line within 10 s, or the load is over
    const auto line = load.read_line(10s);
    if (!line || *line != "OK") break;
    if (++acknowledged == 20 && !cut) {
      const RunResult r = faultline({"powercut", name});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      cut = true;
    }
  }
  load.stop(5s);
  const RunResult r = redis.stop(10s);
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_TRUE(cut);
  EXPECT_GE(acknowledged, 20);
  EXPECT_LT(acknowledged, kMany);
  EXPECT_EQ(missing_after_restart(acknowledged), "") << acknowledged << " keys acknowledged";
}

TEST_F(DurabilityRedisTest, LyingDriveLosesAcknowledgedKeys) {
  const int acknowledged = load_until_cut(
      policy("[[fault]]\nname = \"lying-drive\"\ncalls = [\"@fsync\"]\nlie = true\n"));
  EXPECT_GE(acknowledged, 1);
  EXPECT_NE(missing_after_restart(acknowledged), "") << acknowledged << " keys acknowledged";
}

}  // namespace
}  // namespace fltest
