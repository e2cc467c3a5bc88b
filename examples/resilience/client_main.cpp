// resilient_client: drives resilience::Client against resilience_server and reports, one line
// per call, what the patterns did — the lines the chaos tests read:
//
//   call=4 outcome=ok source=cached value=v-k attempts=3 failure=dns breaker=closed
//   breaker closed->open
//   summary calls=20 ok=20 failed=0 cached=0 fallback=0 attempts=27 timeouts=0 refused=0
//           resets=7 dns=0 other=0 short_circuited=0 opened=0
//
// Options: --host H (default 127.0.0.1) --port P --key K --calls N (default 10)
// --interval-ms I (pause between calls, default 0) --timeout-ms T --attempts A --backoff-ms B
// --breaker-threshold K (0: no breaker) --breaker-cooldown-ms C --fallback VALUE
// --until-recovered: stop at the first answer from the server that follows a failure.
// Exit status 0: every call answered (or, with --until-recovered, the client recovered);
// 1 otherwise; 2 bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "resilience.h"

namespace {

int number(const char* text) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0) {
    std::fprintf(stderr, "resilient_client: '%s' is not a number\n", text);
    std::exit(2);
  }
  return static_cast<int>(value);
}

}  // namespace

int main(int argc, char** argv) {
  resilience::ClientOptions options;
  options.endpoint.host = "127.0.0.1";
  std::string key = "k";
  int calls = 10;
  int interval_ms = 0;
  bool until_recovered = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--until-recovered") {
      until_recovered = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "resilient_client: %s needs a value\n", arg.c_str());
      return 2;
    }
    const char* value = argv[++i];
    if (arg == "--host")
      options.endpoint.host = value;
    else if (arg == "--port")
      options.endpoint.port = static_cast<std::uint16_t>(number(value));
    else if (arg == "--key")
      key = value;
    else if (arg == "--calls")
      calls = number(value);
    else if (arg == "--interval-ms")
      interval_ms = number(value);
    else if (arg == "--timeout-ms")
      options.timeout = resilience::Millis(number(value));
    else if (arg == "--attempts")
      options.max_attempts = number(value);
    else if (arg == "--backoff-ms")
      options.backoff_initial = resilience::Millis(number(value));
    else if (arg == "--breaker-threshold")
      options.breaker_threshold = number(value);
    else if (arg == "--breaker-cooldown-ms")
      options.breaker_cooldown = resilience::Millis(number(value));
    else if (arg == "--fallback")
      options.fallback = value;
    else {
      std::fprintf(stderr, "resilient_client: unknown option %s\n", arg.c_str());
      return 2;
    }
  }

  resilience::Client client(options);
  client.breaker().on_transition = [](auto from, auto to) {
    std::printf("breaker %s->%s\n", resilience::to_string(from), resilience::to_string(to));
    std::fflush(stdout);
  };
  bool troubled = false, recovered = false, all_answered = true;
  for (int call = 1; call <= calls && !recovered; ++call) {
    if (call > 1 && interval_ms > 0) std::this_thread::sleep_for(resilience::Millis(interval_ms));
    const resilience::Reply reply = client.get(key);
    std::printf("call=%d outcome=%s source=%s value=%s attempts=%d failure=%s breaker=%s\n", call,
                reply.ok ? "ok" : "failed", resilience::to_string(reply.source),
                reply.ok ? reply.value.c_str() : "-", reply.attempts,
                resilience::to_string(reply.failure),
                resilience::to_string(client.breaker().state()));
    std::fflush(stdout);
    all_answered &= reply.ok;
    const bool from_server = reply.source == resilience::Reply::Source::server;
    if (!from_server || reply.attempts > 1) troubled = true;
    if (until_recovered && troubled && from_server) recovered = true;
  }
  const resilience::ClientStats& s = client.stats();
  std::printf(
      "summary calls=%d ok=%d failed=%d cached=%d fallback=%d attempts=%d timeouts=%d refused=%d "
      "resets=%d dns=%d other=%d short_circuited=%d opened=%d\n",
      s.calls, s.ok, s.failed, s.from_cache, s.from_fallback, s.attempts, s.timeouts, s.refused,
      s.resets, s.dns, s.other, s.short_circuited, client.breaker().times_opened());
  std::fflush(stdout);
  return (until_recovered ? recovered : all_answered) ? 0 : 1;
}
