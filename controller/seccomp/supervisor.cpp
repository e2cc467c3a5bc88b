// The notification loop of the seccomp backend (supervisor.h).
#include "controller/seccomp/supervisor.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "policy/seccomp_filter.h"
#include "session/session.h"
#include "shim/engine/engine.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/shim.h"

namespace faultline::seccomp {
namespace {

constexpr std::size_t kPathMax = 4096;
constexpr std::size_t kMaxHeld = 4096;  // held calls; each is a blocked thread of the program
constexpr std::int64_t kCrashGraceNs = 2'000'000'000;
constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (linux/pidfd.h, Linux 6.9)
// A blocking connect a blackhole holds gives up after the fault's `timeout`, by default this
// (shim/engine/net_core.h's kDefaultConnectTimeoutNs); a blocking receive without SO_RCVTIMEO waits
// as long as the partition lasts.
constexpr std::int64_t kDefaultConnectNs = 20'000'000'000;
constexpr std::int64_t kForeverNs = std::int64_t{1} << 60;
// The most bytes one short or corrupt call moves (a larger one transfers this much: a partial
// write or read, which the kernel may answer too).
constexpr std::uint64_t kMaxTransfer = 64u << 20;

void on_wake(int) {}
int wake_signal() { return SIGRTMIN + 4; }

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// How a decided call is answered (deliver()): the answer alone, or an action the supervisor
// performs on the program's socket (through the duplicate `fd`) before answering.
enum class Kind : std::uint8_t {
  kAnswer,            // `error` (0: the call continues)
  kValue,             // the call returns `value` without running (lie, a blackholed send)
  kCrash,             // crash before the call
  kReset,             // reset on a data call: RST, then ECONNRESET (ECONNREFUSED: datagram)
  kResetConnect,      // reset on connect
  kResetAccept,       // reset on accept: a connection accepted here, aborted, given to it
  kEof,               // eof on a receive: both ways shut, 0
  kBlackholeConnect,  // blackhole on a blocking connect, at its deadline
  kBlackholeReceive,  // blackhole on a blocking receive, at SO_RCVTIMEO: EAGAIN
  kTransfer,          // short or corrupt: the call performed here on the program's behalf
};

// A call answered later: after a delay or latency (error 0: it continues), or a crash; or
// an action on the program's socket, now or at its deadline.
struct Held {
  std::int64_t deadline_ns;
  std::uint64_t id;
  int error;
  int fault;
  int crash_signal;  // 0: none
  pid_t tgid;
  pid_t tid;
  Kind kind = Kind::kAnswer;
  int fd = -1;                 // the duplicate the action works on (closed once answered)
  std::int64_t value = 0;      // kValue
  std::uint64_t args[6] = {};  // the call's arguments (accept's address, its flags)
  bool to_tarpit = false;      // kBlackholeConnect: non-blocking, or SO_SNDTIMEO ended it
  // kTransfer: the system call, the program's buffers, what to do to the bytes, and a send's
  // destination (sendto's, or sendmsg's msg_name).
  int nr = 0;
  std::vector<iovec> buffers;
  shim::Decision decision{};
  sockaddr_storage to{};
  socklen_t to_len = 0;
};

// A crashed process that caught the signal: ended the way crash_now ends it in the shim.
struct Watch {
  std::int64_t deadline_ns;
  pid_t tgid;
  std::uint64_t start_time;
};

bool respond(int listener, std::uint64_t id, int error) {
  seccomp_notif_resp resp{};
  resp.id = id;
  if (error != 0) {
    resp.error = -error;
  } else {
    resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  }
  // ENOENT: the notification was cancelled (the thread died, or a signal interrupted it before
  // we took it); nothing to answer.
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0;
}

// The call returns `value` without running.
bool respond_value(int listener, std::uint64_t id, std::int64_t value) {
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.val = value;
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0;
}

bool id_valid(int listener, std::uint64_t id) {
  return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

// Reads the program's memory; false unless all `size` bytes were read.
bool read_remote(pid_t tid, std::uint64_t address, void* out, std::size_t size) {
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  return process_vm_readv(tid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

// A NUL-terminated string of the program's, page by page (a string that ends just before an
// unmapped page is read, as the kernel reads it); false when unreadable or too long.
bool read_remote_string(pid_t tid, std::uint64_t address, char* out, std::size_t cap) {
  std::size_t done = 0;
  while (done < cap) {
    const std::uint64_t at = address + done;
    const std::size_t page_left = 4096 - (at % 4096);
    const std::size_t chunk = std::min(page_left, cap - done);
    iovec local{out + done, chunk};
    iovec remote{reinterpret_cast<void*>(at), chunk};
    const ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
    if (n <= 0) return false;
    if (std::memchr(out + done, '\0', static_cast<std::size_t>(n)) != nullptr) return true;
    done += static_cast<std::size_t>(n);
  }
  return false;
}

std::string read_link(const std::string& path) {
  char buf[kPathMax];
  const ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// `path` of thread `tid`, relative to its working directory or `dirfd`, made absolute into
// `out`, as the shim makes a path absolute for globs.
void make_absolute(pid_t tid, int dirfd, const char* path, char* out, std::size_t cap) {
  std::string base;
  if (path[0] != '/')
    base = read_link(dirfd == AT_FDCWD
                         ? "/proc/" + std::to_string(tid) + "/cwd"
                         : "/proc/" + std::to_string(tid) + "/fd/" + std::to_string(dirfd));
  std::snprintf(out, cap, "%s%s%s", base.c_str(), base.empty() ? "" : "/", path);
}

// /proc/ID/comm without its newline; "" when gone.
std::string read_comm(pid_t id) {
  char buf[32] = {};
  const int fd = open(("/proc/" + std::to_string(id) + "/comm").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return "";
  std::string comm(buf, static_cast<std::size_t>(n));
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return comm;
}

pid_t read_tgid(pid_t tid) {
  char buf[512];
  const int fd = open(("/proc/" + std::to_string(tid) + "/status").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = std::strstr(buf, "\nTgid:");
  return at ? static_cast<pid_t>(std::atoi(at + 6)) : -1;
}

int sock_option(int fd, int option) {
  int value = -1;
  socklen_t size = sizeof value;
  return getsockopt(fd, SOL_SOCKET, option, &value, &size) == 0 ? value : -1;
}

bool is_inet(int fd) {
  const int domain = sock_option(fd, SO_DOMAIN);
  return domain == AF_INET || domain == AF_INET6;
}

bool nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK);
}

std::int64_t sock_timeout_ns(int fd, int option) {
  timeval tv{};
  socklen_t size = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, option, &tv, &size) != 0) return 0;
  return std::int64_t{tv.tv_sec} * 1'000'000'000 + std::int64_t{tv.tv_usec} * 1'000;
}

bool is_receive(int nr) {
  return nr == SYS_read || nr == SYS_readv || nr == SYS_recvfrom || nr == SYS_recvmsg;
}
bool is_send(int nr) {
  return nr == SYS_write || nr == SYS_writev || nr == SYS_sendto || nr == SYS_sendmsg;
}

// Aborts the connection of stream socket `fd` (the program's, through its duplicate: the same
// socket). TCP: connect(AF_UNSPEC) is tcp_disconnect, which sends the peer a RST from an
// established connection (and from SYN_SENT leaves ECONNRESET pending without one); the error
// it leaves is taken here, and both ways are shut so that the program's poll reports the end
// and a later send fails EPIPE, as after a reset the peer sent. A unix stream socket cannot
// send a RST: shut down, the peer reads end-of-file (what the shim does too).
void abort_stream(int fd) {
  if (is_inet(fd)) {
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    connect(fd, &unspec, sizeof unspec);
    sock_option(fd, SO_ERROR);
  }
  shutdown(fd, SHUT_RDWR);  // ENOTCONN once disconnected, but the shutdown bits are set
}

// connect() that never blocks, whatever the socket's mode: O_NONBLOCK lives in the open file
// description the program shares with the duplicate, so it is set only around the call.
int connect_nonblocking(int fd, const sockaddr* to, socklen_t len) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  const int r = connect(fd, to, len);
  const int err = errno;
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags);
  errno = err;
  return r;
}

// The tarpit: a loopback listener of the supervisor whose accept queue is full (listen(0)
// leaves room for one connection, its own filler's), so the kernel drops every further SYN
// (tcp_conn_request: sk_acceptq_is_full). A socket connected to it stays in SYN_SENT, really
// sending SYNs nobody answers, until its program gives up or the kernel does (ETIMEDOUT after
// tcp_syn_retries). The shim's tarpit (shim/net_core.cpp), made here in `faultline run`.
struct Tarpit {
  int fd = -1;
  int filler = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool tried = false;
};

bool make_tarpit(Tarpit& t, int family) {
  t.tried = true;
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  std::memset(&t.addr, 0, sizeof t.addr);
  if (family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    t.len = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&t.addr);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t.len = sizeof(sockaddr_in);
  }
  auto* sa = reinterpret_cast<sockaddr*>(&t.addr);
  const int filler = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (filler < 0 || bind(fd, sa, t.len) != 0 || getsockname(fd, sa, &t.len) != 0 ||
      listen(fd, 0) != 0 || connect(filler, sa, t.len) != 0) {
    if (filler >= 0) close(filler);
    close(fd);
    return false;
  }
  t.fd = fd;
  t.filler = filler;
  return true;
}

class Server {
 public:
  Server(int listener, ControlBlock& block, pid_t child) : listener_(listener), block_(block) {
    set_identity(child);
  }

  void handle(const seccomp_notif& req);
  // Answers what is due (and what panic, the TTL or a disabled fault released); returns how
  // long the loop may sleep, in milliseconds.
  int serve_held();
  void release_all() {
    for (Held& h : held_) {
      respond(listener_, h.id, 0);
      close_fd(h);
    }
    held_.clear();
  }
  ~Server() {
    for (Tarpit* t : {&tarpit4_, &tarpit6_})
      if (t->fd >= 0) {
        close(t->filler);
        close(t->fd);
      }
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

 private:
  // What a reset or eof left on a socket: later receives are answered so (ECONNRESET, 0), as
  // the shim answers them (its socket table), by the socket's identity (sockfs device and
  // inode: a number of the program's may be reused, the socket's inode is not while it lives).
  enum class Mark : std::uint8_t { kReset, kEof };
  struct Marked {
    dev_t dev;
    ino_t ino;
    Mark mark;
  };
  static constexpr std::size_t kMaxMarks = 4096;
  void mark(int fd, Mark m) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return;
    for (Marked& e : marks_)
      if (e.dev == st.st_dev && e.ino == st.st_ino) {
        e.mark = m;
        return;
      }
    if (marks_.size() >= kMaxMarks) marks_.erase(marks_.begin());  // the oldest
    marks_.push_back(Marked{st.st_dev, st.st_ino, m});
  }
  // The mark of socket `fd`; `forget` removes it (a new connect: a new connection).
  const Marked* marked(int fd, bool forget = false) {
    if (marks_.empty()) return nullptr;
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return nullptr;
    for (std::size_t i = 0; i < marks_.size(); ++i)
      if (marks_[i].dev == st.st_dev && marks_[i].ino == st.st_ino) {
        if (!forget) return &marks_[i];
        marks_.erase(marks_.begin() + static_cast<std::ptrdiff_t>(i));
        return nullptr;
      }
    return nullptr;
  }
  // Connects the program's TCP socket to the tarpit, without blocking: false when no tarpit
  // can be made for its family (an IPv6 socket without IPv6 loopback uses the IPv4 one,
  // v4-mapped, as the shim does).
  bool connect_tarpit(int fd) {
    const int domain = sock_option(fd, SO_DOMAIN);
    sockaddr_storage to{};
    socklen_t len = 0;
    if (domain == AF_INET6) {
      if (!tarpit6_.tried) make_tarpit(tarpit6_, AF_INET6);
      if (tarpit6_.fd >= 0) {
        to = tarpit6_.addr;
        len = tarpit6_.len;
      }
    }
    if (len == 0) {
      if (!tarpit4_.tried) make_tarpit(tarpit4_, AF_INET);
      if (tarpit4_.fd < 0) return false;
      to = tarpit4_.addr;
      len = tarpit4_.len;
      if (domain == AF_INET6) {
        const auto in = *reinterpret_cast<const sockaddr_in*>(&tarpit4_.addr);
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&to);
        std::memset(&to, 0, sizeof to);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = in.sin_port;
        in6->sin6_addr.s6_addr[10] = 0xff;
        in6->sin6_addr.s6_addr[11] = 0xff;
        std::memcpy(in6->sin6_addr.s6_addr + 12, &in.sin_addr, 4);
        len = sizeof(sockaddr_in6);
      }
    }
    const int r = connect_nonblocking(fd, reinterpret_cast<const sockaddr*>(&to), len);
    return r == 0 || errno == EINPROGRESS;
  }
  void close_fd(Held& h) {
    if (h.fd < 0) return;
    shim::fd_invalidate(h.fd);  // its number is reused by the next duplicate
    close(h.fd);
    h.fd = -1;
  }
  // Answers `h` as its kind says; false when it stays held (an accept with nothing to accept
  // yet: its deadline moved on).
  bool deliver(Held& h);
  bool accept_reset(Held& h);
  bool transfer(Held& h);

  // The program's descriptor `fd`, duplicated here: -1 when it is not open (the kernel then
  // fails the call itself). Through a pidfd of the calling thread itself (PIDFD_THREAD, Linux
  // 6.9), opened for this call: a cache keyed by pid could name a process that reused a dead
  // one's number. Older kernels: the thread's process, read afresh.
  int take_fd(pid_t tid, int fd) {
    int pidfd = -1;
    if (thread_pidfds_) {
      pidfd = static_cast<int>(syscall(SYS_pidfd_open, tid, kPidfdThread));
      if (pidfd < 0 && errno == EINVAL) thread_pidfds_ = false;
    }
    if (!thread_pidfds_) {
      const pid_t tgid = read_tgid(tid);
      if (tgid > 0) pidfd = static_cast<int>(syscall(SYS_pidfd_open, tgid, 0));
    }
    if (pidfd < 0) return -1;
    const int local = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    close(pidfd);
    return local;
  }
  void set_identity(pid_t tgid) {
    const std::string comm = read_comm(tgid);
    if (comm.empty()) return;
    shim::engine_set_process_identity(comm.c_str(),
                                      read_link("/proc/" + std::to_string(tgid) + "/exe").c_str());
  }
  // Which selectors need the caller's identity, re-read when the faults change.
  void refresh_needs() {
    const std::uint64_t generation = block_.header.generation.load(std::memory_order_acquire);
    if (generation == needs_generation_) return;
    needs_generation_ = generation;
    needs_process_ = needs_thread_ = false;
    for (const FaultSlot& slot : block_.faults) {
      if (slot.state.load(std::memory_order_acquire) != kSlotUsed) continue;
      const FaultSpec spec = read_fault_spec(slot);
      needs_process_ |= spec.process[0] != '\0';
      needs_thread_ |= spec.thread[0] != '\0';
    }
  }
  void crash(const Held& h);
  bool session_off() const {
    if (block_.header.flags.load(std::memory_order_acquire) &
        (kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent))
      return true;
    const std::int64_t ttl = block_.header.ttl_ns.load(std::memory_order_relaxed);
    return ttl != kForever &&
           now_ns() >= block_.header.start_mono_ns.load(std::memory_order_relaxed) + ttl;
  }

  int listener_;
  ControlBlock& block_;
  bool thread_pidfds_ = true;
  std::vector<Held> held_;
  std::vector<Watch> watches_;
  std::uint64_t needs_generation_ = ~0ull;
  bool needs_process_ = false;
  bool needs_thread_ = false;
  char path_[kPathMax];
  char absolute_[2 * kPathMax];
  char path2_[kPathMax];
  char absolute2_[2 * kPathMax];
  sockaddr_storage addr_;
  std::vector<Marked> marks_;
  Tarpit tarpit4_;
  Tarpit tarpit6_;
};

void Server::crash(const Held& h) {
  const std::uint64_t start = process_start_time(h.tgid);
  syscall(SYS_tgkill, h.tgid, h.tid, h.crash_signal);
  // The call never ran: a handler that returns sees it interrupted, and the watch below then
  // ends the process the way a real crash would.
  respond(listener_, h.id, EINTR);
  watches_.push_back(Watch{now_ns() + kCrashGraceNs, h.tgid, start});
}

bool Server::deliver(Held& h) {
  // An action on the program's socket only for a call still pending: the thread may have died
  // while the call was held.
  if (h.fd >= 0 && h.kind != Kind::kAnswer && !id_valid(listener_, h.id)) {
    close_fd(h);
    return true;
  }
  switch (h.kind) {
    case Kind::kAnswer:
      respond(listener_, h.id, h.error);
      break;
    case Kind::kValue:
      respond_value(listener_, h.id, h.value);
      break;
    case Kind::kCrash:
      crash(h);
      break;
    case Kind::kReset:
      if (sock_option(h.fd, SO_TYPE) == SOCK_STREAM) {
        abort_stream(h.fd);
        mark(h.fd, Mark::kReset);
        respond(listener_, h.id, ECONNRESET);
      } else {
        respond(listener_, h.id, ECONNREFUSED);  // a datagram socket has no connection
      }
      break;
    case Kind::kResetConnect:
      if (sock_option(h.fd, SO_TYPE) != SOCK_STREAM) {
        respond(listener_, h.id, ECONNREFUSED);
      } else if (nonblocking(h.fd) && is_inet(h.fd) && connect_tarpit(h.fd)) {
        // The kernel's way for a non-blocking connect that fails: EINPROGRESS, then poll says
        // writable with POLLERR and SO_ERROR names the error. Disconnecting from SYN_SENT
        // leaves ECONNRESET pending (tcp_disconnect) and wakes the program's poll.
        sockaddr unspec{};
        unspec.sa_family = AF_UNSPEC;
        connect(h.fd, &unspec, sizeof unspec);
        respond(listener_, h.id, EINPROGRESS);
      } else {
        mark(h.fd, Mark::kReset);
        respond(listener_, h.id, ECONNRESET);
      }
      break;
    case Kind::kResetAccept:
      return accept_reset(h);
    case Kind::kEof: {
      const int type = sock_option(h.fd, SO_TYPE);
      if (type == SOCK_STREAM || type == SOCK_SEQPACKET) {
        shutdown(h.fd, SHUT_RDWR);  // the peer reads end-of-file (the FIN after what is queued)
        mark(h.fd, Mark::kEof);
      }
      respond_value(listener_, h.id, 0);  // a datagram socket: an empty datagram
      break;
    }
    case Kind::kBlackholeConnect:
      if (!h.to_tarpit)
        respond(listener_, h.id, ETIMEDOUT);
      else if (is_inet(h.fd))
        respond(listener_, h.id, connect_tarpit(h.fd) ? EINPROGRESS : ETIMEDOUT);
      else
        respond(listener_, h.id, EAGAIN);  // a unix listener that never accepts: backlog full
      break;
    case Kind::kBlackholeReceive:
      respond(listener_, h.id, EAGAIN);  // SO_RCVTIMEO passed: what recv(2) says
      break;
    case Kind::kTransfer:
      return transfer(h);
  }
  close_fd(h);
  return true;
}

// `reset` on accept: a connection is accepted here on the program's listener, aborted (the
// client sees a RST), and installed in the program as accept's answer (SECCOMP_ADDFD with
// SEND, Linux 5.14); every receive on it fails ECONNRESET. Nothing queued yet: a non-blocking
// listener says EAGAIN, as the kernel would; a blocking one is looked at again shortly.
bool Server::accept_reset(Held& h) {
  const int flags = static_cast<int>(h.value);
  const int was = fcntl(h.fd, F_GETFL);
  const bool program_nonblocking = was >= 0 && (was & O_NONBLOCK);
  if (was >= 0 && !program_nonblocking) fcntl(h.fd, F_SETFL, was | O_NONBLOCK);
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  const int conn = accept4(h.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                           SOCK_CLOEXEC | (flags & SOCK_NONBLOCK));
  const int err = errno;
  if (was >= 0 && !program_nonblocking) fcntl(h.fd, F_SETFL, was);
  if (conn < 0) {
    if ((err == EAGAIN || err == EWOULDBLOCK) && !program_nonblocking) {
      h.deadline_ns = now_ns() + 20'000'000;
      return false;
    }
    respond(listener_, h.id, err);
    close_fd(h);
    return true;
  }
  abort_stream(conn);
  mark(conn, Mark::kReset);
  if (h.args[1] != 0 && h.args[2] != 0) {  // the peer's address, as accept(2) writes it
    socklen_t room = 0;
    if (read_remote(h.tid, h.args[2], &room, sizeof room)) {
      iovec local[2] = {{&peer, std::min(room, len)}, {&len, sizeof len}};
      iovec remote[2] = {{reinterpret_cast<void*>(h.args[1]), std::min(room, len)},
                         {reinterpret_cast<void*>(h.args[2]), sizeof len}};
      process_vm_writev(h.tid, &local[0], 1, &remote[0], 1, 0);
      process_vm_writev(h.tid, &local[1], 1, &remote[1], 1, 0);
    }
  }
  seccomp_notif_addfd addfd{};
  addfd.id = h.id;
  addfd.flags = SECCOMP_ADDFD_FLAG_SEND;
  addfd.srcfd = static_cast<std::uint32_t>(conn);
  addfd.newfd_flags = (flags & SOCK_CLOEXEC) ? O_CLOEXEC : 0;
  // ENOENT: the call is gone. Another failure (a kernel before 5.14): the connection was
  // aborted before the program got it, which accept(2) reports as ECONNABORTED.
  if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) < 0 && errno != ENOENT)
    respond(listener_, h.id, ECONNABORTED);
  close(conn);
  close_fd(h);
  return true;
}

// `short` and `corrupt`: the call is made here, on the program's descriptor (the duplicate
// shares its open file description: write's and read's file offset advances as the program's
// own call would advance it; pwrite/pread use their explicit offset), with the program's bytes
// read (process_vm_readv) and written back (process_vm_writev), and the program gets the
// count. The bytes chosen are the shim's (short_length, corrupt_buffer: the same seeded
// stream). A descriptor that could block (a pipe, a socket, a terminal in blocking mode) is
// tried without blocking and, when it would block, tried again shortly: the supervisor never
// waits in a program's call.
bool Server::transfer(Held& h) {
  const shim::Decision& d = h.decision;
  const int nr = h.nr;
  const bool out = is_send(nr) || nr == SYS_pwrite64 || nr == SYS_pwritev || nr == SYS_pwritev2;
  std::uint64_t total = 0;
  for (const iovec& v : h.buffers) total += v.iov_len;
  std::uint64_t n = d.action == kActShort ? shim::short_length(d, total) : total;
  n = std::min<std::uint64_t>(n, kMaxTransfer);  // more: a partial transfer, as the kernel may
  std::vector<unsigned char> buf(static_cast<std::size_t>(n));
  if (out && n > 0) {
    iovec local{buf.data(), buf.size()};
    if (process_vm_readv(h.tid, &local, 1, h.buffers.data(), h.buffers.size(), 0) !=
        static_cast<ssize_t>(n)) {
      respond(listener_, h.id, EFAULT);  // what the kernel says of a buffer it cannot read
      close_fd(h);
      return true;
    }
    if (d.action == kActCorrupt) shim::corrupt_buffer(d, buf.data(), buf.size());
  }
  struct stat st {};
  const bool may_block =
      fstat(h.fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !nonblocking(h.fd);
  const int was = fcntl(h.fd, F_GETFL);
  if (may_block && was >= 0) fcntl(h.fd, F_SETFL, was | O_NONBLOCK);
  const int flags = static_cast<int>(h.args[3]);
  const std::uint64_t offset = h.args[3];
  iovec one{buf.data(), buf.size()};
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  ssize_t r = -1;
  switch (nr) {
    case SYS_write:
    case SYS_writev:
      r = write(h.fd, buf.data(), buf.size());
      break;
    case SYS_pwrite64:
    case SYS_pwritev:
      r = pwrite(h.fd, buf.data(), buf.size(), static_cast<off_t>(offset));
      break;
    case SYS_pwritev2:
      r = pwritev2(h.fd, &one, 1, static_cast<off_t>(offset), static_cast<int>(h.args[5]));
      break;
    case SYS_sendto:
    case SYS_sendmsg:  // no control data (handle() made sure), the flags: sendmsg's third
      r = sendto(h.fd, buf.data(), buf.size(),
                 static_cast<int>(nr == SYS_sendmsg ? h.args[2] : h.args[3]) | MSG_NOSIGNAL,
                 h.to_len ? reinterpret_cast<const sockaddr*>(&h.to) : nullptr, h.to_len);
      break;
    case SYS_read:
    case SYS_readv:
      r = read(h.fd, buf.data(), buf.size());
      break;
    case SYS_pread64:
    case SYS_preadv:
      r = pread(h.fd, buf.data(), buf.size(), static_cast<off_t>(offset));
      break;
    case SYS_preadv2:
      r = preadv2(h.fd, &one, 1, static_cast<off_t>(offset), static_cast<int>(h.args[5]));
      break;
    case SYS_recvfrom:
      r = recvfrom(h.fd, buf.data(), buf.size(), flags, reinterpret_cast<sockaddr*>(&from),
                   &from_len);
      break;
    case SYS_recvmsg:
      r = recv(h.fd, buf.data(), buf.size(), static_cast<int>(h.args[2]));
      break;
    default:
      errno = ENOSYS;
      break;
  }
  const int err = errno;
  if (may_block && was >= 0) fcntl(h.fd, F_SETFL, was);
  if (r < 0 && may_block && (err == EAGAIN || err == EWOULDBLOCK)) {
    h.deadline_ns = now_ns() + 10'000'000;  // the program's call would wait: so does this one
    return false;
  }
  if (r < 0) {
    // A write to a pipe or socket nobody reads raises SIGPIPE in the caller: the program's
    // thread (the supervisor blocks it for itself), unless a send asked MSG_NOSIGNAL.
    const bool nosignal = (nr == SYS_sendto && (flags & MSG_NOSIGNAL)) ||
                          (nr == SYS_sendmsg && (static_cast<int>(h.args[2]) & MSG_NOSIGNAL));
    if (err == EPIPE && !nosignal) syscall(SYS_tgkill, h.tgid, h.tid, SIGPIPE);
    respond(listener_, h.id, err);
    close_fd(h);
    return true;
  }
  if (!out && r > 0) {
    if (d.action == kActCorrupt) shim::corrupt_buffer(d, buf.data(), static_cast<std::size_t>(r));
    iovec local{buf.data(), static_cast<std::size_t>(r)};
    process_vm_writev(h.tid, &local, 1, h.buffers.data(), h.buffers.size(), 0);
  }
  if (nr == SYS_recvfrom && h.args[4] != 0 && h.args[5] != 0) {  // the sender, as recvfrom
    socklen_t room = 0;
    if (read_remote(h.tid, h.args[5], &room, sizeof room)) {
      iovec local[2] = {{&from, std::min(room, from_len)}, {&from_len, sizeof from_len}};
      iovec remote[2] = {{reinterpret_cast<void*>(h.args[4]), std::min(room, from_len)},
                         {reinterpret_cast<void*>(h.args[5]), sizeof from_len}};
      process_vm_writev(h.tid, &local[0], 1, &remote[0], 1, 0);
      process_vm_writev(h.tid, &local[1], 1, &remote[1], 1, 0);
    }
  }
  if (nr == SYS_recvmsg) {  // msg_flags, which the kernel writes: nothing to report
    const int none = 0;
    iovec local{const_cast<int*>(&none), sizeof none};
    iovec remote{reinterpret_cast<void*>(h.args[1] + offsetof(msghdr, msg_flags)), sizeof none};
    process_vm_writev(h.tid, &local, 1, &remote, 1, 0);
  }
  respond_value(listener_, h.id, r);
  close_fd(h);
  return true;
}

// The program's buffers of byte-moving call `nr` (for short and corrupt), read from its
// arguments; false when the call is not one, or is one the backend cannot perform (sendmsg
// or recvmsg with control data, recvmsg asking for the sender, buffers it cannot read).
bool program_buffers(pid_t tid, int nr, const __u64* a, Held& h) {
  auto vec = [&](std::uint64_t at, std::uint64_t count) {
    if (count > 1024) return false;
    h.buffers.resize(count);
    return count == 0 || read_remote(tid, at, h.buffers.data(), count * sizeof(iovec));
  };
  switch (nr) {
    case SYS_write:
    case SYS_pwrite64:
    case SYS_read:
    case SYS_pread64:
    case SYS_sendto:
    case SYS_recvfrom:
      h.buffers = {iovec{reinterpret_cast<void*>(a[1]), a[2]}};
      if (nr == SYS_sendto && a[4] != 0) {
        h.to_len = static_cast<socklen_t>(std::min<std::uint64_t>(a[5], sizeof h.to));
        if (!read_remote(tid, a[4], &h.to, h.to_len)) return false;
      }
      return true;
    case SYS_writev:
    case SYS_pwritev:
    case SYS_pwritev2:
    case SYS_readv:
    case SYS_preadv:
    case SYS_preadv2:
      return vec(a[1], a[2]);
    case SYS_sendmsg:
    case SYS_recvmsg: {
      msghdr m{};
      if (!read_remote(tid, a[1], &m, sizeof m) || m.msg_controllen != 0) return false;
      if (m.msg_name != nullptr) {
        if (nr == SYS_recvmsg) return false;
        h.to_len = std::min<socklen_t>(m.msg_namelen, sizeof h.to);
        if (!read_remote(tid, reinterpret_cast<std::uint64_t>(m.msg_name), &h.to, h.to_len))
          return false;
      }
      return vec(reinterpret_cast<std::uint64_t>(m.msg_iov), m.msg_iovlen);
    }
    default:
      return false;
  }
}

void Server::handle(const seccomp_notif& req) {
  const SyscallRow* row = find_syscall(req.data.nr);
  const pid_t tid = static_cast<pid_t>(req.pid);
  // The shim's fast path, here: no enabled fault of the call's families (or the session
  // panicked, expired, over budget) and the call continues at once, unread and uncounted.
  const std::uint64_t armed = block_.header.armed_mask.load(std::memory_order_relaxed);
  if (row == nullptr || tid <= 0 || (armed & row->families) == 0) {
    respond(listener_, req.id, 0);
    return;
  }
  const auto* a = req.data.args;
  shim::CallArgs call_args{};
  call_args.call = call_of(*row, req.data);
  int remote_fd = -1;
  int dirfd = AT_FDCWD;
  int dirfd2 = AT_FDCWD;
  bool has_path = false;
  bool has_path2 = false;
  bool readable = true;
  auto size_from = [&](std::uint64_t count) {
    call_args.size = count;
    call_args.has_size = true;
  };
  switch (row->args) {
    case Args::kFdSize:
      remote_fd = static_cast<int>(a[0]);
      size_from(a[2]);
      break;
    case Args::kFdVec: {
      remote_fd = static_cast<int>(a[0]);
      const std::uint64_t count = a[2];
      if (count <= 1024) {
        std::vector<iovec> vec(count);
        if (count == 0 || read_remote(tid, a[1], vec.data(), count * sizeof(iovec))) {
          std::uint64_t total = 0;
          for (const iovec& v : vec) total += v.iov_len;
          size_from(total);
        }
      }
      break;
    }
    case Args::kFd:
      remote_fd = static_cast<int>(a[0]);
      break;
    case Args::kFdMsg:
      remote_fd = static_cast<int>(a[0]);
      call_args.msg_flags = static_cast<int>(a[2]);
      break;
    case Args::kPath:
      has_path = true;
      readable = read_remote_string(tid, a[0], path_, sizeof path_);
      break;
    case Args::kDirPath:
      has_path = true;
      dirfd = static_cast<int>(a[0]);
      readable = read_remote_string(tid, a[1], path_, sizeof path_);
      break;
    case Args::kPaths:  // both read: the kernel refuses the call when either is unreadable
    case Args::kSymlink:
      has_path = has_path2 = true;
      readable =
          read_remote_string(tid, a[row->args == Args::kPaths ? 0 : 1], path_, sizeof path_) &&
          read_remote_string(tid, a[row->args == Args::kPaths ? 1 : 0], path2_, sizeof path2_);
      break;
    case Args::kDirPaths:
      has_path = has_path2 = true;
      dirfd = static_cast<int>(a[0]);
      dirfd2 = static_cast<int>(a[2]);
      readable = read_remote_string(tid, a[1], path_, sizeof path_) &&
                 read_remote_string(tid, a[3], path2_, sizeof path2_);
      break;
    case Args::kSymlinkAt:  // the link path (relative to newdirfd) first, the target second
      has_path = has_path2 = true;
      dirfd = static_cast<int>(a[1]);
      readable = read_remote_string(tid, a[2], path_, sizeof path_) &&
                 read_remote_string(tid, a[0], path2_, sizeof path2_);
      break;
    case Args::kNone:
      break;
    case Args::kConnect: {
      remote_fd = static_cast<int>(a[0]);
      const std::size_t len = std::min<std::uint64_t>(a[2], sizeof addr_);
      if (len > 0 && read_remote(tid, a[1], &addr_, len)) {
        call_args.addr = reinterpret_cast<const sockaddr*>(&addr_);
        call_args.addr_len = static_cast<unsigned>(len);
      }
      break;
    }
    case Args::kSendTo:
      if (a[4] != 0) {
        const std::size_t len = std::min<std::uint64_t>(a[5], sizeof addr_);
        if (len > 0 && read_remote(tid, a[4], &addr_, len)) {
          call_args.addr = reinterpret_cast<const sockaddr*>(&addr_);
          call_args.addr_len = static_cast<unsigned>(len);
        }
      }
      [[fallthrough]];
    case Args::kRecvFrom:
      remote_fd = static_cast<int>(a[0]);
      size_from(a[2]);
      call_args.msg_flags = static_cast<int>(a[3]);
      break;
  }
  if (!readable) {  // the kernel fails the call itself (EFAULT, ENAMETOOLONG)
    respond(listener_, req.id, 0);
    return;
  }
  if (has_path) {
    make_absolute(tid, dirfd, path_, absolute_, sizeof absolute_);
    call_args.path = absolute_;
  }
  if (has_path2) {  // rename's new path, link's, symlink's target: `path` matches either
    make_absolute(tid, dirfd2, path2_, absolute2_, sizeof absolute2_);
    call_args.set_path2(AT_FDCWD, absolute2_);
  }
  int local_fd = -1;
  if (remote_fd >= 0) {
    local_fd = take_fd(tid, remote_fd);
    if (local_fd < 0) {
      respond(listener_, req.id, 0);
      return;
    }
    call_args.fd = local_fd;
  }
  auto drop_fd = [&] {
    if (local_fd < 0) return;
    shim::fd_invalidate(local_fd);  // its number is reused by the next duplicate
    close(local_fd);
    local_fd = -1;
  };
  // What was read may belong to a thread that is gone and a pid that is another's now: act only
  // on a notification that is still pending.
  if (!id_valid(listener_, req.id)) {
    drop_fd();
    return;
  }
  // A socket a reset or eof ended: its receives are answered as the shim answers them, before
  // anything is decided; its sends go to the kernel (EPIPE: it is shut down); a new connect
  // makes it a new connection.
  if (local_fd >= 0) {
    if (const Marked* m = marked(local_fd, req.data.nr == SYS_connect);
        m != nullptr && is_receive(req.data.nr)) {
      const bool reset = m->mark == Mark::kReset;
      drop_fd();
      if (reset)
        respond(listener_, req.id, ECONNRESET);
      else
        respond_value(listener_, req.id, 0);
      return;
    }
  }
  // The process the thread belongs to, read now (it was valid a moment ago): only what needs
  // it pays for it (the `process` selector, an injection's event and crash).
  pid_t tgid = 0;
  auto tgid_now = [&] {
    if (tgid == 0) tgid = read_tgid(tid);
    if (tgid <= 0) tgid = tid;
    return tgid;
  };
  refresh_needs();
  if (needs_process_) set_identity(tgid_now());
  if (needs_thread_) {
    const std::string name = read_comm(tid);
    prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);  // what thread_matches() reads
  }
  shim::Decision d;
  bool inject;
  {
    shim::Guard guard;
    inject = shim::decide(guard, call_args, d) && d.inject;
  }
  // Only what the backend delivers (filter.h, refusal(): the compiler, `run` and `add` refuse
  // the rest), where it delivers it: a block edited by other means must not make an event of
  // an action not taken.
  constexpr std::uint32_t kDelivered = kActError | kActCrash | kActLatency | kActReset | kActEof |
                                       kActLie | kActBlackhole | kActShort | kActCorrupt;
  const int nr = req.data.nr;
  const bool accept_call = nr == SYS_accept || nr == SYS_accept4;
  Held held{};
  held.id = req.id;
  held.error = d.action == kActError ? d.error : 0;
  held.fault = d.fault;
  held.tid = tid;
  std::copy(a, a + 6, held.args);
  std::int64_t wait = d.delay_ns + (d.action == kActLatency ? d.latency_ns : 0);
  std::int64_t event_bytes = -1;
  bool keep_fd = false;
  bool deliverable = inject && (d.action & ~kDelivered) == 0;
  if (deliverable) {
    switch (d.action) {
      case kActCrash:
        held.kind = Kind::kCrash;
        held.crash_signal = d.crash_signal ? d.crash_signal : SIGKILL;
        break;
      case kActLie:  // @fsync: success, nothing synced
        held.kind = Kind::kValue;
        break;
      case kActReset:
        keep_fd =
            local_fd >= 0 && (is_receive(nr) || is_send(nr) || nr == SYS_connect || accept_call);
        held.kind = nr == SYS_connect ? Kind::kResetConnect
                    : accept_call     ? Kind::kResetAccept
                                      : Kind::kReset;
        held.value = nr == SYS_accept4 ? static_cast<std::int64_t>(a[3]) : 0;  // its flags
        deliverable = keep_fd;
        break;
      case kActEof:
        keep_fd = local_fd >= 0 && is_receive(nr);
        held.kind = Kind::kEof;
        event_bytes = 0;
        deliverable = keep_fd;
        break;
      case kActBlackhole:
        if (local_fd < 0) {
          deliverable = false;
        } else if (nr == SYS_connect) {
          // A partition: a datagram connect sends nothing (it runs); a non-blocking stream
          // connect is left at the tarpit (EINPROGRESS, never writable); a blocking one waits
          // until the fault is lifted (it then connects for real), SO_SNDTIMEO (then the
          // tarpit and EINPROGRESS, as Linux says) or `timeout` (ETIMEDOUT).
          if (sock_option(local_fd, SO_TYPE) != SOCK_STREAM) {
            deliverable = false;
            break;
          }
          keep_fd = true;
          held.kind = Kind::kBlackholeConnect;
          held.to_tarpit = nonblocking(local_fd);
          if (!held.to_tarpit) {
            const std::int64_t sndtimeo = sock_timeout_ns(local_fd, SO_SNDTIMEO);
            const std::int64_t limit = d.timeout_ns > 0 ? d.timeout_ns : kDefaultConnectNs;
            held.to_tarpit = sndtimeo > 0 && sndtimeo < limit;
            wait += held.to_tarpit ? sndtimeo : limit;
          }
        } else if (is_send(nr)) {  // swallowed, as if sent whole
          std::uint64_t size = call_args.size;
          if (nr == SYS_sendmsg) {
            msghdr m{};
            std::vector<iovec> vec;
            size = 0;
            if (read_remote(tid, a[1], &m, sizeof m) && m.msg_iovlen <= 1024) {
              vec.resize(m.msg_iovlen);
              if (m.msg_iovlen == 0 || read_remote(tid, reinterpret_cast<std::uint64_t>(m.msg_iov),
                                                   vec.data(), vec.size() * sizeof(iovec)))
                for (const iovec& v : vec) size += v.iov_len;
            }
          }
          held.kind = Kind::kValue;
          held.value = static_cast<std::int64_t>(std::min<std::uint64_t>(size, SSIZE_MAX));
          event_bytes = held.value;
        } else if (is_receive(nr)) {  // never any data: EAGAIN, or held (SO_RCVTIMEO)
          held.kind = Kind::kBlackholeReceive;
          if (!(call_args.msg_flags & MSG_DONTWAIT) && !nonblocking(local_fd)) {
            const std::int64_t rcvtimeo = sock_timeout_ns(local_fd, SO_RCVTIMEO);
            wait += rcvtimeo > 0 ? rcvtimeo : kForeverNs;
          }
        } else {  // accept: the shim lets it run
          deliverable = false;
        }
        break;
      case kActShort:
      case kActCorrupt:
        keep_fd = local_fd >= 0 && program_buffers(tid, nr, a, held);
        held.kind = Kind::kTransfer;
        held.nr = nr;
        held.decision = d;
        if (keep_fd) {
          std::uint64_t total = 0;
          for (const iovec& v : held.buffers) total += v.iov_len;
          event_bytes = static_cast<std::int64_t>(std::min<std::uint64_t>(
              d.action == kActShort ? shim::short_length(d, total) : total, INT64_MAX));
        }
        deliverable = keep_fd;
        break;
      default:  // error, delay, latency: the answer
        break;
    }
  }
  if (!deliverable) {
    drop_fd();
    respond(listener_, req.id, 0);
    return;
  }
  if (!needs_process_) set_identity(tgid_now());  // the event names the caller
  const shim::EventCaller caller{tgid_now(), tid, local_fd, remote_fd};
  shim::engine_set_event_caller(&caller);
  shim::emit_event(d, call_args, event_bytes);
  shim::engine_set_event_caller(nullptr);
  if (keep_fd) {
    held.fd = local_fd;  // the action works on it; closed once answered
    local_fd = -1;
  }
  drop_fd();
  held.tgid = tgid_now();
  if (wait > 0 && held_.size() < kMaxHeld) {
    held.deadline_ns = now_ns() + wait;
    held_.push_back(held);
    return;
  }
  if (!deliver(held)) held_.push_back(held);  // an accept waiting for a connection
}

int Server::serve_held() {
  const std::int64_t now = now_ns();
  if (!held_.empty() && session_off()) release_all();
  std::int64_t next = now + 100'000'000;
  for (std::size_t i = 0; i < held_.size();) {
    Held& h = held_[i];
    const bool disabled =
        h.fault >= 0 && block_.faults[h.fault].enabled.load(std::memory_order_relaxed) != 1;
    if (disabled) {
      respond(listener_, h.id, 0);  // the fault no longer holds it: the call runs unfaulted
      close_fd(h);
    } else if (h.deadline_ns <= now) {
      if (!deliver(h)) {  // still held (an accept waiting for a connection)
        next = std::min(next, h.deadline_ns);
        ++i;
        continue;
      }
    } else {
      next = std::min(next, h.deadline_ns);
      ++i;
      continue;
    }
    held_[i] = held_.back();
    held_.pop_back();
  }
  for (std::size_t i = 0; i < watches_.size();) {
    const Watch w = watches_[i];
    if (w.deadline_ns > now) {
      next = std::min(next, w.deadline_ns);
      ++i;
      continue;
    }
    if (w.start_time != 0 && process_start_time(w.tgid) == w.start_time) kill(w.tgid, SIGKILL);
    watches_[i] = watches_.back();
    watches_.pop_back();
  }
  return static_cast<int>(std::max<std::int64_t>(0, (next - now + 999'999) / 1'000'000));
}

// The helper's loop (finish()): every trapped call continues, until no process holds the
// filter. Async-signal-safe: it runs in a child forked from a process with threads.
void continue_all(int listener) {
  alignas(8) char buffer[512];
  seccomp_notif_sizes sizes{};
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0 ||
      sizes.seccomp_notif > sizeof buffer)
    return;
  for (;;) {
    pollfd fds{listener, POLLIN, 0};
    if (poll(&fds, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds.revents & POLLIN) {
      std::memset(buffer, 0, sizeof buffer);
      auto* req = reinterpret_cast<seccomp_notif*>(buffer);
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) respond(listener, req->id, 0);
    } else if (fds.revents & (POLLHUP | POLLERR)) {
      return;
    }
  }
}

}  // namespace

Supervisor::Supervisor(int listener, ControlBlock& block, int member, pid_t child)
    : listener_(listener), stop_fd_(eventfd(0, EFD_CLOEXEC)), block_(block), child_(child) {
  shim::g_block.store(&block, std::memory_order_release);
  shim::g_member.store(member, std::memory_order_relaxed);
  struct sigaction wake {};
  wake.sa_handler = on_wake;  // no SA_RESTART: a blocked NOTIF_RECV returns EINTR
  sigemptyset(&wake.sa_mask);
  sigaction(wake_signal(), &wake, nullptr);
  thread_ = std::thread([this] { run(); });
}

bool Supervisor::finish() {
  if (finished_) return false;
  finished_ = true;
  stopping_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = write(stop_fd_, &one, sizeof one);
  // A NOTIF_RECV that raced a cancelled notification blocks: the signal ends it (bounded).
  for (int i = 0; i < 200 && !done_.load(std::memory_order_acquire); ++i) {
    pthread_kill(thread_.native_handle(), wake_signal());
    usleep(5000);
  }
  thread_.join();
  close(stop_fd_);
  shim::g_block.store(nullptr, std::memory_order_release);
  // Processes of the tree that outlived CMD still hold the filter: without a listener their
  // trapped calls would fail with ENOSYS, which faultline must never cause. A helper takes the
  // listener and lets every call through until the last of them has ended (POLLHUP).
  pollfd held{listener_, 0, 0};
  bool handed_off = false;
  if (poll(&held, 1, 0) == 0 || !(held.revents & (POLLHUP | POLLERR))) {
    const pid_t helper = fork();
    if (helper == 0) {
      // Only system calls from here: the parent has threads.
      if (listener_ > 0) syscall(SYS_close_range, 0u, static_cast<unsigned>(listener_ - 1), 0u);
      syscall(SYS_close_range, static_cast<unsigned>(listener_ + 1), ~0u, 0u);
      setsid();
      continue_all(listener_);
      _exit(0);
    }
    handed_off = helper > 0;
  }
  close(listener_);
  return handed_off;
}

void Supervisor::wait_unheld() { done_.wait(false, std::memory_order_acquire); }

Supervisor::~Supervisor() { finish(); }

void Supervisor::run() noexcept {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, wake_signal());
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
  // A write made for the program to a pipe nobody reads must not end `faultline run`: the
  // program's thread gets the SIGPIPE (transfer()).
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  seccomp_notif_sizes sizes{};
  syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
  std::vector<char> buffer(std::max<std::size_t>(sizes.seccomp_notif, sizeof(seccomp_notif)));
  auto* req = reinterpret_cast<seccomp_notif*>(buffer.data());
  Server server(listener_, block_, child_);
  int timeout = 100;
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int ready = poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && (fds[1].revents & POLLIN)) break;
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      std::memset(buffer.data(), 0, buffer.size());
      if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) server.handle(*req);
    } else if (ready > 0 && (fds[0].revents & (POLLHUP | POLLERR))) {
      break;  // no process holds the filter any more: nothing will ever be trapped again
    }
    timeout = server.serve_held();
    timeout = std::min(timeout, 100);
  }
  server.release_all();
  done_.store(true, std::memory_order_release);
  done_.notify_all();
}

}  // namespace faultline::seccomp
