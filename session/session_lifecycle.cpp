// Session blocks, their lifecycle: a block built whole under no name and linked into place
// with its creator already a member (create), joined or replaced when dead (attach_or_create),
// membership (the pid table), and unlinking (remove, remove_if_dead, leave).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "calls/calls.h"
#include "faultline/seqlock.h"
#include "policy/net_policy.h"
#include "session/session.h"
#include "session/session_internal.h"

namespace faultline {
namespace {

using namespace session_detail;

// /proc/PID/stat from the name's closing ')' on (the name, field 2, may hold spaces and
// parentheses), read into `buf`; nullptr when it cannot be read.
const char* proc_stat_after_name(pid_t pid, char (&buf)[1024]) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return nullptr;
  buf[n] = '\0';
  return std::strrchr(buf, ')');
}

// The state letter of /proc/PID/stat ('R', 'S', 'Z'...), 0 when it cannot be read.
char process_state(pid_t pid) {
  char buf[1024];
  const char* paren = proc_stat_after_name(pid, buf);
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

// A zombie is no member: it injects nothing and cannot be reached, and an unreaped one (its
// parent never waits) would otherwise keep a session alive forever.
bool process_alive(pid_t pid) {
  if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return false;
  const char state = process_state(pid);
  return state != 'Z' && state != 'X';
}

// Inode of /proc/self/ns/pid, 0 when /proc cannot tell. Not cached: a process that unshared
// its pid namespace and forked has children in another one.
std::uint64_t own_pid_namespace() {
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

// A member recorded in another pid namespace than ours (a sidecar, `unshare --pid`) cannot be
// seen from here: its pid may name nothing, or another process. It is taken as alive, so that
// no process ever removes a session it cannot see into.
bool member_alive(const ControlBlock& block, std::uint32_t slot, std::uint64_t own_ns) {
  const pid_t pid = block.header.pids[slot].load(std::memory_order_relaxed);
  if (pid <= 0) return false;
  const std::uint64_t ns = block.members[slot].pid_ns.load(std::memory_order_relaxed);
  if (ns != 0 && own_ns != 0 && ns != own_ns) return true;
  return process_alive(pid);
}

void init_block(ControlBlock& block, const std::string& name, const Policy& policy) {
  ControlHeader& h = block.header;
  h.abi_version = kAbiVersion;
  h.header_size = sizeof(ControlHeader);
  h.block_size = sizeof(ControlBlock);
  h.owner_uid = geteuid();
  h.max_faults = kMaxFaults;
  h.abi_fingerprint = kAbiFingerprint;
  std::strncpy(h.session, name.c_str(), sizeof h.session - 1);
  h.seed.store(policy.seed, std::memory_order_relaxed);
  h.log_stderr.store(policy.log_stderr ? 1 : 0, std::memory_order_relaxed);
  h.start_mono_ns.store(monotonic_ns(), std::memory_order_relaxed);
  h.start_real_ns.store(realtime_ns(), std::memory_order_relaxed);
  h.ttl_ns.store(policy.ttl_ns, std::memory_order_relaxed);
  h.max_faults_total.store(policy.max_faults, std::memory_order_relaxed);
  store_string_words(h.log_path_seq, h.log_path_words, kLogPathMax / 8,
                     absolute_path(policy.log_path));
  h.log_max_rate.store(policy.log_max_rate, std::memory_order_relaxed);
  h.log_max_size.store(policy.log_max_size, std::memory_order_relaxed);
  std::memcpy(h.durability_path, policy.durability.path, sizeof h.durability_path);
  h.durability_flags = (policy.durability.keep_on_fsync_error ? kDurabilityKeepOnFsyncError : 0u) |
                       (policy.durability.torn ? kDurabilityTorn : 0u);
  std::int64_t now = monotonic_ns();
  std::size_t i = 0;
  for (const FaultSpec& spec : policy.faults) {
    FaultSlot& slot = block.faults[i++];
    publish_spec(slot, spec);
    slot.enabled.store(spec.enabled_initially ? 1 : 0, std::memory_order_relaxed);
    slot.enabled_since_ns.store(now, std::memory_order_relaxed);
    slot.state.store(kSlotUsed, std::memory_order_relaxed);
  }
  h.armed_mask.store(compute_armed_mask(block), std::memory_order_relaxed);
  h.generation.store(1, std::memory_order_relaxed);
  // Readers trust nothing until the magic is there: it goes last, with release order.
  h.magic.store(kBlockMagic, std::memory_order_release);
}

}  // namespace

using namespace session_detail;

std::unique_ptr<ControlSession> ControlSession::create(const std::string& name,
                                                       const Policy& policy, SessionError& error) {
  if (!valid_session_name(name)) {
    error = {SessionErrc::kBadName,
             "bad session name '" + name + "' (use [A-Za-z0-9_.-], at most 63 characters)"};
    return nullptr;
  }
  if (policy.faults.size() > kMaxFaults) {
    error = {SessionErrc::kTooManyFaults, "too many faults (" +
                                              std::to_string(policy.faults.size()) + ", at most " +
                                              std::to_string(kMaxFaults) + ")"};
    return nullptr;
  }
  // The block is built whole where nobody can see it, then linked into place: a process
  // attaching at the same moment finds no file or a published one, never a short or
  // half-initialised file ("truncated control block (0 bytes)" under a start-up race).
  // O_TMPFILE has no name at all (nothing is left behind if we are killed); without it (or
  // without /proc, which the link needs), a hidden temporary name that `sessions` ignores.
  std::string temp;
  int fd = -1;
  if (access("/proc/self/fd", X_OK) == 0) fd = open(kShmDir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof nonce))
      nonce = static_cast<std::uint64_t>(monotonic_ns());
    char suffix[48];
    std::snprintf(suffix, sizeof suffix, ".%d.%016llx", static_cast<int>(getpid()),
                  static_cast<unsigned long long>(nonce));
    temp = std::string(kShmDir) + "/.faultline-new." + name + suffix;
    fd = open(temp.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
  }
  if (fd < 0) {
    error = {SessionErrc::kSystem, std::string("cannot create session block in ") + kShmDir + ": " +
                                       std::strerror(errno)};
    return nullptr;
  }
  auto discard = [&](const char* what) {
    error = {SessionErrc::kSystem, std::string(what) + std::strerror(errno)};
    if (!temp.empty()) unlink(temp.c_str());
  };
  struct stat st;
  if (ftruncate(fd, sizeof(ControlBlock)) != 0 || fstat(fd, &st) != 0) {
    discard("cannot size session block: ");
    close(fd);
    return nullptr;
  }
  void* mem = mmap(nullptr, sizeof(ControlBlock), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    discard("cannot map session block: ");
    close(fd);
    return nullptr;
  }
  // ftruncate zero-fills, and every member of ControlBlock is valid as all-zero bytes.
  auto* block = static_cast<ControlBlock*>(mem);
  init_block(*block, name, policy);
  auto session = std::unique_ptr<ControlSession>(new ControlSession(name, fd, block));
  session->dev_ = st.st_dev;
  session->ino_ = st.st_ino;
  // The creator is a member before the block has a name, so that neither `sessions` nor a
  // process replacing a dead block (attach_or_create) can take a starting session for dead.
  session->register_pid(getpid());
  const std::string final_path = shm_file_path(name);
  int linked;
  if (temp.empty()) {
    char proc_path[40];
    std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    linked = linkat(AT_FDCWD, proc_path, AT_FDCWD, final_path.c_str(), AT_SYMLINK_FOLLOW);
  } else {
    linked = link(temp.c_str(), final_path.c_str());
  }
  const int link_error = errno;
  if (!temp.empty()) unlink(temp.c_str());
  if (linked != 0) {
    error = link_error == EEXIST
                ? SessionError{SessionErrc::kExists, "session '" + name + "' already exists"}
                : SessionError{SessionErrc::kSystem,
                               "session '" + name + "': " + std::strerror(link_error)};
    errno = link_error;
    return nullptr;
  }
  return session;
}

std::unique_ptr<ControlSession> ControlSession::create(const std::string& name,
                                                       const Policy& policy, std::string& error) {
  SessionError why;
  std::unique_ptr<ControlSession> session = create(name, policy, why);
  if (!session) error = std::move(why.message);
  return session;
}

std::unique_ptr<ControlSession> ControlSession::attach_or_create(const std::string& name,
                                                                 const Policy& policy,
                                                                 bool& created,
                                                                 SessionError& error) {
  created = false;
  // Processes of a tree may start together: exactly one links its block into place, the
  // others find it there, complete, and join it. Processes that start and end quickly (a
  // shell's commands) may leave one another dead blocks to replace, again and again while
  // the burst lasts: every pass makes progress (a block linked, or a dead one unlinked), so
  // it is retried until it joins, bounded in time rather than by a small count.
  const std::int64_t deadline = monotonic_ns() + std::int64_t{kPublishWaitMs} * 1000000;
  for (int attempt = 0; attempt < 100000 && monotonic_ns() < deadline; ++attempt) {
    SessionError create_error;
    if (auto s = create(name, policy, create_error)) {
      created = true;
      return s;
    }
    if (create_error.kind != SessionErrc::kExists) {
      error = std::move(create_error);
      return nullptr;
    }
    SessionError attach_error;
    if (auto s = attach(name, attach_error)) {
      // A block whose processes have all exited belongs to an ended run (a service that
      // restarted): its TTL, budget and counters are spent. Start afresh from `policy`.
      if (!s->remove_if_dead()) return s;
      continue;
    }
    // Removed between our link attempt and our attach: try again.
    if (attach_error.kind != SessionErrc::kNotFound) {
      error = std::move(attach_error);
      return nullptr;
    }
  }
  error = {SessionErrc::kReplaced, "session '" + name + "' keeps being replaced; not joined"};
  return nullptr;
}

bool ControlSession::remove_if_dead() {
  if (!live_pids().empty()) return false;
  // Under the writer lock: a creator registers itself before its block has a name (see
  // create), and a second process replacing the same dead block sees it already unlinked (no
  // links left) instead of unlinking the fresh block that now has the name.
  const LockFd lock = lock_fd();
  if (lock.fd < 0) return true;  // the name is gone or names another block
  const WriterLock locked(lock.fd, lock.owned);
  struct stat st;
  if (fstat(lock.fd, &st) != 0) return false;
  if (st.st_nlink == 0) return true;
  if (!live_pids().empty()) return false;
  return unlink(shm_file_path(name_).c_str()) == 0 || errno == ENOENT;
}

std::vector<pid_t> ControlSession::leave(pid_t self) {
  unregister_pid(self);
  std::vector<pid_t> alive = live_pids();
  if (!alive.empty()) return alive;
  if (remove_if_dead()) return {};
  // A process joined between the two looks: it keeps the session.
  return live_pids();
}

bool ControlSession::remove(const std::string& name) {
  return shm_unlink(shm_object_name(name).c_str()) == 0;
}

int ControlSession::register_pid(pid_t pid) {
  auto& pids = block_->header.pids;
  const std::uint64_t own_ns = own_pid_namespace();
  // A process registers again after exec (same pid, new image): it keeps its slot and counts.
  for (std::uint32_t i = 0; i < kMaxPids; ++i)
    if (pids[i].load(std::memory_order_relaxed) == pid) return static_cast<int>(i);
  const auto claimed = [&](std::uint32_t i) {
    MemberStats& stats = block_->members[i];
    stats.seen.store(0, std::memory_order_relaxed);
    stats.injected.store(0, std::memory_order_relaxed);
    stats.last_injection_ns.store(0, std::memory_order_relaxed);
    stats.pid_ns.store(own_ns, std::memory_order_relaxed);
    return static_cast<int>(i);
  };
  // A forked child is registered twice, by its parent (the fork wrapper) and by itself (the
  // atfork handler), maybe at the same moment: both keep the lowest slot holding the pid and
  // free any other they claimed. (Sequentially consistent: each sees the other's claim.)
  const auto settle = [&](std::uint32_t mine) {
    for (std::uint32_t i = 0; i < mine; ++i)
      if (pids[i].load() == pid) {
        std::int32_t own = pid;
        pids[mine].compare_exchange_strong(own, 0);
        return static_cast<int>(i);
      }
    return claimed(mine);
  };
  for (std::uint32_t i = 0; i < kMaxPids; ++i) {
    std::int32_t expected = 0;
    if (pids[i].compare_exchange_strong(expected, pid)) return settle(i);
  }
  // Table full: take over the slot of a member that has exited.
  for (std::uint32_t i = 0; i < kMaxPids; ++i) {
    std::int32_t old = pids[i].load(std::memory_order_relaxed);
    if (!member_alive(*block_, i, own_ns) && pids[i].compare_exchange_strong(old, pid))
      return settle(i);
  }
  return -1;
}

void ControlSession::unregister_pid(pid_t pid) {
  for (auto& slot : block_->header.pids) {
    std::int32_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0, std::memory_order_relaxed)) return;
  }
}

std::vector<pid_t> ControlSession::live_pids() const {
  std::vector<pid_t> out;
  const std::uint64_t own_ns = own_pid_namespace();
  for (std::uint32_t i = 0; i < kMaxPids; ++i)
    if (member_alive(*block_, i, own_ns))
      out.push_back(block_->header.pids[i].load(std::memory_order_relaxed));
  return out;
}

std::uint64_t process_start_time(pid_t pid) {
  char buf[1024];
  // State is field 3, starttime field 22.
  const char* p = proc_stat_after_name(pid, buf);
  if (!p) return 0;
  for (int field = 2; field < 22; ++field) {
    p = std::strchr(p + 1, ' ');
    if (!p) return 0;
  }
  return std::strtoull(p + 1, nullptr, 10);
}

}  // namespace faultline
