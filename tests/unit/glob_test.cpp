// The selector glob matcher (control/glob.cpp) and the policy compiler's glob check: what
// users write in `path`, `process` and `thread` must match exactly what the docs say.
#include "faultline/glob.h"

#include <gtest/gtest.h>

#include "policy.h"

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

// Unlike shell globs, '*' crosses '/': "/var/lib/*" covers the whole tree (spec/policy.md).
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

}  // namespace
}  // namespace faultline
