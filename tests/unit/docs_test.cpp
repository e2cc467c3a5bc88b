// docs/policy.md cannot drift from the code: its "Families and calls" table is compared row by
// row with the call table (calls/calls.def through calls/calls.h: family, how the call
// fails, its natural error, the actions it accepts), and the fault keys its tables document are
// compared with the policy compiler's own key table (read from the compiler's "unknown key"
// message, which lists every valid key). A call, an action or a key added to the code without its
// documentation — or documented without existing — fails here.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "calls/calls.h"
#include "policy/policy.h"

namespace faultline {
namespace {

std::string read_doc(const std::string& name) {
  std::ifstream in(std::string(FAULTLINE_SOURCE_DIR) + "/docs/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> cells(const std::string& row) {
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < row.size(); ++i) {  // after the leading '|'
    if (row[i] == '|' && row[i - 1] != '\\') {
      const auto first = cell.find_first_not_of(' ');
      const auto last = cell.find_last_not_of(' ');
      out.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
      cell.clear();
    } else {
      cell += row[i];
    }
  }
  return out;
}

// The lines of the section that starts with `heading` (up to the next heading of its level).
std::vector<std::string> section(const std::string& doc, const std::string& heading) {
  std::vector<std::string> lines;
  std::istringstream in(doc);
  bool inside = false;
  const std::string level = heading.substr(0, heading.find(' ') + 1);
  for (std::string line; std::getline(in, line);) {
    if (line == heading) {
      inside = true;
      continue;
    }
    if (inside && line.rfind(level, 0) == 0) break;
    if (inside) lines.push_back(line);
  }
  return lines;
}

// Every `word` in a text.
std::vector<std::string> backticked(const std::string& text) {
  std::vector<std::string> words;
  static const std::regex code("`([^`]+)`");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), code); it != std::sregex_iterator();
       ++it)
    words.push_back((*it)[1]);
  return words;
}

std::set<std::string> action_names(std::uint32_t actions) {
  std::set<std::string> names;
  for (std::uint32_t bit = 1; bit != 0; bit <<= 1)
    if (actions & bit) names.insert(std::string(action_name(bit)));
  return names;
}

std::set<std::string> comma_list(const std::string& text) {
  std::set<std::string> items;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const auto first = item.find_first_not_of(' ');
    const auto last = item.find_last_not_of(' ');
    if (first != std::string::npos) items.insert(item.substr(first, last - first + 1));
  }
  return items;
}

// How each kind of failure is worded in the "fails as" column.
const char* failure_wording(Failure failure) {
  switch (failure) {
    case Failure::kMinusOneErrno:
      return "-1, errno";
    case Failure::kNullErrno:
      return "NULL, errno";
    case Failure::kErrnoReturn:
      return "returns the errno";
    case Failure::kEofErrno:
      return "`EOF`";
    case Failure::kShortCount:
      return "0 items";
    case Failure::kVoid:
      return "cannot fail";
    case Failure::kEaiReturn:
      return "`EAI_*` code";
    case Failure::kNullHerrno:
      return "NULL, `h_errno`";
    case Failure::kHerrnoResult:
      return "`*result` NULL";
  }
  return "?";
}

struct DocRow {
  std::string family;
  std::string fails_as;
  std::string natural;
  std::set<std::string> accepts;
};

TEST(PolicyDoc, CallTableMatchesCallsDef) {
  const std::string doc = read_doc("policy.md");
  ASSERT_FALSE(doc.empty()) << "cannot read docs/policy.md";
  std::map<std::string, DocRow> rows;  // call -> its row
  int socket_rows = 0;
  for (const std::string& line : section(doc, "## Families and calls")) {
    if (line.rfind("| `@", 0) != 0) continue;
    const auto c = cells(line);
    ASSERT_EQ(c.size(), 5u) << line;
    const std::string family = backticked(c[0]).at(0);
    const std::vector<std::string> names = backticked(c[1]);
    const std::set<std::string> accepts = comma_list(c[4]);
    if (c[1].find("on a socket") != std::string::npos) {
      // read/readv/write/writev serve @net on sockets: their rows are @read/@write ones, and
      // on a socket they take the @net data calls' actions.
      ++socket_rows;
      EXPECT_EQ(family, "@net") << line;
      for (const auto& name : names) {
        const auto call = find_call(name);
        ASSERT_TRUE(call.has_value()) << "docs/policy.md names '" << name << "', not a call";
        EXPECT_TRUE(call->family == kFamRead || call->family == kFamWrite) << name;
      }
      const bool receives = find_call(names.at(0))->family == kFamRead;
      for (const auto& name : names) EXPECT_EQ(c[3], natural_error(*find_call(name), true)) << line;
      EXPECT_EQ(accepts, action_names(receives ? kActNetRecv : kActNetSend)) << line;
      continue;
    }
    ASSERT_EQ(names.size(), 1u) << "one call per row: " << line;
    EXPECT_TRUE(rows.emplace(names[0], DocRow{family, c[2], c[3], accepts}).second)
        << "documented twice: " << names[0];
  }
  EXPECT_EQ(socket_rows, 2);

  for (const CallInfo& call : all_calls()) {
    const std::string name(call.name);
    const auto row = rows.find(name);
    if (row == rows.end()) {
      ADD_FAILURE() << "docs/policy.md has no row for '" << name << "' ("
                    << family_name(call.family) << "): add it to the Families and calls table";
      continue;
    }
    EXPECT_EQ(row->second.family, family_name(call.family)) << name;
    EXPECT_NE(row->second.fails_as.find(failure_wording(call.failure)), std::string::npos)
        << name << " fails as \"" << row->second.fails_as << "\"; calls.def says it fails with "
        << failure_wording(call.failure);
    // A call that cannot be made to fail has no natural error: "—".
    EXPECT_EQ(row->second.natural,
              call.actions & kActError ? natural_error(call, false) : std::string_view("—"))
        << name << ": the natural error column differs from calls.def";
    EXPECT_EQ(row->second.accepts, action_names(call.actions))
        << name << ": the accepts column differs from calls.def";
    rows.erase(row);
  }
  for (const auto& [name, row] : rows)
    ADD_FAILURE() << "docs/policy.md documents '" << name << "' (" << row.family
                  << "), which is not in calls/calls.def";
}

// The compiler's keys: an unknown key with no near match is refused with the full list.
std::set<std::string> compiler_keys() {
  const CompileResult r = compile_fault_snippet(
      "[[fault]]\nname = \"x\"\ncalls = [\"write\"]\nqqqqqqqqqqqqqqqqqqqqqqqq = 1\n", "probe");
  EXPECT_TRUE(r.error.has_value());
  if (!r.error) return {};
  const std::string& message = r.error->message;
  const auto at = message.find("(valid: ");
  EXPECT_NE(at, std::string::npos) << message;
  if (at == std::string::npos) return {};
  const auto end = message.find(')', at);
  return comma_list(message.substr(at + 8, end - at - 8));
}

TEST(PolicyDoc, FaultKeysMatchTheCompiler) {
  const std::string doc = read_doc("policy.md");
  ASSERT_FALSE(doc.empty());
  // The keys of the tables of the [[fault]], Actions, Selectors and Triggers sections.
  std::set<std::string> documented;
  for (const char* heading : {"## [[fault]]", "## Actions", "## Selectors", "## Triggers"})
    for (const std::string& line : section(doc, heading)) {
      if (line.rfind("| `", 0) != 0) continue;
      const auto words = backticked(cells(line).at(0));
      if (words.size() == 1) documented.insert(words[0]);
    }
  const std::set<std::string> keys = compiler_keys();
  ASSERT_GE(keys.size(), 20u) << "could not read the compiler's key list";
  for (const auto& key : keys) {
    if (documented.count(key) != 0) continue;
    ADD_FAILURE() << "the policy compiler takes '" << key
                  << "', but no key table of docs/policy.md documents it";
  }
  for (const auto& key : documented)
    EXPECT_EQ(keys.count(key), 1u)
        << "docs/policy.md documents '" << key << "', which the compiler does not know";
}

}  // namespace
}  // namespace faultline
