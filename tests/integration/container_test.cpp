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

// The Kubernetes layout of examples/kubernetes (docs/kubernetes.md), without a cluster: the
// init container's `cp` puts faultline and libfaultline.so side by side in one directory (the
// emptyDir, /opt/faultline), the application starts with LD_PRELOAD from there, the policy
// from /etc/faultline (the ConfigMap) with its fault disarmed and the session named after
// the pod; `kubectl exec` runs /opt/faultline/faultline with the application's environment
// plus FAULTLINE_DISABLE=1 (as chaos.sh does) to arm the fault and to panic.
TEST_F(ContainerLayerTest, KubernetesLayoutIsArmedAndStoppedByExec) {
  const std::string layer = path("layer");
  RunOptions slow;
  slow.timeout = std::chrono::seconds(90);
  ASSERT_EQ(run({CMAKE_COMMAND, "--install", FAULTLINE_BINARY_DIR, "--prefix", layer + "/usr",
                 "--component", "runtime"},
                slow)
                .status(),
            0);
  const std::string opt = root_ + "/opt/faultline";
  std::filesystem::remove_all(opt);
  std::filesystem::create_directories(opt);
  ASSERT_EQ(run({"/bin/cp", layer + "/usr/bin/faultline",
                 layer + "/usr/lib/faultline/libfaultline.so", opt + "/"})
                .status(),
            0);
  std::filesystem::create_directories(root_ + "/etc/faultline");
  ASSERT_TRUE(write_file(root_ + "/etc/faultline/k8s.toml", R"(version = 1
[safety]
ttl = "10m"
[[fault]]
name = "app-log"
calls = ["@open"]
path = "/tmp/k8s.log"
error = "EACCES"
enabled = false
)"));
  for (const char* stale : {"/tmp/stop", "/tmp/k8s.log", "/dev/shm/faultline.checkout-7d9f-x2k"})
    std::filesystem::remove(root_ + stale);
  std::string why;
  if (!make_namespace(why)) GTEST_SKIP() << "no mount namespace for /proc and /dev/shm: " << why;

  const std::vector<std::string> pod_env = {"/usr/bin/env",
                                            "-i",
                                            "POD_NAME=checkout-7d9f-x2k",
                                            "LD_PRELOAD=/opt/faultline/libfaultline.so",
                                            "FAULTLINE_POLICY=/etc/faultline/k8s.toml",
                                            "FAULTLINE_SESSION=checkout-7d9f-x2k"};
  std::vector<std::string> app_argv = pod_env;
  app_argv.insert(app_argv.end(),
                  {"/bin/sh", "-c",
                   "i=0; echo started; "
                   "while [ $i -lt 400 ] && [ ! -e /tmp/stop ]; do "
                   "  if echo tick >> /tmp/k8s.log; then echo ok; else echo fail; fi; "
                   "  i=$((i+1)); sleep 0.05; "
                   "done; echo done"});
  Background app;
  ASSERT_TRUE(app.start(in_root(app_argv)));
  ASSERT_EQ(app.read_line(std::chrono::seconds(15)).value_or(""), "started") << app.err();
  ASSERT_EQ(app.read_line(std::chrono::seconds(10)).value_or(""), "ok") << "armed too early";

  // kubectl exec POD -- env FAULTLINE_DISABLE=1 /opt/faultline/faultline CMD POD ...
  auto exec = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = pod_env;
    argv.insert(argv.end(), {"FAULTLINE_DISABLE=1", "/opt/faultline/faultline"});
    argv.insert(argv.end(), args.begin(), args.end());
    return run(in_root(argv));
  };
  const RunResult enable = exec({"enable", "checkout-7d9f-x2k", "app-log"});
  ASSERT_EQ(enable.status(), 0) << enable.out << enable.err;
  auto wait_for = [&](const std::string& want) {
    for (int i = 0; i < 50; ++i) {
      const auto line = app.read_line(std::chrono::seconds(10));
      if (!line) return false;
      if (*line == want) return true;
    }
    return false;
  };
  EXPECT_TRUE(wait_for("fail")) << "the fault was never injected: " << app.err();
  const RunResult panic = exec({"panic", "checkout-7d9f-x2k"});
  ASSERT_EQ(panic.status(), 0) << panic.out << panic.err;
  EXPECT_TRUE(wait_for("ok")) << "the program never recovered after the panic";

  // The copied CLI finds the shim beside it (no FAULTLINE_SHIM): `run` injects with it.
  ASSERT_TRUE(write_file(root_ + "/tmp/k8s-run.toml",
                         "version = 1\n[[fault]]\nname = \"w\"\ncalls = [\"@open\"]\n"
                         "path = \"/tmp/k8s-run.log\"\nerror = \"EACCES\"\n"));
  const RunResult injected = run(in_root({"/usr/bin/env", "-i", "/opt/faultline/faultline", "run",
                                          "-q", "-p", "/tmp/k8s-run.toml", "--", "/bin/sh", "-c",
                                          "echo x >> /tmp/k8s-run.log || exit 5"}));
  EXPECT_EQ(injected.status(), 5) << injected.out << injected.err;

  ASSERT_TRUE(write_file(root_ + "/tmp/stop", ""));
  bool done = false;
  app.read_until("done", done, std::chrono::seconds(10));
  EXPECT_TRUE(done);
  app.stop(std::chrono::seconds(5));
  for (const char* file : {"/tmp/stop", "/tmp/k8s.log", "/tmp/k8s-run.toml", "/tmp/k8s-run.log"})
    std::filesystem::remove(root_ + file);
  std::filesystem::remove_all(opt);
}

// The Debian packages, as a user gets them: cpack builds faultline and faultline-dev from this
// tree, `dpkg -i` installs both into the root (their Depends met by the root's own libc6,
// libstdc++6, libgcc-s1 and libunwind8), the installed `faultline run` injects a fault into
// the root's /bin/sh, and a consumer compiles and links against faultline-dev both through
// pkg-config and through find_package(faultline), as C++17. lintian, when installed, finds no
// error in either package.
TEST_F(ContainerLayerTest, DebianPackagesInstallAndInject) {
  if (!file_exists(root_ + "/usr/bin/dpkg"))
    GTEST_SKIP() << "the root was built from host binaries: it has no dpkg";
  const RunResult unwind = run({"/usr/sbin/chroot", root_, "/usr/bin/dpkg", "-s", "libunwind8"});
  if (unwind.status() != 0)
    GTEST_SKIP() << "the root has no libunwind8 (make_root.sh could not download it)";

  const std::string packages = path("packages");
  RunOptions slow;
  slow.timeout = std::chrono::seconds(180);
  const RunResult cpack =
      run({CPACK_COMMAND, "--config", std::string(FAULTLINE_BINARY_DIR) + "/CPackConfig.cmake",
           "-B", packages},
          slow);
  ASSERT_EQ(cpack.status(), 0) << cpack.out << cpack.err;
  const std::string version = FAULTLINE_VERSION "-1";
  std::string arch = run({"/usr/bin/dpkg", "--print-architecture"}).out;
  arch.erase(arch.find_last_not_of('\n') + 1);
  const std::string main_deb = packages + "/faultline_" + version + "_" + arch + ".deb";
  const std::string dev_deb = packages + "/faultline-dev_" + version + "_" + arch + ".deb";
  ASSERT_TRUE(file_exists(main_deb)) << cpack.out;
  ASSERT_TRUE(file_exists(dev_deb)) << cpack.out;

  // What the packages declare and hold.
  const RunResult depends = run({"/usr/bin/dpkg-deb", "-f", main_deb, "Depends"});
  for (const char* dep : {"libunwind8", "libc6", "libstdc++6"})
    EXPECT_NE(depends.out.find(dep), std::string::npos) << depends.out;
  const RunResult dev_depends = run({"/usr/bin/dpkg-deb", "-f", dev_deb, "Depends"});
  EXPECT_NE(dev_depends.out.find("faultline (= " + version + ")"), std::string::npos)
      << dev_depends.out;
  const RunResult dev_files = run({"/usr/bin/dpkg-deb", "-c", dev_deb});
  EXPECT_NE(dev_files.out.find("/usr/include/faultline/faultline.hpp"), std::string::npos);
  for (const char* internal : {"seqlock.h", "glob.h", "control_block.h"})
    EXPECT_EQ(dev_files.out.find(internal), std::string::npos) << internal << " is installed";
  if (file_exists("/usr/bin/lintian")) {
    RunOptions lint_options;
    lint_options.timeout = std::chrono::seconds(120);
    const RunResult lint = run({"/usr/bin/lintian", main_deb, dev_deb}, lint_options);
    EXPECT_EQ(lint.out.find("E: "), std::string::npos) << lint.out;
    std::cerr << "lintian:\n" << lint.out;
  }

  // dpkg -i, as in an image: `RUN dpkg -i faultline*.deb`.
  ASSERT_EQ(run({"/bin/cp", main_deb, dev_deb, root_ + "/tmp/"}).status(), 0);
  const std::string in_tmp = "/tmp/";
  const RunResult install = run({"/usr/sbin/chroot", root_, "/usr/bin/dpkg", "-i",
                                 in_tmp + std::filesystem::path(main_deb).filename().string(),
                                 in_tmp + std::filesystem::path(dev_deb).filename().string()},
                                slow);
  ASSERT_EQ(install.status(), 0) << install.out << install.err;
  struct Purge {
    std::string root;
    ~Purge() {
      run({"/usr/sbin/chroot", root, "/usr/bin/dpkg", "--purge", "faultline-dev", "faultline"});
    }
  } purge{root_};
  for (const char* file :
       {"/usr/bin/faultline", "/usr/lib/faultline/libfaultline.so",
        "/usr/share/man/man1/faultline.1.gz", "/usr/share/man/man5/faultline-policy.5.gz",
        "/usr/share/bash-completion/completions/faultline", "/usr/share/doc/faultline/copyright"})
    EXPECT_TRUE(file_exists(root_ + file)) << file;
  // Stripped: no .symtab left in the binaries.
  for (const char* binary : {"/usr/bin/faultline", "/usr/lib/faultline/libfaultline.so"}) {
    const RunResult sections = run({"/usr/bin/readelf", "-S", root_ + binary});
    EXPECT_EQ(sections.out.find(".symtab"), std::string::npos) << binary << " is not stripped";
  }

  // The installed `faultline run` finds the installed shim by itself (no FAULTLINE_SHIM) and
  // injects: the root's /bin/sh cannot append to its log. It needs /proc to find itself.
  std::string why;
  if (!make_namespace(why)) GTEST_SKIP() << "no mount namespace for /proc: " << why;
  ASSERT_TRUE(write_file(root_ + "/tmp/pkg-policy.toml", R"(version = 1
[[fault]]
name = "pkg-log"
calls = ["@open"]
path = "/tmp/pkg.log"
error = "EACCES"
)"));
  std::filesystem::remove(root_ + "/tmp/pkg.log");
  const RunResult faulted = run(
      in_root({"/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "/usr/bin/faultline", "run", "-p",
               "/tmp/pkg-policy.toml", "--", "/bin/sh", "-c",
               "if echo tick >> /tmp/pkg.log; then echo wrote; else echo refused; exit 3; fi"}));
  EXPECT_EQ(faulted.status(), 3) << faulted.out << faulted.err;
  EXPECT_EQ(faulted.out, "refused\n") << faulted.err;
  EXPECT_NE(faulted.err.find("Permission denied"), std::string::npos) << faulted.err;
  EXPECT_FALSE(file_exists(root_ + "/tmp/pkg.log"));

  // faultline-dev from the root's /usr: pkg-config (its paths relative to the .pc file) and
  // the CMake package, each compiling a consumer as C++17. The consumer starts /bin/sh under
  // a fault through the API and prints the libfaultline.so mapped into it and what the shell
  // said: each must preload the shim its package was installed with.
  const std::string consumer = path("consumer.cpp");
  ASSERT_TRUE(write_file(consumer, R"(#include <faultline/faultline.hpp>
#include <fstream>
#include <iostream>
#include <string>
int main() {
  faultline::Options options;
  options.command = {"/bin/sh", "-c", "echo hi > /dev/full; echo wrote $?; sleep 30"};
  options.policy = "version = 1\n[[fault]]\nname = \"full\"\ncalls = [\"write\"]\n"
                   "path = \"/dev/full\"\nerror = \"EIO\"\n";
  try {
    faultline::Session s(options);
    const std::string line = s.wait_for_line("wrote");
    std::ifstream maps("/proc/" + std::to_string(s.pid()) + "/maps");
    std::string map, shim;
    while (std::getline(maps, map))
      if (map.find("libfaultline.so") != std::string::npos) shim = map.substr(map.find('/'));
    s.stop(std::chrono::milliseconds(100));
    std::cout << "shim " << shim << "\n" << line << "\n" << s.stderr_text();
    std::cout << "injected " << s.counters("full").injected << "\n";
    return 0;
  } catch (const faultline::Error& e) {
    std::cerr << faultline::to_string(e.code()) << ": " << e.what() << "\n";
    return 2;
  }
}
)"));
  const std::string pc = run({"/usr/bin/find", root_ + "/usr/lib", "-name", "faultline.pc"}).out;
  ASSERT_FALSE(pc.empty()) << "no faultline.pc installed";
  const std::string pc_dir = std::filesystem::path(pc.substr(0, pc.find('\n'))).parent_path();
  RunOptions pkg_env;
  pkg_env.env = {{"PKG_CONFIG_LIBDIR", pc_dir}};
  pkg_env.timeout = std::chrono::seconds(120);
  const RunResult shim_var = run({"/usr/bin/pkg-config", "--variable=shim", "faultline"}, pkg_env);
  EXPECT_EQ(std::filesystem::weakly_canonical(shim_var.out.substr(0, shim_var.out.find('\n'))),
            std::filesystem::path(root_ + "/usr/lib/faultline/libfaultline.so"))
      << shim_var.out << shim_var.err;
  const RunResult built =
      run({"/bin/sh", "-c",
           "c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror " + consumer + " -o " + root_ +
               "/tmp/pc-consumer $(pkg-config --cflags --libs faultline)"},
          pkg_env);
  ASSERT_EQ(built.status(), 0) << built.out << built.err;
  // In the root, where pkg-config recorded no shim: the API finds the one of the installed
  // `faultline` on PATH (this tree's configured prefix, /usr/local, is not in the root).
  const RunResult pc_run =
      run(in_root({"/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "/tmp/pc-consumer"}));
  EXPECT_EQ(pc_run.status(), 0) << pc_run.out << pc_run.err;
  EXPECT_NE(pc_run.out.find("shim /usr/lib/faultline/libfaultline.so\n"), std::string::npos)
      << pc_run.out << pc_run.err;
  EXPECT_NE(pc_run.out.find("wrote 1\n"), std::string::npos) << pc_run.out;
  EXPECT_NE(pc_run.out.find("I/O error"), std::string::npos) << pc_run.out;  // dash's words
  EXPECT_NE(pc_run.out.find("injected 1\n"), std::string::npos) << pc_run.out;

  const std::string project = path("cmake-consumer");
  std::filesystem::create_directories(project);
  std::filesystem::copy_file(consumer, project + "/main.cpp");
  ASSERT_TRUE(write_file(project + "/CMakeLists.txt", R"(cmake_minimum_required(VERSION 3.20)
project(consumer CXX)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(faultline REQUIRED)
add_executable(consumer main.cpp)
target_link_libraries(consumer PRIVATE faultline::faultline)
file(WRITE ${CMAKE_BINARY_DIR}/shim.txt "${faultline_SHIM}")
)"));
  const RunResult configure =
      run({CMAKE_COMMAND, "-S", project, "-B", project + "/build",
           "-DCMAKE_PREFIX_PATH=" + root_ + "/usr", "-DCMAKE_BUILD_TYPE=Release"},
          slow);
  ASSERT_EQ(configure.status(), 0) << configure.out << configure.err;
  // The shim the package was installed with, wherever its prefix now is.
  const std::string root_shim =
      std::filesystem::weakly_canonical(root_ + "/usr/lib/faultline/libfaultline.so");
  EXPECT_EQ(std::filesystem::weakly_canonical(read_file(project + "/build/shim.txt").value_or("")),
            root_shim);
  const RunResult cmake_built = run({CMAKE_COMMAND, "--build", project + "/build"}, slow);
  ASSERT_EQ(cmake_built.status(), 0) << cmake_built.out << cmake_built.err;
  // Run on this host, it preloads the root's shim, which the CMake package recorded.
  const RunResult cmake_run = run({project + "/build/consumer"});
  EXPECT_EQ(cmake_run.status(), 0) << cmake_run.out << cmake_run.err;
  EXPECT_NE(cmake_run.out.find("shim " + root_shim + "\n"), std::string::npos) << cmake_run.out;
  EXPECT_NE(cmake_run.out.find("injected 1\n"), std::string::npos) << cmake_run.out;
}

}  // namespace
}  // namespace fltest
