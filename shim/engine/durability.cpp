// Power-cut tracking (durability.h): records in the session's undo log, appended by every
// process of the session, that let the controller put the [durability] paths back in their
// durable state after a cut. Each record is one O_APPEND writev (faultline/undo_log.h), so
// processes writing the same file stay consistent without a lock: the log order is the order
// in which their records were appended, and each record is appended before the change it
// describes, so the oldest record of a byte always holds the byte as it was durably.
#include "shim/engine/durability.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio_ext.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "faultline/glob.h"
#include "faultline/undo_log.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/text_buf.h"

namespace faultline::shim {
namespace {

// Per fd number: the tracked inode it was opened on. Filled at open (durable_open_after) and
// copied by dup; fds made behind our back (raw syscalls, before exec) are not tracked.
constexpr int kFdSlots = 1 << 16;
enum SlotFlags : std::uint32_t {
  kSlotTracked = 1u << 0,
  kSlotKnown = 1u << 1,       // this process wrote its kUndoFile record and hidden link
  kSlotSyncWrites = 1u << 2,  // O_SYNC/O_DSYNC: each write is durable when it returns
  kSlotLearnt = 1u << 4,      // stdio's fd, looked at once: dev/ino say which file that was
};
struct FdSlot {
  std::atomic<std::uint64_t> dev;
  std::atomic<std::uint64_t> ino;
  std::atomic<std::uint32_t> flags;
};
FdSlot g_fds[kFdSlots];

// The log, opened once per process at a high fd number and checked by identity before each
// use: the program may have closed it (closefrom) and reused the number.
std::atomic<int> g_log_fd{-1};
std::atomic<std::uint64_t> g_log_dev{0}, g_log_ino{0};
std::atomic<std::uint32_t> g_seq{0};
constexpr int kLogFdFloor = 700;
// Prior contents are read and appended in chunks of this size (one record each).
constexpr std::size_t kChunk = 256 * 1024;

class ErrnoKeep {
 public:
  ErrnoKeep() noexcept : saved_(errno) {}
  ~ErrnoKeep() { errno = saved_; }
  ErrnoKeep(const ErrnoKeep&) = delete;
  ErrnoKeep& operator=(const ErrnoKeep&) = delete;

 private:
  int saved_;
  // Tracking calls open, pread and writev, which are cancellation points, from noexcept code:
  // a cancel acted on there would be a forced unwind through it (std::terminate). The program's
  // own call, run outside, acts on the cancel where the kernel would (shim.h, CancelOff).
  CancelOff no_cancel_;
};

const ControlHeader* header() noexcept {
  ControlBlock* block = g_block.load(std::memory_order_acquire);
  return block && block->header.undo_dir[0] ? &block->header : nullptr;
}

// "<dir>/<name>" into out; false when it does not fit.
bool join(char* out, std::size_t size, const char* dir, const char* name) noexcept {
  const std::size_t a = std::strlen(dir), b = std::strlen(name);
  if (a + 1 + b + 1 > size) return false;
  std::memcpy(out, dir, a);
  out[a] = '/';
  std::memcpy(out + a + 1, name, b + 1);
  return true;
}

void proc_fd_path(char* out, int fd) noexcept {
  char digits[16];
  int n = 0;
  unsigned v = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  std::memcpy(out, "/proc/self/fd/", 14);
  int o = 14;
  while (n > 0) out[o++] = digits[--n];
  out[o] = '\0';
}

// The program may close our fd (close, closefrom, close_range) or dup2 over it: each of those
// wrappers forgets it (durable_fd_closed*), so that it is opened afresh and never mistaken for
// the program's file that took its number. A raw close or dup3 gets past them: so the number
// is also checked by identity (device, inode) before each record.
int log_fd(const ControlHeader& h) noexcept {
  int fd = g_log_fd.load(std::memory_order_acquire);
  if (fd >= 0) {
    // Still the log? A number the program closed behind the wrappers' back (a raw close, a
    // closefrom racing this write) may now be one of its files: records must never land there.
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_dev == g_log_dev.load(std::memory_order_relaxed) &&
        st.st_ino == g_log_ino.load(std::memory_order_relaxed))
      return fd;
    g_log_fd.compare_exchange_strong(fd, -1, std::memory_order_acq_rel);
  }
  Scratch scratch;
  char* path = scratch.get();
  if (!path || !join(path, Scratch::kBytes, h.undo_dir, kUndoLogName)) return -1;
  int opened = FL_REAL(open)(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (opened < 0) return -1;
  // Out of the program's way: a high number, never one of the low numbers a daemon that closed
  // its stdio expects open() to give it. Under a small RLIMIT_NOFILE, lower floors; none at
  // all, and tracking stops rather than holding a number the program counts on.
  int high = -1;
  for (long floor : {long{kLogFdFloor}, 256L, 64L, 10L}) {
    high = FL_REAL(fcntl)(opened, F_DUPFD_CLOEXEC, reinterpret_cast<void*>(floor));
    if (high >= 0) break;
  }
  FL_REAL(close)(opened);
  if (high < 0) return -1;
  opened = high;
  struct stat st;
  if (fstat(opened, &st) != 0) {
    FL_REAL(close)(opened);
    return -1;
  }
  g_log_dev.store(st.st_dev, std::memory_order_relaxed);
  g_log_ino.store(st.st_ino, std::memory_order_relaxed);
  int expected = -1;
  if (!g_log_fd.compare_exchange_strong(expected, opened, std::memory_order_acq_rel)) {
    FL_REAL(close)(opened);  // another thread opened it first
    return expected;
  }
  return opened;
}

// The program closed (or replaced) fd: if it was the log, it is no longer ours.
void forget_log_fd(unsigned first, unsigned last) noexcept {
  const int fd = g_log_fd.load(std::memory_order_relaxed);
  if (fd >= 0 && static_cast<unsigned>(fd) >= first && static_cast<unsigned>(fd) <= last) {
    int expected = fd;
    g_log_fd.compare_exchange_strong(expected, -1, std::memory_order_relaxed);
  }
}

// One record, whole or not at all from the reader's point of view.
bool append(const ControlHeader& h, UndoHeader& rec, const void* payload,
            std::size_t size) noexcept {
  CancelOff no_cancel;
  const int fd = log_fd(h);
  if (fd < 0) return false;
  rec.magic = kUndoMagic;
  rec.payload = static_cast<std::uint32_t>(size);
  rec.payload_sum = undo_payload_sum(payload, size);
  rec.header_sum = 0;
  rec.header_sum = undo_header_sum(rec);
  struct iovec iov[2] = {{&rec, sizeof rec}, {const_cast<void*>(payload), size}};
  const ssize_t want = static_cast<ssize_t>(sizeof rec + size);
  ssize_t r;
  do r = FL_REAL(writev)(fd, iov, size ? 2 : 1);
  while (r < 0 && errno == EINTR);
  return r == want;
}

UndoHeader record(UndoType type, std::uint64_t dev, std::uint64_t ino) noexcept {
  UndoHeader rec;
  std::memset(&rec, 0, sizeof rec);
  rec.type = type;
  rec.dev = dev;
  rec.ino = ino;
  rec.pid = static_cast<std::uint32_t>(getpid());
  return rec;
}

// Tracking this inode failed (undo log unwritable): said once, and the cut leaves it alone
// rather than restoring half of it. The program's call goes on regardless.
void give_up(const ControlHeader& h, int fd, std::uint64_t dev, std::uint64_t ino) noexcept {
  const int err = errno;
  diag(
      "faultline: power-cut tracking stopped for a file (inode %llu): cannot write the undo "
      "log in %s: %s; a cut leaves that file as it is",
      static_cast<unsigned long long>(ino), h.undo_dir, error_text(err));
  UndoHeader rec = record(kUndoUntrack, dev, ino);
  append(h, rec, nullptr, 0);
  if (fd >= 0 && fd < kFdSlots) g_fds[fd].flags.store(0, std::memory_order_relaxed);
}

// Stores through a shared writable mapping reach the file with no call the shim sees, and
// msync names no file: the cut could neither keep what they wrote nor know what was synced.
// The file is left out of the cut, which says so, rather than reverted wrongly.
void untrack_mapped(const ControlHeader& h, int fd, const struct stat& st) noexcept {
  Scratch scratch;
  char* path = scratch.get();
  char proc[32];
  proc_fd_path(proc, fd);
  const ssize_t n = path ? readlink(proc, path, Scratch::kBytes - 1) : -1;
  if (path) path[n > 0 ? n : 0] = '\0';
  diag(
      "faultline: power-cut tracking stopped for %s: it is mapped shared and writable (mmap), "
      "and stores through a mapping pass no call faultline sees; a cut leaves that file as it "
      "is",
      path && path[0] ? path : "a file");
  UndoHeader rec = record(kUndoUntrack, st.st_dev, st.st_ino);
  append(h, rec, nullptr, 0);
  g_fds[fd].flags.store(0, std::memory_order_relaxed);
}

// The kUndoFile record: the inode's path, by which the cut finds it. The hidden hard link
// that finds it after the path changed is made only when it changes (a rename or an unlink,
// hide()): linking every tracked file at its first write would cost a link per file and keep
// every file the program deletes (a journal per transaction) alive until the session ends.
bool make_known(const ControlHeader& h, int fd, const struct stat& st) noexcept {
  Scratch scratch;
  char* path = scratch.get();
  if (!path) return false;
  char proc[32];
  proc_fd_path(proc, fd);
  const ssize_t n = readlink(proc, path, Scratch::kBytes - 1);
  const std::size_t len = n > 0 ? static_cast<std::size_t>(n) : 0;
  path[len] = '\0';
  UndoHeader rec = record(kUndoFile, st.st_dev, st.st_ino);
  rec.size = st.st_size;
  return append(h, rec, path, len + 1);
}

// Reads [off, off + n) of the inode behind fd; a write-only fd is read through /proc.
ssize_t read_prior(int fd, void* buf, std::size_t n, std::int64_t off) noexcept {
  CancelOff no_cancel;
  ssize_t r = FL_REAL(pread64)(fd, buf, n, off);
  if (r >= 0 || errno != EBADF) return r;
  char proc[32];
  proc_fd_path(proc, fd);
  const int rd = FL_REAL(open)(proc, O_RDONLY | O_CLOEXEC, 0);
  if (rd < 0) return -1;
  r = FL_REAL(pread64)(rd, buf, n, off);
  FL_REAL(close)(rd);
  return r;
}

// kUndoData records for a change of [off, off + len) of a file of `size` bytes: the prior bytes
// below size, in chunks.
bool save_range(const ControlHeader& h, int fd, const struct stat& st, std::int64_t off,
                std::uint64_t len) noexcept {
  const std::int64_t size = st.st_size;
  const std::int64_t end = off + static_cast<std::int64_t>(len);
  if (off >= size || len == 0) {
    UndoHeader rec = record(kUndoData, st.st_dev, st.st_ino);
    rec.off = off;
    rec.len = len;
    rec.size = size;
    return append(h, rec, nullptr, 0);
  }
  const std::int64_t prior_end = end < size ? end : size;
  const std::size_t chunk =
      static_cast<std::uint64_t>(prior_end - off) < kChunk ? prior_end - off : kChunk;
  // Small ranges (most writes) from the scratch pool: one atomic exchange, no syscall.
  Scratch small;
  CopyScratch big(chunk <= Scratch::kBytes ? 0 : chunk);
  void* const data = chunk <= Scratch::kBytes ? static_cast<void*>(small.get()) : big.data();
  if (!data || (chunk > Scratch::kBytes && !big.ok())) return false;
  for (std::int64_t at = off; at < prior_end;) {
    const std::size_t n = prior_end - at < static_cast<std::int64_t>(chunk)
                              ? static_cast<std::size_t>(prior_end - at)
                              : chunk;
    const ssize_t got = read_prior(fd, data, n, at);
    if (got < 0) return false;
    UndoHeader rec = record(kUndoData, st.st_dev, st.st_ino);
    rec.off = at;
    // The last chunk covers the rest of the change too (beyond the old size: no prior bytes).
    rec.len =
        at + static_cast<std::int64_t>(n) >= prior_end ? static_cast<std::uint64_t>(end - at) : n;
    rec.size = size;
    if (!append(h, rec, data, static_cast<std::size_t>(got))) return false;
    at += static_cast<std::int64_t>(n);
  }
  return true;
}

// The slot of a tracked fd still on its inode; fills st. nullptr otherwise.
FdSlot* tracked_slot(int fd, struct stat& st) noexcept {
  if (fd < 0 || fd >= kFdSlots) return nullptr;
  FdSlot& slot = g_fds[fd];
  if (!(slot.flags.load(std::memory_order_relaxed) & kSlotTracked)) return nullptr;
  if (fstat(fd, &st) != 0 || st.st_ino != slot.ino.load(std::memory_order_relaxed) ||
      st.st_dev != slot.dev.load(std::memory_order_relaxed)) {
    slot.flags.store(0, std::memory_order_relaxed);
    return nullptr;
  }
  return &slot;
}

bool ensure_known(const ControlHeader& h, int fd, FdSlot& slot, const struct stat& st) noexcept {
  if (slot.flags.load(std::memory_order_relaxed) & kSlotKnown) return true;
  if (!make_known(h, fd, st)) return false;
  slot.flags.fetch_or(kSlotKnown, std::memory_order_relaxed);
  return true;
}

// The absolute form of (dirfd, path) into out (Scratch::kBytes); false when it cannot be had.
bool absolute(char* out, int dirfd, const char* path) noexcept {
  // The program's pointer, not yet seen by the kernel: a wild one is the kernel's EFAULT to
  // report, never a fault in the shim.
  if (!path || safe_string_readable(path, Scratch::kBytes) != SafeCopy::kOk) return false;
  const std::size_t plen = std::strlen(path);
  std::size_t base = 0;
  if (path[0] != '/') {
    if (dirfd == AT_FDCWD) {
      if (!getcwd(out, Scratch::kBytes)) return false;
      base = std::strlen(out);
    } else {
      char proc[32];
      proc_fd_path(proc, dirfd);
      const ssize_t n = readlink(proc, out, Scratch::kBytes - 1);
      if (n <= 0) return false;
      base = static_cast<std::size_t>(n);
    }
    if (base > 0 && out[base - 1] != '/') out[base++] = '/';
  }
  const char* rest = path;
  if (base > 0)
    while (rest[0] == '.' && rest[1] == '/') rest += 2;
  const std::size_t rlen = plen - static_cast<std::size_t>(rest - path);
  if (base + rlen + 1 > Scratch::kBytes) return false;
  std::memcpy(out + base, rest, rlen + 1);
  // "a//b" and "a/./b" name "a/b": the globs are matched against the plain form.
  std::size_t w = 0;
  for (std::size_t r = 0; out[r];) {
    if (out[r] == '/' && w > 0 && out[w - 1] == '/') {
      ++r;
    } else if (out[r] == '.' && w > 0 && out[w - 1] == '/' && (out[r + 1] == '/' || !out[r + 1])) {
      r += out[r + 1] ? 2 : 1;
    } else {
      out[w++] = out[r++];
    }
  }
  if (w > 1 && out[w - 1] == '/') --w;
  out[w] = '\0';
  return true;
}

bool tracked_path(const ControlHeader& h, const char* abs) noexcept {
  return glob_list_match(h.durability_path, sizeof h.durability_path, abs);
}

// The parent directory of an absolute path.
// Its own scratch, not the stack: a signal handler's unlink may get here (reliability.md's
// handler-stack budget).
bool parent_of(const char* abs, struct stat& st) noexcept {
  const char* slash = std::strrchr(abs, '/');
  if (!slash) return false;
  Scratch scratch;
  char* dir = scratch.get();
  if (!dir) return false;
  std::size_t n = static_cast<std::size_t>(slash - abs);
  if (n == 0) n = 1;
  if (n >= Scratch::kBytes) return false;
  std::memcpy(dir, abs, n);
  dir[n] = '\0';
  return stat(dir, &st) == 0;
}

}  // namespace

// ---- open ---------------------------------------------------------------------------------

void durable_open_before(DurableOpen& op, int dirfd, const char* path, int flags) noexcept {
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  char* abs = op.scratch.get();
  // An O_TMPFILE file has no name until linkat gives it one (an @fs call): not tracked.
  if ((flags & O_TMPFILE) == O_TMPFILE) return;
  if (!abs || !absolute(abs, dirfd, path) || !tracked_path(*h, abs)) return;
  op.tracked_path = true;
  op.flags = flags;
  struct stat st;
  op.existed = stat(abs, &st) == 0;
  const int acc = flags & O_ACCMODE;
  // O_TRUNC destroys the old contents before any write we see: saved first.
  if ((flags & O_TRUNC) && acc != O_RDONLY && op.existed && S_ISREG(st.st_mode) && st.st_size > 0) {
    const int rd = FL_REAL(open)(abs, O_RDONLY | O_CLOEXEC, 0);
    if (rd < 0) return;
    struct stat rst;
    if (fstat(rd, &rst) == 0 &&
        !(make_known(*h, rd, rst) &&
          save_range(*h, rd, rst, 0, static_cast<std::uint64_t>(rst.st_size))))
      give_up(*h, -1, rst.st_dev, rst.st_ino);
    FL_REAL(close)(rd);
  }
}

void durable_open_after(const DurableOpen& op, int fd) noexcept {
  if (fd < 0 || !op.tracked_path) return;
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  if (S_ISREG(st.st_mode) && (op.flags & O_ACCMODE) != O_RDONLY && fd < kFdSlots) {
    FdSlot& slot = g_fds[fd];
    slot.dev.store(st.st_dev, std::memory_order_relaxed);
    slot.ino.store(st.st_ino, std::memory_order_relaxed);
    slot.flags.store(kSlotTracked | ((op.flags & O_DSYNC) ? kSlotSyncWrites : 0u),
                     std::memory_order_relaxed);
    // On hardware an O_DIRECT write is on the device once acknowledged (drive cache aside);
    // here it is undone like any unsynced write. Said, so that such a finding is weighed.
    static std::atomic<bool> direct_said{false};
    if ((op.flags & O_DIRECT) && !direct_said.exchange(true, std::memory_order_relaxed))
      diag(
          "faultline: %s is opened O_DIRECT: power-cut tracking treats its writes as ordinary "
          "page-cache writes, lost at a cut unless fsynced (on a real device an O_DIRECT write "
          "is durable once acknowledged, unless the drive caches it)",
          const_cast<DurableOpen&>(op).scratch.get());
  }
  if ((op.flags & O_CREAT) && !op.existed) {
    // A new entry: the cut removes it unless its directory is fsynced after this record.
    // Kept by the hidden link too, so that its data records find it however it is renamed.
    const char* abs = const_cast<DurableOpen&>(op).scratch.get();
    struct stat parent;
    if (!parent_of(abs, parent)) return;
    make_known(*h, fd, st);
    UndoHeader rec = record(kUndoCreate, parent.st_dev, parent.st_ino);
    rec.size = st.st_mode;
    if (!append(*h, rec, abs, std::strlen(abs) + 1)) give_up(*h, fd, st.st_dev, st.st_ino);
  }
}

// ---- data ---------------------------------------------------------------------------------

std::int64_t durable_before_write(int fd, std::int64_t off, std::uint64_t len) noexcept {
  if (fd < 0 || fd >= kFdSlots || !(g_fds[fd].flags.load(std::memory_order_relaxed) & kSlotTracked))
    return off;
  const ControlHeader* h = header();
  if (!h) return off;
  ErrnoKeep keep;
  struct stat st;
  FdSlot* slot = tracked_slot(fd, st);
  if (!slot) return off;
  // O_APPEND as the fd has it now, not as it was opened: fcntl(F_SETFL) changes it. Linux
  // appends a pwrite on an O_APPEND fd too (pwrite(2), BUGS), whatever its offset says.
  const int fl = FL_REAL(fcntl)(fd, F_GETFL, nullptr);
  if (off == kDurableAtEnd || (fl >= 0 && (fl & O_APPEND))) {
    off = st.st_size;
  } else if (off < 0) {
    off = lseek(fd, 0, SEEK_CUR);
    if (off < 0) off = st.st_size;
  }
  if (!ensure_known(*h, fd, *slot, st) || !save_range(*h, fd, st, off, len))
    give_up(*h, fd, st.st_dev, st.st_ino);
  return off;
}

void durable_size_change(int fd, std::int64_t new_size) noexcept {
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  struct stat st;
  FdSlot* slot = tracked_slot(fd, st);
  if (!slot) return;
  const std::int64_t from = new_size < st.st_size ? new_size : st.st_size;
  const std::uint64_t len =
      new_size < st.st_size ? static_cast<std::uint64_t>(st.st_size - new_size) : 0;
  if (!ensure_known(*h, fd, *slot, st) || !save_range(*h, fd, st, from, len))
    give_up(*h, fd, st.st_dev, st.st_ino);
}

void durable_path_size_change(int dirfd, const char* path, std::int64_t new_size) noexcept {
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  Scratch scratch;
  char* abs = scratch.get();
  if (!abs || !absolute(abs, dirfd, path) || !tracked_path(*h, abs)) return;
  const int rd = FL_REAL(open)(abs, O_RDONLY | O_CLOEXEC, 0);
  if (rd < 0) return;
  struct stat st;
  if (fstat(rd, &st) == 0 && S_ISREG(st.st_mode)) {
    const std::int64_t from = new_size < st.st_size ? new_size : st.st_size;
    const std::uint64_t len =
        new_size < st.st_size ? static_cast<std::uint64_t>(st.st_size - new_size) : 0;
    if (!make_known(*h, rd, st) || !save_range(*h, rd, st, from, len))
      give_up(*h, -1, st.st_dev, st.st_ino);
  }
  FL_REAL(close)(rd);
}

namespace {
// glibc's fopen opens its fd with an internal open we never see: a stream's fd is looked at
// the first time it may write (one readlink), and the verdict kept with its inode.
bool learn_stream_fd(const ControlHeader& h, int fd) noexcept {
  FdSlot& slot = g_fds[fd];
  const std::uint32_t flags = slot.flags.load(std::memory_order_relaxed);
  if (flags & kSlotTracked) return true;
  ErrnoKeep keep;
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  if ((flags & kSlotLearnt) && slot.dev.load(std::memory_order_relaxed) == st.st_dev &&
      slot.ino.load(std::memory_order_relaxed) == st.st_ino)
    return false;
  slot.dev.store(st.st_dev, std::memory_order_relaxed);
  slot.ino.store(st.st_ino, std::memory_order_relaxed);
  Scratch scratch;
  char* path = scratch.get();
  char proc[32];
  proc_fd_path(proc, fd);
  const ssize_t n = path && S_ISREG(st.st_mode) ? readlink(proc, path, Scratch::kBytes - 1) : -1;
  if (n > 0) path[n] = '\0';
  const int fl = n > 0 ? FL_REAL(fcntl)(fd, F_GETFL, nullptr) : -1;
  const bool tracked = n > 0 && fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && tracked_path(h, path);
  // O_DSYNC is fixed at open (F_SETFL cannot change it); O_APPEND is not, so it is read at
  // each write instead.
  slot.flags.store(tracked ? kSlotTracked | ((fl & O_DSYNC) ? kSlotSyncWrites : 0u) : kSlotLearnt,
                   std::memory_order_relaxed);
  return tracked;
}
}  // namespace

void durable_before_stream_write(FILE* stream, std::uint64_t extra) noexcept {
  if (!stream) return;
  const int fd = fileno_unlocked(stream);
  const ControlHeader* h = header();
  if (fd < 0 || fd >= kFdSlots || !h || !learn_stream_fd(*h, fd)) return;
  const std::uint64_t pending =
      stream->_IO_write_ptr > stream->_IO_write_base
          ? static_cast<std::uint64_t>(stream->_IO_write_ptr - stream->_IO_write_base)
          : 0;
  // A fully buffered fwrite that fits in the buffer reaches no fd: nothing to save yet.
  // glibc's _IO_UNBUFFERED and _IO_LINE_BUF (libio.h, not installed).
  constexpr int kUnbuffered = 0x0002, kLineBuf = 0x0200;
  const bool buffered = !(stream->_flags & (kUnbuffered | kLineBuf));
  if (extra > 0 && buffered && stream->_IO_buf_end > stream->_IO_write_ptr &&
      extra < static_cast<std::uint64_t>(stream->_IO_buf_end - stream->_IO_write_ptr) &&
      stream->_IO_write_ptr >= stream->_IO_write_base && pending > 0)
    return;
  if (pending + extra == 0) return;
  durable_before_write(fd, -1, pending + extra);
}

bool durable_fd_sync_writes(int fd) noexcept {
  return fd >= 0 && fd < kFdSlots &&
         (g_fds[fd].flags.load(std::memory_order_relaxed) & (kSlotTracked | kSlotSyncWrites)) ==
             (kSlotTracked | kSlotSyncWrites);
}

// ---- syncs --------------------------------------------------------------------------------

DurableSync durable_sync_begin(int fd, SyncKind kind, std::int64_t off,
                               std::uint64_t len) noexcept {
  DurableSync sync;
  const ControlHeader* h = header();
  if (!h) return sync;
  ErrnoKeep keep;
  UndoHeader rec = record(kUndoSyncBegin, 0, 0);
  rec.size = -1;
  if (kind != SyncKind::kAll) {
    struct stat st;
    if (fstat(fd, &st) != 0) return sync;
    rec.dev = st.st_dev;
    if (kind == SyncKind::kFs) {
      rec.ino = 0;
    } else {
      if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return sync;
      rec.ino = st.st_ino;
      if (S_ISREG(st.st_mode) && kind != SyncKind::kRange) rec.size = st.st_size;
      if (kind != SyncKind::kFile) {
        rec.off = off;
        rec.len = len;
      }
    }
  }
  rec.seq = g_seq.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!append(*h, rec, nullptr, 0)) return sync;
  sync.seq = rec.seq;
  return sync;
}

void durable_sync_end(const DurableSync& sync, SyncOutcome outcome) noexcept {
  if (sync.seq == 0) return;
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  UndoHeader rec = record(outcome == SyncOutcome::kOk ? kUndoSyncDone : kUndoSyncFail, 0, 0);
  rec.seq = sync.seq;
  append(*h, rec, nullptr, 0);
}

// ---- entries ------------------------------------------------------------------------------

namespace {

// The paths of an entry call, in their own mapping (the caller's stack stays small).
bool entry_paths(DurableEntry& e, int dirfd1, const char* p1, int dirfd2, const char* p2,
                 const ControlHeader& h) noexcept {
  Scratch a, b;
  char* abs1 = a.get();
  if (!abs1 || !absolute(abs1, dirfd1, p1)) return false;
  char* abs2 = nullptr;
  if (p2) {
    abs2 = b.get();
    if (!abs2 || !absolute(abs2, dirfd2, p2)) return false;
  }
  if (!tracked_path(h, abs1) && !(abs2 && tracked_path(h, abs2))) return false;
  const std::size_t n1 = std::strlen(abs1) + 1, n2 = abs2 ? std::strlen(abs2) + 1 : 0;
  // Room for the hidden link's name after the paths (durable_entry_after).
  void* mem =
      mmap(nullptr, n1 + n2 + 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return false;
  e.paths = static_cast<char*>(mem);
  std::memcpy(e.paths, abs1, n1);
  if (abs2) std::memcpy(e.paths + n1, abs2, n2);
  e.paths_len = n1 + n2;
  return true;
}

// A hidden hard link of the file `abs` names, in the undo area under its inode's name
// (undo_inode_name), before a rename or an unlink changes what the path leads to: the cut
// finds the inode there for its data and links it back for the entry. False when none could be
// made (another file system), said once.
bool hide(const ControlHeader& h, const char* abs, char (&hidden)[64]) noexcept {
  struct stat st;
  hidden[0] = '\0';
  if (lstat(abs, &st) != 0 || S_ISDIR(st.st_mode)) return false;
  undo_inode_name(hidden, st.st_dev, st.st_ino);
  Scratch scratch;
  char* path = scratch.get();
  if (!path || !join(path, Scratch::kBytes, h.undo_dir, hidden)) return false;
  // The real call: through the wrapper, the hidden link would be recorded as the program's.
  if (FL_REAL(linkat)(AT_FDCWD, abs, AT_FDCWD, path, 0) == 0 || errno == EEXIST) return true;
  diag("faultline: power cuts: cannot keep %s in %s (%s): a cut will not restore it", abs,
       h.undo_dir, error_text(errno));
  hidden[0] = '\0';
  return false;
}

void set_parent(DurableEntry& e, const char* abs) noexcept {
  struct stat st;
  if (parent_of(abs, st)) {
    e.parent_dev = st.st_dev;
    e.parent_ino = st.st_ino;
  }
}

}  // namespace

DurableEntry durable_before_create(int dirfd, const char* path, bool dir) noexcept {
  DurableEntry e;
  const ControlHeader* h = header();
  if (!h) return e;
  ErrnoKeep keep;
  if (!entry_paths(e, dirfd, path, AT_FDCWD, nullptr, *h)) return e;
  e.type = dir ? kUndoMkdir : kUndoCreate;
  set_parent(e, e.paths);
  return e;
}

DurableEntry durable_before_link(int newdirfd, const char* newpath) noexcept {
  DurableEntry e;
  const ControlHeader* h = header();
  if (!h) return e;
  ErrnoKeep keep;
  if (!entry_paths(e, newdirfd, newpath, AT_FDCWD, nullptr, *h)) return e;
  e.type = kUndoLink;
  set_parent(e, e.paths);
  return e;
}

DurableEntry durable_before_unlink(int dirfd, const char* path, bool dir) noexcept {
  DurableEntry e;
  const ControlHeader* h = header();
  if (!h) return e;
  ErrnoKeep keep;
  if (!entry_paths(e, dirfd, path, AT_FDCWD, nullptr, *h)) return e;
  struct stat st;
  if (lstat(e.paths, &st) != 0) return e;  // the call will fail: nothing to keep
  set_parent(e, e.paths);
  if (dir) {
    e.type = kUndoRmdir;
    e.mode = st.st_mode & 07777;
  } else if (hide(*h, e.paths, e.hidden)) {
    e.type = kUndoUnlink;
  }
  return e;
}

DurableEntry durable_before_rename(int olddirfd, const char* oldpath, int newdirfd,
                                   const char* newpath) noexcept {
  DurableEntry e;
  const ControlHeader* h = header();
  if (!h) return e;
  ErrnoKeep keep;
  if (!entry_paths(e, olddirfd, oldpath, newdirfd, newpath, *h)) return e;
  const char* target = e.paths + std::strlen(e.paths) + 1;
  set_parent(e, target);
  // The file renamed, so that its data is found after the rename; and the target the rename
  // replaces, so that the cut can put it back.
  char source[64];
  hide(*h, e.paths, source);
  hide(*h, target, e.hidden);
  e.type = kUndoRename;
  return e;
}

void durable_entry_after(DurableEntry& e, int rc) noexcept {
  const ControlHeader* h = header();
  ErrnoKeep keep;
  if (h && e.type != 0) {
    if (rc == 0) {
      UndoHeader rec = record(static_cast<UndoType>(e.type), e.parent_dev, e.parent_ino);
      rec.size = e.mode;
      std::size_t len = e.paths_len;
      if (e.type == kUndoUnlink || e.type == kUndoRename) {
        const std::size_t hlen = std::strlen(e.hidden) + 1;
        std::memcpy(e.paths + len, e.hidden, hlen);
        len += hlen;
      }
      if (!append(*h, rec, e.paths, len))
        diag(
            "faultline: power cuts: cannot record a change of %s in the undo log (%s): a cut "
            "will not undo it",
            e.paths, error_text(errno));
    }
    // A failed call keeps its hidden link: it may serve an earlier record of the same inode.
  }
  if (e.paths) munmap(e.paths, e.paths_len + 64);
  e.paths = nullptr;
  e.type = 0;
}

// ---- fd numbers ---------------------------------------------------------------------------

void durable_mapped(int fd, int prot, int flags) noexcept {
  if (!(prot & PROT_WRITE) || (flags & MAP_TYPE) == MAP_PRIVATE || fd < 0) return;
  const ControlHeader* h = header();
  if (!h) return;
  ErrnoKeep keep;
  struct stat st;
  if (tracked_slot(fd, st)) untrack_mapped(*h, fd, st);
}

void durable_fd_copied(int from, int to) noexcept {
  if (to >= 0) forget_log_fd(static_cast<unsigned>(to), static_cast<unsigned>(to));
  if (to < 0 || to >= kFdSlots || from == to) return;
  FdSlot& dst = g_fds[to];
  if (from < 0 || from >= kFdSlots) {
    dst.flags.store(0, std::memory_order_relaxed);
    return;
  }
  const FdSlot& src = g_fds[from];
  dst.dev.store(src.dev.load(std::memory_order_relaxed), std::memory_order_relaxed);
  dst.ino.store(src.ino.load(std::memory_order_relaxed), std::memory_order_relaxed);
  dst.flags.store(src.flags.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void durable_fd_closed(int fd) noexcept {
  if (fd >= 0) forget_log_fd(static_cast<unsigned>(fd), static_cast<unsigned>(fd));
  if (fd >= 0 && fd < kFdSlots && g_fds[fd].flags.load(std::memory_order_relaxed) != 0)
    g_fds[fd].flags.store(0, std::memory_order_relaxed);
}

void durable_fd_closed_range(unsigned first, unsigned last) noexcept {
  forget_log_fd(first, last);
  // Loaded first: a slot never used stays an untouched (unallocated) page.
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(kFdSlots); ++fd)
    if (g_fds[fd].flags.load(std::memory_order_relaxed) != 0)
      g_fds[fd].flags.store(0, std::memory_order_relaxed);
}

void durable_reset_for_tests() noexcept {
  const int fd = g_log_fd.exchange(-1, std::memory_order_relaxed);
  if (fd >= 0) FL_REAL(close)(fd);
}

}  // namespace faultline::shim
