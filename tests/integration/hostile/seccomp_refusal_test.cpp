// The seccomp backend where the kernel will not give it (docs/reliability.md, "The seccomp
// backend"): under a filter that already has a listener (fl_seccomp_listener, as a container
// runtime may install one) `faultline run --backend seccomp` must say what is wrong and what to
// do, exit 2, and never run the program unfaulted.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace fltest {
namespace {

class HostileSeccompTest : public IntegrationTest {};

TEST_F(HostileSeccompTest, AListenerAlreadyInstalledIsRefusedNotIgnored) {
  ASSERT_TRUE(write_file(path("p.toml"), R"(version = 1
[[fault]]
name = "s"
calls = ["fsync"]
error = "EIO"
)"));
  const std::string marker = path("marker");
  const std::vector<std::string> argv = {std::string(FL_PROGRAMS_DIR) + "/fl_seccomp_listener",
                                         cli(),
                                         "run",
                                         "--backend",
                                         "seccomp",
                                         "-p",
                                         path("p.toml"),
                                         "--",
                                         "/usr/bin/touch",
                                         marker};
  const RunResult r = run(argv);
  EXPECT_EQ(r.status(), 2) << describe(argv, r);
  EXPECT_NE(r.err.find("seccomp filter already installed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--backend preload"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(marker)) << "the program ran unfaulted\n" << describe(argv, r);

  // The preload is unaffected by the filter around it.
  const std::vector<std::string> preload = {std::string(FL_PROGRAMS_DIR) + "/fl_seccomp_listener",
                                            cli(),
                                            "run",
                                            "-p",
                                            path("p.toml"),
                                            "--",
                                            "/usr/bin/touch",
                                            marker};
  const RunResult p = run(preload);
  EXPECT_EQ(p.status(), 0) << describe(preload, p);
  EXPECT_TRUE(file_exists(marker));
}

}  // namespace
}  // namespace fltest
