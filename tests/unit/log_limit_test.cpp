// The event log's bounds (shim/engine/log_limit.cpp) without a preload: the per-process rate
// limiter (max_rate lines a second, the rest counted exactly, one summary per second, even under
// threads racing it), max_size with its one cut line per file, the summary and cut lines'
// JSON, the [log] keys' compilation into the block, and the refusal to follow a symbolic
// link or write another user's file in a world-writable sticky directory.
#include "shim/engine/log_limit.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/policy.h"
#include "session/session.h"

namespace faultline::shim {
namespace {

TEST(LogRateLimiter, AdmitsMaxRateLinesASecondAndCountsTheRest) {
  LogRateLimiter limiter;
  int written = 0;
  for (int i = 0; i < 250; ++i) {
    const auto a = limiter.admit(7, 100);
    EXPECT_EQ(a.new_second, i == 0);
    if (a.write)
      ++written;
    else
      limiter.count_suppressed(1000 + i);
  }
  EXPECT_EQ(written, 100);
  std::int64_t first = 0, last = 0;
  // The first line of the next second takes the summary: 150 lines, first and last times.
  const auto next = limiter.admit(8, 100);
  EXPECT_TRUE(next.write);
  EXPECT_TRUE(next.new_second);
  EXPECT_EQ(limiter.take_pending(first, last), 150u);
  EXPECT_EQ(first, 1100);
  EXPECT_EQ(last, 1249);
  EXPECT_EQ(limiter.take_pending(first, last), 0u);  // taken once
}

TEST(LogRateLimiter, AnOlderClockReadCountsInTheCurrentSecond) {
  LogRateLimiter limiter;
  EXPECT_TRUE(limiter.admit(10, 1).write);
  const auto late = limiter.admit(9, 1);  // another thread read the clock a moment earlier
  EXPECT_FALSE(late.write);
  EXPECT_FALSE(late.new_second);
}

TEST(LogRateLimiter, ResetForgetsThePendingCount) {
  LogRateLimiter limiter;
  limiter.admit(1, 1);
  limiter.admit(1, 1);
  limiter.count_suppressed(5);
  limiter.reset();
  std::int64_t first = 0, last = 0;
  EXPECT_EQ(limiter.take_pending(first, last), 0u);
  EXPECT_TRUE(limiter.admit(1, 1).new_second);
}

TEST(LogRateLimiter, RacingThreadsLoseNoCount) {
  LogRateLimiter limiter;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  std::atomic<std::uint64_t> written{0}, summarised{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::uint64_t sec = static_cast<std::uint64_t>(i / 5000 + t % 2);  // skewed clocks
        const auto a = limiter.admit(sec, 100);
        if (a.new_second) {
          std::int64_t first = 0, last = 0;
          summarised += limiter.take_pending(first, last);
        }
        if (a.write)
          ++written;
        else
          limiter.count_suppressed(i);
      }
    });
  for (auto& th : threads) th.join();
  std::int64_t first = 0, last = 0;
  summarised += limiter.take_pending(first, last);  // what the exit would write
  EXPECT_EQ(written + summarised, std::uint64_t{kThreads} * kPerThread);
  EXPECT_LE(written.load(), 11u * 100u);  // at most 11 distinct seconds were ever seen
}

TEST(LogLines, SummaryAndCutLinesAreJson) {
  char buf[256];
  std::size_t n = format_suppressed_line(buf, sizeof buf, 1234, 1796400053000000000,
                                         1796400053999999999, 100, 42, "spin\"fail");
  EXPECT_EQ(std::string(buf, n),
            "{\"suppressed\":1234,\"first_ns\":\"1796400053000000000\",\"last_ns\":"
            "\"1796400053999999999\",\"max_rate\":100,\"pid\":42,\"process\":\"spin\\\"fail\"}\n");
  n = format_cut_line(buf, sizeof buf, 65536, 1796400053000000000, 42, "x");
  EXPECT_EQ(std::string(buf, n),
            "{\"log_cut\":\"max_size\",\"max_size\":\"65536\",\"ts_ns\":\"1796400053000000000\","
            "\"pid\":42,\"process\":\"x\"}\n");
}

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/fl-loglimit-XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    header_ = std::make_unique<ControlHeader>();
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string dir_;
  std::unique_ptr<ControlHeader> header_;
};

TEST_F(LogFileTest, MaxSizeStopsTheFileWithOneCutLine) {
  header_->log_max_rate.store(1000000);
  header_->log_max_size.store(1000);
  LogRateLimiter limiter;
  const std::string log = dir_ + "/events.jsonl";
  const std::string line = "{\"seq\":0,\"pad\":\"" + std::string(81, 'x') + "\"}\n";  // 100 bytes
  for (int i = 0; i < 50; ++i)
    write_event_line(*header_, limiter, log.c_str(), line.data(), line.size());
  const std::string text = slurp(log);
  const std::size_t cut = text.find("{\"log_cut\":\"max_size\",\"max_size\":\"1000\"");
  ASSERT_NE(cut, std::string::npos) << text;
  EXPECT_EQ(cut, 1000u);  // ten whole lines, then the cut line
  EXPECT_EQ(text.find("log_cut", cut + 10), std::string::npos) << "two cut lines";
  EXPECT_EQ(text.back(), '\n');
}

TEST_F(LogFileTest, SuppressedLinesAreSummarisedInTheNextSecond) {
  header_->log_max_rate.store(3);
  header_->log_max_size.store(1 << 20);
  LogRateLimiter limiter;
  const std::string log = dir_ + "/events.jsonl";
  const std::string line = "{\"seq\":0}\n";
  for (int i = 0; i < 10; ++i)
    write_event_line(*header_, limiter, log.c_str(), line.data(), line.size());
  // At most two seconds can have passed: at most 6 lines, the rest pending or summarised.
  std::int64_t first = 0, last = 0;
  const std::uint64_t pending = limiter.take_pending(first, last);
  const std::string text = slurp(log);
  std::uint64_t events = 0, summarised = 0;
  std::istringstream lines(text);
  static const std::regex summary(R"(\{"suppressed":(\d+),.*)");
  for (std::string l; std::getline(lines, l);) {
    std::smatch m;
    if (l == "{\"seq\":0}") ++events;
    if (std::regex_match(l, m, summary)) summarised += std::stoull(m[1]);
  }
  EXPECT_LE(events, 6u) << text;
  EXPECT_EQ(events + summarised + pending, 10u) << text;
}

TEST_F(LogFileTest, StickyDirectoryRefusesASymlinkAndOpensAnOwnFile) {
  const std::string sticky = dir_ + "/sticky";
  ASSERT_EQ(mkdir(sticky.c_str(), 0777), 0);
  ASSERT_EQ(chmod(sticky.c_str(), 01777), 0);
  const std::string victim = dir_ + "/victim";
  std::ofstream(victim) << "precious";
  const std::string link = sticky + "/log";
  ASSERT_EQ(symlink(victim.c_str(), link.c_str()), 0);
  const char* refusal = nullptr;
  EXPECT_EQ(open_append_file(link.c_str(), 0644, &refusal), -1);
  ASSERT_NE(refusal, nullptr);
  EXPECT_NE(std::string(refusal).find("symbolic link"), std::string::npos);
  // Our own regular file there is fine, and so is a link outside a world-writable directory.
  const std::string own = sticky + "/own";
  int fd = open_append_file(own.c_str(), 0644, &refusal);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(refusal, nullptr);
  if (fd >= 0) close(fd);
  const std::string private_link = dir_ + "/link";
  ASSERT_EQ(symlink(victim.c_str(), private_link.c_str()), 0);
  fd = open_append_file(private_link.c_str(), 0644, &refusal);
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);
  // A FIFO planted there neither blocks nor is written.
  const std::string fifo = sticky + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  EXPECT_EQ(open_append_file(fifo.c_str(), 0644, &refusal), -1);
}

TEST(LogPolicy, MaxRateAndMaxSizeCompileWithDefaults) {
  CompileResult defaults = compile_policy_string("version = 1\n", "p.toml");
  ASSERT_TRUE(defaults.policy);
  EXPECT_EQ(defaults.policy->log_max_rate, 1000u);
  EXPECT_EQ(defaults.policy->log_max_size, 256u << 20);
  CompileResult set = compile_policy_string(
      "version = 1\n[log]\npath = \"e.jsonl\"\nmax_rate = 100\nmax_size = \"64KiB\"\n", "p.toml");
  ASSERT_TRUE(set.policy) << set.error->to_string();
  EXPECT_EQ(set.policy->log_max_rate, 100u);
  EXPECT_EQ(set.policy->log_max_size, 65536u);
}

TEST(LogPolicy, BadValuesAreLocatedErrors) {
  struct Bad {
    const char* toml;
    const char* message;
  } bad[] = {
      {"version = 1\n[log]\nmax_rate = 0\n", "p.toml:3:12: 'max_rate' must be >= 1"},
      {"version = 1\n[log]\nmax_rate = \"fast\"\n", "p.toml:3:12: 'max_rate' must be an integer"},
      {"version = 1\n[log]\nmax_size = \"10MB\"\n",
       "p.toml:3:12: bad size '10MB' (use B, KiB, MiB, GiB)"},
      {"version = 1\n[log]\nmax_size = 0\n", "p.toml:3:12: 'max_size' must be >= 1"},
      {"version = 1\n[log]\nmax_sise = 1\n", "did you mean 'max_size'?"},
  };
  for (const Bad& b : bad) {
    CompileResult r = compile_policy_string(b.toml, "p.toml");
    ASSERT_TRUE(r.error) << b.toml;
    EXPECT_NE(r.error->to_string().find(b.message), std::string::npos) << r.error->to_string();
  }
}

}  // namespace
}  // namespace faultline::shim
