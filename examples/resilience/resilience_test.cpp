// Chaos tests a user would copy: each resilience pattern of the example client, proven under
// faults that faultline injects into the unmodified client program, steered live through the
// C++ API (include/faultline/faultline.hpp). Every test checks two things: what the client
// itself reports (its per-call lines and its summary) and faultline's own counters, so a fault
// that never fired, or a client that swallowed an error, fails the test.
//
//   timeout      a partition (`blackhole`) on connect: the call fails after the client's own
//                timeout instead of hanging; lifting the partition live lets it recover
//   retry        30% of connects reset (`error = "ECONNRESET"`), or 30% of replies reset
//                mid-connection (`reset = true`): every call still succeeds, one retry per
//                injected fault
//   breaker      refused connects open the circuit; while it is open no connection is tried;
//                half-open probes fail until the fault is disabled live, then it closes
//   fallback     the name stops resolving (`EAI_AGAIN`, `EAI_NONAME`): answers come from the
//                last good value, or the configured default
#include <gtest/gtest.h>

#include <faultline/faultline.hpp>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

// The client's "summary key=value ..." line as numbers.
std::map<std::string, long> summary(const std::string& out) {
  std::map<std::string, long> fields;
  const auto at = out.rfind("summary ");
  if (at == std::string::npos) return fields;
  std::istringstream words(out.substr(at + 8, out.find('\n', at) - at - 8));
  for (std::string word; words >> word;)
    if (const auto eq = word.find('='); eq != std::string::npos)
      fields[word.substr(0, eq)] = std::stol(word.substr(eq + 1));
  return fields;
}

class ResilienceTest : public ::testing::Test {
 protected:
  // The service runs as a session too (no policy: nothing armed), which gives it readiness
  // by stdout line and by port, and a guaranteed stop.
  void SetUp() override {
    faultline::Options options;
    options.command = {RESILIENCE_SERVER};
    server_ = std::make_unique<faultline::Session>(options);
    port_ = std::stoi(server_->wait_for_match(std::regex(R"(listening on port (\d+))"))[1]);
    server_->wait_for_port(static_cast<std::uint16_t>(port_));
  }

  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

  // The client under a policy; `faults` are [[fault]] tables (seeded: the same run each time).
  faultline::Session client(const std::string& faults, std::vector<std::string> args) {
    faultline::Options options;
    options.command = {RESILIENCE_CLIENT, "--port", std::to_string(port_)};
    options.command.insert(options.command.end(), args.begin(), args.end());
    options.policy = "version = 1\nseed = 42\n" + faults;
    return faultline::Session(options);
  }

  std::unique_ptr<faultline::Session> server_;
  int port_ = 0;
};

TEST_F(ResilienceTest, TimeoutFiresUnderAPartition) {
  auto c = client(R"(
[[fault]]
name = "partition"
calls = ["connect"]
addr = ")" + addr() + R"("
blackhole = true
)",
                  {"--calls", "200", "--interval-ms", "20", "--timeout-ms", "300", "--attempts",
                   "1", "--breaker-threshold", "0", "--until-recovered"});
  // The call ends with the client's own timeout, not a hang and not another error.
  const std::string first = c.wait_for_line("call=1 ");
  EXPECT_NE(first.find("outcome=failed"), std::string::npos) << first;
  EXPECT_NE(first.find("failure=timeout"), std::string::npos) << first;
  EXPECT_GE(c.counters("partition").injected, 1u);

  c.disable("partition");  // the partition heals live
  c.wait_for_line("source=server");
  ASSERT_EQ(c.wait(10s), 0) << c.stdout_text() << c.stderr_text();

  const auto s = summary(c.stdout_text());
  const auto injected = static_cast<long>(c.counters("partition").injected);
  EXPECT_GE(s.at("timeouts"), 1);
  // One partitioned connect per timeout; a connect caught mid-wait by the heal completes.
  EXPECT_LE(s.at("timeouts"), injected);
  EXPECT_LE(injected, s.at("timeouts") + 1);
  EXPECT_EQ(s.at("refused") + s.at("resets") + s.at("other"), 0);
}

TEST_F(ResilienceTest, RetrySurvivesConnectResets) {
  auto c = client(R"(
[[fault]]
name = "flaky"
calls = ["connect"]
addr = ")" + addr() + R"("
error = "ECONNRESET"
probability = 0.3
)",
                  {"--calls", "20", "--attempts", "6", "--backoff-ms", "2", "--breaker-threshold",
                   "0"});
  ASSERT_EQ(c.wait(30s), 0) << c.stdout_text() << c.stderr_text();  // every call answered
  const auto s = summary(c.stdout_text());
  const auto flaky = c.counters("flaky");
  EXPECT_EQ(s.at("ok"), 20);
  EXPECT_GT(s.at("resets"), 0) << "the fault never fired: nothing was proven";
  EXPECT_EQ(static_cast<long>(flaky.injected), s.at("resets"));  // one retry per injection
  EXPECT_EQ(s.at("attempts"), 20 + s.at("resets"));
  EXPECT_EQ(static_cast<long>(flaky.matched), s.at("attempts"));  // every connect was a candidate
  for (const auto& e : c.events()) {
    EXPECT_EQ(e.call, "connect");
    EXPECT_EQ(e.error, "ECONNRESET");
    EXPECT_EQ(e.addr, addr());
  }
}

TEST_F(ResilienceTest, RetrySurvivesConnectionsResetMidReply) {
  auto c = client(R"(
[[fault]]
name = "rst"
calls = ["recv"]
addr = ")" + addr() + R"("
reset = true
probability = 0.3
)",
                  {"--calls", "20", "--attempts", "6", "--backoff-ms", "2", "--breaker-threshold",
                   "0"});
  ASSERT_EQ(c.wait(30s), 0) << c.stdout_text() << c.stderr_text();
  const auto s = summary(c.stdout_text());
  EXPECT_EQ(s.at("ok"), 20);
  EXPECT_GT(s.at("resets"), 0) << "the fault never fired: nothing was proven";
  EXPECT_EQ(static_cast<long>(c.counters("rst").injected), s.at("resets"));
}

TEST_F(ResilienceTest, CircuitOpensAndClosesAfterTheFaultIsDisabledLive) {
  auto c = client(R"(
[[fault]]
name = "refuse"
calls = ["connect"]
addr = ")" + addr() + R"("
error = "ECONNREFUSED"
)",
                  {"--calls", "400", "--interval-ms", "20", "--attempts", "1",
                   "--breaker-threshold", "3", "--breaker-cooldown-ms", "200",
                   "--until-recovered"});
  c.wait_for_line("breaker closed->open");
  EXPECT_GE(c.counters("refuse").injected, 3u);  // three refused calls opened it
  // While the fault holds, the half-open probe fails and the circuit opens again.
  c.wait_for_line("breaker open->half_open");
  c.wait_for_line("breaker half_open->open");

  c.disable("refuse");
  c.wait_for_line("breaker open->half_open");
  c.wait_for_line("breaker half_open->closed");
  ASSERT_EQ(c.wait(10s), 0) << c.stdout_text() << c.stderr_text();

  const auto s = summary(c.stdout_text());
  const auto refuse = c.counters("refuse");
  EXPECT_EQ(static_cast<long>(refuse.injected), s.at("refused"));
  // Calls made while the circuit was open never reached connect().
  EXPECT_GT(s.at("short_circuited"), 0);
  // While it was enabled, every connect was refused; the probe after the disable went through.
  EXPECT_EQ(refuse.seen, refuse.injected);
  EXPECT_GT(s.at("attempts"), s.at("refused"));
  EXPECT_GE(s.at("opened"), 2);
}

TEST_F(ResilienceTest, CachedAnswerWhenTheNameStopsResolving) {
  auto c = client(R"(
[[fault]]
name = "dns"
calls = ["getaddrinfo"]
host = "localhost"
error = "EAI_AGAIN"
enabled = false
)",
                  {"--host", "localhost", "--calls", "400", "--interval-ms", "20", "--attempts",
                   "2", "--breaker-threshold", "0", "--until-recovered"});
  c.wait_for_line("source=server");  // a good answer to remember
  c.enable("dns");
  const std::string degraded = c.wait_for_line("source=cached");
  EXPECT_NE(degraded.find("value=v-k"), std::string::npos) << degraded;
  EXPECT_NE(degraded.find("failure=dns"), std::string::npos) << degraded;
  EXPECT_NE(degraded.find("attempts=2"), std::string::npos) << degraded;  // EAI_AGAIN is retried
  c.disable("dns");
  c.wait_for_line("source=server");
  ASSERT_EQ(c.wait(10s), 0) << c.stdout_text() << c.stderr_text();

  const auto s = summary(c.stdout_text());
  EXPECT_GE(s.at("cached"), 1);
  EXPECT_EQ(static_cast<long>(c.counters("dns").injected), s.at("dns"));
  for (const auto& e : c.events()) {
    EXPECT_EQ(e.call, "getaddrinfo");
    EXPECT_EQ(e.host, "localhost");
    EXPECT_EQ(e.error, "EAI_AGAIN");
  }
}

TEST_F(ResilienceTest, DefaultAnswerWhenTheNameNeverResolves) {
  auto c = client(R"(
[[fault]]
name = "nxdomain"
calls = ["getaddrinfo"]
host = "localhost"
error = "EAI_NONAME"
)",
                  {"--host", "localhost", "--calls", "3", "--attempts", "3", "--fallback",
                   "default", "--breaker-threshold", "0"});
  ASSERT_EQ(c.wait(10s), 0) << c.stdout_text() << c.stderr_text();  // every call answered
  const std::string out = c.stdout_text();
  const auto s = summary(out);
  EXPECT_EQ(s.at("fallback"), 3) << out;
  EXPECT_EQ(s.at("ok"), 0) << out;
  // EAI_NONAME is final: one lookup per call, no retries.
  EXPECT_EQ(s.at("attempts"), 3) << out;
  EXPECT_NE(out.find("source=fallback value=default attempts=1 failure=dns"), std::string::npos)
      << out;
  EXPECT_EQ(c.counters("nxdomain").injected, 3u);
}

}  // namespace
