// Real programs under `faultline run`: python3, sqlite3, dd and cp, each unmodified, each
// judged by what the program itself reports (its errno, its error message, the bytes it left
// on disk) and by the event log, never by the shim's own view of what it did.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kSqlite = "/usr/bin/sqlite3";

class ProgramsTest : public IntegrationTest {
 protected:
  // `faultline run -p POLICY -- ARGV...`
  RunResult run_under(const std::string& policy, const std::vector<std::string>& argv,
                      RunOptions options = {}) {
    std::vector<std::string> args{"run", "-p", policy, "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return faultline(args, options);
  }
};

// ---- 1. python3: EIO on one file's writes ---------------------------------------------------

// Writes a.log then b.log (open, write, close each) and prints, per file, "ok" or
// "err ERRNO at STAGE". `raw` uses os.open/os.write (no buffering); `buffered` uses open() and
// f.write(), whose data reaches the kernel only when close() flushes it.
constexpr const char* kTwoFilesPy = R"PY(
import os, sys
directory, mode = sys.argv[1], sys.argv[2]
for name in ("a.log", "b.log"):
    path = os.path.join(directory, name)
    data = "".join("%s line %d\n" % (name, i) for i in range(40))
    stage = "open"
    try:
        if mode == "raw":
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            stage = "write"
            try:
                raw = data.encode()
                done = 0
                while done < len(raw):
                    done += os.write(fd, raw[done:])
                stage = "close"
            finally:
                os.close(fd)
        else:
            f = open(path, "w")
            stage = "write"
            f.write(data)
            stage = "close"
            f.close()
        print("%s ok" % name, flush=True)
    except OSError as e:
        print("%s err %d at %s" % (name, e.errno, stage), flush=True)
)PY";

std::string expected_log_content(const std::string& name) {
  std::string data;
  for (int i = 0; i < 40; ++i) data += name + " line " + std::to_string(i) + "\n";
  return data;
}

class PythonWriteTest : public ProgramsTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(PythonWriteTest, EioOnOneFileOnly) {
  const std::string mode = GetParam();
  ASSERT_TRUE(write_file(path("two_files.py"), kTwoFilesPy));
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "a-eio"
calls = ["write"]
path = "*/a.log"
error = "EIO"
)"));
  const std::vector<std::string> argv{kPython, path("two_files.py"), dir_.path(), mode};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  // Unbuffered, the write itself fails; buffered, the data only reaches write(2) when close()
  // flushes it, so the error must surface there and not be lost.
  const std::string where = mode == "raw" ? "write" : "close";
  EXPECT_NE(r.out.find("a.log err 5 at " + where + "\n"), std::string::npos) << why;
  EXPECT_NE(r.out.find("b.log ok\n"), std::string::npos) << why;
  EXPECT_EQ(count_substr(r.out, " err "), 1u) << why;
  EXPECT_EQ(read_file(path("b.log")).value_or("<missing>"), expected_log_content("b.log"));
  EXPECT_EQ(file_size(path("a.log")).value_or(99999), 0u) << "no byte of a.log may land";
  const auto injected = summary_injected(r.err, "a-eio");
  ASSERT_TRUE(injected.has_value()) << "no summary row for a-eio\n" << why;
  EXPECT_GE(*injected, 1u) << why;
}

INSTANTIATE_TEST_SUITE_P(Modes, PythonWriteTest, ::testing::Values("raw", "buffered"),
                         [](const auto& info) { return std::string(info.param); });

// ---- 2. sqlite3: EIO on fsync after some commits ---------------------------------------------

constexpr int kTransactions = 6;
constexpr int kRowsPerTransaction = 5;

std::string sqlite_script() {
  std::string sql = ".bail on\nCREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT);\n";
  for (int tx = 1; tx <= kTransactions; ++tx) {
    sql += "BEGIN;\n";
    for (int row = 0; row < kRowsPerTransaction; ++row)
      sql += "INSERT INTO t(tx, v) VALUES(" + std::to_string(tx) + ", 'row " + std::to_string(row) +
             "');\n";
    sql += "COMMIT;\nSELECT 'committed " + std::to_string(tx) + "';\n";
  }
  return sql;
}

TEST_F(ProgramsTest, SqliteFsyncEioKeepsCommittedRows) {
  // In the default rollback-journal mode sqlite syncs 4 times per transaction (journal,
  // directory, journal header, database): after=10 lets the CREATE TABLE and the first
  // transaction commit and fails the second one half-way through its commit.
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "sync-eio"
calls = ["fsync", "fdatasync"]
error = "EIO"
after = 10
)"));
  const std::string db = path("db.sqlite");
  RunOptions options;
  options.stdin_text = sqlite_script();
  const std::vector<std::string> argv{kSqlite, db};
  const RunResult r = run_under(path("policy.toml"), argv, options);
  const std::string why = describe(argv, r);
  EXPECT_NE(r.status(), 0) << why;
  EXPECT_NE(r.err.find("disk I/O error"), std::string::npos) << why;

  // What sqlite3 itself said was committed: it stops at the first error (.bail on).
  int committed = 0;
  for (const auto& line : split_lines(r.out)) {
    if (line == "committed " + std::to_string(committed + 1)) {
      ++committed;
    } else {
      ADD_FAILURE() << "unexpected output line '" << line << "'\n" << why;
    }
  }
  EXPECT_GE(committed, 1) << "the fault must come after some commits\n" << why;
  EXPECT_LT(committed, kTransactions) << "the fault never fired\n" << why;

  // Without faults: the database is intact and holds exactly the committed transactions.
  const RunResult check = run({kSqlite, db, "PRAGMA integrity_check;"});
  EXPECT_EQ(check.status(), 0) << describe({kSqlite, db}, check);
  EXPECT_EQ(check.out, "ok\n") << check.err;
  const RunResult count =
      run({kSqlite, db, "SELECT count(*), count(DISTINCT tx), coalesce(max(tx), 0) FROM t;"});
  EXPECT_EQ(count.status(), 0) << count.err;
  EXPECT_EQ(count.out, std::to_string(committed * kRowsPerTransaction) + "|" +
                           std::to_string(committed) + "|" + std::to_string(committed) + "\n")
      << "rows (total|transactions|last) after " << committed << " reported commits";
}

// ---- 3. quota and short writes -----------------------------------------------------------

constexpr std::uintmax_t kMiB = 1024 * 1024;

class QuotaTest : public ProgramsTest {
 protected:
  void SetUp() override {
    ProgramsTest::SetUp();
    ASSERT_EQ(run({"/bin/mkdir", path("out")}).status(), 0);
  }
  void write_quota_policy() {
    ASSERT_TRUE(write_file(path("policy.toml"),
                           "version = 1\n[[fault]]\nname = \"full\"\n"
                           "calls = [\"@write\"]\npath = \"" +
                               path("out") + "/*\"\nquota = \"1MiB\"\n"));
  }
  // A 4 MiB file of random bytes outside out/ (made without faults).
  void make_source() {
    const RunResult r = run({"/usr/bin/head", "-c", std::to_string(4 * kMiB), "/dev/urandom"});
    ASSERT_EQ(r.status(), 0);
    ASSERT_EQ(r.out.size(), 4 * kMiB);
    ASSERT_TRUE(write_file(path("src.bin"), r.out));
  }
};

TEST_F(QuotaTest, DdStopsAtQuotaWithEnospc) {
  ASSERT_NO_FATAL_FAILURE(write_quota_policy());
  const std::vector<std::string> argv{"/usr/bin/dd", "if=/dev/zero", "of=" + path("out/f"),
                                      "bs=64K", "count=64"};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  EXPECT_NE(r.status(), 0) << why;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << why;
  EXPECT_EQ(file_size(path("out/f")).value_or(0), kMiB) << why;
}

// cp (coreutils 9.1) copies a regular file with copy_file_range(2), not write(2): @write must
// reach it too.
TEST_F(QuotaTest, CpStopsAtQuotaWithEnospc) {
  ASSERT_NO_FATAL_FAILURE(write_quota_policy());
  ASSERT_NO_FATAL_FAILURE(make_source());
  const std::vector<std::string> argv{"/usr/bin/cp", path("src.bin"), path("out/g")};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  EXPECT_NE(r.status(), 0) << why;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << why;
  EXPECT_EQ(file_size(path("out/g")).value_or(0), kMiB) << why;
}

class ShortWriteTest : public QuotaTest {
 protected:
  // `calls` is ["write"] for a program that copies through write(2), ["@write"] for cp, which
  // moves the bytes with copy_file_range(2) and never calls write() for a regular file.
  void write_short_policy(const std::string& calls) {
    ASSERT_TRUE(
        write_file(path("policy.toml"),
                   "version = 1\n[log]\npath = \"" + path("events.jsonl") +
                       // every injection a line: no [log] max_rate cut-off
                       "\"\nmax_rate = 1000000000\n[[fault]]\nname = \"half\"\ncalls = [\"" +
                       calls + "\"]\npath = \"" + path("out") + "/*\"\nshort = \"50%\"\n"));
  }
  // Short-write events for `file` in the log must match the summary's injected count.
  void check_events(const RunResult& r, const std::string& file, const std::string& why) {
    const auto log = read_file(path("events.jsonl"));
    ASSERT_TRUE(log.has_value()) << "no event log\n" << why;
    std::size_t shorts = 0;
    for (const auto& line : split_lines(*log)) {
      EXPECT_TRUE(line.size() > 2 && line.front() == '{' && line.back() == '}')
          << "not a JSON object: " << line;
      if (line.find("\"action\":\"short\"") != std::string::npos &&
          line.find("\"path\":\"" + file + "\"") != std::string::npos &&
          line.find("\"fault\":\"half\"") != std::string::npos)
        ++shorts;
    }
    EXPECT_GE(shorts, 1u) << *log;
    const auto injected = summary_injected(r.err, "half");
    ASSERT_TRUE(injected.has_value()) << "no summary row for 'half'\n" << why;
    EXPECT_EQ(shorts, *injected) << why;
  }
};

TEST_F(ShortWriteTest, CpSurvivesShortWrites) {
  ASSERT_NO_FATAL_FAILURE(write_short_policy("@write"));
  ASSERT_NO_FATAL_FAILURE(make_source());
  const std::vector<std::string> argv{"/usr/bin/cp", path("src.bin"), path("out/copy")};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(run({"/usr/bin/cmp", path("src.bin"), path("out/copy")}).status(), 0)
      << "the copy differs from the source";
  ASSERT_NO_FATAL_FAILURE(check_events(r, path("out/copy"), why));
}

// The same with a program that copies through write(2) (dd retries a partial write).
TEST_F(ShortWriteTest, DdSurvivesShortWrites) {
  ASSERT_NO_FATAL_FAILURE(write_short_policy("write"));
  ASSERT_NO_FATAL_FAILURE(make_source());
  const std::vector<std::string> argv{"/usr/bin/dd", "if=" + path("src.bin"),
                                      "of=" + path("out/copy"), "bs=64K"};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(run({"/usr/bin/cmp", path("src.bin"), path("out/copy")}).status(), 0)
      << "the copy differs from the source";
  ASSERT_NO_FATAL_FAILURE(check_events(r, path("out/copy"), why));
}

// ---- 8. crash at fsync -------------------------------------------------------------------

TEST_F(ProgramsTest, CrashBeforeFsyncKillsTheProcess) {
  ASSERT_TRUE(write_file(path("crash.py"), R"PY(
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"payload\n")
print("before fsync", flush=True)
os.fsync(fd)
print("after fsync", flush=True)
)PY"));
  ASSERT_TRUE(
      write_file(path("policy.toml"), "version = 1\n[log]\npath = \"" + path("events.jsonl") +
                                          "\"\n[[fault]]\nname = \"die\"\ncalls = [\"fsync\"]\n"
                                          "crash = \"SIGKILL\"\nwhen = \"before\"\n"));
  const std::vector<std::string> argv{kPython, path("crash.py"), path("data.bin")};
  const RunResult r = run_under(path("policy.toml"), argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 128 + 9) << why;
  EXPECT_EQ(r.out, "before fsync\n") << why;
  const auto log = read_file(path("events.jsonl"));
  ASSERT_TRUE(log.has_value()) << "no event log\n" << why;
  std::size_t crashes = 0;
  for (const auto& line : split_lines(*log))
    if (line.find("\"action\":\"crash\"") != std::string::npos &&
        line.find("\"call\":\"fsync\"") != std::string::npos &&
        line.find("\"fault\":\"die\"") != std::string::npos)
      ++crashes;
  EXPECT_EQ(crashes, 1u) << *log;
}

}  // namespace
}  // namespace fltest
