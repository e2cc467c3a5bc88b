// Exact, scriptable output (docs/cli.md, "JSON output"): every JSON document the CLI prints
// (`run --json`, `status`, `sessions`, `validate`, `events`, `explore`) and every line of the
// shim's event log is parsed by a strict parser (python3's json, refusing duplicate keys and
// NaN); a 64-bit seed above 2^53 comes back exact, as a string; a path that is not valid UTF-8
// is escaped the same way in the log and in `events --json`, byte for byte; and a fault read
// back from `status --json` can be added again and reads back the same.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kCountWrites = std::string(FL_PROGRAMS_DIR) + "/fl_count_writes";
constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kBigSeed = "18446744073709551557";  // 2^64 - 59, far above 2^53

// Strict: RFC 8259 with no NaN/Infinity, no duplicate key in any object, valid UTF-8 (the
// bytes are decoded strictly before parsing). `lines`: JSON Lines, each line one document.
const char* kStrictJson = R"PY(
import json, sys
def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return dict(pairs)
def no_constant(name):
    raise ValueError("not JSON: " + name)
text = sys.stdin.buffer.read().decode("utf-8", errors="strict")
docs = text.splitlines() if sys.argv[1] == "lines" else [text]
for doc in docs:
    json.loads(doc, object_pairs_hook=no_duplicates, parse_constant=no_constant)
print("ok %d" % len(docs))
)PY";

class CliJsonTest : public IntegrationTest {
 protected:
  // Checks `text` with the strict parser; returns the documents parsed.
  void expect_strict_json(const std::string& text, bool lines, const std::string& what) {
    RunOptions options;
    options.stdin_text = text;
    const RunResult r = run({kPython, "-c", kStrictJson, lines ? "lines" : "one"}, options);
    EXPECT_EQ(r.status(), 0) << what << ": not strict JSON: " << r.err << "\n" << text;
    EXPECT_TRUE(r.out.starts_with("ok ")) << what << r.out;
  }

  std::string policy(const std::string& body) {
    const std::string file = path("policy.toml");
    EXPECT_TRUE(write_file(file, "version = 1\n" + body));
    return file;
  }
};

// A TOML string literal (basic string, escaped).
std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string toml_value(const nlohmann::json& v) {
  if (v.is_string()) return toml_string(v.get<std::string>());
  if (v.is_array()) {
    std::string out = "[";
    for (const auto& item : v) out += (out.size() > 1 ? ", " : "") + toml_value(item);
    return out + "]";
  }
  return v.dump();  // numbers and booleans are written alike in TOML
}

// A [[fault]] table made only of what `status --json` says about a fault.
std::string fault_table(const nlohmann::json& fault, const std::string& name) {
  std::string toml = "[[fault]]\nname = " + toml_string(name) + "\n";
  toml += "calls = " + toml_value(fault.at("calls")) + "\n";
  for (const char* part : {"selectors", "action", "triggers"})
    for (const auto& [key, value] : fault.at(part).items())
      if (!value.is_null()) toml += key + " = " + toml_value(value) + "\n";
  return toml;
}

TEST_F(CliJsonTest, EveryOutputIsStrictJsonAndTheSeedComesBackExact) {
  const std::string name = session("json");
  const std::string log = path("events.jsonl");
  const std::string file = path("bad\xff\xc3name\tx.dat");  // not UTF-8, and a tab
  const std::string pol = policy(R"(
[[fault]]
name = "w"
calls = ["write"]
path = "*/bad*"
error = "EIO"
times = 3

[[fault]]
name = "slow"
calls = ["@fsync"]
path = "/never/*"
delay = "1m30s"
probability = 0.25
after = 2
)");
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "--seed", kBigSeed, "--log", log, "-p", pol,
                             "--json", "--", "/bin/sh", "-c", "\"$0\" \"$1\" 3 && read x",
                             kCountWrites, file}));
  ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "writes=3 failed=3 errno=5")
      << program.err();

  const RunResult status = faultline({"status", name, "--json"});
  ASSERT_EQ(status.status(), 0) << status.err;
  expect_strict_json(status.out, false, "status --json");
  const auto st = nlohmann::json::parse(status.out);
  EXPECT_EQ(st.at("seed"), kBigSeed) << status.out;
  const auto& w = st.at("faults").at(0);
  EXPECT_EQ(w.at("injected"), 3);
  EXPECT_TRUE(w.at("first_injection_ns").is_string()) << status.out;
  EXPECT_TRUE(w.at("first_injection_time").get<std::string>().ends_with("Z")) << status.out;
  EXPECT_EQ(w.at("calls"), nlohmann::json::array({"write"}));
  EXPECT_EQ(w.at("selectors").at("path"), nlohmann::json::array({"*/bad*"}));
  EXPECT_EQ(w.at("action").at("error"), "EIO");
  EXPECT_EQ(w.at("triggers").at("times"), 3);
  const auto& slow = st.at("faults").at(1);
  EXPECT_EQ(slow.at("calls"), nlohmann::json::array({"@fsync"})) << status.out;
  EXPECT_EQ(slow.at("action").at("delay"), "1m30s") << status.out;
  EXPECT_EQ(slow.at("triggers").at("probability"), 0.25);
  EXPECT_EQ(slow.at("triggers").at("after"), 2);

  const RunResult sessions = faultline({"sessions", "--json"});
  ASSERT_EQ(sessions.status(), 0) << sessions.err;
  expect_strict_json(sessions.out, false, "sessions --json");
  bool listed = false;
  const auto list = nlohmann::json::parse(sessions.out);
  for (const auto& s : list.at("sessions")) listed = listed || s.at("name") == name;
  EXPECT_TRUE(listed) << sessions.out;

  // The log and `events --json`: the same lines, byte for byte, bad bytes as \\xNN.
  const RunResult events = faultline({"events", name, "--json"});
  ASSERT_EQ(events.status(), 0) << events.err;
  expect_strict_json(events.out, true, "events --json");
  const std::string logged = read_file(log).value_or("");
  expect_strict_json(logged, true, "the event log");
  EXPECT_EQ(split_lines(events.out).size(), 3u) << events.out;
  EXPECT_EQ(events.out, logged);
  EXPECT_NE(logged.find("bad\\\\xff\\\\xc3name\\tx.dat"), std::string::npos) << logged;
  EXPECT_NE(logged.find(std::string("\"seed\":\"") + kBigSeed + "\""), std::string::npos);
  const auto first = nlohmann::json::parse(split_lines(logged).at(0));
  EXPECT_TRUE(first.at("ts_ns").is_string());
  EXPECT_TRUE(first.at("time").get<std::string>().ends_with("Z"));

  // Read back: the object `status --json` gives is enough to add the fault again.
  const std::string snippet = path("again.toml");
  ASSERT_TRUE(write_file(snippet, fault_table(slow, "slow2") + fault_table(w, "w2")));
  const RunResult add = faultline({"add", name, "-p", snippet});
  ASSERT_EQ(add.status(), 0) << add.err << read_file(snippet).value_or("");
  const auto again = nlohmann::json::parse(faultline({"status", name, "--json"}).out);
  for (const auto& [copy, original] :
       {std::pair{again.at("faults").at(2), slow}, std::pair{again.at("faults").at(3), w}})
    for (const char* part : {"calls", "selectors", "action", "triggers"})
      EXPECT_EQ(copy.at(part), original.at(part)) << part << " of " << copy.at("name");

  EXPECT_TRUE(program.write_stdin("\n"));
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
  // `run --json`: the summary, one JSON line on stderr.
  const auto summary_line = split_lines(end.err).back();
  expect_strict_json(summary_line, false, "run --json");
  const auto summary = nlohmann::json::parse(summary_line);
  EXPECT_EQ(summary.at("seed"), kBigSeed);
  EXPECT_EQ(summary.at("faults").at(0).at("injected"), 3);
}

TEST_F(CliJsonTest, ValidateJsonListsEveryError) {
  const std::string bad = policy(R"(
[[fault]]
name = "a"
calls = ["write"]
pathh = "/x"
error = "EIO"

[[fault]]
name = "b"
calls = ["write"]
error = "ENOSUCH"

[[fault]]
name = "c"
calls = ["fsync"]
delay = "10 parsecs"

[log]
max_rate = 0
)");
  const RunResult text = faultline({"validate", bad});
  EXPECT_EQ(text.status(), 2) << text.out << text.err;
  EXPECT_EQ(split_lines(text.err).size(), 4u) << text.err;
  EXPECT_NE(text.err.find(bad + ":6:1: unknown key 'pathh'"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find(bad + ":12:9: unknown errno name 'ENOSUCH'"), std::string::npos)
      << text.err;
  EXPECT_NE(text.err.find(bad + ":17:9: bad duration"), std::string::npos) << text.err;
  EXPECT_NE(text.err.find(bad + ":20:12: 'max_rate' must be >= 1"), std::string::npos) << text.err;

  const RunResult json = faultline({"validate", bad, "--json"});
  EXPECT_EQ(json.status(), 2) << json.err;
  expect_strict_json(json.out, false, "validate --json");
  const auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc.at("ok"), false);
  ASSERT_EQ(doc.at("errors").size(), 4u) << json.out;
  const auto& e = doc.at("errors").at(0);
  EXPECT_EQ(e.at("file"), bad);
  EXPECT_EQ(e.at("line"), 6);
  EXPECT_EQ(e.at("column"), 1);
  EXPECT_EQ(e.at("suggestion"), "path");
  EXPECT_TRUE(e.at("message").get<std::string>().starts_with("unknown key 'pathh'"));

  const std::string good = policy("seed = 18446744073709551557\n");
  const RunResult ok = faultline({"validate", "--json", good});
  EXPECT_EQ(ok.status(), 2) << "seed above INT64_MAX is not TOML: " << ok.out;
  const RunResult fine = faultline({"validate", "--json", policy("seed = 9007199254740993\n")});
  EXPECT_EQ(fine.status(), 0) << fine.out << fine.err;
  expect_strict_json(fine.out, false, "validate --json (ok)");
  EXPECT_EQ(nlohmann::json::parse(fine.out).at("seed"), "9007199254740993");
}

TEST_F(CliJsonTest, ExploreJsonIsStrict) {
  const RunResult r = faultline({"explore", "--calls", "write", "--max-runs", "2", "--json", "-q",
                                 "--state", path("state"), "--", kCountWrites, path("x.dat"), "1"});
  EXPECT_LE(r.status(), 1) << r.err;
  expect_strict_json(r.out, false, "explore --json");
}

}  // namespace
}  // namespace fltest
