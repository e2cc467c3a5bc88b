// The notification loop of the seccomp backend (supervisor.h).
#include "supervisor.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

#include "engine.h"
#include "fd_table.h"
#include "filter.h"
#include "session.h"
#include "shim.h"

namespace faultline::seccomp {
namespace {

constexpr std::size_t kPathMax = 4096;
constexpr std::size_t kMaxHeld = 4096;  // held calls; each is a blocked thread of the program
constexpr std::int64_t kCrashGraceNs = 2'000'000'000;
constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (linux/pidfd.h, Linux 6.9)

void on_wake(int) {}
int wake_signal() { return SIGRTMIN + 4; }

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// A call answered later: after a delay or latency (error 0: it continues), or a crash.
struct Held {
  std::int64_t deadline_ns;
  std::uint64_t id;
  int error;
  int fault;
  int crash_signal;  // 0: none
  pid_t tgid;
  pid_t tid;
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
    for (const Held& h : held_) respond(listener_, h.id, 0);
    held_.clear();
  }

 private:
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
};

void Server::crash(const Held& h) {
  const std::uint64_t start = process_start_time(h.tgid);
  syscall(SYS_tgkill, h.tgid, h.tid, h.crash_signal);
  // The call never ran: a handler that returns sees it interrupted, and the watch below then
  // ends the process the way a real crash would.
  respond(listener_, h.id, EINTR);
  watches_.push_back(Watch{now_ns() + kCrashGraceNs, h.tgid, start});
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
  shim::CallSite site{};
  site.call = call_of(*row, req.data);
  int remote_fd = -1;
  int dirfd = AT_FDCWD;
  int dirfd2 = AT_FDCWD;
  bool has_path = false;
  bool has_path2 = false;
  bool readable = true;
  auto size_from = [&](std::uint64_t count) {
    site.size = count;
    site.has_size = true;
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
      site.msg_flags = static_cast<int>(a[2]);
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
        site.addr = reinterpret_cast<const sockaddr*>(&addr_);
        site.addr_len = static_cast<unsigned>(len);
      }
      break;
    }
    case Args::kSendTo:
      if (a[4] != 0) {
        const std::size_t len = std::min<std::uint64_t>(a[5], sizeof addr_);
        if (len > 0 && read_remote(tid, a[4], &addr_, len)) {
          site.addr = reinterpret_cast<const sockaddr*>(&addr_);
          site.addr_len = static_cast<unsigned>(len);
        }
      }
      [[fallthrough]];
    case Args::kRecvFrom:
      remote_fd = static_cast<int>(a[0]);
      size_from(a[2]);
      site.msg_flags = static_cast<int>(a[3]);
      break;
  }
  if (!readable) {  // the kernel fails the call itself (EFAULT, ENAMETOOLONG)
    respond(listener_, req.id, 0);
    return;
  }
  if (has_path) {
    make_absolute(tid, dirfd, path_, absolute_, sizeof absolute_);
    site.path = absolute_;
  }
  if (has_path2) {  // rename's new path, link's, symlink's target: `path` matches either
    make_absolute(tid, dirfd2, path2_, absolute2_, sizeof absolute2_);
    site.set_path2(AT_FDCWD, absolute2_);
  }
  int local_fd = -1;
  if (remote_fd >= 0) {
    local_fd = take_fd(tid, remote_fd);
    if (local_fd < 0) {
      respond(listener_, req.id, 0);
      return;
    }
    site.fd = local_fd;
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
    inject = shim::decide(guard, site, d) && d.inject;
  }
  // Only what the backend delivers (filter.h, refusal(): the compiler, `run` and `add` refuse
  // the rest): a block edited by other means must not make an event of an action not taken.
  constexpr std::uint32_t kDelivered = kActError | kActCrash | kActLatency;
  if (!inject || (d.action & ~kDelivered) != 0) {
    drop_fd();
    respond(listener_, req.id, 0);
    return;
  }
  if (!needs_process_) set_identity(tgid_now());  // the event names the caller
  const shim::EventCaller caller{tgid_now(), tid, local_fd, remote_fd};
  shim::engine_set_event_caller(&caller);
  shim::emit_event(d, site, -1);
  shim::engine_set_event_caller(nullptr);
  drop_fd();

  Held held{0, req.id, d.action == kActError ? d.error : 0, d.fault, 0, tgid, tid};
  if (d.action == kActCrash) held.crash_signal = d.crash_signal ? d.crash_signal : SIGKILL;
  const std::int64_t wait = d.delay_ns + (d.action == kActLatency ? d.latency_ns : 0);
  if (wait > 0 && held_.size() < kMaxHeld) {
    held.deadline_ns = now_ns() + wait;
    held_.push_back(held);
    return;
  }
  if (held.crash_signal)
    crash(held);
  else
    respond(listener_, req.id, held.error);
}

int Server::serve_held() {
  const std::int64_t now = now_ns();
  if (!held_.empty() && session_off()) release_all();
  std::int64_t next = now + 100'000'000;
  for (std::size_t i = 0; i < held_.size();) {
    const Held h = held_[i];
    const bool disabled =
        h.fault >= 0 && block_.faults[h.fault].enabled.load(std::memory_order_relaxed) != 1;
    if (disabled) {
      respond(listener_, h.id, 0);  // the fault no longer holds it: the call runs unfaulted
    } else if (h.deadline_ns <= now) {
      if (h.crash_signal)
        crash(h);
      else
        respond(listener_, h.id, h.error);
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
