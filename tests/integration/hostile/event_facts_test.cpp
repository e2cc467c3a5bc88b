// The event path and the @net armed path take what decide() and the selectors already know
// instead of asking again.
//
// What an event says must be what decided, not what the session holds by the time the event is
// written. A fault decides a call, and the session is edited before the call's event is
// written (here: a crash after a read that waits for input; the same holds for a delay): the
// event must still name the fault that decided. Before, the event read the name from the fault
// slot's spec at emit time, and a removal followed by an add (which reuses the slot) made it
// name the new fault.
//
// A @net fault with an `addr` selector that never matches costs a connected TCP socket no
// system call: the peer comes from connect and accept (before: a getpeername and a getsockopt
// at each socket's first call), the listener's own address (what accept's `addr` matches) is
// asked once (before: a getsockname per accept), and no socket call adds one (counted with
// strace -f -c: 10 and 510 round trips on one connection, 10 on each of 11).
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

using namespace std::chrono_literals;

const std::string kReadThenEvent = std::string(FL_PROGRAMS_DIR) + "/fl_read_then_event";
const std::string kPeerSyscalls = std::string(FL_PROGRAMS_DIR) + "/fl_peer_syscalls";

class HostileEventFactsTest : public IntegrationTest {
 protected:
  // strace -c's table as syscall -> calls ("% time seconds usecs/call calls [errors] syscall").
  static std::map<std::string, long> syscall_counts(const std::string& table) {
    std::map<std::string, long> counts;
    for (const std::string& line : split_lines(table)) {
      std::istringstream in(line);
      std::vector<std::string> words;
      for (std::string w; in >> w;) words.push_back(w);
      if (words.size() < 5 || words.back() == "total" || words.back() == "syscall") continue;
      if (words[0].find_first_not_of("0123456789.") != std::string::npos) continue;
      counts[words.back()] = std::stol(words[3]);
    }
    return counts;
  }
};

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

TEST_F(HostileEventFactsTest, ANonFiringAddrFaultAddsNoSystemCallToAConnectedTcpSocket) {
  std::string strace;
  for (const char* candidate : {"/usr/bin/strace", "/bin/strace"})
    if (access(candidate, X_OK) == 0) strace = candidate;
  if (strace.empty()) GTEST_SKIP() << "strace is not installed (scripts/deps.sh)";
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "elsewhere"
calls = ["@net"]
addr = "127.0.0.1:1"
error = "ECONNRESET"
)"));
  // 10 round trips on one connection; 510 on one; 10 on each of 11 connections.
  const std::vector<std::string> runs[3] = {{"10", "1"}, {"510", "1"}, {"10", "11"}};
  std::map<std::string, long> counts[3];
  for (int i = 0; i < 3; ++i) {
    const std::string table = path("strace." + std::to_string(i));
    const RunResult r = faultline({"run", "-q", "-p", path("policy.toml"), "--", strace, "-f", "-c",
                                   "-o", table, kPeerSyscalls, runs[i][0], runs[i][1]});
    if (r.err.find("Operation not permitted") != std::string::npos)
      GTEST_SKIP() << "ptrace is not allowed here: " << r.err;
    ASSERT_EQ(r.status(), 0) << r.out << r.err;
    ASSERT_EQ(r.out, "ok " + runs[i][0] + "\n") << r.err;
    counts[i] = syscall_counts(read_file(table).value_or(""));
    ASSERT_GT(counts[i]["write"], 20) << read_file(table).value_or("no strace table");
    // The peer of every socket came with connect and accept: never asked for.
    EXPECT_EQ(counts[i].count("getpeername"), 0u) << read_file(table).value_or("");
    EXPECT_EQ(counts[i].count("getsockopt"), 0u) << read_file(table).value_or("");
  }
  // 2,000 more socket calls: 1,000 more reads and writes each way, and nothing else.
  EXPECT_EQ(counts[1]["write"] - counts[0]["write"], 1000);
  EXPECT_EQ(counts[1]["read"] - counts[0]["read"], 1000);
  for (const auto& [name, calls] : counts[1]) {
    if (name == "read" || name == "write") continue;
    EXPECT_LT(calls - counts[0][name], 100) << name << " grows with the socket calls";
  }
  // 10 more connections: the listener's address, learned at the first accept, is not asked
  // for again (the program's own getsockname and listen's stay).
  EXPECT_EQ(counts[2]["getsockname"], counts[0]["getsockname"]);
  EXPECT_EQ(counts[2]["accept"], counts[0]["accept"] + 10);
}

}  // namespace
}  // namespace fltest
