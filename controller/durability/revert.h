// The controller's side of power cuts (docs/policy.md, "Durability: power cuts"): the undo
// area a session's processes keep their undo log in, and the revert that replays that log
// after a cut, once every process of the session is dead, to put every tracked file and
// directory back in its durable state. Used by `faultline run`, `faultline powercut` and
// (through the same calls) `faultline explore --powercut`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace faultline::durability {

// Where the undo data of a session lives, chosen at session creation.
struct UndoArea {
  std::string dir;          // absolute; "" = none could be made (nothing is tracked)
  bool hard_links = false;  // on the tracked paths' file system: hidden hard links work
  std::string note;         // one line for the user naming it (and the fallback, if any)
};

// Chooses and creates the undo area for `glob_list` (a packed glob list, faultline/glob.h):
// next to the tracked directory (its fixed-prefix directory's parent,
// `.faultline-undo.<session>`) when writable and on the same file system, else under $TMPDIR.
UndoArea make_undo_area(const char* glob_list, std::size_t size, const std::string& session);
// Removes it and everything in it (hidden links included). Quiet when it is already gone.
void remove_undo_area(const std::string& dir);
// Empties it (the log and the hidden links) and keeps it: a session that goes on after a
// reverted cut (an experiment's service restarting) tracks from a clean slate, and a later cut
// must not replay what the first one already put back.
void empty_undo_area(const std::string& dir);

struct FileLoss {
  std::string path;
  std::uint64_t bytes = 0;  // bytes put back or cut off
  std::int64_t size_before = 0, size_after = 0;
};

struct CutReport {
  std::vector<FileLoss> files;        // files whose unsynced data the cut lost
  std::vector<std::string> entries;   // entries undone, e.g. "removed /d/new" (newest first)
  std::vector<std::string> problems;  // what could not be reverted, and why
  std::int64_t took_ns = 0;           // from the cut to the end of the revert (set by the caller)
  std::uint64_t bytes_lost() const {
    std::uint64_t n = 0;
    for (const FileLoss& f : files) n += f.bytes;
    return n;
  }
};

struct RevertOptions {
  bool keep_on_fsync_error = false;  // on_fsync_error = "keep"
  bool torn = false;
  std::uint64_t seed = 0;  // chooses the torn prefixes
};

// Replays `<undo_dir>/log`: entries undone newest first, then data put back and sizes
// restored. Only call once every process that wrote the log is dead.
CutReport revert(const std::string& undo_dir, const RevertOptions& options);

}  // namespace faultline::durability
