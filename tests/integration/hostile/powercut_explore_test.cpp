// `faultline explore --powercut` end to end with tests/programs/hostile/powercut_counter.c: the
// unsafe update (truncate, fsync, write, fsync) must come out with its truncation fsync as a
// finding and a replay line that fails the check again when run; the safe update (temp file,
// fsync, rename, fsync of the directory) with no finding. The cuts revert what was not synced,
// so the unsafe update runs on a counter made durable first (see unsafe()). Then resuming an
// interrupted exploration, and the refusals (no [durability], --recover without --powercut, a
// command that cannot run).
#include <signal.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "harness.h"

namespace fltest {
namespace {

const std::string kCounter = std::string(FL_PROGRAMS_DIR) + "/fl_powercut_counter";
// The counter file is missing (nothing written yet) or holds a number.
const std::string kCheck =
    "[ ! -e counter ] || grep -qx '[0-9][0-9]*' counter || "
    "{ echo \"counter is not a number: '$(cat counter)'\"; exit 1; }";

// The unsafe update of a counter that exists, durably, before the run: created by the program
// itself, never followed by an fsync of its directory, it would be removed by every cut (its
// entry was never durable) and no cut could show the empty file. sync(1) is no durability
// point (it names no path), so the points are the program's alone.
std::string unsafe(int n) {
  return "echo 0 > counter && /bin/sync && exec " + kCounter + " unsafe " + std::to_string(n);
}

// Facts of the JSON report, read by python3's json module (a real parser).
constexpr const char* kJsonFacts = R"PY(
import json, sys
d = json.load(sys.stdin)
print("powercut", d["powercut"])
print("untried", d["untried"])
for r in d["runs"]:
    print("run", r["run"], r["outcome"], r["call"], r["when"], r["occurrence"], sep="\t")
for f in d["findings"]:
    print("finding", f["outcome"], f["call"], f["when"], f["occurrence"], f["stack"][0],
          "lost" in f, sep="\t")
    print("replay", f["replay"], sep="\t")
)PY";

struct Facts {
  std::string powercut;
  std::size_t untried = 0;
  std::vector<std::string> runs;      // "id \t outcome \t call \t when \t occurrence"
  std::vector<std::string> findings;  // "outcome \t call \t when \t occurrence \t frame \t True"
  std::vector<std::string> replays;
};

class ExplorePowercutTest : public IntegrationTest {
 protected:
  std::string state() const { return path("state"); }

  void SetUp() override {
    IntegrationTest::SetUp();
    // Absolute, as [durability] wants; `*` crosses '/', so this is ./counter (and
    // ./counter.tmp) in whichever directory a run or a replay works in.
    ASSERT_TRUE(
        write_file(path("cut.toml"), "version = 1\n[durability]\npath = \"/*/counter*\"\n"));
  }

  RunResult explore(std::vector<std::string> args) {
    std::vector<std::string> argv{"explore", "--state", state()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.timeout = 90s;
    o.cwd = dir_.path();
    return faultline(argv, o);
  }

  Facts facts(const RunResult& json) {
    RunOptions o;
    o.stdin_text = json.out;
    const RunResult parsed = run({"/usr/bin/python3", "-c", kJsonFacts}, o);
    EXPECT_EQ(parsed.status(), 0) << parsed.err << "\n" << json.out;
    Facts f;
    for (const std::string& line : split_lines(parsed.out)) {
      const std::size_t tab = line.find_first_of(" \t");
      const std::string kind = line.substr(0, tab);
      const std::string rest = tab == std::string::npos ? "" : line.substr(tab + 1);
      if (kind == "powercut") f.powercut = rest;
      if (kind == "untried") f.untried = std::stoul(rest);
      if (kind == "run") f.runs.push_back(rest);
      if (kind == "finding") f.findings.push_back(rest);
      if (kind == "replay") f.replays.push_back(rest);
    }
    return f;
  }

  RunResult replay(const std::string& line) {
    RunOptions o;
    o.timeout = 30s;
    o.env = {{"TMPDIR", dir_.path()}};  // the replay's `mktemp -d` lands in the test's directory
    return run({"/bin/sh", "-c", line}, o);
  }
};

TEST_F(ExplorePowercutTest, UnsafeUpdateIsFoundAndItsReplayFailsTheCheckAgain) {
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--check", kCheck, "--json",
                               "-q", "--", "/bin/sh", "-c", unsafe(2)});
  ASSERT_EQ(r.status(), 1) << r.err << r.out;
  const Facts f = facts(r);
  EXPECT_EQ(f.powercut, "True");
  EXPECT_EQ(f.untried, 0u);
  // The cut right after the fsync that follows the truncation leaves an empty file, whether
  // or not unsynced data is also reverted: that point, in both updates, is a finding.
  bool after_truncation[3] = {false, false, false};
  for (const std::string& finding : f.findings) {
    EXPECT_EQ(finding.rfind("check-failed\tfsync\t", 0), 0u) << finding;
    for (int k = 1; k <= 2; ++k)
      if (finding.find("\tafter\t" + std::to_string(k) + "\tsync_truncation ") != std::string::npos)
        after_truncation[k] = true;
    EXPECT_NE(finding.find("\tTrue"), std::string::npos) << "no \"lost\" key: " << finding;
  }
  EXPECT_TRUE(after_truncation[1] && after_truncation[2]) << r.out;
  // Both fsync sites were cut before and after their 1st and 2nd calls; the 3rd never came.
  std::map<std::string, int> outcomes;
  for (const std::string& line : f.runs) ++outcomes[line.substr(line.find('\t') + 1, 11)];
  EXPECT_EQ(outcomes["not-reached"], 4) << r.out;
  EXPECT_EQ(f.runs.size(), 12u) << r.out;

  // The text report: the check's first lines under each finding.
  RunOptions o;
  o.timeout = 30s;
  const RunResult report = faultline({"explore", "--report", "--state", state()}, o);
  EXPECT_EQ(report.status(), 1) << report.err;
  EXPECT_NE(report.out.find("  check output (first lines):\n    | counter is not a number: ''"),
            std::string::npos)
      << report.out;

  ASSERT_FALSE(f.replays.empty());
  for (const std::string& line : f.replays) {
    const RunResult again = replay(line);
    EXPECT_NE(again.status(), 0) << line << "\n" << again.err;
  }
}

// --jobs 2: a point's next occurrence waits for the one before, other points run meanwhile;
// the same runs and findings as one at a time.
TEST_F(ExplorePowercutTest, ParallelRunsCutTheSamePoints) {
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--check", kCheck, "-j", "2",
                               "--json", "-q", "--", "/bin/sh", "-c", unsafe(2)});
  ASSERT_EQ(r.status(), 1) << r.err << r.out;
  const Facts f = facts(r);
  EXPECT_EQ(f.runs.size(), 12u) << r.out;
  EXPECT_EQ(f.untried, 0u);
  std::multiset<std::string> found;
  for (const std::string& finding : f.findings)
    found.insert(finding.substr(0, finding.rfind('\t')));  // without the "lost" flag
  // The cut after the truncation's fsync makes the empty file durable; the cut before the
  // write's fsync reverts the write and leaves the durable truncation. The cut before the
  // truncation's fsync undoes the truncation (the old value is back): no finding.
  const std::multiset<std::string> expected = {
      "check-failed\tfsync\tafter\t1\tsync_truncation (fl_powercut_counter)",
      "check-failed\tfsync\tafter\t2\tsync_truncation (fl_powercut_counter)",
      "check-failed\tfsync\tbefore\t1\tupdate_unsafe (fl_powercut_counter)",
      "check-failed\tfsync\tbefore\t2\tupdate_unsafe (fl_powercut_counter)"};
  for (const std::string& e : expected) EXPECT_EQ(found.count(e), 1u) << e << "\n" << r.out;
}

// What the cut lost comes from `faultline run --json-summary` (its "lost", kept as
// runs/N/run.json): planted here in the shape a launcher would write it, the report shows it.
TEST_F(ExplorePowercutTest, ReportShowsWhatTheLauncherSaysWasLost) {
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--check", kCheck, "--json",
                               "-q", "--", "/bin/sh", "-c", unsafe(1)});
  ASSERT_EQ(r.status(), 1) << r.err << r.out;
  const Facts f = facts(r);
  ASSERT_FALSE(f.findings.empty());
  const std::string policy = r.out.substr(r.out.find("/runs/") + 6);
  const std::string run = policy.substr(0, policy.find('/'));
  const std::string summary = state() + "/runs/" + run + "/run.json";
  ASSERT_TRUE(file_exists(summary)) << summary;
  ASSERT_TRUE(write_file(summary,
                         "{\"injected_total\":1,\"lost\":[{\"path\":\"/d/counter\","
                         "\"bytes\":2}]}\n"));
  RunOptions o;
  o.timeout = 30s;
  const RunResult report = faultline({"explore", "--report", "--state", state()}, o);
  EXPECT_EQ(report.status(), 1) << report.err;
  EXPECT_NE(report.out.find("lost:     /d/counter: 2 bytes"), std::string::npos) << report.out;
}

TEST_F(ExplorePowercutTest, SafeUpdateHasNoFinding) {
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--check", kCheck, "--recover",
                               "true", "--json", "-q", "--", kCounter, "safe", "3"});
  ASSERT_EQ(r.status(), 0) << r.err << r.out;
  const Facts f = facts(r);
  EXPECT_TRUE(f.findings.empty()) << r.out;
  int handled = 0;
  for (const std::string& line : f.runs) handled += line.find("\thandled\t") != std::string::npos;
  EXPECT_GE(handled, 6) << r.out;  // the temp file's fsync, before and after, 3 times at least
}

// A recover that refuses to start after any cut (it finds the cut in the run's event log, which
// a healthy run does not have): every cut is recover-failed, the check is not run after it, and
// the report shows what the recover printed.
TEST_F(ExplorePowercutTest, FailingRecoverIsAFinding) {
  const std::string recover =
      "if grep -qs '\"powercut\"' \"$FAULTLINE_EXPLORE_EVENTS\"; then echo 'log damaged'; exit 3; "
      "fi";
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--recover", recover,
                               "--check", kCheck, "-q", "--", kCounter, "safe", "1"});
  ASSERT_EQ(r.status(), 1) << r.err << r.out;
  EXPECT_NE(r.out.find("recover-failed: cut, the recover exited 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| log damaged"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("check-failed:"), std::string::npos) << r.out;
  int findings = 0;
  for (const auto& run : std::filesystem::directory_iterator(state() + "/runs")) {
    ++findings;
    EXPECT_TRUE(file_exists(run.path().string() + "/recover.out")) << run.path();
    EXPECT_FALSE(file_exists(run.path().string() + "/check.out")) << run.path();
  }
  EXPECT_GE(findings, 2);  // the temp file's fsync, before and after
}

TEST_F(ExplorePowercutTest, ResumesWhereItStopped) {
  // Every start of the program leaves a line here, so the second explore's starts can be
  // counted: its 7 runs and no recording run.
  const std::string starts = path("starts");
  const std::vector<std::string> args = {"-p",
                                         path("cut.toml"),
                                         "--powercut",
                                         "--check",
                                         kCheck,
                                         "--json",
                                         "-q",
                                         "--",
                                         "/bin/sh",
                                         "-c",
                                         "echo start >> '" + starts + "' && " + unsafe(2)};
  std::vector<std::string> first = {"--max-runs", "5"};
  first.insert(first.end(), args.begin(), args.end());
  const RunResult a = explore(first);
  ASSERT_LE(a.status(), 1) << a.err;
  const Facts fa = facts(a);
  ASSERT_EQ(fa.runs.size(), 5u) << a.out;
  EXPECT_GT(fa.untried, 0u);
  const std::size_t starts_before = count_substr(read_file(starts).value_or(""), "start");
  EXPECT_EQ(starts_before, 6u);  // the recording run and 5 cuts

  const RunResult b = explore(args);
  ASSERT_EQ(b.status(), 1) << b.err;
  const Facts fb = facts(b);
  EXPECT_EQ(fb.runs.size(), 12u) << b.out;  // 5 kept, 7 more: not 12 more
  EXPECT_EQ(fb.untried, 0u);
  for (std::size_t i = 0; i < fa.runs.size(); ++i) EXPECT_EQ(fa.runs[i], fb.runs[i]);
  // The recording run was not made again: 7 starts, one per new cut.
  EXPECT_EQ(count_substr(read_file(starts).value_or(""), "start") - starts_before, 7u);
}

// A run killed at the timeout takes `faultline run` with it before it could remove its session:
// the runner removes it, and kills what the run left (here a `sleep` of the shell).
TEST_F(ExplorePowercutTest, HangingRunIsRefusedAndLeavesNothingBehind) {
  const std::string script = kCounter + " unsafe 1 && sleep 30";
  const RunResult r = explore({"-p", path("cut.toml"), "--powercut", "--check", kCheck, "--timeout",
                               "1", "--", "/bin/sh", "-c", script});
  EXPECT_EQ(r.status(), 2) << r.err;
  EXPECT_NE(r.err.find("did not finish within 1s"), std::string::npos) << r.err;
  const std::string prefix = state() + "/";
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code error;
    const auto cwd = std::filesystem::read_symlink(entry.path() / "cwd", error);
    if (!error) {
      EXPECT_NE(cwd.string().rfind(prefix, 0), 0u) << "process " << name << " runs in " << cwd;
    }
  }
  static const std::regex kExplore("faultline\\.fl-explore-([0-9]+)-[0-9]+");
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (std::regex_match(name, m, kExplore)) {
      EXPECT_EQ(kill(std::stoi(m[1]), 0), 0) << "session left behind: " << name;
    }
  }
}

TEST_F(ExplorePowercutTest, RefusesWhatCannotBeExplored) {
  ASSERT_TRUE(write_file(path("plain.toml"),
                         "version = 1\n[[fault]]\nname = \"x\"\ncalls = [\"fsync\"]\n"
                         "error = \"EIO\"\n"));
  const RunResult none =
      explore({"-p", path("plain.toml"), "--powercut", "--", kCounter, "safe", "1"});
  EXPECT_EQ(none.status(), 2);
  EXPECT_NE(none.err.find("[durability] path"), std::string::npos) << none.err;

  const RunResult no_policy = explore({"--powercut", "--", kCounter, "safe", "1"});
  EXPECT_EQ(no_policy.status(), 2);
  EXPECT_NE(no_policy.err.find("[durability]"), std::string::npos) << no_policy.err;

  const RunResult recover =
      explore({"--calls", "fsync", "--recover", "true", "--", kCounter, "safe", "1"});
  EXPECT_EQ(recover.status(), 2);
  EXPECT_NE(recover.err.find("--recover"), std::string::npos) << recover.err;
  EXPECT_NE(recover.err.find("--powercut"), std::string::npos) << recover.err;

  const RunResult calls = explore(
      {"-p", path("cut.toml"), "--powercut", "--calls", "fsync", "--", kCounter, "safe", "1"});
  EXPECT_EQ(calls.status(), 2);
  EXPECT_NE(calls.err.find("--calls"), std::string::npos) << calls.err;

  const RunResult missing =
      explore({"-p", path("cut.toml"), "--powercut", "--", path("no-such-program")});
  EXPECT_EQ(missing.status(), 2);
  EXPECT_NE(missing.err.find("no-such-program"), std::string::npos) << missing.err;

  // A recover that fails without any cut would make every point a finding: refused up front.
  const RunResult bad_recover = explore(
      {"-p", path("cut.toml"), "--powercut", "--recover", "false", "--", kCounter, "safe", "1"});
  EXPECT_EQ(bad_recover.status(), 2);
  EXPECT_NE(bad_recover.err.find("--recover fails"), std::string::npos) << bad_recover.err;
}

}  // namespace
}  // namespace fltest
