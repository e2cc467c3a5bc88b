// What the seccomp backend's tests (seccomp_test.cpp, seccomp_fs_test.cpp) share: running a
// command under a policy written to a file, and stepping a live program that answers each
// "go" on its stdin with one "<call> N: <result>" line while the test edits its session.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {

class SeccompFixture : public IntegrationTest {
 protected:
  // `faultline run -p <policy> [extra...] -- command...`, the policy written to a fresh file.
  RunResult run_under(const std::string& policy, const std::vector<std::string>& command,
                      const std::vector<std::string>& extra = {}) {
    const std::string file = path("policy-" + std::to_string(++policies_) + ".toml");
    EXPECT_TRUE(write_file(file, policy));
    std::vector<std::string> args = {"run", "-p", file};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return faultline(args);
  }

  // `faultline run -s <session> -p <policy> [extra...] -- command...`, in the background.
  bool start_live(Background& program, const std::string& session, const std::string& policy,
                  const std::vector<std::string>& command,
                  const std::vector<std::string>& extra = {}) {
    const std::string file = path("live-" + std::to_string(++policies_) + ".toml");
    if (!write_file(file, policy)) return false;
    std::vector<std::string> args = {cli(), "run", "-s", session, "-p", file};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return program.start(args);
  }

  // A `faultline` command on the live session, which must succeed.
  void control(const std::vector<std::string>& args) {
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
  }

  // One step of `program`: "go" on its stdin, then the result of its next "<call> N: " line
  // ("ok" or the C library's strerror), or the whole line in <> when it is not that step's.
  std::string next_step(Background& program, const std::string& call) {
    using namespace std::chrono_literals;
    EXPECT_TRUE(program.write_stdin("go\n"));
    const auto line = program.read_line(15s);
    const std::string prefix = call + " " + std::to_string(steps_++) + ": ";
    if (!line || line->rfind(prefix, 0) != 0) return "<" + line.value_or("nothing") + ">";
    return line->substr(prefix.size());
  }

  int policies_ = 0;
  int steps_ = 0;
};

}  // namespace fltest
