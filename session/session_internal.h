// What the files of the session code share (session.h is the public face): the block reader
// (session.cpp: names, validation, attach, snapshots), the shm lifecycle
// (session_lifecycle.cpp: create, join, membership, unlink; session_list.cpp: list and sweep
// /dev/shm) and the writer (session_writer.cpp: the flock + seqlock edit protocol).
#pragma once

#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "session/session.h"

namespace faultline::session_detail {

inline constexpr std::string_view kShmPrefix = "faultline.";
inline constexpr int kPublishWaitMs = 2000;
// Where shm_open(3) keeps its objects on Linux (glibc and musl alike).
inline constexpr const char* kShmDir = "/dev/shm";

// ---- the reader (session.cpp) ----
// On failure, errno says why and `error` is a kSystem SessionError naming the session.
int open_shm(const std::string& name, int flags, SessionError& error);
int open_shm_quiet(const std::string& name);
// Waits until a concurrent creator has published the block (magic set), bounded in time.
bool wait_published(const ControlBlock* block);

// ---- the writer (session_writer.cpp) ----
void publish_spec(FaultSlot& slot, const FaultSpec& spec);
void store_string_words(std::atomic<std::uint64_t>& seq, std::atomic<std::uint64_t>* words,
                        std::size_t nwords, std::string_view text);
// Members of a session may chdir; the log must land in one file whatever their cwd.
std::string absolute_path(const std::string& path);

// Holds the writer lock on a LockFd for a scope; closes a reopened descriptor.
struct WriterLock {
  int fd;
  bool owned;
  WriterLock(int fd_in, bool owned_in) : fd(fd_in), owned(owned_in) {
    if (fd >= 0) ::flock(fd, LOCK_EX);
  }
  ~WriterLock() {
    if (fd < 0) return;
    ::flock(fd, LOCK_UN);
    if (owned) ::close(fd);
  }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
};

}  // namespace faultline::session_detail
