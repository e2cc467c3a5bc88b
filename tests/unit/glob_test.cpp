// The selector glob matcher (policy/glob.cpp) and the policy compiler's glob check: what
// users write in `path`, `process` and `thread` must match exactly what the docs say.
#include "faultline/glob.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string_view>

#include "policy/policy.h"

namespace faultline {
namespace {

struct GlobCase {
  const char* pattern;
  const char* text;
  bool match;
};

void expect_cases(std::initializer_list<GlobCase> cases) {
  for (const GlobCase& c : cases) {
    SCOPED_TRACE(std::string("pattern '") + c.pattern + "' text '" + c.text + "'");
    EXPECT_EQ(glob_match(c.pattern, c.text), c.match);
  }
}

TEST(Glob, Literal) {
  expect_cases({
      {"", "", true},
      {"", "a", false},
      {"abc", "abc", true},
      {"abc", "abd", false},
      {"abc", "ab", false},
      {"ab", "abc", false},
  });
}

// Unlike shell globs, '*' crosses '/': "/var/lib/*" covers the whole tree (docs/policy.md).
TEST(Glob, StarCrossesSlash) {
  expect_cases({
      {"*", "", true},
      {"*", "/tmp/x/a.log", true},
      {"/tmp/*", "/tmp/x/y/z", true},
      {"/tmp/*.log", "/tmp/x/a.log", true},
      {"/tmp/*.log", "/tmp/x/a.txt", false},
      {"*/a.log", "/tmp/x/a.log", true},
      {"*/a.log", "/tmp/x/b.log", false},
      {"*/a.log", "a.log", false},
      {"a*b*c", "aXbYc", true},
      {"a*b*c", "abcbc", true},
      {"a*b*c", "aXbY", false},
      {"**", "anything", true},
      {"*a", "bbbba", true},
      {"*aab", "aaaab", true},
  });
}

TEST(Glob, QuestionMarkIsOneCharacter) {
  expect_cases({
      {"?", "a", true},
      {"?", "", false},
      {"?", "ab", false},
      {"a?c", "a/c", true},
      {"/tmp/?.log", "/tmp/1.log", true},
      {"/tmp/?.log", "/tmp/12.log", false},
  });
}

TEST(Glob, Classes) {
  expect_cases({
      {"[abc]", "b", true},
      {"[abc]", "d", false},
      {"[a-z]x", "qx", true},
      {"[a-z]x", "Qx", false},
      {"wal-[0-9][0-9]", "wal-42", true},
      {"wal-[0-9][0-9]", "wal-4a", false},
      {"[]]", "]", true},   // ']' first in a class is a literal
      {"[a-]", "-", true},  // '-' last in a class is a literal
      {"[a-]", "b", false},
      {"[\\]]", "]", true},     // escaped ']'
      {"[Z-\\]]", "\\", true},  // escaped range end: 'Z'..']' holds '\\'
      {"[Z-\\]]", "a", false},
      {"[\xc3-\xc4]", "\xc3", true},  // bytes compare unsigned
      {"[a-\xc3]", "\xb0", true},
  });
}

TEST(Glob, Negation) {
  expect_cases({
      {"[!a]", "b", true},
      {"[!a]", "a", false},
      {"[^a]", "a", false},
      {"[!0-9]*", "x1", true},
      {"[!0-9]*", "1x", false},
      {"[!]]", "]", false},  // ']' right after '!' is still a literal
      {"[!]]", "a", true},
  });
}

TEST(Glob, Escapes) {
  expect_cases({
      {"\\*", "*", true},
      {"\\*", "a", false},
      {"a\\?b", "a?b", true},
      {"a\\?b", "axb", false},
      {"\\[x]", "[x]", true},
      {"\\\\", "\\", true},
  });
}

TEST(Glob, CheckGlobAcceptsValidGlobs) {
  for (const char* glob : {"/tmp/*", "[abc]", "[]]", "[!]]", "\\*", "\\\\", "[a\\]]", "x[]]"}) {
    SCOPED_TRACE(glob);
    EXPECT_EQ(check_glob(glob), std::nullopt);
  }
}

TEST(Glob, CheckGlobRefusesBrokenGlobs) {
  EXPECT_EQ(check_glob("/tmp/[ab").value_or(""), "bad glob '/tmp/[ab': unterminated [...] class");
  EXPECT_EQ(check_glob("[]").value_or(""), "bad glob '[]': unterminated [...] class");
  EXPECT_EQ(check_glob("[!]").value_or(""), "bad glob '[!]': unterminated [...] class");
  EXPECT_EQ(check_glob("[a\\]").value_or(""), "bad glob '[a\\]': unterminated [...] class");
  EXPECT_EQ(check_glob("abc\\").value_or(""),
            "bad glob 'abc\\': trailing backslash (write \\\\ for a literal one)");
}

// ---- packed lists ---------------------------------------------------------------------------

// A field as the compiler packs it: entries with their NULs, the rest zero.
template <std::size_t N>
void pack(char (&field)[N], std::initializer_list<std::string_view> entries) {
  std::memset(field, 0, N);
  std::size_t at = 0;
  for (std::string_view e : entries) {
    std::memcpy(field + at, e.data(), e.size());
    at += e.size() + 1;
  }
}

TEST(GlobList, PositiveEntriesMatchAny) {
  char f[64];
  pack(f, {"/a/*", "/b/*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "/a/x"));
  EXPECT_TRUE(glob_list_match(f, sizeof f, "/b/x"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "/c/x"));
}

TEST(GlobList, NegativeEntriesExclude) {
  char f[64];
  pack(f, {"/data/*", "!/data/tmp/*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "/data/db"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "/data/tmp/x"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "/etc/x"));
  // The order does not matter.
  pack(f, {"!/data/tmp/*", "/data/*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "/data/db"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "/data/tmp/x"));
}

TEST(GlobList, NegativeOnlyMatchesEverythingElse) {
  char f[64];
  pack(f, {"!/data/tmp/*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "/etc/x"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "/data/tmp/x"));
  pack(f, {"!a*", "!b*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "c"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "b1"));
}

TEST(GlobList, EscapedBangIsALiteral) {
  char f[64];
  pack(f, {"\\!x*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "!xy"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "xy"));
  // In a class, '!' still negates the class, not the entry.
  pack(f, {"[!a]*"});
  EXPECT_TRUE(glob_list_match(f, sizeof f, "bcd"));
  EXPECT_FALSE(glob_list_match(f, sizeof f, "abc"));
}

TEST(GlobList, AListThatFillsItsFieldEndsAtTheField) {
  char f[8];
  pack(f, {"abc", "!a*"});  // 4 + 4 bytes: no room for an empty entry
  EXPECT_FALSE(glob_list_match(f, sizeof f, "abc"));
  std::memcpy(f, "abc\0xyz!", 8);  // no NUL at the end: the last entry is cut at the field
  int entries = 0;
  for (const char* e = glob_list_first(f, sizeof f); e; e = glob_list_next(f, sizeof f, e))
    ++entries;
  EXPECT_EQ(entries, 2);
  char empty[8] = {};
  EXPECT_EQ(glob_list_first(empty, sizeof empty), nullptr);
  EXPECT_FALSE(glob_list_match(empty, sizeof empty, "x"));
}

}  // namespace
}  // namespace faultline
