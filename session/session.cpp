// Session blocks in POSIX shared memory, the reader's part: names, validation, attach (map and
// check a block before trusting it) and the snapshots every reader takes (a fault's spec
// through its seqlock, the armed mask, the log path). The shim and `status` read through it.
// The lifecycle is session_lifecycle.cpp and session_list.cpp, the writer session_writer.cpp.
#include "session/session.h"

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
#include "session/session_internal.h"

namespace faultline {
namespace session_detail {

int open_shm(const std::string& name, int flags, SessionError& error) {
  int fd = shm_open(shm_object_name(name).c_str(), flags | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    error = {SessionErrc::kSystem, std::string("session '") + name + "': " + std::strerror(errno)};
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

}  // namespace session_detail

using namespace session_detail;

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

ControlSession::ControlSession(std::string name, int fd, ControlBlock* block)
    : name_(std::move(name)), fd_(fd), block_(block) {}

ControlSession::~ControlSession() {
  if (block_) munmap(block_, sizeof(ControlBlock));
  if (fd_ >= 0) close(fd_);
}

std::unique_ptr<ControlSession> ControlSession::attach(const std::string& name,
                                                       SessionError& error) {
  if (!valid_session_name(name)) {
    error = {SessionErrc::kBadName,
             "bad session name '" + name + "' (use [A-Za-z0-9_.-], at most 63 characters)"};
    return nullptr;
  }
  int fd = open_shm(name, 0, error);
  if (fd < 0) {
    const int err = errno;
    struct stat st;
    if (err == ENOENT) {
      error = {SessionErrc::kNotFound, "no session '" + name + "'"};
    } else if (err == EACCES && stat(shm_file_path(name).c_str(), &st) == 0 &&
               st.st_uid != geteuid()) {
      // Say whose it is rather than a bare "Permission denied".
      error = {SessionErrc::kRefused,
               "session '" + name + "': " +
                   validate_block(nullptr, 0, st.st_uid, geteuid()).value_or("permission denied")};
    }
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    error = {SessionErrc::kSystem, std::string("session '") + name + "': " + std::strerror(errno)};
    close(fd);
    return nullptr;
  }
  // A block others may write is not ours to trust, whoever owns it: anyone could arm faults
  // in (or crash) every process of the session through it.
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = {SessionErrc::kRefused, "session '" + name +
                                        "': the control block is open to other users (mode " +
                                        mode + ", must be 0600)"};
    close(fd);
    return nullptr;
  }
  std::size_t size = static_cast<std::size_t>(st.st_size);
  if (st.st_uid != geteuid() || size < sizeof(ControlBlock)) {
    // Report with the same checks a full validation would do, without mapping a short file.
    ControlHeader empty{};
    auto problem = validate_block(&empty, size, st.st_uid, geteuid());
    error = {SessionErrc::kRefused,
             "session '" + name + "': " + problem.value_or("truncated control block")};
    close(fd);
    return nullptr;
  }
  void* mem = mmap(nullptr, sizeof(ControlBlock), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    error = {SessionErrc::kSystem,
             std::string("session '") + name + "': cannot map: " + std::strerror(errno)};
    close(fd);
    return nullptr;
  }
  auto* block = static_cast<ControlBlock*>(mem);
  // A block made by an older faultline (sized, then filled in place) may still be filling.
  if (block->header.magic.load(std::memory_order_acquire) == 0) wait_published(block);
  if (auto problem = validate_block(mem, size, st.st_uid, geteuid())) {
    error = {SessionErrc::kRefused, "session '" + name + "': " + *problem};
    munmap(mem, sizeof(ControlBlock));
    close(fd);
    return nullptr;
  }
  auto session = std::unique_ptr<ControlSession>(new ControlSession(name, fd, block));
  session->dev_ = st.st_dev;
  session->ino_ = st.st_ino;
  return session;
}

std::unique_ptr<ControlSession> ControlSession::attach(const std::string& name,
                                                       std::string& error) {
  SessionError why;
  std::unique_ptr<ControlSession> session = attach(name, why);
  if (!session) error = std::move(why.message);
  return session;
}

void ControlSession::release_fd() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int ControlSession::find_fault(std::string_view fault_name) const {
  for (std::uint32_t i = 0; i < kMaxFaults; ++i) {
    const FaultSlot& slot = block_->faults[i];
    if (slot.state.load(std::memory_order_acquire) != kSlotUsed) continue;
    if (fault_name == read_fault_spec(slot).name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::pair<int, std::string>> ControlSession::corrupt_slots() const {
  std::vector<std::pair<int, std::string>> out;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i)
    if (auto problem = check_fault_slot(block_->faults[i]))
      out.emplace_back(static_cast<int>(i), std::move(*problem));
  return out;
}

std::vector<int> ControlSession::used_slots() const {
  std::vector<int> out;
  for (std::uint32_t i = 0; i < kMaxFaults; ++i)
    if (block_->faults[i].state.load(std::memory_order_acquire) == kSlotUsed)
      out.push_back(static_cast<int>(i));
  return out;
}

}  // namespace faultline
