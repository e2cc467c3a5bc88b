// Live control and safety, below the CLI: the shim's diagnostics (once per cause, bounded, to
// FAULTLINE_DIAG), slot checks that keep a corrupted block from arming anything, the 0600
// rule, replacing a dead block, per-process counters, and the stop flags and budget as the
// engine sees them from several threads.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_session.h"

namespace faultline {
namespace {

constexpr const char* kFsyncEio =
    "version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n";

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Routes the shim's diagnostics to a private file for one test, and back to stderr after.
class DiagFile {
 public:
  DiagFile() {
    char path[] = "/tmp/fl-diag-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    path_ = path;
    shim::diag_reset_for_tests();
    shim::diag_init(path_.c_str());
  }
  ~DiagFile() {
    shim::diag_init(nullptr);
    shim::diag_reset_for_tests();
    unlink(path_.c_str());
  }
  std::vector<std::string> lines() const { return lines_of(path_); }

 private:
  std::string path_;
};

TEST(Diagnostics, EachMessageOncePerProcessAndBoundedInAll) {
  DiagFile file;
  for (int i = 0; i < 100; ++i) shim::diag("faultline: cannot open event log %s", "/nope/x");
  shim::diag("faultline: cannot open event log %s", "/nope/y");  // another cause
  auto lines = file.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("faultline: cannot open event log /nope/x"), std::string::npos);
  // In a file shared by a tree, each line says when and which process.
  EXPECT_NE(lines[0].find("[" + std::to_string(getpid()) + "]"), std::string::npos) << lines[0];

  for (int i = 0; i < 100; ++i) shim::diag("faultline: problem number %d", i);
  lines = file.lines();
  ASSERT_LT(lines.size(), 40u) << "diagnostics are not bounded";
  EXPECT_NE(lines.back().find("further ones are suppressed"), std::string::npos) << lines.back();
  const std::size_t bounded = lines.size();
  shim::diag("faultline: yet another one");
  EXPECT_EQ(file.lines().size(), bounded);
}

TEST(Diagnostics, AnUnopenableDiagFileFallsBackToStderr) {
  // Captured before diag_init: the capture file is the stderr the "program" started with (a
  // diagnostic never goes to an fd 2 that was replaced after start).
  ::testing::internal::CaptureStderr();
  shim::diag_reset_for_tests();
  shim::diag_init("/nonexistent-dir/diag.log");
  shim::diag("faultline: a message that must not be lost");
  const std::string err = ::testing::internal::GetCapturedStderr();
  shim::diag_init(nullptr);
  shim::diag_reset_for_tests();
  EXPECT_NE(err.find("cannot open FAULTLINE_DIAG file /nonexistent-dir/diag.log"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("a message that must not be lost"), std::string::npos) << err;
}

// ---- slots a corrupted block may hold -------------------------------------------------------

TEST(SlotChecks, StateEnabledActionsAndFamiliesAreChecked) {
  testing::TestSession s(kFsyncEio);
  ControlSession& session = s.session();
  FaultSlot& slot = s.slot("f");
  EXPECT_FALSE(check_fault_slot(slot));
  EXPECT_TRUE(session.corrupt_slots().empty());

  slot.enabled.store(7);
  EXPECT_EQ(check_fault_slot(slot).value_or(""), "bad enabled flag 7");
  slot.enabled.store(1);

  FaultSpec spec = read_fault_spec(slot);
  FaultSpec bad = spec;
  bad.actions |= 1u << 30;
  EXPECT_EQ(check_fault_spec(bad).value_or(""), "unknown action bits");
  bad = spec;
  bad.families = kFamWrite;  // fsync is @fsync
  EXPECT_EQ(check_fault_spec(bad).value_or(""), "families do not match the calls");

  const std::uint32_t state = slot.state.load();
  slot.state.store(0xdeadbeef);
  EXPECT_EQ(check_fault_slot(slot).value_or(""), "bad slot state 3735928559");
  ASSERT_EQ(session.corrupt_slots().size(), 1u);
  EXPECT_EQ(session.corrupt_slots()[0].first, 0);
  slot.state.store(state);
}

TEST(SlotChecks, ACorruptSlotArmsNothingAndNeverInjects) {
  DiagFile file;
  testing::TestSession s(kFsyncEio);
  ControlSession& session = s.session();
  const int index = session.find_fault("f");
  FaultSpec spec = read_fault_spec(s.slot("f"));
  spec.families = kFamWrite | kFamFsync;  // would arm @write for a fault with no write call
  session.update_fault(index, spec);      // recomputes the armed mask
  EXPECT_EQ(session.block().header.armed_mask.load(), 0u);

  shim::Guard guard;
  for (int i = 0; i < 10; ++i) {
    shim::Decision d;
    EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  }
  session.update_fault(index, spec);  // a new generation: the engine looks at the slot again
  {
    shim::Decision d;
    EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  }
  const auto lines = file.lines();
  ASSERT_EQ(lines.size(), 1u) << "one report for the slot, not one per rebuild";
  EXPECT_NE(lines[0].find("1 fault slot(s) of session " + session.name() + " are corrupt"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("families do not match"), std::string::npos) << lines[0];
}

TEST(SlotChecks, AnEditInProgressKeepsThePreviousRuleInsteadOfDroppingTheFault) {
  DiagFile file;
  testing::TestSession s(kFsyncEio);
  ControlSession& session = s.session();
  FaultSlot& slot = s.slot("f");
  shim::Guard guard;
  {
    shim::Decision d;
    ASSERT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));  // the first copy
  }
  // A writer mid-edit and preempted past the readers' bounded wait (odd sequence), while an
  // earlier edit's generation bump makes every process rebuild.
  const std::uint64_t seq = slot.spec_seq.load();
  slot.spec_seq.store(seq + 1);
  session.block().header.generation.fetch_add(1);
  {
    shim::Decision d;
    EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d))
        << "the fault dropped out while its slot was being edited";
    EXPECT_EQ(d.error, EIO);
  }
  EXPECT_TRUE(file.lines().empty()) << "an edit in progress is not a corrupt slot";
  // The writer finishes: sequence even again, generation bumped.
  slot.spec_seq.store(seq + 2);
  session.block().header.generation.fetch_add(1);
  shim::Decision d;
  EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
}

// ---- live edits ---------------------------------------------------------------------------

TEST(LiveSet, AnEmptyValueRemovesASelectorAndOnlyASelector) {
  CompileResult compiled = compile_policy_string(
      "version = 1\n[[fault]]\nname='f'\ncalls=['write']\nerror='EIO'\npath='/a/*'\n"
      "process='db*'\nthread='w-*'\nsize='4KiB..'\n",
      "t.toml");
  ASSERT_TRUE(compiled.policy) << compiled.error->to_string();
  FaultSpec spec = compiled.policy->faults[0];
  for (const char* key : {"path", "process", "thread", "size"})
    EXPECT_FALSE(apply_fault_setting(spec, key, "")) << key;
  EXPECT_EQ(spec.path[0], '\0');
  EXPECT_EQ(spec.process[0], '\0');
  EXPECT_EQ(spec.thread[0], '\0');
  EXPECT_EQ(spec.has_size, 0u);
  EXPECT_FALSE(check_fault_spec(spec));
  FaultSpec defaults = default_fault_spec();
  EXPECT_EQ(std::memcmp(spec.path, defaults.path, sizeof spec.path), 0) << "padding must stay 0";
  EXPECT_FALSE(apply_fault_setting(spec, "path", "\"\""));
  // Other keys keep refusing an empty value.
  EXPECT_TRUE(apply_fault_setting(spec, "error", ""));
  EXPECT_TRUE(apply_fault_setting(spec, "delay", ""));
  EXPECT_EQ(spec.error, EIO);
}

// ---- ownership and mode -------------------------------------------------------------------

TEST(SessionAttach, RefusesABlockOpenToOtherUsers) {
  testing::TestSession s(kFsyncEio);
  const std::string file = shm_file_path(s.session().name());
  ASSERT_EQ(chmod(file.c_str(), 0644), 0);
  std::string error;
  EXPECT_EQ(ControlSession::attach(s.session().name(), error), nullptr);
  EXPECT_NE(error.find("open to other users (mode 0644, must be 0600)"), std::string::npos)
      << error;
  ASSERT_EQ(chmod(file.c_str(), 0600), 0);
  EXPECT_NE(ControlSession::attach(s.session().name(), error), nullptr) << error;
}

// ---- membership ---------------------------------------------------------------------------

TEST(SessionMembers, ADeadBlockIsReplacedALiveOneJoined) {
  const std::string name = testing::unique_session_name("dead");
  CompileResult compiled = compile_policy_string(kFsyncEio, "t.toml");
  ASSERT_TRUE(compiled.policy);
  SessionError error;
  bool created = false;
  auto first = ControlSession::attach_or_create(name, *compiled.policy, created, error);
  ASSERT_TRUE(first) << error.message;
  EXPECT_TRUE(created);
  first->block().faults[first->find_fault("f")].injected.store(5);

  // The creator is alive: a second process joins the same block.
  auto joined = ControlSession::attach_or_create(name, *compiled.policy, created, error);
  ASSERT_TRUE(joined) << error.message;
  EXPECT_FALSE(created);
  EXPECT_EQ(joined->block().faults[joined->find_fault("f")].injected.load(), 5u);

  // Every member gone (the creator "exits"): the next process starts a fresh session.
  first->unregister_pid(getpid());
  auto fresh = ControlSession::attach_or_create(name, *compiled.policy, created, error);
  ASSERT_TRUE(fresh) << error.message;
  EXPECT_TRUE(created);
  EXPECT_EQ(fresh->block().faults[fresh->find_fault("f")].injected.load(), 0u);
  EXPECT_EQ(first->block().faults[first->find_fault("f")].injected.load(), 5u)
      << "the old mapping stays valid for whoever still holds it";
  ControlSession::remove(name);
}

TEST(SessionMembers, PerProcessCountersFollowThePidSlot) {
  testing::TestSession s(kFsyncEio);
  ControlSession& session = s.session();
  const int me = session.register_pid(getpid());  // the creator is already registered
  ASSERT_GE(me, 0);
  EXPECT_EQ(session.register_pid(getpid()), me);
  shim::g_member.store(me);
  {
    shim::Guard guard;
    for (int i = 0; i < 3; ++i) {
      shim::Decision d;
      EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
    }
    shim::Decision d;
    EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_write}, d));  // no fault has write
  }
  shim::g_member.store(-1);
  const MemberStats& stats = session.block().members[me];
  EXPECT_EQ(stats.seen.load(), 3u);
  EXPECT_EQ(stats.injected.load(), 3u);
  EXPECT_GT(stats.last_injection_ns.load(), 0);

  // A new process taking a free slot starts from zero.
  session.block().members[me + 1].injected.store(99);
  const int other = session.register_pid(getpid() + 100000);
  EXPECT_EQ(other, me + 1);
  EXPECT_EQ(session.block().members[other].injected.load(), 0u);
  session.unregister_pid(getpid() + 100000);
}

// A forked child is registered by its parent (the fork wrapper) and by itself (the atfork
// handler), maybe at once: it must end up in exactly one slot.
TEST(SessionMembers, APidRegisteredTwiceAtOnceHoldsOneSlot) {
  testing::TestSession s(kFsyncEio);
  ControlSession& session = s.session();
  auto& pids = session.block().header.pids;
  for (int round = 0; round < 200; ++round) {
    const pid_t pid = getpid() + 200000 + round;
    int a = -1, b = -1;
    std::thread other([&] { a = session.register_pid(pid); });
    b = session.register_pid(pid);
    other.join();
    EXPECT_EQ(a, b) << "round " << round;
    int held = 0;
    for (const auto& slot : pids) held += slot.load() == pid;
    ASSERT_EQ(held, 1) << "round " << round;
    session.unregister_pid(pid);
  }
}

// ---- the session's life -------------------------------------------------------------------

// Whether this process has a descriptor on the session's file (by identity: a block made
// with O_TMPFILE has no name in /proc/self/fd).
bool shm_fd_open(const std::string& name) {
  struct stat file;
  if (stat(shm_file_path(name).c_str(), &file) != 0) return false;
  for (int fd = 0; fd < 1024; ++fd) {
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_dev == file.st_dev && st.st_ino == file.st_ino) return true;
  }
  return false;
}

TEST(SessionLife, CreateLeavesNoTemporaryFileAndPublishesAWholeBlock) {
  const std::string name = testing::unique_session_name("whole");
  CompileResult compiled = compile_policy_string(kFsyncEio, "t.toml");
  ASSERT_TRUE(compiled.policy);
  std::string error;
  auto session = ControlSession::create(name, *compiled.policy, error);
  ASSERT_TRUE(session) << error;
  struct stat st;
  ASSERT_EQ(stat(shm_file_path(name).c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), sizeof(ControlBlock));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(session->live_pids(), std::vector<pid_t>{getpid()}) << "published without its creator";
  // The name is taken: a second create fails and leaves nothing behind.
  EXPECT_EQ(ControlSession::create(name, *compiled.policy, error), nullptr);
  EXPECT_NE(error.find("already exists"), std::string::npos) << error;
  DIR* dir = opendir("/dev/shm");
  ASSERT_NE(dir, nullptr);
  while (const dirent* entry = readdir(dir))
    EXPECT_EQ(std::string(entry->d_name).find(".faultline-new." + name), std::string::npos);
  closedir(dir);
  ControlSession::remove(name);
}

TEST(SessionLife, AReleasedFdIsReopenedToLockAndNeverTouchesAnotherBlock) {
  const std::string name = testing::unique_session_name("nofd");
  CompileResult compiled = compile_policy_string(kFsyncEio, "t.toml");
  ASSERT_TRUE(compiled.policy);
  std::string error;
  auto session = ControlSession::create(name, *compiled.policy, error);
  ASSERT_TRUE(session) << error;
  EXPECT_TRUE(shm_fd_open(name));
  session->release_fd();
  EXPECT_FALSE(shm_fd_open(name)) << "the block's fd is still open";
  session->panic();  // a writer operation: reopens the file for the lock, closes it again
  EXPECT_TRUE(session->block().header.flags.load() & kFlagPanicked);
  EXPECT_FALSE(shm_fd_open(name));

  // The name now refers to another block: removing "ours" must not unlink that one.
  ASSERT_TRUE(ControlSession::remove(name));
  auto other = ControlSession::create(name, *compiled.policy, error);
  ASSERT_TRUE(other) << error;
  session->unregister_pid(getpid());
  other->unregister_pid(getpid());
  EXPECT_TRUE(session->remove_if_dead());
  EXPECT_EQ(access(shm_file_path(name).c_str(), F_OK), 0) << "another block was unlinked";
  ControlSession::remove(name);
}

TEST(SessionLife, LeaveKeepsTheBlockWhileAnotherMemberLives) {
  const std::string name = testing::unique_session_name("leave");
  CompileResult compiled = compile_policy_string(kFsyncEio, "t.toml");
  ASSERT_TRUE(compiled.policy);
  std::string error;
  auto session = ControlSession::create(name, *compiled.policy, error);
  ASSERT_TRUE(session) << error;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  session->register_pid(child);
  EXPECT_EQ(session->leave(getpid()), std::vector<pid_t>{child});
  EXPECT_EQ(access(shm_file_path(name).c_str(), F_OK), 0) << "removed under a live member";
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(session->leave(getpid()).empty());
  EXPECT_NE(access(shm_file_path(name).c_str(), F_OK), 0) << "a dead session was kept";
}

// ---- safety flags as the engine sees them ---------------------------------------------------

TEST(SafetyFlags, PanicStopsACallThatAlreadyPassedTheFastPath) {
  testing::TestSession s(kFsyncEio);
  shim::Guard guard;
  shim::Decision d;
  EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  // decide() is what a wrapper calls after its armed check: panic must win even there.
  s.session().panic();
  EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  s.session().resume();
  EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
}

TEST(SafetyFlags, MaxFaultsIsExactUnderFourThreads) {
  testing::TestSession s(
      "version = 1\n[safety]\nmax_faults = 100\n"
      "[[fault]]\nname='a'\ncalls=['fsync']\nerror='EIO'\n"
      "[[fault]]\nname='b'\ncalls=['fdatasync']\nerror='EIO'\n");
  std::atomic<int> injected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      shim::Guard guard;
      const std::uint32_t call = t % 2 ? kCall_fsync : kCall_fdatasync;
      for (int i = 0; i < 500; ++i)
        if (shim::Decision d; shim::decide(guard, shim::CallArgs{call}, d)) ++injected;
    });
  }
  for (auto& th : threads) th.join();
  const ControlHeader& h = s.session().block().header;
  EXPECT_EQ(injected.load(), 100);
  EXPECT_EQ(h.injected_total.load(), 100u);
  EXPECT_EQ(s.slot("a").injected.load() + s.slot("b").injected.load(), 100u);
  EXPECT_TRUE(h.flags.load() & kFlagBudgetSpent);
  EXPECT_EQ(h.armed_mask.load(), 0u);
}

TEST(SafetyFlags, TtlDisarmsWithNoControllerInvolved) {
  testing::TestSession s(
      "version = 1\n[safety]\nttl = \"1h\"\n"
      "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  ControlHeader& h = s.session().block().header;
  shim::Guard guard;
  shim::Decision d;
  EXPECT_TRUE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  // The session "started" two hours ago: the first call to notice disarms it.
  h.start_mono_ns.store(monotonic_ns() - 2 * 3600 * std::int64_t{1000000000});
  EXPECT_FALSE(shim::decide(guard, shim::CallArgs{kCall_fsync}, d));
  EXPECT_TRUE(h.flags.load() & kFlagTtlExpired);
  EXPECT_EQ(h.armed_mask.load(), 0u);
  s.session().resume();  // resume undoes a panic, not an expiry
  EXPECT_EQ(h.armed_mask.load(), 0u);
}

}  // namespace
}  // namespace faultline
