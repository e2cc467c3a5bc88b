// The cut, controller side (cut.h).
#include "controller/durability/cut.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

namespace faultline::durability {
namespace {

constexpr int kKillWaitMs = 2000;

std::int64_t now_real_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

// Alive and not a zombie (a member reparented to us, or not yet reaped, is dead for a cut).
bool member_alive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

void pull_cut(ControlBlock& block) {
  ControlHeader& h = block.header;
  std::int64_t none = 0;
  h.cut_real_ns.compare_exchange_strong(none, now_real_ns(), std::memory_order_relaxed);
  h.flags.fetch_or(kFlagPowercut, std::memory_order_seq_cst);
}

std::vector<pid_t> kill_members(ControlBlock& block, pid_t except) {
  std::vector<pid_t> pids;
  const pid_t self = getpid();
  for (std::uint32_t i = 0; i < kMaxPids; ++i) {
    const pid_t pid = block.header.pids[i].load(std::memory_order_relaxed);
    if (pid > 0 && pid != self && pid != except) pids.push_back(pid);
  }
  for (pid_t pid : pids) kill(pid, SIGKILL);
  std::vector<pid_t> left = pids;
  for (int waited = 0; waited < kKillWaitMs; waited += 10) {
    std::erase_if(left, [](pid_t pid) { return !member_alive(pid); });
    if (left.empty()) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  return left;
}

CutReport revert_session(const ControlBlock& block) {
  const ControlHeader& h = block.header;
  CutReport report;
  const std::int64_t cut_ns = h.cut_real_ns.load(std::memory_order_relaxed);
  if (h.undo_dir[0]) {
    RevertOptions options;
    options.keep_on_fsync_error = h.durability_flags & kDurabilityKeepOnFsyncError;
    options.torn = h.durability_flags & kDurabilityTorn;
    options.seed = h.seed.load(std::memory_order_relaxed);
    report = revert(std::string(h.undo_dir, strnlen(h.undo_dir, sizeof h.undo_dir)), options);
  }
  if (cut_ns > 0) report.took_ns = std::max<std::int64_t>(0, now_real_ns() - cut_ns);
  return report;
}

void clear_cut(ControlBlock& block) {
  ControlHeader& h = block.header;
  if (h.undo_dir[0])
    empty_undo_area(std::string(h.undo_dir, strnlen(h.undo_dir, sizeof h.undo_dir)));
  h.cut_real_ns.store(0, std::memory_order_relaxed);
  h.flags.fetch_and(~static_cast<std::uint32_t>(kFlagPowercut), std::memory_order_seq_cst);
}

}  // namespace faultline::durability
