// Call sites for `faultline explore` (see site.h).
//
// Recording must not slow a program down per call more than the unwind itself: a call site
// already written by this process is recognised by a hash of its raw return addresses (plus
// the fault and the call) in a lock-free set, without naming any frame. Only a new site is
// named (object + offset, from the stack cache), formatted and appended to the file. The set
// is bounded; once full, further sites are not recorded and the process says so once.
//
// Matching names the innermost frame first and stops at the first difference, so a call made
// from anywhere else costs the unwind and one cache probe.
#include "shim/engine/site.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "calls/calls.h"
#include "policy/site_policy.h"
#include "shim/engine/log_limit.h"
#include "shim/engine/shim.h"
#include "shim/engine/stack.h"

namespace faultline::shim {
namespace {

// Distinct sites per process: a table of 64-bit hashes in mmap'd, zero-filled memory (1 MiB of
// address space, touched only where used), at most 3/4 full so every probe ends.
constexpr std::size_t kSeenSlots = 1u << 17;
constexpr std::size_t kSeenMax = kSeenSlots / 4 * 3;
constexpr std::size_t kFrameTextMax = 300;
constexpr std::size_t kLineMax = kSiteMax + kMaxSiteDepth * (kFrameTextMax + 1) + 128;

std::atomic<std::uint64_t*> g_seen{nullptr};
std::atomic<std::uint64_t> g_seen_count{0};
std::atomic<std::uint64_t> g_written{0};

void capture(SiteFrames& f) {
  if (f.captured) return;
  f.captured = true;
  f.count = capture_return_addresses(f.ip, static_cast<int>(kMaxSiteDepth));
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 31);
}

std::uint64_t* seen_table() {
  if (std::uint64_t* t = g_seen.load(std::memory_order_acquire)) return t;
  void* p = mmap(nullptr, kSeenSlots * sizeof(std::uint64_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::uint64_t* expected = nullptr;
  auto* fresh = static_cast<std::uint64_t*>(p);
  if (g_seen.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return fresh;
  munmap(p, kSeenSlots * sizeof(std::uint64_t));  // another thread's table won
  return expected;
}

// True when `key` was not in the set (and now is). False when it was, or the set is full.
bool first_sighting(std::uint64_t key) {
  std::uint64_t* table = seen_table();
  if (!table) return false;
  if (key == 0) key = 1;  // 0 marks an empty slot
  for (std::size_t i = key & (kSeenSlots - 1), n = 0; n < kSeenSlots;
       ++n, i = (i + 1) & (kSeenSlots - 1)) {
    std::atomic_ref<std::uint64_t> slot(table[i]);
    std::uint64_t current = slot.load(std::memory_order_acquire);
    if (current == key) return false;
    if (current != 0) continue;
    if (g_seen_count.fetch_add(1, std::memory_order_relaxed) >= kSeenMax) {
      g_seen_count.fetch_sub(1, std::memory_order_relaxed);
      diag(
          "faultline: more than %zu distinct call sites in this process: the rest are not "
          "recorded",
          kSeenMax);
      return false;
    }
    if (slot.compare_exchange_strong(current, key, std::memory_order_acq_rel)) return true;
    g_seen_count.fetch_sub(1, std::memory_order_relaxed);
    if (current == key) return false;  // another thread recorded the same site just now
  }
  return false;
}

class Line {
 public:
  void add(std::string_view text) {
    const std::size_t n = std::min(text.size(), sizeof buf_ - 1 - len_);
    std::memcpy(buf_ + len_, text.data(), n);
    len_ += n;
  }
  // A field's text with the line's separators (tab, newline) turned into spaces.
  void add_field(const char* text, std::size_t max) {
    for (std::size_t i = 0; text[i] && i < max && len_ < sizeof buf_ - 1; ++i) {
      const char c = text[i];
      buf_[len_++] = (c == '\t' || c == '\n' || c == '\r') ? ' ' : c;
    }
  }
  const char* data() const { return buf_; }
  std::size_t size() const { return len_; }

 private:
  char buf_[kLineMax];
  std::size_t len_ = 0;
};

struct FrameTexts {
  Line* line;
  int left;
};

void add_frame_text(const FrameInfo& frame, void* ctx) {
  auto* texts = static_cast<FrameTexts*>(ctx);
  if (texts->left-- <= 0) return;
  char text[kFrameTextMax + 1];
  format_frame(frame, text, sizeof text);
  texts->line->add("\t");
  texts->line->add_field(text, kFrameTextMax);
}

void append_line(const char* path, const Line& line) {
  // Never through a link or into a file another user planted in /tmp (log_limit.h).
  const char* refusal = nullptr;
  const int fd = open_append_file(path, 0644, &refusal);
  if (fd < 0) {
    diag("faultline: cannot open %s to record call sites (%s)", path,
         refusal ? refusal : std::strerror(errno));
    return;
  }
  // One write per line: O_APPEND puts each at the end of the file whole, whichever process
  // or thread of the session writes at the same moment.
  if (FL_REAL(write)(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()))
    g_written.fetch_add(1, std::memory_order_relaxed);
  FL_REAL(close)(fd);
}

}  // namespace

bool site_matches(const char* site, SiteFrames& frames) noexcept {
  capture(frames);
  int i = 0;
  bool same = true;
  const int n = for_each_site_frame(site, [&](std::string_view object, std::uint64_t offset) {
    char name[256];
    std::uintptr_t at = 0;
    same = i < frames.count && frame_object(frames.ip[i], name, sizeof name, at) && at == offset &&
           object == name;
    ++i;
    return same;
  });
  return same && n > 0;
}

void site_record(const FaultSpec& spec, std::uint32_t call, SiteFrames& frames) noexcept {
  capture(frames);
  const int depth = static_cast<int>(spec.site_depth ? spec.site_depth : kDefaultSiteDepth);
  const int count = frames.count < depth ? frames.count : depth;
  if (count <= 0) return;
  std::uint64_t key = mix(0, call);
  for (const char* c = spec.name; *c && c < spec.name + kNameMax; ++c)
    key = mix(key, static_cast<unsigned char>(*c));
  for (int i = 0; i < count; ++i) key = mix(key, frames.ip[i]);
  if (!first_sighting(key)) return;

  // The site, cut before a frame in no loaded object (run-time generated code has no stable
  // name) and before a frame that would not fit the selector.
  char site[kSiteMax];
  std::size_t used = 0;
  int named = 0;
  for (; named < count; ++named) {
    char object[256];
    std::uintptr_t offset = 0;
    if (!frame_object(frames.ip[named], object, sizeof object, offset)) break;
    const int n = std::snprintf(site + used, sizeof site - used, "%s%s+0x%zx", named ? ";" : "",
                                object, static_cast<std::size_t>(offset));
    std::string_view parsed_object;
    std::uint64_t parsed_offset = 0;
    // A name the selector could not read back (a separator in a file name) ends the site too.
    if (n < 0 || used + static_cast<std::size_t>(n) >= sizeof site ||
        !parse_site_frame(std::string_view(site + used + (named ? 1 : 0),
                                           static_cast<std::size_t>(n) - (named ? 1 : 0)),
                          parsed_object, parsed_offset))
      break;
    used += static_cast<std::size_t>(n);
  }
  if (named == 0) return;
  site[used] = '\0';

  Line line;
  line.add_field(spec.name, kNameMax);
  line.add("\t");
  line.add(call_info(call).name);
  line.add("\t");
  line.add(std::string_view(site, used));
  CapturedStack stack;
  stack.count = named;
  for (int i = 0; i < named; ++i) stack.ip[i] = frames.ip[i];
  FrameTexts texts{&line, named};
  visit_frames(stack, add_frame_text, &texts);
  line.add("\n");
  append_line(spec.record, line);
}

std::uint64_t site_recorded_count() noexcept { return g_written.load(std::memory_order_relaxed); }

void site_reset_for_tests() noexcept {
  if (std::uint64_t* table = g_seen.exchange(nullptr, std::memory_order_acq_rel))
    munmap(table, kSeenSlots * sizeof(std::uint64_t));
  g_seen_count.store(0, std::memory_order_relaxed);
  g_written.store(0, std::memory_order_relaxed);
}

}  // namespace faultline::shim
