// The revert of a power cut (controller/durability/revert.h) driven through the shim's tracking
// API (shim/engine/durability.h) directly, as the @fs wrappers call it around their real calls:
// renames, unlinks, links, mkdir/rmdir, data and sizes, torn writes and a torn undo log. Each
// test makes real files in a temporary directory, records what the "program" did, reverts,
// and checks the files.
#include "shim/engine/durability.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "controller/durability/revert.h"
#include "shim/engine/shim.h"
#include "test_session.h"

namespace faultline {
namespace {

using namespace faultline::shim;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "<none>";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

class DurabilityRevertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fl-durable-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_EQ(mkdir(d().c_str(), 0755), 0);
    session_ = std::make_unique<testing::TestSession>(
        "version = 1\n[durability]\npath = \"" + d() + "/*\"\n" + extra_toml(), "durable");
    undo_ = root_ + "/undo";
    ASSERT_EQ(mkdir(undo_.c_str(), 0700), 0);
    session_->session().set_undo_dir(undo_);
    saved_word_ = g_armed_word.load();
    g_armed_word.store(&session_->session().block().header.armed_mask);
    ASSERT_TRUE(durability_on());
    durable_reset_for_tests();
  }
  void TearDown() override {
    durable_reset_for_tests();
    g_armed_word.store(saved_word_);
    session_.reset();
    std::system(("rm -rf '" + root_ + "'").c_str());
  }
  virtual std::string extra_toml() { return ""; }

  std::string d() const { return root_ + "/d"; }
  std::string d(const std::string& name) const { return root_ + "/d/" + name; }

  durability::CutReport cut(bool torn = false) {
    durability::RevertOptions options;
    options.torn = torn;
    options.seed = 7;
    return durability::revert(undo_, options);
  }

  // fsync of the tracked directory, as the sync wrappers record it.
  void fsync_dir() {
    const int fd = ::open(d().c_str(), O_RDONLY | O_DIRECTORY);
    const DurableSync s = durable_sync_begin(fd, SyncKind::kFile, 0, 0);
    durable_sync_end(s, fsync(fd) == 0 ? SyncOutcome::kOk : SyncOutcome::kFailed);
    ::close(fd);
  }

  // An open through the tracking, as the open wrappers do it.
  int open_tracked(const std::string& path, int flags) {
    DurableOpen op;
    durable_open_before(op, AT_FDCWD, path.c_str(), flags);
    const int fd = ::open(path.c_str(), flags, 0644);
    durable_open_after(op, fd);
    return fd;
  }

  void pwrite_tracked(int fd, const std::string& text, off_t off) {
    durable_before_write(fd, off, text.size());
    ASSERT_EQ(::pwrite(fd, text.data(), text.size(), off), static_cast<ssize_t>(text.size()));
  }

  void fsync_tracked(int fd) {
    const DurableSync s = durable_sync_begin(fd, SyncKind::kFile, 0, 0);
    durable_sync_end(s, fsync(fd) == 0 ? SyncOutcome::kOk : SyncOutcome::kFailed);
  }

  std::string root_, undo_;
  std::unique_ptr<testing::TestSession> session_;
  std::atomic<std::uint64_t>* saved_word_ = nullptr;
};

// The ext4 zero-length bug's shape: new contents written to a temp file (never fsynced),
// renamed over the old file, directory never fsynced. The cut puts the old file back.
TEST_F(DurabilityRevertTest, RenameOverTargetIsUndoneAndTargetRestored) {
  spit(d("config"), "old config\n");
  const int fd = open_tracked(d("config.tmp"), O_WRONLY | O_CREAT | O_EXCL);
  pwrite_tracked(fd, "new config\n", 0);
  ::close(fd);
  DurableEntry e =
      durable_before_rename(AT_FDCWD, d("config.tmp").c_str(), AT_FDCWD, d("config").c_str());
  durable_entry_after(e, ::rename(d("config.tmp").c_str(), d("config").c_str()));
  ASSERT_EQ(slurp(d("config")), "new config\n");
  const durability::CutReport report = cut();
  EXPECT_EQ(slurp(d("config")), "old config\n");
  EXPECT_FALSE(exists(d("config.tmp")));  // created, never durable: removed after going back
  EXPECT_GE(report.entries.size(), 2u);
}

TEST_F(DurabilityRevertTest, RenameMadeDurableByDirFsyncStays) {
  spit(d("a"), "A\n");
  DurableEntry e = durable_before_rename(AT_FDCWD, d("a").c_str(), AT_FDCWD, d("b").c_str());
  durable_entry_after(e, ::rename(d("a").c_str(), d("b").c_str()));
  fsync_dir();
  const durability::CutReport report = cut();
  EXPECT_EQ(slurp(d("b")), "A\n");
  EXPECT_FALSE(exists(d("a")));
  EXPECT_TRUE(report.entries.empty());
}

TEST_F(DurabilityRevertTest, UnlinkIsUndoneFromTheHiddenLink) {
  spit(d("gone"), "still here\n");
  DurableEntry e = durable_before_unlink(AT_FDCWD, d("gone").c_str(), false);
  durable_entry_after(e, ::unlink(d("gone").c_str()));
  ASSERT_FALSE(exists(d("gone")));
  cut();
  EXPECT_EQ(slurp(d("gone")), "still here\n");
}

TEST_F(DurabilityRevertTest, FailedCallRecordsNothing) {
  DurableEntry e = durable_before_unlink(AT_FDCWD, d("never-was").c_str(), false);
  durable_entry_after(e, ::unlink(d("never-was").c_str()));
  const durability::CutReport report = cut();
  EXPECT_TRUE(report.entries.empty());
  EXPECT_TRUE(report.problems.empty());
}

TEST_F(DurabilityRevertTest, LinkMkdirAndRmdirAreUndone) {
  spit(d("file"), "x");
  ASSERT_EQ(mkdir(d("old-dir").c_str(), 0750), 0);
  fsync_dir();  // the starting state is durable
  DurableEntry l = durable_before_link(AT_FDCWD, d("second-name").c_str());
  durable_entry_after(l, ::link(d("file").c_str(), d("second-name").c_str()));
  DurableEntry m = durable_before_create(AT_FDCWD, d("new-dir").c_str(), true);
  durable_entry_after(m, ::mkdir(d("new-dir").c_str(), 0755));
  DurableEntry r = durable_before_unlink(AT_FDCWD, d("old-dir").c_str(), true);
  durable_entry_after(r, ::rmdir(d("old-dir").c_str()));
  cut();
  EXPECT_FALSE(exists(d("second-name")));
  EXPECT_FALSE(exists(d("new-dir")));
  struct stat st;
  ASSERT_EQ(stat(d("old-dir").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0750u);
  EXPECT_EQ(slurp(d("file")), "x");
}

// Data: synced bytes stay, later overwrites go back (the oldest prior bytes win when one range
// is overwritten twice), a shrink is undone and the size is the synced one.
TEST_F(DurabilityRevertTest, DataAndSizeGoBackToTheLastFsync) {
  spit(d("f"), "0123456789");
  fsync_dir();
  const int fd = open_tracked(d("f"), O_RDWR);
  pwrite_tracked(fd, "AB", 0);
  fsync_tracked(fd);
  pwrite_tracked(fd, "cd", 2);
  pwrite_tracked(fd, "EFGH", 2);
  pwrite_tracked(fd, "tail", 10);
  durable_size_change(fd, 5);
  ASSERT_EQ(ftruncate(fd, 5), 0);
  ::close(fd);
  const durability::CutReport report = cut();
  EXPECT_EQ(slurp(d("f")), "AB23456789");
  ASSERT_EQ(report.files.size(), 1u);
  EXPECT_EQ(report.files[0].size_after, 10);
}

// torn = true: the last unsynced write keeps a seeded prefix of whole 512-byte sectors.
TEST_F(DurabilityRevertTest, TornKeepsASectorPrefixOfTheLastWrite) {
  // The prefix is drawn per file (seed and inode), from 0 to 8 sectors: of eight files, some
  // keep part of their write (all keeping none or all would be 2 chances in 9, eight times).
  constexpr int kFiles = 8;
  for (int i = 0; i < kFiles; ++i) spit(d("t" + std::to_string(i)), "");
  fsync_dir();
  for (int i = 0; i < kFiles; ++i) {
    const int fd = open_tracked(d("t" + std::to_string(i)), O_RDWR);
    pwrite_tracked(fd, std::string(8 * 512, 'n'), 0);
    ::close(fd);
  }
  cut(true);
  int partial = 0;
  for (int i = 0; i < kFiles; ++i) {
    const std::string left = slurp(d("t" + std::to_string(i)));
    EXPECT_EQ(left.size() % 512, 0u);
    EXPECT_LE(left.size(), 8u * 512);
    EXPECT_EQ(left, std::string(left.size(), 'n'));
    if (!left.empty() && left.size() < 8u * 512) ++partial;
  }
  EXPECT_GE(partial, 1) << "no file kept a partial prefix: torn did nothing, or everything";
}

// A record cut short (its process killed mid-append) is skipped; the records after it count.
TEST_F(DurabilityRevertTest, TornUndoRecordIsSkipped) {
  spit(d("f"), "original");
  fsync_dir();
  const int fd = open_tracked(d("f"), O_RDWR);
  pwrite_tracked(fd, "X", 0);
  {
    std::ofstream log(undo_ + "/log", std::ios::app | std::ios::binary);
    const char junk[40] = {'U', 'N', 'D', 'O', 1, 2, 3};
    log.write(junk, sizeof junk);
  }
  pwrite_tracked(fd, "Y", 1);
  ::close(fd);
  cut();
  EXPECT_EQ(slurp(d("f")), "original");
}

}  // namespace
}  // namespace faultline
