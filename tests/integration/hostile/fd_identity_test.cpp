// Wrong file, wrong socket (docs/reliability.md): a cached fact about an fd is never acted on
// after the fd became something else. Each case makes an fd number change what it is without
// passing the shim's close/open wrappers (freopen, closefrom, fcntl(F_DUPFD), raw syscalls)
// and checks what the real program saw: a fault aimed at old.log never reaches new.log, and a
// reset socket's number reused by a socket pair never inherits a fake ECONNRESET.
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileFdIdentityTest : public IntegrationTest {
 protected:
  static std::string program(const std::string& name) {
    return std::string(FL_PROGRAMS_DIR) + "/fl_" + name;
  }

  // Runs fl_log_rotate MODE under a fault that fails every write to old.log, and checks that
  // the fault did fail old.log (so the shim had cached it) and never touched new.log.
  void rotate(const std::string& mode, bool stdio) {
    const std::string policy = path("old-log.toml");
    ASSERT_TRUE(write_file(policy, R"(version = 1
[[fault]]
name = "old-log"
calls = ["write", "fflush", "fwrite"]
path = "*/old.log"
error = "EIO"
)"));
    const std::vector<std::string> args{"run", "-p",       policy, "--", program("log_rotate"),
                                        mode,  dir_.path()};
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    EXPECT_EQ(r.status(), 0) << "a write to new.log failed\n" << why;
    EXPECT_NE(r.err.find(" after=0"), std::string::npos) << why;
    // The fault was live and aimed right: old.log's writes failed before the change.
    EXPECT_EQ(r.err.find("before=0"), std::string::npos) << "the fault never hit old.log\n" << why;
    const auto log = read_file(path("new.log"));
    ASSERT_TRUE(log.has_value()) << why;
    for (int i = 0; i < 5; ++i) {
      EXPECT_NE(log->find("raw " + std::to_string(i) + "\n"), std::string::npos)
          << "new.log lost write() line " << i << ":\n"
          << *log << "\n"
          << why;
      if (stdio) {
        EXPECT_NE(log->find("stdio " + std::to_string(i) + "\n"), std::string::npos)
            << "new.log lost fprintf line " << i << ":\n"
            << *log << "\n"
            << why;
      }
    }
  }

  void reuse_reset_socket(const std::string& mode) {
    const std::string policy = path("reset.toml");
    ASSERT_TRUE(write_file(policy, R"(version = 1
[[fault]]
name = "reset-once"
calls = ["recv"]
reset = true
times = 1
)"));
    const std::vector<std::string> args{"run", "-p", policy, "--", program("reset_reuse"), mode};
    const RunResult r = faultline(args);
    const std::string why = describe(args, r);
    EXPECT_NE(r.err.find("reset=1"), std::string::npos) << "the fault did not reset\n" << why;
    EXPECT_NE(r.err.find(" after=0"), std::string::npos) << why;
    EXPECT_EQ(r.status(), 0) << why;
  }
};

// Log rotation: glibc's freopen closes and reopens the fd with its internal __close/__open.
TEST_F(HostileFdIdentityTest, FreopenRotationNeverFaultsTheNewLog) { rotate("freopen", true); }

TEST_F(HostileFdIdentityTest, FreopenOfStdoutNeverFaultsTheNewLog) { rotate("stdout", true); }

// closefrom closes with glibc's internal close_range; a raw openat takes the number back.
TEST_F(HostileFdIdentityTest, ClosefromThenRawOpenNeverFaultsTheNewFile) {
  rotate("closefrom", false);
}

// Nothing passes a wrapper at all: only the identity check (device, inode) can catch it.
TEST_F(HostileFdIdentityTest, RawCloseRangeThenRawOpenNeverFaultsTheNewFile) {
  rotate("close_range", false);
}

TEST_F(HostileFdIdentityTest, FcntlDupfdOntoAReusedNumberNeverFaultsTheNewFile) {
  rotate("dupfd", false);
}

TEST_F(HostileFdIdentityTest, Dup3OntoTheOldNumberNeverFaultsTheNewFile) { rotate("dup3", false); }

TEST_F(HostileFdIdentityTest, RawDup3OntoTheOldNumberNeverFaultsTheNewFile) {
  rotate("dup3raw", false);
}

// A reset socket closed by a raw syscall; socketpair() takes its number.
TEST_F(HostileFdIdentityTest, SocketpairOnAResetSocketsNumberIsNotReset) {
  reuse_reset_socket("socketpair");
}

// Raw close_range and a raw socketpair syscall: only the socket's identity can tell.
TEST_F(HostileFdIdentityTest, RawSocketpairOnAResetSocketsNumberIsNotReset) {
  reuse_reset_socket("raw");
}

// fcntl is interposed (F_DUPFD makes fds): every other command, with an int, a pointer or no
// third argument, reaches the kernel unchanged, armed or not.
TEST_F(HostileFdIdentityTest, FcntlCommandsPassThroughUnchanged) {
  const std::string policy = path("armed.toml");
  ASSERT_TRUE(write_file(policy, R"(version = 1
[[fault]]
name = "elsewhere"
calls = ["write", "fsync"]
path = "*/nothing-here"
error = "EIO"
)"));
  const std::vector<std::string> args{
      "run", "-p", policy, "--", program("fcntl_passthrough"), path("locked")};
  const RunResult r = faultline(args);
  EXPECT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_NE(r.err.find("ok\n"), std::string::npos) << describe(args, r);
}

}  // namespace
}  // namespace fltest
