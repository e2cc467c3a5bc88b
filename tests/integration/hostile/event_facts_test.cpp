// What an event says must be what decided, not what the session holds by the time the event is
// written. A fault decides a call, and the session is edited before the call's event is
// written (here: a crash after a read that waits for input; the same holds for a delay): the
// event must still name the fault that decided. Before, the event read the name from the fault
// slot's spec at emit time, and a removal followed by an add (which reuses the slot) made it
// name the new fault.
#include <string>
#include <thread>

#include "harness.h"

namespace fltest {
namespace {

using namespace std::chrono_literals;

const std::string kReadThenEvent = std::string(FL_PROGRAMS_DIR) + "/fl_read_then_event";

class HostileEventFactsTest : public IntegrationTest {};

TEST_F(HostileEventFactsTest, AnEventNamesTheFaultThatDecidedEvenWhenItsSlotWasReplaced) {
  const std::string log = path("events.jsonl");
  ASSERT_TRUE(write_file(path("policy.toml"), "version = 1\n[log]\npath = \"" + log + R"("

[[fault]]
name = "first"
calls = ["read"]
crash = "SIGKILL"
when = "after"
)"));
  ASSERT_TRUE(write_file(path("second.toml"), R"([[fault]]
name = "second"
calls = ["read"]
error = "EIO"
)"));
  const std::string name = session("facts");
  Background child;
  ASSERT_TRUE(
      child.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", kReadThenEvent}));
  ASSERT_EQ(child.read_line(15s).value_or("<nothing>"), "holding") << child.err();
  // decide() counts the injection before the read runs: from then on the decision is made.
  bool decided = false;
  for (int i = 0; i < 400 && !decided; ++i) {
    decided =
        status_json_injected(faultline({"status", name, "--json"}).out, "first").value_or(0) == 1;
    if (!decided) std::this_thread::sleep_for(25ms);
  }
  ASSERT_TRUE(decided) << "the read was never decided";
  // The slot that decided now holds another fault (add reuses the first free slot).
  ASSERT_EQ(faultline({"remove", name, "first"}).status(), 0);
  ASSERT_EQ(faultline({"add", name, "-p", path("second.toml")}).status(), 0);
  ASSERT_TRUE(child.write_stdin("go\n"));
  const RunResult end = child.stop(15s);
  EXPECT_EQ(end.status(), 128 + 9) << "the decided crash did not happen: " << end.out << end.err;

  const auto text = read_file(log);
  ASSERT_TRUE(text.has_value()) << "no event log";
  const auto lines = split_lines(*text);
  ASSERT_EQ(lines.size(), 1u) << *text;
  EXPECT_NE(lines[0].find("\"fault\":\"first\""), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("second"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"call\":\"read\""), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace fltest
