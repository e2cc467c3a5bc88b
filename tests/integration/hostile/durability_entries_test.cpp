// Power cuts and directory entries: rename, unlink, mkdir and link under a tracked path are
// undone by a cut unless their directory was fsynced after them (docs/policy.md, "Durability:
// power cuts"). fl_replace_file replaces a file by rename the way configuration writers do;
// coreutils' mv, rm and mkdir make the other entries. The test reads what is on disk after
// the cut, never what faultline says.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "harness.h"

namespace fltest {
namespace {

const std::string kReplace = std::string(FL_PROGRAMS_DIR) + "/fl_replace_file";

class DurabilityEntriesTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    ASSERT_EQ(::mkdir(path("data").c_str(), 0755), 0);
  }
  // The data directory and what is in it are tracked; `cut` is a powercut fault's own lines.
  std::string policy(const std::string& cut) {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(
        file, "version = 1\nseed = 3\n[durability]\npath = [\"" + path("data") + "\", \"" +
                  path("data") + "/*\"]\n[[fault]]\nname = \"cut\"\n" + cut + "powercut = true\n"));
    return file;
  }
  // A cut right after the program's fsync of the data directory.
  std::string cut_after_dir_fsync() {
    return policy("calls = [\"fsync\"]\npath = \"" + path("data") + "\"\nwhen = \"after\"\n");
  }
  RunResult run_under(const std::string& policy_file, const std::vector<std::string>& cmd) {
    std::vector<std::string> args = {"run", "-s", session("ent"), "-p", policy_file, "--"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    return faultline(args);
  }
};

// The ext4 zero-length file: the rename reached the disk (the directory was fsynced), the new
// file's data never did.
TEST_F(DurabilityEntriesTest, RenameOverWithoutFsyncOfTheFileLeavesItEmpty) {
  ASSERT_TRUE(write_file(path("data/config"), "old"));
  const RunResult r = run_under(cut_after_dir_fsync(), {kReplace, "unsafe", path("data"), "new"});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_EQ(read_file(path("data/config")).value_or("<none>"), "") << r.err;
  EXPECT_FALSE(file_exists(path("data/config.tmp")));
}

TEST_F(DurabilityEntriesTest, FsyncFileRenameFsyncDirSurvivesTheCut) {
  ASSERT_TRUE(write_file(path("data/config"), "old"));
  const RunResult r = run_under(cut_after_dir_fsync(), {kReplace, "safe", path("data"), "new"});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_EQ(read_file(path("data/config")).value_or("<none>"), "new") << r.err;
}

// Cut before the directory fsync: the rename itself is undone, and the file it replaced is
// back with its old contents; the temporary file it renamed was never durable and is gone.
TEST_F(DurabilityEntriesTest, RenameBeforeTheDirFsyncIsUndoneAndTheOldFileRestored) {
  ASSERT_TRUE(write_file(path("data/config"), "old"));
  const std::string p =
      policy("calls = [\"fsync\"]\npath = \"" + path("data") + "\"\nwhen = \"before\"\n");
  const RunResult r = run_under(p, {kReplace, "safe", path("data"), "new"});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_EQ(read_file(path("data/config")).value_or("<none>"), "old") << r.err;
  EXPECT_FALSE(file_exists(path("data/config.tmp"))) << r.err;
}

// rm, mv and mkdir by coreutils, then a cut at a later call of the same shell: an unlinked
// file comes back, a moved one goes back, a new directory disappears.
TEST_F(DurabilityEntriesTest, UnlinkMoveAndMkdirAreUndoneWithoutADirFsync) {
  ASSERT_TRUE(write_file(path("data/a"), "aaa"));
  ASSERT_TRUE(write_file(path("data/b"), "bbb"));
  const std::string p = policy("calls = [\"@open\"]\npath = \"*/cut-now\"\n");
  const std::string script = "rm " + path("data/a") + " && mv " + path("data/b") + " " +
                             path("data/c") + " && mkdir " + path("data/sub") + " && : > " +
                             path("cut-now") + "; echo not-cut";
  const RunResult r = run_under(p, {"/bin/sh", "-c", script});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_EQ(r.out.find("not-cut"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(path("data/a")).value_or("<none>"), "aaa") << r.err;
  EXPECT_EQ(read_file(path("data/b")).value_or("<none>"), "bbb") << r.err;
  EXPECT_FALSE(file_exists(path("data/c"))) << r.err;
  EXPECT_FALSE(file_exists(path("data/sub"))) << r.err;
}

// The same without [durability]: the cut only kills, and what the shell did stays done.
TEST_F(DurabilityEntriesTest, WithoutDurabilityTheEntriesStay) {
  ASSERT_TRUE(write_file(path("data/a"), "aaa"));
  const std::string file = path("plain.toml");
  ASSERT_TRUE(write_file(file,
                         "version = 1\n[[fault]]\nname = \"cut\"\ncalls = [\"@open\"]\n"
                         "path = \"*/cut-now\"\npowercut = true\n"));
  const RunResult r =
      run_under(file, {"/bin/sh", "-c", "rm " + path("data/a") + " && : > " + path("cut-now")});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_FALSE(file_exists(path("data/a")));
}

// SQLite's own documentation: in rollback-journal (DELETE) mode a commit is the unlink of the
// journal, and only synchronous = EXTRA fsyncs the directory after it, so with FULL a power
// cut right after the last commit may bring the hot journal back and roll that commit back.
// A cut that loses exactly that transaction under FULL, and nothing under EXTRA, is the
// fidelity the undo of an unlink must have.
TEST_F(DurabilityEntriesTest, SqliteDeleteModeLosesTheLastCommitUnderFullNotUnderExtra) {
  if (!file_exists("/usr/bin/sqlite3")) GTEST_SKIP() << "sqlite3 is not installed";
  const std::string p = policy("calls = [\"@open\"]\npath = \"*/cut-now\"\n");
  for (const std::string sync : {"FULL", "EXTRA"}) {
    const std::string db = path("data/shop.db");
    ::unlink(db.c_str());
    const std::string sql = "PRAGMA synchronous=" + sync +
                            "; CREATE TABLE orders(item TEXT); INSERT INTO orders VALUES ('a'); "
                            "INSERT INTO orders VALUES ('b'); INSERT INTO orders VALUES ('c');";
    const RunResult r = run_under(
        p, {"/bin/sh", "-c", "sqlite3 " + db + " \"" + sql + "\" && : > " + path("cut-now")});
    EXPECT_EQ(r.status(), 137) << r.err;
    const RunResult count = run({"/usr/bin/sqlite3", db, "SELECT count(*) FROM orders"});
    EXPECT_EQ(count.out, sync == "FULL" ? "2\n" : "3\n") << sync << ": " << count.err << r.err;
  }
}

// A file written through a shared writable mapping leaves the tracking at map time, with a
// line saying so; the cut leaves it as it is, and still reverts the ordinary file.
TEST_F(DurabilityEntriesTest, ASharedWritableMappingIsNotTrackedAndSaysSo) {
  ASSERT_TRUE(write_file(path("data/mapped"), std::string(4096, '.')));
  ASSERT_TRUE(write_file(path("data/plain"), "durable\n"));
  const std::string p = policy("calls = [\"@open\"]\npath = \"*/cut-now\"\n");
  const RunResult r = run_under(
      p, {std::string(FL_PROGRAMS_DIR) + "/fl_map_writer", path("data"), path("cut-now")});
  EXPECT_EQ(r.status(), 137) << r.err;
  EXPECT_EQ(r.out, "written\n");
  EXPECT_EQ(read_file(path("data/mapped")).value_or("").substr(0, 7), "MAPPED.") << r.err;
  EXPECT_EQ(read_file(path("data/plain")).value_or("<none>"), "durable\n") << r.err;
  EXPECT_NE(r.err.find(path("data/mapped") + ": it is mapped shared and writable"),
            std::string::npos)
      << r.err;
}

// O_DIRECT is modelled as an ordinary write (undone at a cut unless fsynced), and the shim says
// so, since on a real device it would be durable once acknowledged.
TEST_F(DurabilityEntriesTest, AnODirectFileIsNamedAtOpen) {
  const std::string p = policy("calls = [\"@open\"]\npath = \"*/cut-now\"\n");
  const RunResult r = run_under(p, {"/bin/dd", "if=/dev/zero", "of=" + path("data/direct"),
                                    "bs=4096", "count=1", "oflag=direct", "status=none"});
  if (r.err.find("Invalid argument") != std::string::npos)
    GTEST_SKIP() << "this file system refuses O_DIRECT: " << r.err;
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(read_file(path("data/direct")).value_or("<none>"), std::string(4096, '\0'));
  EXPECT_NE(r.err.find(path("data/direct") + " is opened O_DIRECT"), std::string::npos) << r.err;
}

// The undo log's fd number taken over by the program behind the shim's back (raw close and
// dup3): no undo record may land in the program's file.
TEST_F(DurabilityEntriesTest, TheUndoLogNeverWritesIntoAFileThatTookItsNumber) {
  ASSERT_TRUE(write_file(path("data/t"), "0123456789"));
  const std::string p = policy("calls = [\"@open\"]\npath = \"*/never\"\n");
  const RunResult r = run_under(
      p, {std::string(FL_PROGRAMS_DIR) + "/fl_undo_fd_thief", path("data/t"), path("mine")});
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "mine: 5\n") << r.err;
  EXPECT_EQ(read_file(path("mine")).value_or("<none>"), "mine\n");
}

}  // namespace
}  // namespace fltest
