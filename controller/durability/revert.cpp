// The undo area and the revert of a power cut (revert.h). The revert replays the undo log
// (faultline/undo_log.h) forward to learn, per inode, which changes were made durable and
// which were not, then undoes the latter: entries newest first, then data (prior bytes written
// back newest first, so the oldest, durable, bytes win) and sizes.
#include "controller/durability/revert.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "faultline/glob.h"
#include "faultline/undo_log.h"

namespace faultline::durability {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// ---- the undo area ------------------------------------------------------------------------

// The directory a glob's fixed part names: "/var/lib/db/*.wal" -> "/var/lib/db".
std::string fixed_dir(const char* glob) {
  std::string fixed;
  for (const char* p = glob; *p && !std::strchr("*?[\\", *p); ++p) fixed += *p;
  const std::size_t slash = fixed.rfind('/');
  if (slash == std::string::npos) return "/";
  return slash == 0 ? "/" : fixed.substr(0, slash);
}

// The nearest existing directory at or above `dir`.
std::string existing_ancestor(std::string dir) {
  struct stat st;
  while (dir.size() > 1 && (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    const std::size_t slash = dir.rfind('/');
    dir = slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
  }
  return dir;
}

std::string parent_dir(const std::string& dir) {
  const std::size_t slash = dir.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
}

bool make_fresh_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) == 0) return true;
  if (errno != EEXIST) return false;
  remove_undo_area(dir);  // left by a run that could not clean up (killed)
  return mkdir(dir.c_str(), 0700) == 0;
}

// ---- the log ------------------------------------------------------------------------------

struct Rec {
  UndoHeader h;
  const char* payload;
};

// Whole records, in log order; torn ones (a process killed mid-append, a full disk) skipped.
std::vector<Rec> parse(const char* data, std::size_t size) {
  std::vector<Rec> recs;
  std::size_t pos = 0;
  while (pos + sizeof(UndoHeader) <= size) {
    UndoHeader h;
    std::memcpy(&h, data + pos, sizeof h);
    const bool ok = h.magic == kUndoMagic && h.header_sum == undo_header_sum(h) &&
                    h.payload <= size - pos - sizeof h &&
                    h.payload_sum == undo_payload_sum(data + pos + sizeof h, h.payload);
    if (ok) {
      recs.push_back({h, data + pos + sizeof h});
      pos += sizeof h + h.payload;
      continue;
    }
    // Resynchronise on the next magic.
    const std::uint32_t magic = kUndoMagic;
    const void* next = memmem(data + pos + 1, size - pos - 1, &magic, sizeof magic);
    if (!next) break;
    pos = static_cast<std::size_t>(static_cast<const char*>(next) - data);
  }
  return recs;
}

struct Protect {
  std::size_t idx;  // protects bytes from the records older than this index
  std::int64_t off, end;
};

struct Inode {
  std::string path;
  std::int64_t durable_size = -1;
  bool untracked = false;
  std::vector<std::size_t> pending, poisoned;
  std::vector<Protect> protect;
};

using Key = std::pair<std::uint64_t, std::uint64_t>;

struct Replay {
  std::vector<Rec> recs;
  std::map<Key, Inode> inodes;
  std::vector<std::size_t> entries;  // pending entry records, log order
};

std::int64_t rec_end(const UndoHeader& h) { return h.off + static_cast<std::int64_t>(h.len); }

// A successful sync that began at record b, for one inode.
void sync_inode(Inode& node, const Replay& r, std::size_t b, const UndoHeader& begin) {
  const bool whole = begin.len == 0;
  const std::int64_t ro = whole ? 0 : begin.off;
  const std::int64_t re = whole ? INT64_MAX : rec_end(begin);
  std::vector<std::size_t> keep;
  for (std::size_t idx : node.pending) {
    if (idx >= b) {
      keep.push_back(idx);
      continue;
    }
    const UndoHeader& h = r.recs[idx].h;
    const std::int64_t a = std::max(h.off, ro), e = std::min(rec_end(h), re);
    if (a < e) node.protect.push_back({b, a, e});
    if (!(h.off >= ro && rec_end(h) <= re)) keep.push_back(idx);
  }
  node.pending = std::move(keep);
  if (begin.size >= 0) {
    node.durable_size = begin.size;
  } else if (whole) {
    // sync() and syncfs() name no file, so their record has no size: the file's size at the
    // sync is the size before its first change after it (or its size now, with none, -1), not
    // the size it had when first seen.
    const auto next = std::min_element(node.pending.begin(), node.pending.end());
    node.durable_size = next == node.pending.end() ? -1 : r.recs[*next].h.size;
  }
  // Nothing older left to revert: the protections have nothing to protect from.
  const bool older_left =
      !node.poisoned.empty() ||
      std::any_of(node.pending.begin(), node.pending.end(), [&](std::size_t i) { return i < b; });
  if (!older_left) node.protect.clear();
}

// A failed sync under "drop": what it was to write is lost, whatever comes later.
void fail_inode(Inode& node, std::size_t b) {
  std::vector<std::size_t> keep;
  for (std::size_t idx : node.pending) (idx < b ? node.poisoned : keep).push_back(idx);
  node.pending = std::move(keep);
}

bool targets(const UndoHeader& begin, const Key& key) {
  if (begin.dev == 0 && begin.ino == 0) return true;  // sync()
  if (begin.ino == 0) return key.first == begin.dev;  // syncfs
  return key.first == begin.dev && key.second == begin.ino;
}

void end_sync(Replay& r, std::size_t b, bool ok, bool keep_on_error) {
  const UndoHeader& begin = r.recs[b].h;
  if (begin.dev != 0 && begin.ino != 0) {
    auto it = r.inodes.find({begin.dev, begin.ino});
    if (it != r.inodes.end()) {
      if (ok)
        sync_inode(it->second, r, b, begin);
      else if (!keep_on_error)
        fail_inode(it->second, b);
    }
  } else {
    for (auto& [key, node] : r.inodes) {
      if (!targets(begin, key)) continue;
      if (ok)
        sync_inode(node, r, b, begin);
      else if (!keep_on_error)
        fail_inode(node, b);
    }
  }
  if (!ok) return;
  // A directory fsynced (or everything synced): the entries under it made before are durable.
  std::erase_if(r.entries, [&](std::size_t idx) {
    const UndoHeader& h = r.recs[idx].h;
    return idx < b && targets(begin, {h.dev, h.ino});
  });
}

Replay replay(std::vector<Rec> recs, bool keep_on_error) {
  Replay r;
  r.recs = std::move(recs);
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::size_t> begins;
  for (std::size_t i = 0; i < r.recs.size(); ++i) {
    const UndoHeader& h = r.recs[i].h;
    switch (h.type) {
      case kUndoFile: {
        Inode& node = r.inodes[{h.dev, h.ino}];
        node.path.assign(r.recs[i].payload, strnlen(r.recs[i].payload, h.payload));
        if (node.durable_size < 0) node.durable_size = h.size;
        break;
      }
      case kUndoData: {
        Inode& node = r.inodes[{h.dev, h.ino}];
        if (node.durable_size < 0) node.durable_size = h.size;
        node.pending.push_back(i);
        break;
      }
      case kUndoUntrack:
        r.inodes[{h.dev, h.ino}].untracked = true;
        break;
      case kUndoSyncBegin:
        begins[{h.pid, h.seq}] = i;
        break;
      case kUndoSyncDone:
      case kUndoSyncFail: {
        auto it = begins.find({h.pid, h.seq});
        if (it == begins.end()) break;
        end_sync(r, it->second, h.type == kUndoSyncDone, keep_on_error);
        begins.erase(it);
        break;
      }
      case kUndoCreate:
      case kUndoMkdir:
      case kUndoLink:
      case kUndoUnlink:
      case kUndoRmdir:
      case kUndoRename:
        r.entries.push_back(i);
        break;
      default:
        break;
    }
  }
  return r;
}

// The NUL-separated strings of a payload.
std::vector<std::string> strings_of(const Rec& rec) {
  std::vector<std::string> out;
  const char* p = rec.payload;
  const char* end = rec.payload + rec.h.payload;
  while (p < end) {
    const std::size_t n = strnlen(p, static_cast<std::size_t>(end - p));
    out.emplace_back(p, n);
    p += n + 1;
  }
  return out;
}

void undo_entry(const Rec& rec, const std::string& undo_dir, CutReport& report) {
  const std::vector<std::string> s = strings_of(rec);
  auto problem = [&](const std::string& what) {
    report.problems.push_back(what + ": " + errno_text(errno));
  };
  switch (rec.h.type) {
    case kUndoCreate:
    case kUndoLink:
      if (s.empty()) return;
      if (unlink(s[0].c_str()) == 0)
        report.entries.push_back("removed " + s[0]);
      else if (errno != ENOENT)
        problem("cannot remove " + s[0]);
      return;
    case kUndoMkdir:
      if (s.empty()) return;
      if (rmdir(s[0].c_str()) == 0)
        report.entries.push_back("removed directory " + s[0]);
      else if (errno != ENOENT)
        problem("cannot remove directory " + s[0]);
      return;
    case kUndoUnlink:
      if (s.size() < 2) return;
      if (link((undo_dir + "/" + s[1]).c_str(), s[0].c_str()) == 0)
        report.entries.push_back("restored " + s[0]);
      else
        problem("cannot restore " + s[0]);
      return;
    case kUndoRmdir:
      if (s.empty()) return;
      if (mkdir(s[0].c_str(), static_cast<mode_t>(rec.h.size ? rec.h.size : 0755)) == 0)
        report.entries.push_back("restored directory " + s[0]);
      else if (errno != EEXIST)
        problem("cannot restore directory " + s[0]);
      return;
    case kUndoRename:
      if (s.size() < 2) return;
      if (rename(s[1].c_str(), s[0].c_str()) == 0)
        report.entries.push_back("renamed " + s[1] + " back to " + s[0]);
      else
        problem("cannot rename " + s[1] + " back to " + s[0]);
      if (s.size() >= 3 && !s[2].empty()) {
        if (link((undo_dir + "/" + s[2]).c_str(), s[1].c_str()) == 0)
          report.entries.push_back("restored " + s[1]);
        else
          problem("cannot restore " + s[1]);
      }
      return;
    default:
      return;
  }
}

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// [a, e) minus the protections that apply to record idx, as sorted segments.
std::vector<std::pair<std::int64_t, std::int64_t>> unprotected(const std::vector<Protect>& protect,
                                                               std::size_t idx, std::int64_t a,
                                                               std::int64_t e) {
  std::vector<std::pair<std::int64_t, std::int64_t>> cuts;
  for (const Protect& p : protect)
    if (p.idx > idx && p.off < e && p.end > a)
      cuts.emplace_back(std::max(p.off, a), std::min(p.end, e));
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  std::int64_t at = a;
  for (const auto& [c0, c1] : cuts) {
    if (c0 > at) out.emplace_back(at, c0);
    at = std::max(at, c1);
  }
  if (at < e) out.emplace_back(at, e);
  return out;
}

int open_inode(const std::string& undo_dir, const Key& key, const Inode& node) {
  char name[64];
  undo_inode_name(name, key.first, key.second);
  int fd = open((undo_dir + "/" + name).c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) return fd;
  // No hidden link (another file system): by its path, if that is still the same inode.
  if (node.path.empty()) return -1;
  fd = open(node.path.c_str(), O_WRONLY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_dev != key.first || st.st_ino != key.second)) {
    close(fd);
    errno = ESTALE;
    return -1;
  }
  return fd;
}

bool write_all_at(int fd, const char* data, std::size_t n, std::int64_t off) {
  while (n > 0) {
    const ssize_t w = pwrite(fd, data, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
    off += w;
  }
  return true;
}

void revert_inode(const Replay& r, const Key& key, const Inode& node, const std::string& undo_dir,
                  const RevertOptions& options, CutReport& report) {
  const std::string shown = node.path.empty() ? "inode " + std::to_string(key.second) : node.path;
  if (node.untracked) {
    report.problems.push_back(shown +
                              ": not reverted (tracking stopped: the undo log could not "
                              "be written)");
    return;
  }
  if (node.pending.empty() && node.poisoned.empty()) return;
  const int fd = open_inode(undo_dir, key, node);
  if (fd < 0) {
    // Gone with no hidden link: unlinked by a call tracking did not record, so its unsynced
    // data has nowhere to go back to.
    if (errno != ENOENT)
      report.problems.push_back(shown + ": cannot open to revert: " + errno_text(errno));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) st.st_size = 0;
  std::vector<Protect> protect = node.protect;
  std::int64_t final_size = node.durable_size < 0 ? st.st_size : node.durable_size;
  // torn: the newest unsynced write survives as a seeded prefix of its 512-byte sectors.
  if (options.torn) {
    std::size_t newest = SIZE_MAX;
    for (std::size_t idx : node.pending)
      if (r.recs[idx].h.len > 0 && (newest == SIZE_MAX || idx > newest)) newest = idx;
    if (newest != SIZE_MAX) {
      const UndoHeader& h = r.recs[newest].h;
      const std::uint64_t sectors = (h.len + 511) / 512;
      const std::uint64_t k = mix(options.seed ^ mix(key.second) ^ newest) % (sectors + 1);
      const std::int64_t end = std::min(rec_end(h), h.off + static_cast<std::int64_t>(k * 512));
      if (end > h.off) {
        protect.push_back({newest + 1, h.off, end});
        final_size = std::max(final_size, std::min<std::int64_t>(end, st.st_size));
      }
    }
  }
  std::vector<std::size_t> all = node.pending;
  all.insert(all.end(), node.poisoned.begin(), node.poisoned.end());
  std::sort(all.rbegin(), all.rend());
  std::uint64_t bytes = 0;
  std::vector<char> zeros;
  bool failed = false;
  for (std::size_t idx : all) {
    const Rec& rec = r.recs[idx];
    const std::int64_t a = rec.h.off, e = std::min(rec_end(rec.h), final_size);
    if (a >= e) continue;
    const std::int64_t prior_end = a + static_cast<std::int64_t>(rec.h.payload);
    for (const auto& [s0, s1] : unprotected(protect, idx, a, e)) {
      // Prior bytes where the record has them; beyond the old size, nothing was there: zeros.
      const std::int64_t p1 = std::min(s1, prior_end);
      if (p1 > s0 &&
          !write_all_at(fd, rec.payload + (s0 - a), static_cast<std::size_t>(p1 - s0), s0))
        failed = true;
      const std::int64_t z0 = std::max(s0, prior_end);
      if (z0 < s1) {
        zeros.assign(static_cast<std::size_t>(s1 - z0), 0);
        if (!write_all_at(fd, zeros.data(), zeros.size(), z0)) failed = true;
      }
      bytes += static_cast<std::uint64_t>(s1 - s0);
    }
  }
  if (st.st_size != final_size && ftruncate(fd, final_size) != 0) failed = true;
  if (st.st_size > final_size) bytes += static_cast<std::uint64_t>(st.st_size - final_size);
  if (failed) report.problems.push_back(shown + ": revert incomplete: " + errno_text(errno));
  close(fd);
  if (bytes > 0 || st.st_size != final_size)
    report.files.push_back({shown, bytes, static_cast<std::int64_t>(st.st_size), final_size});
}

}  // namespace

UndoArea make_undo_area(const char* glob_list, std::size_t size, const std::string& session) {
  UndoArea area;
  const char* first = nullptr;
  for (const char* e = glob_list_first(glob_list, size); e; e = glob_list_next(glob_list, size, e))
    if (e[0] != '!') {
      first = e;
      break;
    }
  if (!first) return area;
  const std::string tracked = existing_ancestor(fixed_dir(first));
  struct stat tracked_st;
  if (stat(tracked.c_str(), &tracked_st) != 0) return area;
  const std::string name = ".faultline-undo." + session;
  std::vector<std::string> candidates;
  if (tracked != "/") candidates.push_back(parent_dir(tracked) + "/" + name);
  const char* tmp = std::getenv("TMPDIR");
  candidates.push_back(std::string(tmp && tmp[0] == '/' ? tmp : "/tmp") + "/" + name);
  candidates.push_back("/var/tmp/" + name);
  for (const std::string& dir : candidates) {
    // Inside the tracked paths, the undo data would be tracked (and reverted) itself.
    if (glob_list_match(glob_list, size, (dir + "/log").c_str())) continue;
    if (!make_fresh_dir(dir)) continue;
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) continue;
    area.dir = dir;
    area.hard_links = st.st_dev == tracked_st.st_dev;
    area.note = "power cuts: undo data in " + dir;
    if (!area.hard_links)
      area.note += " (another file system than " + tracked +
                   ": files are reverted by path, so a cut cannot find a file renamed since, "
                   "nor restore an unlinked one)";
    return area;
  }
  area.note = "power cuts: no place for undo data (tried " + candidates.front() +
              " and $TMPDIR): nothing is tracked, a cut loses nothing on disk";
  return area;
}

void remove_undo_area(const std::string& dir) {
  if (dir.empty()) return;
  empty_undo_area(dir);
  rmdir(dir.c_str());
}

void empty_undo_area(const std::string& dir) {
  if (dir.empty()) return;
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
}

CutReport revert(const std::string& undo_dir, const RevertOptions& options) {
  CutReport report;
  const std::string log = undo_dir + "/" + kUndoLogName;
  const int fd = open(log.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return report;  // nothing was ever tracked
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return report;
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    report.problems.push_back("cannot read " + log + ": " + errno_text(errno));
    return report;
  }
  Replay r = replay(parse(static_cast<const char*>(map), size), options.keep_on_fsync_error);
  for (auto it = r.entries.rbegin(); it != r.entries.rend(); ++it)
    undo_entry(r.recs[*it], undo_dir, report);
  for (const auto& [key, node] : r.inodes) revert_inode(r, key, node, undo_dir, options, report);
  munmap(map, size);
  // The undo data is spent: a second cut must not replay it again.
  unlink(log.c_str());
  return report;
}

}  // namespace faultline::durability
