// Session blocks, the writer's part: the single-writer edit protocol (flock on the shm file,
// each fault published through its seqlock, then the generation bumped and the armed mask
// recomputed) and every edit made through it.
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
namespace session_detail {
namespace {

void reset_counters(FaultSlot& slot) {
  slot.seen.store(0, std::memory_order_relaxed);
  slot.matched.store(0, std::memory_order_relaxed);
  slot.injected.store(0, std::memory_order_relaxed);
  slot.quota_used.store(0, std::memory_order_relaxed);
  slot.first_injection_ns.store(0, std::memory_order_relaxed);
  slot.last_injection_ns.store(0, std::memory_order_relaxed);
}

}  // namespace

void publish_spec(FaultSlot& slot, const FaultSpec& spec) {
  std::uint64_t words[kSpecWords];
  std::memcpy(words, &spec, sizeof spec);
  seqlock_write(slot.spec_seq, slot.spec_words, words, kSpecWords);
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

}  // namespace session_detail

using namespace session_detail;

ControlSession::LockFd ControlSession::lock_fd() const {
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

template <class F>
void ControlSession::write_locked(F&& edit) {
  // Without a lock descriptor the block has lost its name: no other writer can reach it.
  const LockFd lock = lock_fd();
  const WriterLock locked(lock.fd, lock.owned);
  edit();
  ControlHeader& h = block_->header;
  h.armed_mask.store(compute_armed_mask(*block_), std::memory_order_release);
  h.generation.fetch_add(1, std::memory_order_release);
}

bool ControlSession::add_fault(const FaultSpec& spec, SessionError& error) {
  bool ok = false;
  write_locked([&] {
    if (find_fault(spec.name) >= 0) {
      error = {SessionErrc::kFaultExists,
               std::string("a fault named '") + spec.name + "' already exists"};
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
    error = {SessionErrc::kFull,
             "the session holds " + std::to_string(kMaxFaults) + " faults already"};
  });
  return ok;
}

bool ControlSession::remove_fault(int index) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] {
    FaultSlot& slot = block_->faults[index];
    slot.enabled.store(0, std::memory_order_relaxed);
    slot.state.store(kSlotFree, std::memory_order_release);
  });
  return true;
}

bool ControlSession::set_enabled(int index, bool enabled) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] {
    FaultSlot& slot = block_->faults[index];
    if (enabled && !slot.enabled.load(std::memory_order_relaxed))
      slot.enabled_since_ns.store(monotonic_ns(), std::memory_order_relaxed);
    slot.enabled.store(enabled ? 1 : 0, std::memory_order_release);
  });
  return true;
}

bool ControlSession::update_fault(int index, const FaultSpec& spec) {
  if (index < 0 || index >= static_cast<int>(kMaxFaults)) return false;
  write_locked([&] { publish_spec(block_->faults[index], spec); });
  return true;
}

bool ControlSession::edit_fault(int index, const std::function<void(FaultSpec&)>& edit) {
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

void ControlSession::panic() {
  write_locked([&] { block_->header.flags.fetch_or(kFlagPanicked, std::memory_order_relaxed); });
}

void ControlSession::resume() {
  write_locked([&] {
    block_->header.flags.fetch_and(~std::uint32_t{kFlagPanicked}, std::memory_order_relaxed);
  });
}

void ControlSession::set_log_path(const std::string& path) {
  write_locked([&] {
    ControlHeader& h = block_->header;
    store_string_words(h.log_path_seq, h.log_path_words, kLogPathMax / 8, absolute_path(path));
  });
}

void ControlSession::set_undo_dir(const std::string& dir) {
  write_locked([&] {
    ControlHeader& h = block_->header;
    std::memset(h.undo_dir, 0, sizeof h.undo_dir);
    std::memcpy(h.undo_dir, dir.data(), std::min(dir.size(), sizeof h.undo_dir - 1));
  });
}

void ControlSession::set_seed(std::uint64_t seed) {
  write_locked([&] { block_->header.seed.store(seed, std::memory_order_relaxed); });
}

}  // namespace faultline
