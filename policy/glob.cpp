// Iterative glob matcher with single-star backtracking: linear in practice, no recursion,
// no allocation, so the shim can call it on any thread at any time.
#include "faultline/glob.h"

namespace faultline {
namespace {

// Matches one class starting at p (just after '['); advances p past ']'.
// Ranges compare bytes as unsigned, so that [\x80-\xff] means what it says for UTF-8 bytes
// (plain char is signed on x86-64).
bool class_match(const char*& p, char ch) noexcept {
  const auto c = static_cast<unsigned char>(ch);
  bool negate = false;
  if (*p == '!' || *p == '^') {
    negate = true;
    ++p;
  }
  bool matched = false;
  bool first = true;
  while (*p && (*p != ']' || first)) {
    if (*p == '\\' && p[1]) ++p;
    const auto lo = static_cast<unsigned char>(*p);
    auto hi = lo;
    if (p[1] == '-' && p[2] && p[2] != ']') {
      if (p[2] == '\\' && p[3]) ++p;
      hi = static_cast<unsigned char>(p[2]);
      p += 2;
    }
    if (c >= lo && c <= hi) matched = true;
    ++p;
    first = false;
  }
  if (*p == ']') ++p;
  return matched != negate;
}

}  // namespace

bool glob_match(const char* pattern, const char* text) noexcept {
  const char* p = pattern;
  const char* t = text;
  const char* star_p = nullptr;
  const char* star_t = nullptr;
  while (*t) {
    if (*p == '*') {
      while (*p == '*') ++p;
      if (!*p) return true;
      star_p = p;
      star_t = t;
      continue;
    }
    bool ok = false;
    const char* next = p;
    if (*p == '?') {
      ok = true;
      next = p + 1;
    } else if (*p == '[') {
      next = p + 1;
      ok = class_match(next, *t);
    } else if (*p == '\\' && p[1]) {
      ok = p[1] == *t;
      next = p + 2;
    } else if (*p) {
      ok = *p == *t;
      next = p + 1;
    }
    if (ok) {
      p = next;
      ++t;
    } else if (star_p) {
      p = star_p;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (*p == '*') ++p;
  return *p == '\0';
}

bool glob_list_match(const char* list, std::size_t size, const char* text) noexcept {
  if (!glob_list_first(list, size)) return false;
  return glob_list_hits(list, size, [text](const char* glob) { return glob_match(glob, text); })
      .matches();
}

}  // namespace faultline
