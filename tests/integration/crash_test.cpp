// Crash points: the process dies at exactly the call the triggers pick, with the event in the
// log first; a durable journal of ours keeps every record it acknowledged and repairs a torn
// tail after being killed between its write and its fsync; sqlite3 killed mid-transaction
// leaves a database that passes its own integrity check with whole transactions only.
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <tuple>
#include <vector>

#include "targeting_util.h"

namespace fltest {
namespace {

class CrashTest : public TargetingTest {};

// ---- which call ---------------------------------------------------------------------------

// Writes records 1..5 to data.bin, one os.write each, printing "wrote N" after each.
constexpr const char* kFiveWritesPy = R"PY(
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(1, 6):
    os.write(fd, b"record %d\n" % i)
    print("wrote", i, flush=True)
)PY";

class CrashPointTest
    : public CrashTest,
      public ::testing::WithParamInterface<std::tuple<const char*, int, const char*>> {};

// after = 2, times = 1: the third matching call, and only that one.
TEST_P(CrashPointTest, DiesAtExactlyTheThirdMatchingCall) {
  const auto [signal_name, signal, when] = GetParam();
  const bool after = std::string(when) == "after";
  ASSERT_TRUE(write_file(path("five.py"), kFiveWritesPy));
  const std::vector<std::string> argv{kPython, path("five.py"), path("data.bin")};
  const RunResult r =
      run_under(header() +
                    "[[fault]]\nname = \"die\"\ncalls = [\"write\"]\npath = \"*/data.bin\"\n"
                    "crash = \"" +
                    signal_name + "\"\nwhen = \"" + when + "\"\nafter = 2\ntimes = 1\n",
                argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 128 + signal) << why;
  EXPECT_EQ(r.out, "wrote 1\nwrote 2\n") << why;
  // "before": the third write never ran; "after": it ran, then the process died.
  EXPECT_EQ(read_file(path("data.bin")).value_or("<missing>"),
            after ? "record 1\nrecord 2\nrecord 3\n" : "record 1\nrecord 2\n")
      << why;
  // The event was written before the process died.
  const auto crashes = log_lines_with(events(), {"\"action\":\"crash\"", "\"fault\":\"die\""});
  ASSERT_EQ(crashes.size(), 1u) << events();
  EXPECT_NE(crashes[0].find("\"signal\":" + std::to_string(signal)), std::string::npos)
      << crashes[0];
  EXPECT_EQ(crashes[0].find("\"bytes\":9") != std::string::npos, after) << crashes[0];
  EXPECT_EQ(counter("die", "matched").value_or(0), 3u) << summary_;
  EXPECT_EQ(counter("die", "injected").value_or(0), 1u) << summary_;
}

INSTANTIATE_TEST_SUITE_P(Signals, CrashPointTest,
                         ::testing::Values(std::tuple{"SIGKILL", SIGKILL, "before"},
                                           std::tuple{"SIGKILL", SIGKILL, "after"},
                                           std::tuple{"SIGABRT", SIGABRT, "before"},
                                           std::tuple{"SIGSEGV", SIGSEGV, "after"},
                                           std::tuple{"SIGBUS", SIGBUS, "before"}),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" +
                                  std::get<2>(info.param);
                         });

// ---- durability: a journal of ours ----------------------------------------------------------

class DurableLogTest : public CrashTest {
 protected:
  RunResult journal(const std::vector<std::string>& args) {
    std::vector<std::string> argv{FL_DURABLE_LOG, path("journal.log")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  // The "ack N" numbers in the program's output.
  static std::vector<int> acks(const std::string& out) {
    std::vector<int> numbers;
    for (const auto& line : split_lines(out))
      if (line.rfind("ack ", 0) == 0) numbers.push_back(std::stoi(line.substr(4)));
    return numbers;
  }
};

// Killed after the third record's write and before its fsync: the two acknowledged records
// are there on restart. So is the third, written but never acknowledged: the kernel still had
// it (only a power cut loses unsynced data; `lie = true` is the fault for that).
TEST_F(DurableLogTest, KilledBeforeFsyncKeepsEveryAcknowledgedRecord) {
  const std::vector<std::string> argv{FL_DURABLE_LOG, path("journal.log"), "append", "5"};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"die\"\ncalls = [\"fsync\"]\n"
                                    "path = \"*/journal.log\"\ncrash = \"SIGKILL\"\n"
                                    "when = \"before\"\nafter = 2\ntimes = 1\n",
                                argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 128 + SIGKILL) << why;
  EXPECT_EQ(acks(r.out), (std::vector<int>{1, 2})) << why;

  const RunResult restart = journal({"check"});
  EXPECT_EQ(restart.status(), 0) << restart.err;
  EXPECT_EQ(restart.out, "recovered 3\n");
  // And it carries on from there.
  const RunResult more = journal({"append", "1"});
  EXPECT_EQ(more.out, "recovered 3\nack 4\n") << more.err;
}

// The third record's write is cut short (a partial write), the program writes the rest, and is
// killed before that second write runs: a torn record. The restart cuts it off, keeps the
// acknowledged ones and appends after them.
TEST_F(DurableLogTest, ATornRecordIsCutOffOnRestart) {
  const std::vector<std::string> argv{FL_DURABLE_LOG, path("journal.log"), "append", "5"};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"tear\"\ncalls = [\"write\"]\n"
                                    "path = \"*/journal.log\"\nshort = \"50%\"\nafter = 2\n"
                                    "times = 1\n"
                                    "[[fault]]\nname = \"die\"\ncalls = [\"write\"]\n"
                                    "path = \"*/journal.log\"\ncrash = \"SIGKILL\"\n"
                                    "after = 2\ntimes = 1\n",
                                argv);
  const std::string why = describe(argv, r) + "\nevents:\n" + events();
  EXPECT_EQ(r.status(), 128 + SIGKILL) << why;
  EXPECT_EQ(acks(r.out), (std::vector<int>{1, 2})) << why;
  // The first injecting fault wins: "die" never saw the write "tear" cut, so its third
  // matching call is the program's retry of the rest of record 3.
  const auto lines = split_lines(events());
  ASSERT_EQ(lines.size(), 2u) << why;
  EXPECT_NE(lines[0].find("\"fault\":\"tear\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"fault\":\"die\""), std::string::npos) << lines[1];

  const RunResult restart = journal({"append", "1"});
  EXPECT_EQ(restart.status(), 0) << restart.err;
  const auto out = split_lines(restart.out);
  ASSERT_EQ(out.size(), 3u) << restart.out;
  EXPECT_EQ(out[0], "recovered 2");
  EXPECT_EQ(out[1].rfind("torn ", 0), 0u) << out[1];
  EXPECT_EQ(out[2], "ack 3");
  EXPECT_EQ(journal({"check"}).out, "recovered 3\n");
}

// ---- sqlite3 killed mid-transaction -------------------------------------------------------

constexpr int kTransactions = 6;
constexpr int kRows = 5;

std::string sqlite_script(const std::string& journal_mode) {
  std::string sql = "PRAGMA journal_mode=" + journal_mode +
                    ";\nCREATE TABLE t(id INTEGER PRIMARY KEY, tx INTEGER, v TEXT);\n";
  const std::string filler(200, 'x');
  for (int tx = 1; tx <= kTransactions; ++tx) {
    sql += "BEGIN;\n";
    for (int row = 0; row < kRows; ++row)
      sql += "INSERT INTO t(tx, v) VALUES(" + std::to_string(tx) + ", 'row " + std::to_string(row) +
             " " + filler + "');\n";
    sql += "COMMIT;\n";
  }
  return sql;
}

class SqliteCrashTest
    : public CrashTest,
      public ::testing::WithParamInterface<std::tuple<const char*, const char*, int>> {};

TEST_P(SqliteCrashTest, KilledMidTransactionLeavesAnIntactDatabase) {
  const auto [mode, calls, after] = GetParam();
  const std::string db = path("db");
  RunOptions options;
  options.stdin_text = sqlite_script(mode);
  const std::vector<std::string> argv{kSqlite, db};
  const RunResult r =
      run_under(header() + "[[fault]]\nname = \"die\"\ncalls = " + calls +
                    "\npath = \"*/db*\"\ncrash = \"SIGKILL\"\nafter = " + std::to_string(after) +
                    "\ntimes = 1\n",
                argv, options);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 128 + SIGKILL) << why;
  // Killed inside a transaction: its journal (rollback) or WAL is still there.
  EXPECT_TRUE(file_exists(db + (std::string(mode) == "wal" ? "-wal" : "-journal"))) << why;
  EXPECT_EQ(log_lines_with(events(), {"\"action\":\"crash\""}).size(), 1u) << events();

  // Reopened without faults: sqlite recovers (rolls back or replays), and what is left passes
  // its own check and holds whole transactions 1..k only.
  const RunResult check = run({kSqlite, db, "PRAGMA integrity_check;"});
  EXPECT_EQ(check.out, "ok\n") << check.err;
  const RunResult rows =
      run({kSqlite, db, "SELECT count(*), count(DISTINCT tx), coalesce(max(tx), 0) FROM t;"});
  const auto fields = split_lines(rows.out);
  ASSERT_EQ(fields.size(), 1u) << rows.out << rows.err;
  const int committed = std::stoi(fields[0].substr(fields[0].find('|') + 1));
  EXPECT_EQ(rows.out, std::to_string(committed * kRows) + "|" + std::to_string(committed) + "|" +
                          std::to_string(committed) + "\n")
      << "not a prefix of whole transactions";
  EXPECT_GE(committed, 1) << "the crash came before any commit: pick a later call";
  EXPECT_LT(committed, kTransactions) << "the crash came after the last commit";
}

INSTANTIATE_TEST_SUITE_P(Modes, SqliteCrashTest,
                         ::testing::Values(std::tuple{"delete", "[\"fsync\", \"fdatasync\"]", 9},
                                           std::tuple{"delete", "[\"@write\"]", 20},
                                           std::tuple{"wal", "[\"fsync\", \"fdatasync\"]", 6},
                                           std::tuple{"wal", "[\"@write\"]", 20}),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) +
                                  (std::string(std::get<1>(info.param)).find("sync") !=
                                           std::string::npos
                                       ? "_sync"
                                       : "_write");
                         });

}  // namespace
}  // namespace fltest
