// A small client library with the resilience patterns that chaos tests exist to prove:
//
//   request_once()   one request over a fresh TCP connection, every step bounded by a deadline
//                    (connect, send, receive): a partitioned peer costs `timeout`, not forever
//   Backoff          exponential backoff between retries, capped
//   CircuitBreaker   closed -> open after N consecutive failed calls; open rejects calls at
//                    once; after a cooldown one probe is let through (half-open): success
//                    closes it, failure opens it again
//   Client           the three together, plus a fallback: when a call fails for good (the
//                    name does not resolve, the breaker is open, retries ran out) it answers
//                    from the last good value it saw, or a configured default
//
// The protocol of the example server (server.cpp): the client sends "GET <key>\n", the server
// answers "VALUE <key> <value>\n". resilience_test.cpp proves each pattern under faults
// injected by faultline into the unmodified client.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace resilience {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Why an attempt or a call failed.
enum class Failure {
  none,
  timeout,       // a step did not finish before the deadline (a partition, a stalled server)
  refused,       // ECONNREFUSED: nothing listening
  reset,         // ECONNRESET/EPIPE, or the connection closed before the whole reply
  dns,           // the name did not resolve
  circuit_open,  // not attempted: the breaker is open
  other,         // any other error
};
const char* to_string(Failure failure);

struct Endpoint {
  std::string host;  // a name (resolved per attempt with getaddrinfo, IPv4) or an address
  std::uint16_t port = 0;
};

struct Attempt {
  Failure failure = Failure::none;
  int error = 0;      // errno, or the EAI_* code for Failure::dns
  std::string reply;  // the reply line without "\n" when failure == none
};
// Resolves, connects, sends `request` + "\n" and reads one reply line, all before `timeout`.
Attempt request_once(const Endpoint& endpoint, const std::string& request, Millis timeout);

class Backoff {
 public:
  Backoff(Millis initial, Millis max) : initial_(initial), max_(max), next_(initial) {}
  Millis next();  // initial, 2*initial, 4*initial ... capped at max
  void reset() { next_ = initial_; }

 private:
  Millis initial_, max_, next_;
};

class CircuitBreaker {
 public:
  enum class State { closed, open, half_open };
  // threshold 0: never opens.
  CircuitBreaker(int threshold, Millis cooldown) : threshold_(threshold), cooldown_(cooldown) {}
  // May a call go ahead? An open breaker becomes half-open once the cooldown has passed, and
  // lets exactly that one call (the probe) through.
  bool allow();
  void record_success();
  void record_failure();
  State state() const { return state_; }
  int times_opened() const { return opened_; }
  // Called on every change of state (for logs and tests).
  std::function<void(State from, State to)> on_transition;

 private:
  void move_to(State next);

  int threshold_;
  Millis cooldown_;
  State state_ = State::closed;
  int failures_ = 0;  // consecutive, while closed
  int opened_ = 0;
  Clock::time_point opened_at_{};
};
const char* to_string(CircuitBreaker::State state);

struct ClientOptions {
  Endpoint endpoint;
  Millis timeout{500};   // per attempt
  int max_attempts = 3;  // per call, the first included
  Millis backoff_initial{10};
  Millis backoff_max{200};
  int breaker_threshold = 3;  // consecutive failed calls that open the breaker; 0: no breaker
  Millis breaker_cooldown{200};
  std::optional<std::string> fallback;  // the default answer when nothing better is known
};

struct Reply {
  bool ok = false;
  std::string value;
  enum class Source { server, cached, fallback, none } source = Source::none;
  Failure failure = Failure::none;  // of the last attempt (or circuit_open)
  int attempts = 0;                 // connections tried for this call
};
const char* to_string(Reply::Source source);

// What the client did, per kind: every failed attempt counts once.
struct ClientStats {
  int calls = 0, ok = 0, failed = 0, from_cache = 0, from_fallback = 0;
  int attempts = 0, timeouts = 0, refused = 0, resets = 0, dns = 0, other = 0;
  int short_circuited = 0;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  Reply get(const std::string& key);
  CircuitBreaker& breaker() { return breaker_; }
  const ClientStats& stats() const { return stats_; }

 private:
  Reply answer_without_server(Failure failure, int attempts);

  ClientOptions options_;
  CircuitBreaker breaker_;
  ClientStats stats_;
  std::map<std::string, std::string> last_good_;
  std::string current_key_;
};

}  // namespace resilience
