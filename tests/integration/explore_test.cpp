// `faultline explore` end to end: programs of our own with one planted bug each (a NULL
// dereference after one malloc among several handled ones, an ignored fdatasync error that only
// a --check sees, a retry loop that hangs on one failed connect to a server this test starts on
// 127.0.0.1) must come out with exactly that one finding, and the replay command printed for it
// must reproduce it. Then real programs (sqlite3 with an integrity check, python3) under a
// bounded budget: the report is produced, every run is classified, nothing is left running.
// Resuming, the report rebuilt from the state alone, and refusals.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

// Facts of a JSON report, extracted by python3's own json module (a real parser: the report
// must be valid JSON for it to say anything).
constexpr const char* kJsonFacts = R"PY(
import json, sys
d = json.load(sys.stdin)
print("discovery", d["discovery"]["exit_status"] if d["discovery"] else "none")
print("runs", len(d["runs"]))
print("untried", d["untried"])
for r in d["runs"]:
    print("outcome", r["outcome"])
for f in d["findings"]:
    print("finding", f["outcome"], f["call"], f["stack"][0] if f["stack"] else "-", sep="\t")
for fam in d["families"]:
    print("family", fam["family"], fam["sites"], fam["tried"], sep="\t")
)PY";

struct Facts {
  std::string discovery;
  std::size_t runs = 0;
  std::size_t untried = 0;
  std::map<std::string, int> outcomes;
  std::vector<std::string> findings;                    // "outcome \t call \t innermost frame"
  std::map<std::string, std::pair<int, int>> families;  // sites, tried
};

class ExploreTest : public IntegrationTest {
 protected:
  std::string state() const { return path("state"); }

  RunResult explore(std::vector<std::string> args, std::chrono::milliseconds timeout = 90s) {
    std::vector<std::string> argv{"explore", "--state", state()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions o;
    o.timeout = timeout;
    o.cwd = dir_.path();
    return faultline(argv, o);
  }

  Facts facts() {
    RunOptions o;
    o.timeout = 30s;
    const RunResult json = faultline({"explore", "--report", "--json", "--state", state()}, o);
    EXPECT_EQ(json.status(), json.out.find("\"findings\":[]") != std::string::npos ? 0 : 1)
        << json.err;
    o.stdin_text = json.out;
    const RunResult parsed = run({"/usr/bin/python3", "-c", kJsonFacts}, o);
    EXPECT_EQ(parsed.status(), 0) << parsed.err << "\n" << json.out;
    Facts f;
    for (const std::string& line : split_lines(parsed.out)) {
      std::istringstream words(line);
      std::string kind;
      words >> kind;
      const std::string rest = line.size() > kind.size() ? line.substr(kind.size() + 1) : "";
      if (kind == "discovery") f.discovery = rest;
      if (kind == "runs") f.runs = std::stoul(rest);
      if (kind == "untried") f.untried = std::stoul(rest);
      if (kind == "outcome") ++f.outcomes[rest];
      if (kind == "finding") f.findings.push_back(rest);
      if (kind == "family") {
        std::string name;
        int sites = 0, tried = 0;
        words >> name >> sites >> tried;
        f.families[name] = {sites, tried};
      }
    }
    return f;
  }

  // The "replay:" lines of a text report.
  static std::vector<std::string> replays(const std::string& report) {
    std::vector<std::string> out;
    for (const std::string& line : split_lines(report))
      if (const auto at = line.find("  replay:   "); at == 0) out.push_back(line.substr(12));
    return out;
  }

  RunResult replay(const std::string& line) {
    RunOptions o;
    o.timeout = 30s;
    o.env = {{"TMPDIR", dir_.path()}};  // the replay's `mktemp -d` lands in the test's directory
    return run({"/bin/sh", "-c", line}, o);
  }

  // Nothing of the exploration may outlive it: no process working in the state directory, no
  // session block of a runner that has exited.
  void expect_nothing_left() {
    const std::string prefix = state() + "/";
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::error_code error;
      const auto cwd = std::filesystem::read_symlink(entry.path() / "cwd", error);
      if (!error) {
        EXPECT_NE(cwd.string().rfind(prefix, 0), 0u)
            << "process " << name << " still runs in " << cwd;
      }
    }
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
      const std::string name = entry.path().filename().string();
      std::smatch m;
      static const std::regex kExplore("faultline\\.fl-explore-([0-9]+)-[0-9]+");
      if (std::regex_match(name, m, kExplore)) {
        EXPECT_EQ(kill(std::stoi(m[1]), 0), 0) << "session left behind: " << name;
      }
    }
  }

  // Function names may carry a compiler suffix (" [clone .constprop.0]"): compare the start.
  static bool starts_with(const std::string& text, const std::string& prefix) {
    return text.rfind(prefix, 0) == 0;
  }
};

// ---- planted bugs ------------------------------------------------------------------------------

TEST_F(ExploreTest, FindsTheNullDereferenceAfterOneMallocAndOnlyIt) {
  const RunResult r = explore({"--calls", "@memory", "--timeout", "10", "--", FL_EXPLORE_ALLOC});
  ASSERT_EQ(r.status(), 1) << describe({"explore"}, r);
  const Facts f = facts();
  EXPECT_EQ(f.discovery, "0");
  ASSERT_EQ(f.findings.size(), 1u) << r.out;
  EXPECT_TRUE(starts_with(f.findings[0], "crashed\tmalloc\t(anonymous namespace)::build_greeting("))
      << f.findings[0];
  // Every other allocation was failed once and handled: the name, the table, the growing
  // realloc, the optional scratch buffer, stdout's buffer inside printf.
  ASSERT_EQ(f.families.count("@memory"), 1u);
  EXPECT_GE(f.families.at("@memory").first, 5);
  EXPECT_EQ(f.families.at("@memory").second, f.families.at("@memory").first) << "all tried";
  EXPECT_EQ(f.outcomes.at("crashed"), 1);
  EXPECT_EQ(f.outcomes.at("handled"), f.families.at("@memory").first - 1) << r.out;
  EXPECT_EQ(f.untried, 0u);
  EXPECT_NE(r.out.find("killed by signal 11"), std::string::npos) << r.out;

  const auto lines = replays(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const RunResult again = replay(lines[0]);
  EXPECT_EQ(again.status(), 128 + SIGSEGV) << describe({lines[0]}, again);
  EXPECT_NE(again.err.find("1 injected"), std::string::npos) << again.err;
  expect_nothing_left();
}

TEST_F(ExploreTest, FollowsAnErrorPathToTheBugOnIt) {
  // The second bug's allocation happens only after the name's allocation failed: the run that
  // fails the name reveals it, and the run that tries it fails the name's allocation first.
  const RunResult r = explore({"--calls", "@memory", "--", FL_EXPLORE_ALLOC, "verbose"});
  ASSERT_EQ(r.status(), 1) << describe({"explore"}, r);
  const Facts f = facts();
  ASSERT_EQ(f.findings.size(), 2u) << r.out;
  EXPECT_TRUE(starts_with(f.findings[0], "crashed\tmalloc\t(anonymous namespace)::build_greeting("))
      << f.findings[0];
  EXPECT_TRUE(
      starts_with(f.findings[1], "crashed\tmalloc\t(anonymous namespace)::report_out_of_memory("))
      << f.findings[1];
  EXPECT_NE(r.out.find("on the error path of run 1: ENOMEM into the 1st malloc call at "
                       "(anonymous namespace)::copy_name"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(f.untried, 0u);
  const auto lines = replays(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (const std::string& line : lines) {
    const RunResult again = replay(line);
    EXPECT_EQ(again.status(), 128 + SIGSEGV) << describe({line}, again);
  }
  const RunResult second = replay(lines[1]);
  EXPECT_NE(second.err.find("2 injected"), std::string::npos) << "both faults of the path";
}

TEST_F(ExploreTest, FindsTheIgnoredSyncErrorThroughTheCheck) {
  const std::string check = std::string(FL_EXPLORE_FSYNC) + " check";
  const RunResult r = explore(
      {"--calls", "@fsync", "--check", check, "--timeout", "10", "--", FL_EXPLORE_FSYNC, "write"});
  ASSERT_EQ(r.status(), 1) << describe({"explore"}, r);
  const Facts f = facts();
  ASSERT_EQ(f.findings.size(), 1u) << r.out;
  EXPECT_TRUE(starts_with(f.findings[0], "check-failed\tfdatasync\t")) << f.findings[0];
  EXPECT_EQ(f.outcomes.at("check-failed"), 1);
  EXPECT_EQ(f.outcomes.count("crashed") + f.outcomes.count("hung"), 0u);
  EXPECT_GE(f.outcomes.at("handled"), 2) << "the checked fsyncs of the data and of the acks";
  EXPECT_NE(r.out.find("check: 1 sync(s) of ./data failed, 0 reported"), std::string::npos)
      << r.out;

  const auto lines = replays(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const RunResult again = replay(lines[0]);
  EXPECT_EQ(again.status(), 1) << describe({lines[0]}, again);
  EXPECT_NE(again.out.find("check: 1 sync(s) of ./data failed"), std::string::npos) << again.out;
  expect_nothing_left();
}

TEST_F(ExploreTest, WithoutTheCheckTheIgnoredSyncErrorGoesUnnoticed) {
  // The control of the test above: the program exits 0 either way, only the check tells.
  const RunResult r =
      explore({"--calls", "@fsync", "--timeout", "10", "--", FL_EXPLORE_FSYNC, "write"});
  EXPECT_EQ(r.status(), 0) << describe({"explore"}, r);
  EXPECT_TRUE(facts().findings.empty()) << r.out;
}

// A loopback server for the client's connections: accepts and closes, until stopped.
class Server {
 public:
  Server() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(fd_, 64) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) == 1)
          if (const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC); c >= 0) close(c);
      }
    });
  }
  ~Server() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(ExploreTest, FindsTheRetryLoopThatHangsOnOneFailedConnect) {
  Server server;
  ASSERT_GT(server.port(), 0);
  const RunResult r = explore({"--calls", "@net", "--timeout", "2", "--jobs", "2", "--",
                               FL_EXPLORE_CONNECT, std::to_string(server.port())});
  ASSERT_EQ(r.status(), 1) << describe({"explore"}, r);
  const Facts f = facts();
  ASSERT_EQ(f.findings.size(), 1u) << r.out;
  EXPECT_TRUE(starts_with(f.findings[0], "hung\tconnect\t(anonymous namespace)::send_report("))
      << f.findings[0];
  // socket, connect and send of three connections; the other connects are handled (one by
  // giving up, one by retrying on a new socket).
  EXPECT_GE(f.families.at("@net").first, 9);
  EXPECT_EQ(f.families.at("@net").second, f.families.at("@net").first);
  EXPECT_EQ(f.outcomes.at("handled"), f.families.at("@net").first - 1) << r.out;

  const auto lines = replays(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  // coreutils' timeout ends the whole replay (its process group) after 3s: exit 124.
  RunOptions o;
  o.env = {{"TMPDIR", dir_.path()}};
  const RunResult again = run({"/usr/bin/timeout", "3", "/bin/sh", "-c", lines[0]}, o);
  EXPECT_EQ(again.status(), 124) << describe({lines[0]}, again);
  expect_nothing_left();
}

TEST_F(ExploreTest, APolicyNarrowsWhatIsExploredAndGivesTheAction) {
  // Only the syncs of ./data (not of ./acks), failing with EIO as the policy says.
  ASSERT_TRUE(write_file(path("data-syncs.toml"),
                         "version = 1\n[[fault]]\nname = \"data-sync\"\n"
                         "calls = [\"fsync\", \"fdatasync\"]\npath = \"*/data\"\n"
                         "error = \"EIO\"\nprobability = 0.5\n"));
  const std::string check = std::string(FL_EXPLORE_FSYNC) + " check";
  const RunResult r = explore({"-p", path("data-syncs.toml"), "--check", check, "--timeout", "10",
                               "--", FL_EXPLORE_FSYNC, "write"});
  ASSERT_EQ(r.status(), 1) << describe({"explore"}, r);
  EXPECT_NE(r.err.find("'probability' of policy:data-sync is ignored"), std::string::npos) << r.err;
  const Facts f = facts();
  ASSERT_EQ(f.families.count("@fsync"), 1u);
  EXPECT_EQ(f.families.at("@fsync").first, 2) << "sync_checked's fsync and the batch fdatasync";
  ASSERT_EQ(f.findings.size(), 1u);
  EXPECT_TRUE(starts_with(f.findings[0], "check-failed\tfdatasync\t")) << f.findings[0];
  const auto lines = replays(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(replay(lines[0]).status(), 1);
}

TEST_F(ExploreTest, OccurrencesFailTheKthCallAtEachSite) {
  // sync_checked's fsync runs for records 1, 2 and 4: its 1st to 3rd calls are failed and
  // handled, and there is no 4th.
  const RunResult r =
      explore({"--calls", "fsync", "--occurrences", "4", "--", FL_EXPLORE_FSYNC, "write"});
  ASSERT_EQ(r.status(), 0) << describe({"explore"}, r);
  const Facts f = facts();
  const int sites = f.families.at("@fsync").first;
  EXPECT_EQ(f.runs, static_cast<std::size_t>(sites) * 4);
  EXPECT_EQ(f.untried, 0u);
  EXPECT_GE(f.outcomes.at("handled"), 3);
  EXPECT_GE(f.outcomes.at("not-reached"), 1);
  EXPECT_NE(r.err.find("not-reached: @fsync fsync (4th) at (anonymous namespace)::sync_checked("),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("handled: @fsync fsync (3rd) at (anonymous namespace)::sync_checked("),
            std::string::npos)
      << r.err;
}

// ---- resuming, the report from the state, refusals -----------------------------------------

TEST_F(ExploreTest, ResumesWhereItStoppedAndTheReportComesFromTheState) {
  const RunResult first =
      explore({"--calls", "@memory", "--max-runs", "2", "--", FL_EXPLORE_ALLOC});
  ASSERT_EQ(first.status(), 0) << describe({"explore"}, first);  // no finding in 2 runs
  Facts f = facts();
  EXPECT_EQ(f.runs, 2u);
  ASSERT_GT(f.untried, 0u);
  EXPECT_NE(first.out.find("not tried yet"), std::string::npos);

  const RunResult second = explore({"--calls", "@memory", "-q", "--", FL_EXPLORE_ALLOC});
  ASSERT_EQ(second.status(), 1) << describe({"explore"}, second);
  EXPECT_TRUE(second.err.empty()) << "-q: no progress; and no second discovery run:\n"
                                  << second.err;
  f = facts();
  EXPECT_EQ(f.untried, 0u);
  EXPECT_EQ(f.runs, static_cast<std::size_t>(f.families.at("@memory").first)) << "no site twice";
  EXPECT_EQ(f.findings.size(), 1u);

  RunOptions o;
  o.timeout = 30s;
  const RunResult report = faultline({"explore", "--report", "--state", state()}, o);
  EXPECT_EQ(report.status(), 1);
  EXPECT_EQ(report.out, second.out) << "the report is rebuilt from the state alone";

  // Another command or setting is refused rather than mixed into this state.
  const RunResult other = explore({"--calls", "@fsync", "--", FL_EXPLORE_ALLOC});
  EXPECT_EQ(other.status(), 2);
  EXPECT_NE(other.err.find("another command or with other settings"), std::string::npos)
      << other.err;
}

TEST_F(ExploreTest, RefusesWhatCannotBeExplored) {
  RunResult r = explore({"--calls", "@nope", "--", FL_EXPLORE_ALLOC});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("unknown family '@nope'"), std::string::npos) << r.err;
  r = explore({"--calls", "fsync=EWHAT", "--", FL_EXPLORE_ALLOC});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("unknown error 'EWHAT'"), std::string::npos) << r.err;
  r = explore({"--calls", "@memory"});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("no command"), std::string::npos) << r.err;
  // A command that crashes without any fault has no baseline to compare with.
  r = explore({"--calls", "@memory", "--", "/bin/sh", "-c", "kill -SEGV $$"});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("without any fault"), std::string::npos) << r.err;
  // So has one that hangs, and one whose check fails on a healthy run.
  r = explore({"--calls", "@memory", "--timeout", "300ms", "--", "/bin/sleep", "5"});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("raise --timeout"), std::string::npos) << r.err;
  r = explore({"--calls", "@memory", "--check", "false", "--", FL_EXPLORE_ALLOC});
  EXPECT_EQ(r.status(), 2);
  EXPECT_NE(r.err.find("the --check fails after a run without any fault"), std::string::npos)
      << r.err;
  expect_nothing_left();
}

// ---- real programs
// -------------------------------------------------------------------------------

TEST_F(ExploreTest, Sqlite3WithAnIntegrityCheckUnderABudget) {
  ASSERT_TRUE(write_file(path("inserts.sql"),
                         "create table t(id integer primary key, v text);\n"
                         "begin;\ninsert into t(v) values ('a'), ('b'), ('c');\n"
                         "insert into t(v) select v || id from t;\ncommit;\n"
                         "insert into t(v) values (hex(randomblob(300)));\n"));
  const RunResult r =
      explore({"--calls", "@memory,@write", "--max-runs", "30", "--timeout", "10", "--jobs", "2",
               "--check", "sqlite3 t.db 'pragma integrity_check' | grep -qx ok", "--", "sqlite3",
               "t.db", ".read " + path("inserts.sql")});
  ASSERT_TRUE(r.status() == 0 || r.status() == 1) << describe({"explore"}, r);
  const Facts f = facts();
  EXPECT_EQ(f.discovery, "0");
  EXPECT_EQ(f.runs, 30u) << "sqlite3 has far more than 30 sites";
  int classified = 0;
  for (const auto& [outcome, n] : f.outcomes) {
    EXPECT_TRUE(outcome == "handled" || outcome == "crashed" || outcome == "hung" ||
                outcome == "check-failed" || outcome == "not-reached")
        << outcome;
    classified += n;
  }
  EXPECT_EQ(classified, 30);
  EXPECT_GT(f.families.at("@write").second, 0) << "the budget is shared between the families";
  EXPECT_GT(f.families.at("@memory").second, 0);
  EXPECT_NE(r.out.find("FAMILY"), std::string::npos) << r.out;
  expect_nothing_left();
}

TEST_F(ExploreTest, Python3JsonDumpsUnderABudget) {
  const RunResult r = explore({"--calls", "@memory,@write", "--max-runs", "30", "--timeout", "10",
                               "--jobs", "2", "--", "/usr/bin/python3", "-c",
                               "import json; print(json.dumps({'a': [1, 2.5, None, 'x' * 50]}))"});
  ASSERT_TRUE(r.status() == 0 || r.status() == 1) << describe({"explore"}, r);
  const Facts f = facts();
  EXPECT_EQ(f.discovery, "0");
  EXPECT_EQ(f.runs, 30u);
  int classified = 0;
  for (const auto& [outcome, n] : f.outcomes) classified += n;
  EXPECT_EQ(classified, 30);
  EXPECT_GT(f.families.at("@memory").first, 100) << "python3 allocates at many sites";
  EXPECT_GT(f.families.at("@write").second, 0);
  expect_nothing_left();
}

}  // namespace
}  // namespace fltest
