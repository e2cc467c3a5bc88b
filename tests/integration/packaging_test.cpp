// What the packages ship besides the binaries, checked against the real thing: the man pages
// generated from docs/ (scripts/md2man.py) render with `man -l` without a single warning and
// name every command of the CLI (from its own --help) and every key of the policy compiler
// (from its key tables); the bash completion, driven as bash drives it (COMP_WORDS,
// COMP_CWORD, the function `complete -p` names), completes a command, a live session and the
// faults of that session from the running CLI; the Kubernetes manifests of
// examples/kubernetes use the field names of the Kubernetes API.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

const std::string kSource = FAULTLINE_SOURCE_DIR;
const std::string kManDir = std::string(FAULTLINE_BINARY_DIR) + "/man";

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

// `man -l` as a user runs it, 80 columns, formatting stripped (stdout is a pipe).
RunResult render(const std::string& page, bool warnings) {
  RunOptions options;
  options.env = {{"MANWIDTH", "80"}, {"LC_ALL", "C.UTF-8"}};
  options.timeout = std::chrono::seconds(60);
  return run(
      {"/bin/sh", "-c",
       warnings ? "man --warnings -l \"$0\" 2>&1 >/dev/null" : "man -l \"$0\" 2>/dev/null", page},
      options);
}

// The words of `text` (letters, digits, _ and -).
std::set<std::string> words_of(const std::string& text) {
  std::set<std::string> words;
  static const std::regex kWord("[A-Za-z0-9_-]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kWord);
       it != std::sregex_iterator(); ++it)
    words.insert(it->str());
  return words;
}

class PackagingTest : public IntegrationTest {};

TEST_F(PackagingTest, ManPagesRenderWithoutWarnings) {
  for (const char* page : {"faultline.1", "faultline-policy.5", "faultline-experiment.5"}) {
    for (const std::string& file : {kManDir + "/" + page, kManDir + "/" + page + ".gz"}) {
      ASSERT_TRUE(file_exists(file)) << file << " was not generated";
      const RunResult warnings = render(file, true);
      EXPECT_EQ(warnings.out, "") << file;
      const RunResult text = render(file, false);
      EXPECT_EQ(text.status(), 0) << text.err;
      EXPECT_GT(text.out.size(), 500u) << file;
    }
  }
}

// One section per command: every subcommand `faultline --help` lists is in a heading of
// faultline(1).
TEST_F(PackagingTest, ManPageHasASectionPerCommand) {
  const RunResult help = faultline({"--help"});
  ASSERT_EQ(help.status(), 0) << help.err;
  std::vector<std::string> commands;
  bool in_list = false;
  for (const std::string& line : split_lines(help.out)) {
    if (line.rfind("Subcommands:", 0) == 0 || line.rfind("SUBCOMMANDS:", 0) == 0) {
      in_list = true;
      continue;
    }
    if (in_list && line.rfind("  ", 0) != 0) break;
    static const std::regex kCommand(R"(^\s+([a-z][a-z-]*)\b.*)");
    std::smatch m;
    if (in_list && std::regex_match(line, m, kCommand)) commands.push_back(m[1]);
  }
  ASSERT_GE(commands.size(), 10u) << help.out;

  const RunResult page = render(kManDir + "/faultline.1", false);
  std::set<std::string> heading_words;
  for (const std::string& line : split_lines(page.out))
    if (!line.empty() && line[0] != ' ')
      for (const std::string& word : words_of(line)) heading_words.insert(word);
  for (const std::string& command : commands)
    EXPECT_TRUE(heading_words.count(upper(command)))
        << "faultline(1) has no section for `" << command << "`";
}

// Every key the policy compiler accepts (its key tables: the fault keys in
// policy/policy_keys.cpp, the top-level and table keys in policy/policy_document.cpp) is
// documented in faultline-policy(5).
TEST_F(PackagingTest, PolicyManPageNamesEveryKey) {
  static const std::regex kKey(R"re(\{"([a-z_0-9]+)",\s*compile_)re");
  std::set<std::string> keys;
  for (const char* file : {"/policy/policy_keys.cpp", "/policy/policy_document.cpp"}) {
    const auto source = read_file(kSource + file);
    ASSERT_TRUE(source.has_value()) << file;
    for (auto it = std::sregex_iterator(source->begin(), source->end(), kKey);
         it != std::sregex_iterator(); ++it)
      keys.insert((*it)[1]);
  }
  ASSERT_GE(keys.size(), 40u) << "the key tables of policy/policy_*.cpp were not found";
  const RunResult page = render(kManDir + "/faultline-policy.5", false);
  const std::set<std::string> words = words_of(page.out);
  for (const std::string& key : keys)
    EXPECT_TRUE(words.count(key)) << "faultline-policy(5) never names the key '" << key << "'";
}

// ---- bash completion --------------------------------------------------------------------

class CompletionTest : public IntegrationTest {
 protected:
  // COMPREPLY for the command line `words` (the last word is the one being completed).
  std::vector<std::string> complete(const std::vector<std::string>& words) {
    std::string array = "'" + cli() + "'";
    for (const std::string& w : words) array += " '" + w + "'";
    const std::string script = "source '" + kSource +
                               "/completion/faultline.bash' || exit 3\n"
                               "complete -p faultline || exit 4\n"
                               "fn=$(complete -p faultline | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n"
                               "COMP_WORDS=(" +
                               array + ")\nCOMP_CWORD=" + std::to_string(words.size()) +
                               "\nCOMP_LINE=\"${COMP_WORDS[*]}\"\nCOMP_POINT=${#COMP_LINE}\n"
                               "\"$fn\" faultline \"${COMP_WORDS[COMP_CWORD]}\" "
                               "\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
                               "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    RunOptions options;
    options.cwd = path("");
    const RunResult r = run({"/bin/bash", "--norc", "--noprofile", "-c", script}, options);
    EXPECT_EQ(r.status(), 0) << r.out << r.err;
    std::vector<std::string> replies;
    for (const std::string& line : split_lines(r.out))
      if (line.rfind("complete ", 0) != 0 && !line.empty()) replies.push_back(line);
    return replies;
  }

  static bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  }
};

TEST_F(CompletionTest, BashCompletesCommandsSessionsAndFaults) {
  // Commands and options.
  EXPECT_EQ(complete({"st"}), (std::vector<std::string>{"status"}));
  const auto explore = complete({"ex"});
  EXPECT_TRUE(has(explore, "explore"));
  EXPECT_TRUE(has(complete({"events", "--"}), "--follow"));

  // A live session with two faults.
  const std::string name = session("comp");
  ASSERT_TRUE(write_file(path("faults.toml"), R"(version = 1
[[fault]]
name = "disk-slow"
calls = ["@fsync"]
delay = "1ms"
enabled = false
[[fault]]
name = "disk-full"
calls = ["write"]
path = "/nonexistent/*"
error = "ENOSPC"
)"));
  Background live;
  ASSERT_TRUE(live.start({cli(), "run", "-q", "-s", name, "-p", path("faults.toml"), "--",
                          "/bin/sh", "-c", "echo ready; sleep 30"}));
  ASSERT_EQ(live.read_line(std::chrono::seconds(10)).value_or(""), "ready") << live.err();

  // status SESSION: the live session is offered.
  EXPECT_TRUE(has(complete({"status", ""}), name));
  EXPECT_TRUE(has(complete({"status", name.substr(0, name.size() - 1)}), name));
  // enable SESSION FAULT: the session's faults.
  const auto faults = complete({"enable", name, "disk-"});
  EXPECT_EQ(std::set<std::string>(faults.begin(), faults.end()),
            (std::set<std::string>{"disk-full", "disk-slow"}));
  // set SESSION FAULT KEY=: the keys.
  EXPECT_TRUE(has(complete({"set", name, "disk-full", "prob"}), "probability="));
  // -p: policy files.
  EXPECT_TRUE(has(complete({"run", "-p", "fau"}), "faults.toml"));
  live.stop(std::chrono::seconds(2));
}

// ---- Kubernetes ---------------------------------------------------------------------------

// examples/kubernetes: parsed, every field named as the Kubernetes API names it, the pod's
// references consistent (tests/kubernetes/check_manifests.py), and the policy of the
// ConfigMap accepted by `faultline validate`.
TEST_F(PackagingTest, KubernetesManifestsUseTheApiFieldNames) {
  const RunResult yaml = run({"/usr/bin/python3", "-c", "import yaml"});
  ASSERT_EQ(yaml.status(), 0) << "python3-yaml is missing (scripts/deps.sh installs it)";
  const RunResult checked =
      run({"/usr/bin/python3", kSource + "/tests/kubernetes/check_manifests.py",
           kSource + "/examples/kubernetes", path("")});
  EXPECT_EQ(checked.status(), 0) << checked.out << checked.err;
  EXPECT_NE(checked.out.find(" 0 errors"), std::string::npos) << checked.out;
  const RunResult validate = faultline({"validate", path("checkout-faults.toml")});
  EXPECT_EQ(validate.status(), 0) << validate.out << validate.err;
}

}  // namespace
}  // namespace fltest
