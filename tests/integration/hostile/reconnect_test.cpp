// The `addr` selector remembers a connected stream socket's peer (no getpeername per call).
// A socket disconnected with connect(AF_UNSPEC) and connected elsewhere while no @net fault is
// armed must not keep the old peer: a fault armed afterwards judges the peer it talks to now.
// fl_reconnect (tests/programs/hostile/reconnect.c) connects one fd to A, then to B.
#include <gtest/gtest.h>

#include <string>

#include "harness.h"

namespace fltest {
namespace {

TEST_F(IntegrationTest, HostileReconnectWhileDisarmedForgetsTheOldPeer) {
  const int port_a = free_port(), port_b = free_port();
  ASSERT_GT(port_a, 0);
  ASSERT_GT(port_b, 0);
  const std::string policy = path("cut-b.toml");
  ASSERT_TRUE(write_file(policy,
                         "version = 1\n[[fault]]\nname = \"cut-b\"\ncalls = [\"send\"]\n"
                         "addr = \"127.0.0.1:" +
                             std::to_string(port_b) + "\"\nerror = \"ECONNRESET\"\n"));
  const std::string name = session("recon");
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-q", "-s", name, "-p", policy, "--",
                             std::string(FL_PROGRAMS_DIR) + "/fl_reconnect", std::to_string(port_a),
                             std::to_string(port_b)}));
  auto next = [&] {
    EXPECT_TRUE(program.write_stdin("go\n"));
    return program.read_line(15s).value_or("<nothing>");
  };
  auto control = [&](const std::vector<std::string>& args) {
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
  };
  EXPECT_EQ(next(), "send A: ok") << program.err();  // armed: A's peer is remembered
  control({"disable", name, "cut-b"});
  EXPECT_EQ(next(), "reconnected") << program.err();  // AF_UNSPEC, then B, while disarmed
  control({"enable", name, "cut-b"});
  EXPECT_EQ(next(), "send B: Connection reset by peer") << program.err();
  const RunResult r = program.stop();
  EXPECT_EQ(r.status(), 0) << r.err;
}

}  // namespace
}  // namespace fltest
