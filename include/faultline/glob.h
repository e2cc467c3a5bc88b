// Glob matching shared by the policy compiler (validation) and the shim (selectors).
// `*` matches any run of characters including '/', `?` one character, `[abc]`, `[a-z]` and
// `[!x]` classes, `\` escapes. No allocation, no locale: safe inside the shim's hot path.
//
// A selector field holds a glob list: consecutive NUL-terminated entries packed in the field's
// fixed char array, ended by an empty entry or by the array's end ("a\0!b\0\0..."). A single
// glob is a list of one, so `field[0] != 0` still means "given". An entry with a leading '!'
// excludes what it matches (write `\!` for a literal leading '!'). A list matches a text when
// some entry without '!' matches it (or there is none) and no '!' entry does.
#pragma once

#include <cstddef>
#include <cstring>

namespace faultline {

bool glob_match(const char* pattern, const char* text) noexcept;

// The first entry of a packed list, or nullptr when the field is empty ("not given").
inline const char* glob_list_first(const char* list, std::size_t size) noexcept {
  return size > 0 && list[0] ? list : nullptr;
}
// The entry after `entry`, or nullptr at the list's end. Bounded by the field: a list that
// fills it to the last byte needs no empty entry after it.
inline const char* glob_list_next(const char* list, std::size_t size, const char* entry) noexcept {
  const char* end = list + size;
  const char* next = entry + strnlen(entry, static_cast<std::size_t>(end - entry)) + 1;
  return next < end && *next ? next : nullptr;
}

// What one text (or one stack frame) hit in a list.
struct GlobListHits {
  bool positives = false;     // the list has an entry without '!'
  bool positive_hit = false;  // one of them matched
  bool negative_hit = false;  // a '!' entry matched
  bool matches() const noexcept { return !negative_hit && (positive_hit || !positives); }
};

// Evaluates `match(pattern)` (pattern without its '!') over the list's entries. Stops at the
// first negative hit; once a positive one hit, only the negatives are still asked.
template <typename Match>
GlobListHits glob_list_hits(const char* list, std::size_t size, Match&& match) noexcept {
  GlobListHits hits;
  for (const char* entry = glob_list_first(list, size); entry;
       entry = glob_list_next(list, size, entry)) {
    if (entry[0] == '!') {
      if (match(entry + 1)) {
        hits.negative_hit = true;
        return hits;
      }
    } else {
      hits.positives = true;
      if (!hits.positive_hit && match(entry)) hits.positive_hit = true;
    }
  }
  return hits;
}

// Does the packed list in `list` (a field of `size` bytes) match `text`? An empty field
// matches nothing here: callers test `field[0]` for "not given" first.
bool glob_list_match(const char* list, std::size_t size, const char* text) noexcept;

}  // namespace faultline
