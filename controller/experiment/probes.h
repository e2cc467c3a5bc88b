// The probes' and readiness checks' clients: a small HTTP/1.1 GET over a socket, a TCP
// connect, a command run to completion. Each is bounded by its own deadline (connect, send and
// every receive wait against the same clock), so a hung service costs a probe its timeout and
// never more, and never blocks another probe or the steps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace faultline::experiment {

struct ProbeOutcome {
  bool ok = false;
  std::string reason;  // why it failed ("timeout after 1s", "status 503", "connect: refused")
  int status = 0;      // http
};

// GET `url` (http://host[:port]/path). `expect_status` 0: any 2xx.
ProbeOutcome http_probe(const std::string& url, std::int64_t timeout_ns, int expect_status,
                        const std::string& body_contains);
ProbeOutcome tcp_probe(const std::string& host_port, std::int64_t timeout_ns);
// Exit 0 = ok; killed (its process group) at the timeout. Output goes to /dev/null.
ProbeOutcome command_probe(const std::vector<std::string>& argv, const std::string& cwd,
                           std::int64_t timeout_ns);

}  // namespace faultline::experiment
