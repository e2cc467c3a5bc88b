// The resilience patterns of resilience.h. Plain POSIX sockets, non-blocking with poll(2), so
// that every step of a request has a deadline: the pattern the timeout test proves.
#include "resilience.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace resilience {
namespace {

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

Failure failure_of(int error) {
  switch (error) {
    case ECONNREFUSED:
      return Failure::refused;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      return Failure::reset;
    case ETIMEDOUT:
      return Failure::timeout;
    default:
      return Failure::other;
  }
}

// Waits until fd is ready for `events` or the deadline passes. False on timeout.
bool wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return true;  // let the next call report the error
  }
}

struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) close(fd);
  }
};

bool retryable(const Attempt& attempt) {
  if (attempt.failure == Failure::dns) return attempt.error == EAI_AGAIN;  // NONAME is final
  return attempt.failure != Failure::none && attempt.failure != Failure::other;
}

}  // namespace

const char* to_string(Failure failure) {
  switch (failure) {
    case Failure::none:
      return "none";
    case Failure::timeout:
      return "timeout";
    case Failure::refused:
      return "refused";
    case Failure::reset:
      return "reset";
    case Failure::dns:
      return "dns";
    case Failure::circuit_open:
      return "circuit_open";
    case Failure::other:
      return "other";
  }
  return "?";
}

const char* to_string(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::closed:
      return "closed";
    case CircuitBreaker::State::open:
      return "open";
    case CircuitBreaker::State::half_open:
      return "half_open";
  }
  return "?";
}

const char* to_string(Reply::Source source) {
  switch (source) {
    case Reply::Source::server:
      return "server";
    case Reply::Source::cached:
      return "cached";
    case Reply::Source::fallback:
      return "fallback";
    case Reply::Source::none:
      return "none";
  }
  return "?";
}

Attempt request_once(const Endpoint& endpoint, const std::string& request, Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  Attempt attempt;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint.port);
  if (const int rc = getaddrinfo(endpoint.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    attempt.failure = Failure::dns;
    attempt.error = rc;
    return attempt;
  }
  Socket s;
  s.fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = s.fd < 0 ? -1 : connect(s.fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (rc != 0 && errno != EINPROGRESS) {
    attempt.failure = failure_of(errno);
    attempt.error = errno;
    return attempt;
  }
  if (rc != 0) {
    // A partitioned peer never answers the SYN: the deadline is what ends the wait.
    if (!wait_ready(s.fd, POLLOUT, deadline)) {
      attempt.failure = Failure::timeout;
      return attempt;
    }
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) {
      attempt.failure = failure_of(error);
      attempt.error = error;
      return attempt;
    }
  }
  const std::string line = request + "\n";
  for (std::size_t sent = 0; sent < line.size();) {
    if (!wait_ready(s.fd, POLLOUT, deadline)) {
      attempt.failure = Failure::timeout;
      return attempt;
    }
    const ssize_t n = send(s.fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {
      attempt.failure = failure_of(errno);
      attempt.error = errno;
      return attempt;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  while (reply.find('\n') == std::string::npos) {
    if (!wait_ready(s.fd, POLLIN, deadline)) {
      attempt.failure = Failure::timeout;
      return attempt;
    }
    char buffer[512];
    const ssize_t n = recv(s.fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {  // an error, or the server closed before the whole reply
      attempt.failure = n == 0 ? Failure::reset : failure_of(errno);
      attempt.error = n == 0 ? 0 : errno;
      return attempt;
    }
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  attempt.reply = reply.substr(0, reply.find('\n'));
  return attempt;
}

Millis Backoff::next() {
  const Millis now = next_;
  next_ = std::min(next_ * 2, max_);
  return now;
}

bool CircuitBreaker::allow() {
  if (state_ == State::closed) return true;
  if (state_ == State::half_open) return false;  // the probe is in flight
  if (Clock::now() - opened_at_ < cooldown_) return false;
  move_to(State::half_open);
  return true;
}

void CircuitBreaker::record_success() {
  failures_ = 0;
  if (state_ != State::closed) move_to(State::closed);
}

void CircuitBreaker::record_failure() {
  if (state_ == State::half_open || (threshold_ > 0 && ++failures_ >= threshold_)) {
    opened_at_ = Clock::now();
    failures_ = 0;
    ++opened_;
    move_to(State::open);
  }
}

void CircuitBreaker::move_to(State next) {
  const State from = state_;
  state_ = next;
  if (on_transition) on_transition(from, next);
}

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      breaker_(options_.breaker_threshold, options_.breaker_cooldown) {}

Reply Client::answer_without_server(Failure failure, int attempts) {
  Reply reply;
  reply.failure = failure;
  reply.attempts = attempts;
  if (const auto cached = last_good_.find(current_key_); cached != last_good_.end()) {
    reply.ok = true;
    reply.value = cached->second;
    reply.source = Reply::Source::cached;
    ++stats_.from_cache;
  } else if (options_.fallback) {
    reply.ok = true;
    reply.value = *options_.fallback;
    reply.source = Reply::Source::fallback;
    ++stats_.from_fallback;
  } else {
    ++stats_.failed;
  }
  return reply;
}

Reply Client::get(const std::string& key) {
  ++stats_.calls;
  current_key_ = key;
  if (!breaker_.allow()) {
    ++stats_.short_circuited;
    return answer_without_server(Failure::circuit_open, 0);
  }
  Backoff backoff(options_.backoff_initial, options_.backoff_max);
  Attempt attempt;
  int attempts = 0;
  while (attempts < std::max(1, options_.max_attempts)) {
    if (attempts > 0) std::this_thread::sleep_for(backoff.next());
    ++attempts;
    ++stats_.attempts;
    attempt = request_once(options_.endpoint, "GET " + key, options_.timeout);
    switch (attempt.failure) {
      case Failure::none:
        break;
      case Failure::timeout:
        ++stats_.timeouts;
        break;
      case Failure::refused:
        ++stats_.refused;
        break;
      case Failure::reset:
        ++stats_.resets;
        break;
      case Failure::dns:
        ++stats_.dns;
        break;
      default:
        ++stats_.other;
    }
    if (!retryable(attempt)) break;
  }
  const std::string prefix = "VALUE " + key + " ";
  if (attempt.failure == Failure::none && attempt.reply.rfind(prefix, 0) == 0) {
    breaker_.record_success();
    Reply reply;
    reply.ok = true;
    reply.value = attempt.reply.substr(prefix.size());
    reply.source = Reply::Source::server;
    reply.attempts = attempts;
    last_good_[key] = reply.value;
    ++stats_.ok;
    return reply;
  }
  if (attempt.failure == Failure::none) attempt.failure = Failure::other;  // a reply we cannot use
  breaker_.record_failure();
  return answer_without_server(attempt.failure, attempts);
}

}  // namespace resilience
