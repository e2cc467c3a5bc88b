// faultline as a container image layer, proven without Docker: `cmake --install --component
// runtime` lays out the layer (bin/faultline, lib/faultline/libfaultline.so), which is copied
// into a minimal Debian root (tests/container/make_root.sh: debootstrap once, cached in the
// build tree) the way `COPY --from=build /out/ /` adds it to an image. A program of that root
// then runs under chroot with nothing but LD_PRELOAD, FAULTLINE_POLICY and FAULTLINE_SESSION
// in its environment; the fault is injected (the program says so), and the `faultline` inside
// the root — run the way `docker exec` runs it, in the same mount namespace — sees the
// session, counts the injections and disables the fault live.
//
// Like a container, the root gets its own /proc and a private tmpfs on /dev/shm, in a mount
// namespace (unshare) that dies with the test; `nsenter` + chroot is `docker exec`. Where no
// mount namespace can be made (root without CAP_SYS_ADMIN), the test runs in the plain chroot
// instead (its /dev/shm a directory). Without root there is no chroot: the test skips.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kShim = "/usr/lib/faultline/libfaultline.so";
constexpr const char* kPolicy = "/etc/faultline/policy.toml";

// The program: the root's own /bin/sh appending to a log every 50 ms (bounded: 400 times or
// until /tmp/stop exists), saying for each append whether it worked.
constexpr const char* kApp =
    "i=0; echo started; "
    "while [ $i -lt 400 ] && [ ! -e /tmp/stop ]; do "
    "  if echo tick >> /tmp/app.log; then echo ok; else echo fail; fi; "
    "  i=$((i+1)); sleep 0.05; "
    "done; echo done";

// Every file under `dir`, relative to it, sorted.
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       it != std::filesystem::recursive_directory_iterator(); it.increment(error))
    if (!it->is_directory()) files.push_back(std::filesystem::relative(it->path(), dir).string());
  std::sort(files.begin(), files.end());
  return files;
}

class ContainerLayerTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    if (geteuid() != 0) GTEST_SKIP() << "chroot needs root: the container layer is not tested";
    root_ = std::string(FAULTLINE_BINARY_DIR) + "/container-root";
    RunOptions slow;
    slow.timeout = std::chrono::seconds(900);  // a first debootstrap; then a no-op
    const RunResult made = run(
        {"/bin/bash", std::string(FAULTLINE_SOURCE_DIR) + "/tests/container/make_root.sh", root_},
        slow);
    ASSERT_EQ(made.status(), 0) << made.out << made.err;
    const auto how = read_file(root_ + "/.faultline-root");
    ASSERT_TRUE(how.has_value()) << "no root was built: " << made.err;
    std::cerr << "container root: " << *how;
  }

  // `docker exec`: the command in the root, in the root's mount namespace when it has one.
  std::vector<std::string> in_root(std::vector<std::string> command) const {
    std::vector<std::string> argv;
    if (holder_.running()) argv = {"/usr/bin/nsenter", "-t", std::to_string(holder_.pid()), "-m"};
    argv.insert(argv.end(), {"/usr/sbin/chroot", root_});
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }

  // A private mount namespace with the root's /proc and a tmpfs /dev/shm, held open by a
  // sleeping process; false when the kernel or our capabilities do not allow it.
  bool make_namespace(std::string& why) {
    const std::string script = "mount -t proc proc '" + root_ +
                               "/proc' && mount -t tmpfs -o "
                               "mode=1777 shm '" +
                               root_ +
                               "/dev/shm' && echo ready && exec "
                               "sleep 300";
    if (!holder_.start(
            {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script}))
      return false;
    if (holder_.read_line(std::chrono::seconds(10)).value_or("") == "ready") return true;
    why = holder_.stop(std::chrono::seconds(1)).err;
    return false;
  }

  std::string root_;
  Background holder_;
};

TEST_F(ContainerLayerTest, LayerInjectsAndIsSteeredFromInsideTheRoot) {
  // The layer: exactly the CLI and the shim, at the documented paths.
  const std::string layer = path("layer");
  RunOptions slow;
  slow.timeout = std::chrono::seconds(90);
  const RunResult install = run({CMAKE_COMMAND, "--install", FAULTLINE_BINARY_DIR, "--prefix",
                                 layer + "/usr", "--component", "runtime"},
                                slow);
  ASSERT_EQ(install.status(), 0) << install.out << install.err;
  EXPECT_EQ(files_under(layer),
            (std::vector<std::string>{"usr/bin/faultline", "usr/lib/faultline/libfaultline.so"}));

  // COPY --from=build /out/ / — and a policy, as an image would carry one.
  ASSERT_EQ(run({"/bin/cp", "-a", layer + "/.", root_ + "/"}).status(), 0);
  std::filesystem::create_directories(root_ + "/etc/faultline");
  ASSERT_TRUE(write_file(root_ + kPolicy, R"(version = 1
[[fault]]
name = "app-log"
calls = ["@open"]
path = "/tmp/app.log"
error = "EACCES"
)"));
  for (const char* stale : {"/tmp/stop", "/tmp/app.log", "/dev/shm/faultline.app"})
    std::filesystem::remove(root_ + stale);

  // FAULTLINE_TEST_NO_NAMESPACE=1 exercises the plain-chroot path on a machine that has both.
  std::string why = "FAULTLINE_TEST_NO_NAMESPACE is set";
  const char* plain = std::getenv("FAULTLINE_TEST_NO_NAMESPACE");
  if ((plain == nullptr || *plain == '\0') && make_namespace(why))
    std::cerr << "mount namespace: the root has its own /proc and a tmpfs /dev/shm\n";
  else
    std::cerr << "no mount namespace (" << why << "): running in the plain chroot\n";

  // The program of the root, with only the three variables.
  Background app;
  ASSERT_TRUE(app.start(in_root({"/usr/bin/env", "-i", std::string("LD_PRELOAD=") + kShim,
                                 std::string("FAULTLINE_POLICY=") + kPolicy,
                                 "FAULTLINE_SESSION=app", "/bin/sh", "-c", kApp})));
  ASSERT_EQ(app.read_line(std::chrono::seconds(15)).value_or(""), "started") << app.err();
  std::vector<std::string> lines;
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    const auto line = app.read_line(std::chrono::seconds(10));
    ASSERT_TRUE(line.has_value()) << "the program stopped: " << app.err();
    lines.push_back(*line);
    seen = *line == "fail";
  }
  ASSERT_TRUE(seen) << "the fault was never injected: " << app.err();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "ok"), 0) << "a write got through";
  EXPECT_NE(app.err().find("Permission denied"), std::string::npos) << app.err();

  // `docker exec CONTAINER faultline ...`: the root's faultline sees the session.
  const RunResult sessions = run(in_root({"/usr/bin/faultline", "sessions"}));
  ASSERT_EQ(sessions.status(), 0) << sessions.out << sessions.err;
  EXPECT_NE(sessions.out.find("app"), std::string::npos) << sessions.out;
  const RunResult status = run(in_root({"/usr/bin/faultline", "status", "app", "--json"}));
  ASSERT_EQ(status.status(), 0) << status.out << status.err;
  EXPECT_GE(status_json_injected(status.out, "app-log").value_or(0), 1u) << status.out;

  // With the container-wide variables inherited by the exec'd command, FAULTLINE_DISABLE=1
  // keeps the shim inert in the controller itself.
  const RunResult disable =
      run(in_root({"/usr/bin/env", "-i", std::string("LD_PRELOAD=") + kShim,
                   std::string("FAULTLINE_POLICY=") + kPolicy, "FAULTLINE_SESSION=app",
                   "FAULTLINE_DISABLE=1", "/usr/bin/faultline", "disable", "app-log"}));
  ASSERT_EQ(disable.status(), 0) << disable.out << disable.err;
  EXPECT_NE(disable.out.find("app-log disabled"), std::string::npos) << disable.out;

  // The program recovers without a restart.
  bool ok = false;
  for (int i = 0; i < 50 && !ok; ++i) {
    const auto line = app.read_line(std::chrono::seconds(10));
    ASSERT_TRUE(line.has_value()) << "the program stopped: " << app.err();
    lines.push_back(*line);
    ok = *line == "ok";
  }
  ASSERT_TRUE(ok) << "the program never recovered after the disable";
  const RunResult after = run(in_root({"/usr/bin/faultline", "status", "app", "--json"}));
  ASSERT_EQ(after.status(), 0) << after.out << after.err;
  const auto fails = static_cast<std::uint64_t>(std::count(lines.begin(), lines.end(), "fail"));
  EXPECT_EQ(status_json_injected(after.out, "app-log"), fails) << after.out;

  ASSERT_TRUE(write_file(root_ + "/tmp/stop", ""));
  bool done = false;
  const auto rest = app.read_until("done", done, std::chrono::seconds(10));
  EXPECT_TRUE(done);
  const RunResult ended = app.stop(std::chrono::seconds(5));
  EXPECT_EQ(ended.status(), 0) << ended.err;
  // Every append after the disable reached the file.
  const auto oks =
      std::count(lines.begin(), lines.end(), "ok") + std::count(rest.begin(), rest.end(), "ok");
  EXPECT_EQ(count_substr(read_file(root_ + "/tmp/app.log").value_or(""), "tick\n"),
            static_cast<std::size_t>(oks));
  std::filesystem::remove(root_ + "/dev/shm/faultline.app");  // the plain chroot's
}

}  // namespace
}  // namespace fltest
