// Session blocks in POSIX shared memory: creation (built whole, then linked into place),
// validation, attach, membership, and the single-writer edit protocol (flock + per-fault
// seqlock + block generation).
#include "session.h"

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

#include "calls.h"
#include "faultline/seqlock.h"
#include "net_policy.h"

namespace faultline {
namespace {

constexpr std::string_view kShmPrefix = "faultline.";
constexpr int kPublishWaitMs = 2000;
// Where shm_open(3) keeps its objects on Linux (glibc and musl alike).
constexpr const char* kShmDir = "/dev/shm";

void publish_spec(FaultSlot& slot, const FaultSpec& spec) {
  std::uint64_t words[kSpecWords];
  std::memcpy(words, &spec, sizeof spec);
  seqlock_write(slot.spec_seq, slot.spec_words, words, kSpecWords);
}

void reset_counters(FaultSlot& slot) {
  slot.seen.store(0, std::memory_order_relaxed);
  slot.matched.store(0, std::memory_order_relaxed);
  slot.injected.store(0, std::memory_order_relaxed);
  slot.quota_used.store(0, std::memory_order_relaxed);
  slot.first_injection_ns.store(0, std::memory_order_relaxed);
  slot.last_injection_ns.store(0, std::memory_order_relaxed);
}

void store_string_words(std::atomic<std::uint64_t>& seq, std::atomic<std::uint64_t>* words,
                        std::size_t nwords, std::string_view text) {
  char buf[kLogPathMax] = {};
  std::size_t n = std::min(text.size(), nwords * 8 - 1);
  std::memcpy(buf, text.data(), n);
  std::uint64_t values[kLogPathMax / 8];
  std::memcpy(values, buf, nwords * 8);
  seqlock_write(seq, words, values, nwords);
}

// Members of a session may chdir; the log must land in one file whatever their cwd.
std::string absolute_path(const std::string& path) { return absolute_log_path(path); }

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

int open_shm(const std::string& name, int flags, std::string& error) {
  int fd = shm_open(shm_object_name(name).c_str(), flags | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) error = std::string("session '") + name + "': " + std::strerror(errno);
  return fd;
}

int open_shm_quiet(const std::string& name) {
  return shm_open(shm_object_name(name).c_str(), O_RDWR | O_CLOEXEC, 0600);
}

// Waits until a concurrent creator has published the block (magic set), bounded in time.
bool wait_published(const ControlBlock* block) {
  for (int i = 0; i < kPublishWaitMs; ++i) {
    if (block->header.magic.load(std::memory_order_acquire) == kBlockMagic) return true;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  return false;
}

}  // namespace

bool valid_session_name(std::string_view name) {
  if (name.empty() || name.size() >= kSessionNameMax) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

std::string shm_object_name(std::string_view session) {
  return "/" + std::string(kShmPrefix) + std::string(session);
}

std::string shm_file_path(std::string_view session) {
  return "/dev/shm/" + std::string(kShmPrefix) + std::string(session);
}

std::int64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::int64_t realtime_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::optional<std::string> validate_block(const void* mem, std::size_t mapped_size,
                                          uid_t file_owner, uid_t expected_owner) {
  if (file_owner != expected_owner)
    return "belongs to uid " + std::to_string(file_owner) + ", not to you (uid " +
           std::to_string(expected_owner) + ")";
  if (mapped_size < sizeof(ControlHeader))
    return "truncated control block (" + std::to_string(mapped_size) + " bytes)";
  const auto* h = static_cast<const ControlHeader*>(mem);
  if (h->magic.load(std::memory_order_acquire) != kBlockMagic)
    return "not a faultline control block (bad magic)";
  if (h->abi_version != kAbiVersion)
    return "control block ABI version " + std::to_string(h->abi_version) +
           ", this faultline "
           "speaks version " +
           std::to_string(kAbiVersion) + " (use the same faultline build)";
  if (h->abi_fingerprint != kAbiFingerprint)
    return "control block of another faultline build (its call table or layout differs under "
           "the same ABI version " +
           std::to_string(kAbiVersion) + "; use the same faultline build)";
  if (h->header_size != sizeof(ControlHeader) || h->block_size != sizeof(ControlBlock) ||
      mapped_size < sizeof(ControlBlock))
    return "control block size mismatch (" + std::to_string(mapped_size) + " bytes mapped, " +
           std::to_string(h->block_size) + " declared, " + std::to_string(sizeof(ControlBlock)) +
           " expected)";
  if (h->owner_uid != expected_owner) return "control block header names another owner";
  if (h->max_faults != kMaxFaults) return "control block has a different fault capacity";
  return std::nullopt;
}

FaultSpec read_fault_spec(const FaultSlot& slot) {
  FaultSpec spec;
  std::uint64_t words[kSpecWords];
  if (!seqlock_read(slot.spec_seq, slot.spec_words, words, kSpecWords)) {
    // A writer died mid-edit: an inert spec (no calls) until the next writer repairs it.
    std::memset(&spec, 0, sizeof spec);
    return spec;
  }
  std::memcpy(&spec, words, sizeof spec);
  spec.name[kNameMax - 1] = '\0';
  spec.path[kGlobMax - 1] = '\0';
  spec.process[kShortGlobMax - 1] = '\0';
  spec.thread[kShortGlobMax - 1] = '\0';
  spec.host[kGlobMax - 1] = '\0';
  spec.addr_unix[kUnixGlobMax - 1] = '\0';
  spec.stack[kGlobMax - 1] = '\0';
  spec.site[kSiteMax - 1] = '\0';
  spec.record[kLogPathMax - 1] = '\0';
  return spec;
}

std::optional<std::string> check_fault_spec(const FaultSpec& spec) {
  auto terminated = [](const char* text, std::size_t size) {
    return std::memchr(text, '\0', size) != nullptr;
  };
  // A glob list field (faultline/glob.h) ends in a NUL whatever it packs: the compiler fits the
  // entries with their NULs, so a last entry can never run past the field into the next one.
  auto list_terminated = [](const char* text, std::size_t size) { return text[size - 1] == '\0'; };
  if (!terminated(spec.name, sizeof spec.name) || !spec.name[0]) return "bad name";
  if (!list_terminated(spec.path, sizeof spec.path) ||
      !list_terminated(spec.process, sizeof spec.process) ||
      !list_terminated(spec.thread, sizeof spec.thread))
    return "unterminated selector";
  if (spec.calls_mask[0] == 0 && spec.calls_mask[1] == 0) return "no calls";
  std::uint32_t families = 0;
  for (std::uint32_t word = 0; word < 2; ++word) {
    std::uint64_t valid = 0;
    for (std::uint32_t id = word * 64; id < kCallCount && id < (word + 1) * 64; ++id) {
      valid |= 1ull << (id % 64);
      if (spec.calls_mask[word] & (1ull << (id % 64))) families |= call_family(id);
    }
    if (spec.calls_mask[word] & ~valid) return "unknown call ids";
  }
  // The armed mask is computed from `families`: it must be exactly the calls' families
  // (read/write calls aimed only at sockets arm @net instead of @write/@read: net_families).
  if (spec.families != families && spec.families != net_families(spec))
    return "families do not match the calls";
  for (std::uint32_t bit = 1; bit != 0; bit <<= 1)
    if ((spec.actions & bit) && action_name(bit) == "?") return "unknown action bits";
  if (!(spec.probability >= 0.0 && spec.probability <= 1.0)) return "probability out of range";
  if (spec.every == 0) return "every = 0";
  if (spec.short_percent > 100) return "short percent over 100";
  if (spec.error < 0 || spec.error > 4095) return "errno out of range";
  if ((spec.actions & kActCrash) && spec.crash_signal != SIGKILL && spec.crash_signal != SIGABRT &&
      spec.crash_signal != SIGSEGV && spec.crash_signal != SIGBUS)
    return "crash signal not allowed";
  if (spec.delay_ns < 0 || spec.jitter_ns < 0 || spec.latency_ns < 0 || spec.p99_ns < 0)
    return "negative delay";
  if ((spec.actions & kActBandwidth) && spec.bandwidth_bps == 0) return "zero bandwidth";
  if (!(spec.loss >= 0.0 && spec.loss <= 1.0)) return "loss out of range";
  if (spec.size_min > spec.size_max) return "empty size range";
  if (!list_terminated(spec.host, sizeof spec.host) ||
      !list_terminated(spec.addr_unix, sizeof spec.addr_unix))
    return "unterminated selector";
  if (spec.addr_count > kAddrMax) return "bad addr selector";
  for (std::uint32_t i = 0; i < spec.addr_count; ++i) {
    const AddrEntry& e = spec.addr[i];
    if ((e.kind != kAddrInet && e.kind != kAddrUnix) ||
        (e.family != 0 && e.family != 4 && e.family != 6) ||
        e.prefix > (e.family == 4 ? 32 : 128) || e.negated > 1 || e.any_port > 1)
      return "bad addr selector";
  }
  if (spec.resolve_count > kResolveMax) return "too many resolve_to addresses";
  for (std::uint32_t i = 0; i < spec.resolve_count; ++i)
    if (spec.resolve_family[i] != 4 && spec.resolve_family[i] != 6) return "bad resolve_to address";
  if (spec.timeout_ns < 0) return "negative timeout";
  // The compiler's bounds (policy.h): past them the shim's time sums could wrap.
  if (spec.delay_ns > kDurationMaxNs || spec.jitter_ns > kDurationMaxNs ||
      spec.latency_ns > kDurationMaxNs || spec.p99_ns > kDurationMaxNs ||
      spec.timeout_ns > kDurationMaxNs || spec.start_after_ns < 0 ||
      spec.start_after_ns > kDurationMaxNs ||
      (spec.duration_ns != kForever &&
       (spec.duration_ns <= 0 || spec.duration_ns > kDurationMaxNs)))
    return "duration out of range";
  if (spec.corrupt_bits > kCorruptBitsMax) return "corrupt over 2^20 bits";
  if (!list_terminated(spec.stack, sizeof spec.stack)) return "unterminated selector";
  if (spec.log_stack > 1) return "bad log_stack";
  if (!terminated(spec.site, sizeof spec.site) || !terminated(spec.record, sizeof spec.record))
    return "unterminated selector";
  if (spec.site_depth > kMaxSiteDepth) return "bad site_depth";
  return std::nullopt;
}

SlotInspection inspect_fault_slot(const FaultSlot& slot) {
  SlotInspection out;
  const std::uint32_t state = slot.state.load(std::memory_order_acquire);
  if (state == kSlotFree) return out;
  if (state != kSlotUsed) {
    out.problem = "bad slot state " + std::to_string(state);
    return out;
  }
  const std::uint32_t enabled = slot.enabled.load(std::memory_order_relaxed);
  if (enabled > 1) {
    out.problem = "bad enabled flag " + std::to_string(enabled);
    return out;
  }
  std::uint64_t words[kSpecWords];
  if (!seqlock_read(slot.spec_seq, slot.spec_words, words, kSpecWords)) {
    out.problem = "an edit never finished (a writer died mid-edit)";
    return out;
  }
  std::memcpy(&out.spec, words, sizeof out.spec);
  out.problem = check_fault_spec(out.spec);
  out.used = !out.problem;
  return out;
}

std::optional<std::string> check_fault_slot(const FaultSlot& slot) {
  return inspect_fault_slot(slot).problem;
}

std::uint64_t compute_armed_mask(const ControlBlock& block) {
  // Tracking for power cuts runs whatever is armed, panic included: a `faultline powercut`
  // may come at any time, and must find every change since the last durable point.
  const std::uint64_t durable =
      block.header.durability_path[0] && block.header.undo_dir[0] ? std::uint64_t{kFamDurable} : 0;
  const std::uint32_t stop = kFlagPanicked | kFlagTtlExpired | kFlagBudgetSpent;
  if (block.header.flags.load(std::memory_order_relaxed) & stop) return durable;
  std::uint64_t mask = durable;
  std::uint64_t memory_floor = kMemoryFloorMax;
  for (const FaultSlot& slot : block.faults) {
    if (slot.state.load(std::memory_order_relaxed) != kSlotUsed) continue;
    if (slot.enabled.load(std::memory_order_relaxed) != 1) continue;
    const FaultSpec spec = read_fault_spec(slot);
    // A corrupted slot arms nothing: the shim would ignore it anyway.
    if (check_fault_spec(spec)) continue;
    mask |= spec.families;
    // @memory size floor (control_block.h): the smallest size any armed @memory fault matches.
    const std::uint64_t smallest = spec.has_size ? spec.size_min : 0;
    if ((spec.families & kFamMemory) && smallest < memory_floor) memory_floor = smallest;
  }
  if (mask & kFamMemory) mask |= memory_floor << kMemoryFloorShift;
  return mask;
}

std::string read_log_path(const ControlHeader& header) {
  std::uint64_t words[kLogPathMax / 8];
  if (!seqlock_read(header.log_path_seq, header.log_path_words, words, kLogPathMax / 8)) return "";
  char buf[kLogPathMax];
  std::memcpy(buf, words, sizeof buf);
  buf[kLogPathMax - 1] = '\0';
  return buf;
}

Session::Session(std::string name, int fd, ControlBlock* block)
    : name_(std::move(name)), fd_(fd), block_(block) {}

Session::~Session() {
  if (block_) munmap(block_, sizeof(ControlBlock));
  if (fd_ >= 0) close(fd_);
}

std::unique_ptr<Session> Session::create(const std::string& name, const Policy& policy,
                                         std::string& error) {
  if (!valid_session_name(name)) {
    error = "bad session name '" + name + "' (use [A-Za-z0-9_.-], at most 63 characters)";
    return nullptr;
  }
  if (policy.faults.size() > kMaxFaults) {
    error = "too many faults (" + std::to_string(policy.faults.size()) + ", at most " +
            std::to_string(kMaxFaults) + ")";
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
    error = std::string("cannot create session block in ") + kShmDir + ": " + std::strerror(errno);
    return nullptr;
  }
  auto discard = [&](const char* what) {
    error = std::string(what) + std::strerror(errno);
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
  auto session = std::unique_ptr<Session>(new Session(name, fd, block));
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
    error = link_error == EEXIST ? "session '" + name + "' already exists"
                                 : "session '" + name + "': " + std::strerror(link_error);
    errno = link_error;
    return nullptr;
  }
  return session;
}

std::unique_ptr<Session> Session::attach(const std::string& name, std::string& error) {
  if (!valid_session_name(name)) {
    error = "bad session name '" + name + "' (use [A-Za-z0-9_.-], at most 63 characters)";
    return nullptr;
  }
  int fd = open_shm(name, 0, error);
  if (fd < 0) {
    const int err = errno;
    struct stat st;
    if (err == ENOENT) {
      error = "no session '" + name + "'";
    } else if (err == EACCES && stat(shm_file_path(name).c_str(), &st) == 0 &&
               st.st_uid != geteuid()) {
      // Say whose it is rather than a bare "Permission denied".
      error = "session '" + name + "': " +
              validate_block(nullptr, 0, st.st_uid, geteuid()).value_or("permission denied");
    }
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    error = std::string("session '") + name + "': " + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  // A block others may write is not ours to trust, whoever owns it: anyone could arm faults
  // in (or crash) every process of the session through it.
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = "session '" + name + "': the control block is open to other users (mode " + mode +
            ", must be 0600)";
    close(fd);
    return nullptr;
  }
  std::size_t size = static_cast<std::size_t>(st.st_size);
  if (st.st_uid != geteuid() || size < sizeof(ControlBlock)) {
    // Report with the same checks a full validation would do, without mapping a short file.
    ControlHeader empty{};
    auto problem = validate_block(&empty, size, st.st_uid, geteuid());
    error = "session '" + name + "': " + problem.value_or("truncated control block");
    close(fd);
    return nullptr;
  }
  void* mem = mmap(nullptr, sizeof(ControlBlock), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    error = std::string("session '") + name + "': cannot map: " + std::strerror(errno);
    close(fd);
    return nullptr;
  }
  auto* block = static_cast<ControlBlock*>(mem);
  // A block made by an older faultline (sized, then filled in place) may still be filling.
  if (block->header.magic.load(std::memory_order_acquire) == 0) wait_published(block);
  if (auto problem = validate_block(mem, size, st.st_uid, geteuid())) {
    error = "session '" + name + "': " + *problem;
    munmap(mem, sizeof(ControlBlock));
    close(fd);
    return nullptr;
  }
  auto session = std::unique_ptr<Session>(new Session(name, fd, block));
  session->dev_ = st.st_dev;
  session->ino_ = st.st_ino;
  return session;
}

std::unique_ptr<Session> Session::attach_or_create(const std::string& name, const Policy& policy,
                                                   bool& created, std::string& error) {
  created = false;
  // Processes of a tree may start together: exactly one links its block into place, the
  // others find it there, complete, and join it. Processes that start and end quickly (a
  // shell's commands) may leave one another dead blocks to replace, again and again while
  // the burst lasts: every pass makes progress (a block linked, or a dead one unlinked), so
  // it is retried until it joins, bounded in time rather than by a small count.
  const std::int64_t deadline = monotonic_ns() + std::int64_t{kPublishWaitMs} * 1000000;
  for (int attempt = 0; attempt < 100000 && monotonic_ns() < deadline; ++attempt) {
    std::string create_error;
    if (auto s = create(name, policy, create_error)) {
      created = true;
      return s;
    }
    if (create_error.find("already exists") == std::string::npos) {
      error = create_error;
      return nullptr;
    }
    if (auto s = attach(name, error)) {
      // A block whose processes have all exited belongs to an ended run (a service that
      // restarted): its TTL, budget and counters are spent. Start afresh from `policy`.
      if (!s->remove_if_dead()) return s;
      continue;
    }
    // Removed between our link attempt and our attach: try again.
    if (error.find("no session") == std::string::npos) return nullptr;
  }
  error = "session '" + name + "' keeps being replaced; not joined";
  return nullptr;
}

namespace {
// Holds the writer lock on a LockFd for a scope; closes a reopened descriptor.
struct WriterLock {
  int fd;
  bool owned;
  WriterLock(int fd_in, bool owned_in) : fd(fd_in), owned(owned_in) {
    if (fd >= 0) flock(fd, LOCK_EX);
  }
  ~WriterLock() {
    if (fd < 0) return;
    flock(fd, LOCK_UN);
    if (owned) close(fd);
  }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
};
}  // namespace

void Session::release_fd() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Session::LockFd Session::lock_fd() const {
  if (fd_ >= 0) return {fd_, false};
  const int fd = open_shm_quiet(name_);
  if (fd < 0) return {};
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
    close(fd);
    return {};
  }
  return {fd, true};
}

bool Session::remove_if_dead() {
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

std::vector<pid_t> Session::leave(pid_t self) {
  unregister_pid(self);
  std::vector<pid_t> alive = live_pids();
  if (!alive.empty()) return alive;
  if (remove_if_dead()) return {};
  // A process joined between the two looks: it keeps the session.
  return live_pids();
}

bool Session::remove(const std::string& name) {
  return shm_unlink(shm_object_name(name).c_str()) == 0;
}

int Session::find_fault(std::string_view fault_name) const {
  for (std::uint32_t i = 0; i < kMaxFaults; ++i) {
    const FaultSlot& slot = block_->faults[i];
    if (slot.state.load(std::memory_order_acquire) != kSlotUsed) continue;
    if (fault_name == read_fault_spec(slot).name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::pair<int, std::string>> Session::corrupt_slots() const {
  std::vector<std::pair<int, std::string>> out;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i)
    if (auto problem = check_fault_slot(block_->faults[i]))
      out.emplace_back(static_cast<int>(i), std::move(*problem));
  return out;
}

std::vector<int> Session::used_slots() const {
  std::vector<int> out;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i)
    if (block_->faults[i].state.load(std::memory_order_acquire) == kSlotUsed)
      out.push_back(static_cast<int>(i));
  return out;
}

template <class F>
void Session::write_locked(F&& edit) {
  // Without a lock descriptor the block has lost its name: no other writer can reach it.
  const LockFd lock = lock_fd();
  const WriterLock locked(lock.fd, lock.owned);
  edit();
  ControlHeader& h = block_->header;
  h.armed_mask.store(compute_armed_mask(*block_), std::memory_order_release);
  h.generation.fetch_add(1, std::memory_order_release);
}

bool Session::add_fault(const FaultSpec& spec, std::string& error) {
  bool ok = false;
  write_locked([&] {
    if (find_fault(spec.name) >= 0) {
      error = std::string("a fault named '") + spec.name + "' already exists";
      return;
    }
    for (FaultSlot& slot : block_->faults) {
      if (slot.state.load(std::memory_order_relaxed) != kSlotFree) continue;
      reset_counters(slot);
      publish_spec(slot, spec);
      slot.enabled.store(spec.enabled_initially ? 1 : 0, std::memory_order_relaxed);
      slot.enabled_since_ns.store(monotonic_ns(), std::memory_order_relaxed);
      slot.state.store(kSlotUsed, std::memory_order_release);
      ok = true;
      return;
    }
    error = "the session holds " + std::to_string(kMaxFaults) + " faults already";
  });
  return ok;
}

bool Session::remove_fault(int index) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] {
    FaultSlot& slot = block_->faults[index];
    slot.enabled.store(0, std::memory_order_relaxed);
    slot.state.store(kSlotFree, std::memory_order_release);
  });
  return true;
}

bool Session::set_enabled(int index, bool enabled) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] {
    FaultSlot& slot = block_->faults[index];
    if (enabled && !slot.enabled.load(std::memory_order_relaxed))
      slot.enabled_since_ns.store(monotonic_ns(), std::memory_order_relaxed);
    slot.enabled.store(enabled ? 1 : 0, std::memory_order_release);
  });
  return true;
}

bool Session::update_fault(int index, const FaultSpec& spec) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] { publish_spec(block_->faults[index], spec); });
  return true;
}

bool Session::edit_fault(int index, const std::function<void(FaultSpec&)>& edit) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  bool present = false;
  write_locked([&] {
    FaultSlot& slot = block_->faults[index];
    if (slot.state.load(std::memory_order_acquire) != kSlotUsed) return;
    FaultSpec spec = read_fault_spec(slot);
    edit(spec);
    publish_spec(slot, spec);
    present = true;
  });
  return present;
}

void Session::panic() {
  write_locked([&] { block_->header.flags.fetch_or(kFlagPanicked, std::memory_order_relaxed); });
}

void Session::resume() {
  write_locked([&] {
    block_->header.flags.fetch_and(~std::uint32_t{kFlagPanicked}, std::memory_order_relaxed);
  });
}

void Session::set_log_path(const std::string& path) {
  write_locked([&] {
    ControlHeader& h = block_->header;
    store_string_words(h.log_path_seq, h.log_path_words, kLogPathMax / 8, absolute_path(path));
  });
}

void Session::set_undo_dir(const std::string& dir) {
  write_locked([&] {
    ControlHeader& h = block_->header;
    std::memset(h.undo_dir, 0, sizeof h.undo_dir);
    std::memcpy(h.undo_dir, dir.data(), std::min(dir.size(), sizeof h.undo_dir - 1));
  });
}

void Session::set_seed(std::uint64_t seed) {
  write_locked([&] { block_->header.seed.store(seed, std::memory_order_relaxed); });
}

int Session::register_pid(pid_t pid) {
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

void Session::unregister_pid(pid_t pid) {
  for (auto& slot : block_->header.pids) {
    std::int32_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0, std::memory_order_relaxed)) return;
  }
}

std::vector<pid_t> Session::live_pids() const {
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

std::vector<SessionInfo> list_sessions(bool remove_dead) {
  std::vector<SessionInfo> out;
  DIR* dir = opendir("/dev/shm");
  if (!dir) return out;
  while (struct dirent* entry = readdir(dir)) {
    std::string_view file = entry->d_name;
    if (file.substr(0, kShmPrefix.size()) != kShmPrefix) continue;
    SessionInfo info;
    info.name = std::string(file.substr(kShmPrefix.size()));
    std::string error;
    auto session = Session::attach(info.name, error);
    if (!session) {
      struct stat st;
      if (stat(shm_file_path(info.name).c_str(), &st) == 0) info.owner = st.st_uid;
      info.problem = error;
      out.push_back(std::move(info));
      continue;
    }
    const ControlBlock& block = session->block();
    info.owner = block.header.owner_uid;
    info.pids = session->live_pids();
    for (int index : session->used_slots()) {
      ++info.faults;
      if (block.faults[index].enabled.load(std::memory_order_relaxed)) ++info.faults_enabled;
    }
    info.armed_mask = block.header.armed_mask.load(std::memory_order_relaxed);
    info.flags = block.header.flags.load(std::memory_order_relaxed);
    info.age_ns = realtime_ns() - block.header.start_real_ns.load(std::memory_order_relaxed);
    // A block is published with its creator a member, so a dead one is really dead; the
    // grace is for the processes that inspect a session right after it ended (its counters
    // stay readable by name), and for a block made by an older faultline still starting.
    constexpr std::int64_t kGraceNs = 2'000'000'000;
    if (remove_dead && info.pids.empty() && info.age_ns > kGraceNs && session->remove_if_dead())
      continue;
    out.push_back(std::move(info));
  }
  closedir(dir);
  return out;
}

}  // namespace faultline
