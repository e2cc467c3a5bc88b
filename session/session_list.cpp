// Every session in /dev/shm (`faultline sessions`, `status`): listed with opendir, each
// attached and summarised; with remove_dead, dead blocks of this user are swept. Apart from
// the rest of the session code so that the shim, which never lists, does not link it.
#include <dirent.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "session/session.h"
#include "session/session_internal.h"

namespace faultline {

using namespace session_detail;

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
    auto session = ControlSession::attach(info.name, error);
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
