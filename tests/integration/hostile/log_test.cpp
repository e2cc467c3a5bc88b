// Never the cause: the event log. A program that spins on an injected error (fl_spin_fail,
// ~200,000 failing writes as fast as it can) must not make the shim write an unbounded log:
// [log] max_rate keeps at most max_rate event lines a second per process and counts the rest
// in "suppressed" lines whose counts, added to the lines written, give the control block's
// exact injected counter; [log] max_size stops the file there with one "cut" line. And the
// log (and FAULTLINE_DIAG) must never follow a symbolic link or write into another user's
// file planted in a world-writable sticky directory such as /tmp.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kSpinFail = std::string(FL_PROGRAMS_DIR) + "/fl_spin_fail";

class HostileLogTest : public IntegrationTest {
 protected:
  // A policy failing every write to spin.out with EIO, logging to `log`, with extra [log] keys.
  std::string spin_policy(const std::string& log, const std::string& log_keys) {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(file, "version = 1\n[log]\npath = \"" + log + "\"\n" + log_keys +
                                     "\n[[fault]]\nname = \"spin\"\ncalls = [\"write\"]\n"
                                     "path = \"*/spin.out\"\nerror = \"EIO\"\n"));
    return file;
  }

  // A directory like /tmp: anyone may create names in it, only their owner may remove them.
  std::string sticky_dir() {
    const std::string dir = path("sticky");
    EXPECT_EQ(mkdir(dir.c_str(), 0777), 0);
    EXPECT_EQ(chmod(dir.c_str(), 01777), 0);
    return dir;
  }
};

struct LogCounts {
  std::uint64_t events = 0;      // event lines ("seq")
  std::uint64_t suppressed = 0;  // sum of the "suppressed" lines' counts
  std::uint64_t summaries = 0;   // "suppressed" lines
  std::uint64_t cuts = 0;        // "log_cut" lines
  std::uint64_t other = 0;       // anything else (must stay 0)
};

LogCounts count_log(const std::string& text) {
  static const std::regex suppressed(R"(^\{"suppressed":(\d+),.*\}$)");
  LogCounts c;
  for (const std::string& line : split_lines(text)) {
    if (line.empty()) continue;
    std::smatch m;
    if (line.rfind("{\"seq\":", 0) == 0 && line.back() == '}') {
      ++c.events;
    } else if (std::regex_match(line, m, suppressed)) {
      ++c.summaries;
      c.suppressed += std::stoull(m[1]);
    } else if (line.rfind("{\"log_cut\":", 0) == 0 && line.back() == '}') {
      ++c.cuts;
    } else {
      ++c.other;
    }
  }
  return c;
}

TEST_F(HostileLogTest, MaxRateBoundsTheLogAndTheCountsAddUp) {
  const std::string log = path("events.jsonl");
  const std::vector<std::string> args{
      "run", "-p", spin_policy(log, "max_rate = 100"), "--", kSpinFail, path("spin.out"), "200000"};
  const auto start = std::chrono::steady_clock::now();
  RunOptions options;
  options.timeout = 60s;
  const RunResult r = faultline(args, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string why = describe(args, r);
  ASSERT_EQ(r.status(), 0) << why;
  ASSERT_NE(r.out.find("writes 200000 failed 200000"), std::string::npos) << why;
  const auto injected = summary_injected(r.err, "spin");
  ASSERT_TRUE(injected) << why;
  EXPECT_EQ(*injected, 200000u) << why;

  const auto text = read_file(log);
  ASSERT_TRUE(text) << why;
  const LogCounts c = count_log(*text);
  const auto bound = static_cast<std::uint64_t>((std::ceil(seconds) + 1) * 100);
  EXPECT_LE(c.events, bound) << "ran " << seconds << " s\n" << why;
  EXPECT_GE(c.events, 100u) << why;
  EXPECT_GE(c.summaries, 1u) << why;
  EXPECT_EQ(c.other, 0u) << *text;
  EXPECT_EQ(c.cuts, 0u) << why;
  // Counters stay exact; only lines are suppressed, and every one is accounted for.
  EXPECT_EQ(c.events + c.suppressed, *injected)
      << "events " << c.events << ", suppressed " << c.suppressed << "\n"
      << why;
  std::fprintf(stderr,
               "[ figure ] max_rate=100: %.2f s, %llu event lines, %llu summary lines, "
               "%zu bytes for %llu injections\n",
               seconds, static_cast<unsigned long long>(c.events),
               static_cast<unsigned long long>(c.summaries), text->size(),
               static_cast<unsigned long long>(*injected));
}

TEST_F(HostileLogTest, MaxSizeStopsTheLogWithACutLine) {
  const std::string log = path("events.jsonl");
  const std::vector<std::string> args{
      "run",  "-p",      spin_policy(log, "max_rate = 1000000\nmax_size = \"64KiB\""),
      "--",   kSpinFail, path("spin.out"),
      "20000"};
  RunOptions options;
  options.timeout = 60s;
  const RunResult r = faultline(args, options);
  const std::string why = describe(args, r);
  ASSERT_EQ(r.status(), 0) << why;
  ASSERT_NE(r.out.find("writes 20000 failed 20000"), std::string::npos) << why;

  const auto text = read_file(log);
  ASSERT_TRUE(text) << why;
  const std::vector<std::string> lines = split_lines(*text);
  std::string last;
  for (const std::string& line : lines)
    if (!line.empty()) last = line;
  ASSERT_FALSE(last.empty()) << why;
  EXPECT_EQ(last.rfind("{\"log_cut\":\"max_size\"", 0), 0u) << "last line: " << last;
  EXPECT_NE(last.find("\"max_size\":\"65536\""), std::string::npos) << last;
  EXPECT_LE(text->size(), 65536 + last.size() + 1) << why;
  EXPECT_GT(text->size(), 60000u) << "the log was cut long before its limit";
  const LogCounts c = count_log(*text);
  EXPECT_EQ(c.cuts, 1u) << why;
  EXPECT_EQ(c.other, 0u) << *text;
  EXPECT_GT(c.events, 100u) << why;
}

TEST_F(HostileLogTest, LogSymlinkInAStickyDirectoryIsNotFollowed) {
  const std::string dir = sticky_dir();
  const std::string victim = path("victim.txt");
  ASSERT_TRUE(write_file(victim, "precious\n"));
  const std::string log = dir + "/events.jsonl";
  ASSERT_EQ(symlink(victim.c_str(), log.c_str()), 0);
  const std::vector<std::string> args{
      "run", "-p", spin_policy(log, ""), "--", kSpinFail, path("spin.out"), "50"};
  const RunResult r = faultline(args);
  const std::string why = describe(args, r);
  ASSERT_EQ(r.status(), 0) << why;
  ASSERT_NE(r.out.find("writes 50 failed 50"), std::string::npos) << why;
  EXPECT_EQ(read_file(victim), "precious\n") << "the shim wrote through the planted link\n" << why;
  // Said once, with the reason, however many events followed.
  EXPECT_EQ(count_substr(r.err, "symbolic link"), 1u) << why;
  EXPECT_NE(r.err.find("not writing the event log " + log), std::string::npos) << why;
}

TEST_F(HostileLogTest, DiagSymlinkInAStickyDirectoryIsNotFollowed) {
  const std::string dir = sticky_dir();
  const std::string victim = path("victim.txt");
  ASSERT_TRUE(write_file(victim, "precious\n"));
  const std::string diag = dir + "/diag.log";
  ASSERT_EQ(symlink(victim.c_str(), diag.c_str()), 0);
  // A refused policy under plain LD_PRELOAD: the shim has something to say.
  ASSERT_TRUE(write_file(path("bad.toml"), "version = 1\n[[fault]]\nname = \"f\"\n"));
  const std::vector<std::string> argv{kSpinFail, path("out.txt"), "10"};
  RunOptions options;
  options.env = {
      {"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", path("bad.toml")}, {"FAULTLINE_DIAG", diag}};
  const RunResult r = run(argv, options);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(read_file(victim), "precious\n") << "the shim wrote through the planted link\n" << why;
  EXPECT_NE(r.err.find("cannot open FAULTLINE_DIAG file " + diag), std::string::npos) << why;
  EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << why;
  // The diagnostic itself is not lost: it goes to stderr instead.
  EXPECT_NE(r.err.find("policy refused"), std::string::npos) << why;
}

TEST_F(HostileLogTest, AnotherUsersLogFileInAStickyDirectoryIsNotWritten) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  const std::string dir = sticky_dir();
  const std::string log = dir + "/events.jsonl";
  ASSERT_TRUE(write_file(log, "someone else's\n"));
  ASSERT_EQ(chmod(log.c_str(), 0666), 0);
  ASSERT_EQ(chown(log.c_str(), 65534, 65534), 0);
  const std::vector<std::string> args{
      "run", "-p", spin_policy(log, ""), "--", kSpinFail, path("spin.out"), "20"};
  const RunResult r = faultline(args);
  const std::string why = describe(args, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(read_file(log), "someone else's\n") << why;
  EXPECT_EQ(count_substr(r.err, "belongs to another user"), 1u) << why;
}

}  // namespace
}  // namespace fltest
