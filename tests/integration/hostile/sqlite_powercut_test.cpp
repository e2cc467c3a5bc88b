// sqlite3 under `faultline explore --powercut`, the durability issue's acceptance test: five
// transactions (one INSERT each) in one sqlite3 invocation, in rollback-journal mode
// (synchronous=FULL and EXTRA) and in WAL mode (FULL), cut before and after every fsync, rename and
// unlink of the database's files. After each cut the check asks sqlite3 itself: the database passes
// `pragma integrity_check` and holds every row whose COMMIT had returned before the cut (the
// workload appends "ack N" to a file outside the tracked paths once sqlite3 is past the INSERT,
// which autocommits). sqlite3 keeps that promise in WAL mode and, in rollback-journal mode,
// under synchronous=EXTRA; under FULL it documents that the last commit may roll back, and
// explore finds exactly that. With a drive that lies about
// fsync (the policy's own `lie = true` fault, armed in every run) committed rows are lost, and
// explore must say so.
#include <sys/stat.h>

#include <string>

#include "explore_report.h"
#include "harness.h"

namespace fltest {
namespace {

const char* const kSqlite = "/usr/bin/sqlite3";

// integrity_check is ok, and every acknowledged value is in the table. A missing database is
// fine only while nothing was acknowledged (sqlite3 creates an empty one here otherwise).
const std::string kCheck =
    "ok=$(/usr/bin/sqlite3 t.db 'pragma integrity_check') || exit 1; "
    "[ \"$ok\" = ok ] || { echo \"integrity_check: $ok\"; exit 1; }; "
    "[ -e acks ] || exit 0; "
    "while read -r _ n; do "
    "c=$(/usr/bin/sqlite3 t.db \"select count(*) from t where v=$n\" 2>&1); "
    "[ \"$c\" = 1 ] || { echo \"acknowledged row $n is gone ($c)\"; exit 1; }; "
    "done < acks";

class ExplorePowercutSqliteTest : public IntegrationTest {
 protected:
  std::string state() const { return path("state"); }

  // The five transactions, each acknowledged once its INSERT (and so its COMMIT) returned.
  std::string script(const std::string& journal_mode, const std::string& synchronous = "FULL") {
    std::string text = "PRAGMA journal_mode=" + journal_mode +
                       ";\nPRAGMA synchronous=" + synchronous +
                       ";\n"
                       "CREATE TABLE IF NOT EXISTS t(v INTEGER);\n";
    for (int n = 1; n <= 5; ++n)
      text += "INSERT INTO t VALUES(" + std::to_string(100 + n) + ");\n.system echo ack " +
              std::to_string(100 + n) + " >> acks\n";
    const std::string file = path("tx-" + journal_mode + "-" + synchronous + ".sql");
    EXPECT_TRUE(write_file(file, text));
    return file;
  }

  // [durability] on t.db and its journal/WAL in every run's directory (`*` crosses '/'; the
  // directory holding them is a point too), and `extra` faults.
  std::string policy(const std::string& extra = "") {
    const std::string file = path("db.toml");
    EXPECT_TRUE(write_file(
        file, "version = 1\n[durability]\npath = \"" + state() + "/runs/*/t.db*\"\n" + extra));
    return file;
  }

  RunResult explore(const std::string& policy_file, const std::string& sql) {
    RunOptions o;
    o.timeout = 120s;
    o.cwd = dir_.path();
    return faultline({"explore", "--state", state(), "-p", policy_file, "--powercut", "--recover",
                      "/usr/bin/sqlite3 t.db 'pragma integrity_check' >/dev/null", "--check",
                      kCheck, "-j", "2", "-q", "--", kSqlite, "t.db", ".read " + sql},
                     o);
  }
};

constexpr const char* kLyingDrive =
    "[[fault]]\nname = \"lying-drive\"\ncalls = [\"fsync\", \"fdatasync\"]\nlie = true\n";

// Rollback-journal mode commits by unlinking the journal. Under synchronous=FULL sqlite does
// not fsync the directory after that unlink (sqlite.org/pragma.html#pragma_synchronous: only
// EXTRA does), so a cut soon after a COMMIT returned brings the journal back and the restart
// rolls the acknowledged transaction back: explore finds it, at the next transaction's syncs.
TEST_F(ExplorePowercutSqliteTest, RollbackJournalUnderFullLosesTheLastCommit) {
  const RunResult r = explore(policy(), script("DELETE", "FULL"));
  EXPECT_EQ(r.status(), 1) << r.err << r.out;
  EXPECT_NE(r.out.find("is gone"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| integrity_check:"), std::string::npos) << r.out;  // consistent, though
}

// With synchronous=EXTRA the journal's unlink is made durable before COMMIT returns: nothing
// acknowledged is lost, whichever point the power is cut at.
TEST_F(ExplorePowercutSqliteTest, RollbackJournalUnderExtraKeepsEveryCommit) {
  const RunResult r = explore(policy(), script("DELETE", "EXTRA"));
  EXPECT_EQ(r.status(), 0) << r.err << r.out;
  EXPECT_NE(r.out.find("No findings: every cut was survived."), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Finding"), std::string::npos) << r.out;
  // Five transactions, each with syncs before and after: a "no findings" from a handful of
  // cuts would prove little.
  EXPECT_GE(powercut_points_found(r.out), 10u) << r.out;
  EXPECT_GE(powercut_runs_made(r.out), 2 * powercut_points_found(r.out))
      << r.out;  // before and after
}

TEST_F(ExplorePowercutSqliteTest, WalKeepsEveryCommit) {
  const RunResult r = explore(policy(), script("WAL"));
  EXPECT_EQ(r.status(), 0) << r.err << r.out;
  EXPECT_NE(r.out.find("No findings: every cut was survived."), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Finding"), std::string::npos) << r.out;
  // Five transactions, each with syncs before and after: a "no findings" from a handful of
  // cuts would prove little.
  EXPECT_GE(powercut_points_found(r.out), 10u) << r.out;
  EXPECT_GE(powercut_runs_made(r.out), 2 * powercut_points_found(r.out))
      << r.out;  // before and after
}

// The same workload on a drive that acknowledges fsync without syncing: a cut after a
// COMMIT returned loses it, in both modes.
TEST_F(ExplorePowercutSqliteTest, LyingDriveLosesCommittedRowsJournal) {
  const RunResult r = explore(policy(kLyingDrive), script("DELETE"));
  EXPECT_EQ(r.status(), 1) << r.err << r.out;
  EXPECT_NE(r.out.find("is gone"), std::string::npos) << r.out;
}

TEST_F(ExplorePowercutSqliteTest, LyingDriveLosesCommittedRowsWal) {
  const RunResult r = explore(policy(kLyingDrive), script("WAL"));
  EXPECT_EQ(r.status(), 1) << r.err << r.out;
  EXPECT_NE(r.out.find("is gone"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace fltest
