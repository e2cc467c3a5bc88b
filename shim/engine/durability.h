// Tracking for power cuts (docs/policy.md, "Durability: power cuts"): what every process of a
// session has changed in the [durability] paths since each change was last made durable, kept
// as records in the session's undo log (faultline/undo_log.h) so that the controller can undo
// it after a cut. Runs whenever the session tracks paths (the kFamDurable bit of the armed
// word), faults armed or not; costs nothing otherwise.
//
// Every function here is a no-op unless durability_on(), never fails the program's call, keeps
// errno, allocates nothing and takes no lock (a signal handler's write may lead here). A record
// that cannot be written (disk full) is said once on the diag channel and the inode is marked
// untracked: the cut then leaves that file as it is, rather than the program's write failing.
//
// Calls for the wrappers. Each "after" part runs inside the `real` lambda the slow path is
// given, right after the real call, so that a crash or power cut `when = "after"` finds it
// recorded (see open.cpp's durable_open and sync.cpp's tracked_sync):
//   write-like:   durable_before_write(fd, off, len) just before the real write
//                 (off = -1: at the fd's position; kDurableAtEnd: at the end, RWF_APPEND;
//                 at the end whatever `off` says while the fd has O_APPEND); also for
//                 fallocate(PUNCH_HOLE/ZERO_RANGE) over [off, off + len)
//   truncation:   durable_size_change(fd, new_size) just before ftruncate (and fallocate that
//                 grows the file); durable_path_size_change(dirfd, path, new_size) before truncate
//   syncs:        DurableSync s = durable_sync_begin(fd, kind, off, len); the real call;
//                 durable_sync_end(s, outcome)
//   entries:      DurableEntry e = durable_before_create/link/unlink/rename(...) before the real
//                 call; durable_entry_after(e, rc) right after it (rc: 0 or -1)
//   fd numbers:   durable_fd_copied(from, to) after dup*, durable_fd_closed(fd) at close
#pragma once

#include <stdio.h>
#include <sys/types.h>

#include <cstdint>

#include "shim/engine/scratch.h"
#include "shim/engine/shim.h"

namespace faultline::shim {

inline bool durability_on() noexcept { return armed(kFamDurable); }

// durable_before_write's `off` for a write the caller appends whatever the fd's offset
// (pwritev2 with RWF_APPEND).
inline constexpr std::int64_t kDurableAtEnd = -2;

// Open: `before` resolves the path and saves what O_TRUNC would destroy; `after` learns the
// new fd (tracked when writable, regular and under a tracked path) and records a creation.
struct DurableOpen {
  bool tracked_path = false;
  bool existed = false;
  int flags = 0;
  Scratch scratch;  // the absolute path, claimed only for a session that tracks paths
};
void durable_open_before(DurableOpen& op, int dirfd, const char* path, int flags) noexcept;
void durable_open_after(const DurableOpen& op, int fd) noexcept;

// Returns the offset the write is at (off, or the fd's position/end for off = -1).
std::int64_t durable_before_write(int fd, std::int64_t off, std::uint64_t len) noexcept;

void durable_size_change(int fd, std::int64_t new_size) noexcept;
void durable_path_size_change(int dirfd, const char* path, std::int64_t new_size) noexcept;
// stdio: the bytes buffered in `stream` plus `extra` are about to reach the fd.
void durable_before_stream_write(FILE* stream, std::uint64_t extra) noexcept;

enum class SyncKind : std::uint8_t {
  kFile,       // fsync/fdatasync on an fd: data and size (a directory fd: its entries)
  kRange,      // sync_file_range with SYNC_FILE_RANGE_WAIT_AFTER: [off, off + len), no size
  kWriteSync,  // an O_SYNC/O_DSYNC/RWF_DSYNC write of [off, off + len): that range and size
  kFs,         // syncfs: everything on the fd's file system
  kAll,        // sync()
};
enum class SyncOutcome : std::uint8_t { kOk, kFailed };
struct DurableSync {
  std::uint32_t seq = 0;  // 0: nothing begun
};
DurableSync durable_sync_begin(int fd, SyncKind kind, std::int64_t off, std::uint64_t len) noexcept;
void durable_sync_end(const DurableSync& sync, SyncOutcome outcome) noexcept;
// Does a write on fd make itself durable (O_SYNC/O_DSYNC opened)?
bool durable_fd_sync_writes(int fd) noexcept;

// Directory entries. Each before_* saves what the cut needs (a hidden hard link of what the call
// removes or replaces) and returns a token; durable_entry_after records it when rc == 0 (and
// drops the hidden link otherwise).
struct DurableEntry {
  std::uint16_t type = 0;  // UndoType, 0 = nothing to record
  std::uint64_t parent_dev = 0, parent_ino = 0;
  std::int64_t mode = 0;
  char hidden[64] = {};
  char* paths = nullptr;  // mmap'd: old\0new\0 (or path\0)
  std::size_t paths_len = 0;
};
DurableEntry durable_before_create(int dirfd, const char* path, bool dir) noexcept;  // mkdir
DurableEntry durable_before_link(int newdirfd, const char* newpath) noexcept;
DurableEntry durable_before_unlink(int dirfd, const char* path,
                                   bool dir) noexcept;  // unlink, rmdir
DurableEntry durable_before_rename(int olddirfd, const char* oldpath, int newdirfd,
                                   const char* newpath) noexcept;
void durable_entry_after(DurableEntry& entry, int rc) noexcept;

// Before mmap: a shared writable mapping of a tracked file ends its tracking (said once).
void durable_mapped(int fd, int prot, int flags) noexcept;

void durable_fd_copied(int from, int to) noexcept;
void durable_fd_closed(int fd) noexcept;
void durable_fd_closed_range(unsigned first, unsigned last) noexcept;
// Closes the cached undo log fd (unit tests: each test has its own undo area).
void durable_reset_for_tests() noexcept;

// A write-like real call under tracking: saves what it overwrites, runs it, and makes it
// durable at once when the fd or the call says so (O_SYNC/O_DSYNC, RWF_DSYNC/RWF_SYNC).
template <class Fn>
ssize_t durable_write(int fd, std::int64_t off, std::uint64_t len, bool sync_call, Fn&& real) {
  if (!durability_on()) return real();
  const std::int64_t at = durable_before_write(fd, off, len);
  const bool sync = sync_call || durable_fd_sync_writes(fd);
  const ssize_t r = real();
  if (sync && r > 0) {
    const DurableSync s =
        durable_sync_begin(fd, SyncKind::kWriteSync, at, static_cast<std::uint64_t>(r));
    durable_sync_end(s, SyncOutcome::kOk);
  }
  return r;
}

}  // namespace faultline::shim
