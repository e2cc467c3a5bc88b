// `faultline experiment`: real services (redis-server, the python3 checkout API of
// examples/experiments) on loopback ports of this test process, faults in their sessions,
// and what the run reports: exit status, the journal, the HTML report, JUnit XML. Every
// clause kind held and not held, the emergency stop, SIGINT, a service never ready, the
// journal -> report round trip, and that no process the experiment started outlives it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "harness.h"

namespace fltest {
namespace {

using json = nlohmann::json;

// Ports and names of this test process: tests of other processes may run at the same time.
int port(int k) { return 21000 + (getpid() % 800) * 10 + k; }

class ExperimentTest : public IntegrationTest {
 protected:
  void SetUp() override {
    IntegrationTest::SetUp();
    const auto api =
        read_file(std::string(FAULTLINE_SOURCE_DIR) + "/examples/experiments/shop_api.py");
    ASSERT_TRUE(api);
    ASSERT_TRUE(write_file(path("shop_api.py"), *api));
    redis_ = session("redis");
    api_ = session("api");
    ASSERT_TRUE(write_file(path("api-faults.toml"),
                           fmt("version = 1\n[[fault]]\nname = \"partition\"\ncalls = "
                               "[\"@net\"]\naddr = \"127.0.0.2:{redis_port}\"\nblackhole = "
                               "true\ntimeout = \"5s\"\n")));
  }

  // {redis}, {api}, {redis_port}, {api_port}, {dir} replaced.
  std::string fmt(std::string text) const {
    const std::pair<std::string, std::string> keys[] = {{"{redis}", redis_},
                                                        {"{api}", api_},
                                                        {"{redis_port}", std::to_string(port(1))},
                                                        {"{api_port}", std::to_string(port(2))},
                                                        {"{dir}", dir_.path()}};
    for (const auto& [key, value] : keys)
      for (auto at = text.find(key); at != std::string::npos; at = text.find(key))
        text.replace(at, key.size(), value);
    return text;
  }

  // The two services; `api_args` is added to the API's command.
  std::string services(const std::string& api_args, const std::string& redis_restart = "no") {
    return fmt(
        "version = 1\ntitle = \"test\"\nseed = 3\n"
        "[[service]]\nname = \"{redis}\"\ncommand = [\"redis-server\", \"--port\", "
        "\"{redis_port}\", \"--bind\", \"127.0.0.2\", \"--save\", \"\", \"--appendonly\", "
        "\"no\"]\nready = { tcp = \"127.0.0.2:{redis_port}\", timeout = \"10s\" }\n"
        "restart = \"" +
        redis_restart +
        "\"\nrestart_delay = \"200ms\"\n"
        "[[service]]\nname = \"{api}\"\ncommand = [\"python3\", \"shop_api.py\", \"--port\", "
        "\"{api_port}\", \"--redis\", \"127.0.0.2:{redis_port}\"" +
        api_args +
        "]\npolicy = \"api-faults.toml\"\nready = { http = "
        "\"http://127.0.0.1:{api_port}/health\", timeout = \"10s\" }\n"
        "[[probe]]\nname = \"checkout\"\nhttp = \"http://127.0.0.1:{api_port}/checkout\"\n"
        "every = \"100ms\"\ntimeout = \"1s\"\nexpect = { status = 200, body_contains = \"ok\" "
        "}\n"
        "[[rollback]]\ncommand = [\"touch\", \"{dir}/rolled-back\"]\n");
  }

  RunResult experiment(const std::string& text, std::vector<std::string> extra = {}) {
    EXPECT_TRUE(write_file(path("exp.toml"), text));
    std::vector<std::string> args = {"experiment",         "run",    path("exp.toml"), "--json",
                                     path("journal.json"), "--logs", path("logs")};
    args.insert(args.end(), extra.begin(), extra.end());
    RunOptions options;
    options.timeout = 90s;
    return faultline(args, options);
  }

  json journal() {
    const auto text = read_file(path("journal.json"));
    EXPECT_TRUE(text) << "no journal";
    return text ? json::parse(*text) : json::object();
  }

  // Every pid a service was started with is gone.
  void expect_all_stopped(const json& j) {
    const std::regex pid_re("pid ([0-9]+)");
    int seen = 0;
    for (const auto& ev : j["service_events"]) {
      std::smatch m;
      const std::string detail = ev["detail"];
      if (!std::regex_search(detail, m, pid_re)) continue;
      ++seen;
      EXPECT_NE(::kill(std::stoi(m[1]), 0), 0) << "still running: " << detail;
    }
    EXPECT_GT(seen, 0);
  }

  const json* clause(const json& j, const std::string& kind) {
    for (const auto& c : j["clauses"])
      if (c["kind"] == kind) return &c;
    return nullptr;
  }

  std::string redis_, api_;
};

TEST_F(ExperimentTest, ValidateReportsEveryErrorWithItsPosition) {
  ASSERT_TRUE(write_file(path("bad.toml"), R"(version = 1
[[service]]
name = "api"
command = ["python3", "x.py"]
ready = { tcp = "127.0.0.1:1", timeout = "ten seconds" }

[[service]]
name = "ghost"
command = ["no-such-program-here"]

[[probe]]
name = "checkout"

[steady_state]
chekout = { success_rate = 0.99, window = "5s" }

[[step]]
at = "-1s"
enable = ["apy:partition"]

[expect]
during = { nope = { success_rate = 0.5 } }

[[step]]
at = "3s"
powercut = "api"
)"));
  const RunResult r = faultline({"experiment", "validate", path("bad.toml")});
  EXPECT_EQ(r.status(), 2) << r.err;
  const std::string f = path("bad.toml");
  EXPECT_NE(r.err.find(f + ":5:42: ready.timeout: bad duration \"ten seconds\""), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":11:1: probe 'checkout' has no target"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f + ":15:11: steady_state names unknown probe 'chekout' (did you mean "
                           "'checkout'?)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":18:6: step at \"-1s\": a step cannot run before 0s"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":19:10: 'apy:partition': unknown service 'apy' (did you mean "
                           "'api'?)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":22:19: expect.during names unknown probe 'nope'"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(f + ":9:11: command: no-such-program-here: "), std::string::npos) << r.err;
  // A powercut step of a known service is fine.
  EXPECT_EQ(r.err.find("powercut"), std::string::npos) << r.err;
  // `run` refuses the same file the same way, starting nothing.
  const RunResult run = faultline({"experiment", "run", path("bad.toml")});
  EXPECT_EQ(run.status(), 2);
  EXPECT_EQ(run.err, r.err);

  ASSERT_TRUE(write_file(path("good.toml"), services("")));
  const RunResult ok = faultline({"experiment", "validate", path("good.toml")});
  EXPECT_EQ(ok.status(), 0) << ok.err;
}

// The breaker keeps checkout serving through the partition: every clause kind holds, and the
// report and JUnit say so; the journal re-renders into the very same report.
TEST_F(ExperimentTest, HypothesisHoldsAndReportRoundTrips) {
  const RunResult r = experiment(
      services("") +
          fmt("[[probe]]\nname = \"redis-tcp\"\ntcp = \"127.0.0.2:{redis_port}\"\nevery = "
              "\"200ms\"\n[[probe]]\nname = \"ping\"\ncommand = [\"redis-cli\", \"-h\", "
              "\"127.0.0.2\", \"-p\", \"{redis_port}\", \"ping\"]\nevery = \"300ms\"\n") +
          "[steady_state]\ncheckout = { success_rate = 0.95, p99 = \"500ms\", window = \"1s\" }\n"
          "redis-tcp = { success_rate = 1.0, window = \"1s\" }\n"
          "ping = { success_rate = 1.0, window = \"1s\" }\n"
          "[[step]]\nat = \"1s\"\nenable = [\"" +
          api_ +
          ":partition\"]\n"
          "[[step]]\nat = \"3s\"\ndisable = [\"" +
          api_ +
          ":partition\"]\n"
          "[expect]\nduring = { checkout = { success_rate = 0.9, p50 = \"700ms\" } }\n"
          "recover_within = \"5s\"\n"
          "[stop]\ncheckout = { success_rate_below = 0.1, window = \"2s\" }\nmax_duration = "
          "\"1m\"\n",
      {"--report", path("report.html"), "--junit", path("junit.xml")});
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  const json j = journal();
  for (const char* kind :
       {"steady_state.before", "steady_state.end", "expect.during", "expect.recover_within"}) {
    const json* c = clause(j, kind);
    ASSERT_NE(c, nullptr) << kind;
    EXPECT_TRUE((*c)["held"].get<bool>()) << kind << ": " << (*c)["value"];
  }
  ASSERT_EQ(j["faults"].size(), 1u);
  EXPECT_GT(j["faults"][0]["injected"].get<int>(), 0) << "the partition never bit";
  EXPECT_TRUE(j["measures"]["recovery"][0]["recovery_ms"].is_number());
  EXPECT_TRUE(file_exists(path("rolled-back")));
  expect_all_stopped(j);

  const auto html = read_file(path("report.html"));
  ASSERT_TRUE(html);
  EXPECT_NE(html->find("<svg id=\"timeline\""), std::string::npos);
  EXPECT_EQ(count_substr(*html, "class=\"fault-window\""), j["faults"].size());
  EXPECT_EQ(count_substr(*html, "<line class=\"step\""), 2u);
  EXPECT_NE(html->find("class=\"service-event\""), std::string::npos);
  EXPECT_NE(html->find("faultline experiment run"), std::string::npos);  // the replay command
  EXPECT_NE(html->find("blackhole = true"), std::string::npos);          // the policy
  EXPECT_EQ(html->find("src="), std::string::npos);  // self-contained: nothing fetched
  EXPECT_EQ(html->find("<link"), std::string::npos);
  const auto junit = read_file(path("junit.xml"));
  ASSERT_TRUE(junit);
  EXPECT_NE(junit->find("tests=\"8\" failures=\"0\""), std::string::npos) << *junit;
  ASSERT_EQ(j["probes"].size(), 3u);
  for (const auto& p : j["probes"]) EXPECT_GT(p["results"].size(), 3u) << p["name"];

  // Rendered by a real browser when one is installed (Debian's chromium, scripts/deps.sh):
  // no console error, the timeline in the DOM with one shaded window per fault, a screenshot
  // under the build folder.
  if (file_exists("/usr/bin/chromium")) {
    const std::vector<std::string> chromium = {"/usr/bin/chromium",
                                               "--headless",
                                               "--no-sandbox",
                                               "--disable-gpu",
                                               "--user-data-dir=" + path("chromium"),
                                               "--enable-logging=stderr",
                                               "--v=0"};
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> argv = chromium;
      argv.insert(argv.end(), extra.begin(), extra.end());
      RunOptions options;
      options.timeout = 60s;
      options.env = {{"HOME", dir_.path()}};
      return run(argv, options);
    };
    const RunResult dom = with({"--dump-dom", "file://" + path("report.html")});
    EXPECT_EQ(dom.status(), 0) << dom.err;
    EXPECT_EQ(dom.err.find("CONSOLE"), std::string::npos) << dom.err;
    EXPECT_NE(dom.out.find("<svg id=\"timeline\""), std::string::npos);
    EXPECT_EQ(count_substr(dom.out, "class=\"fault-window\""), j["faults"].size());
    const std::string png = std::string(FAULTLINE_BINARY_DIR) + "/experiment-report.png";
    const RunResult shot =
        with({"--window-size=1200,1800", "--screenshot=" + png, "file://" + path("report.html")});
    EXPECT_EQ(shot.status(), 0) << shot.err;
    EXPECT_GT(file_size(png).value_or(0), 10000u);
  } else {
    std::fprintf(stderr, "chromium not installed: the browser check of the report skipped\n");
  }

  const RunResult again =
      faultline({"experiment", "report", path("journal.json"), "-o", path("again.html")});
  EXPECT_EQ(again.status(), 0) << again.err;
  EXPECT_EQ(read_file(path("again.html")), html);
  const RunResult bad = faultline({"experiment", "report", path("exp.toml"), "-o", path("x")});
  EXPECT_EQ(bad.status(), 2);
}

// Without the breaker: the partition fails expect.during, recovery is slower than asked, and
// redis killed for good (restart = "no") fails the steady state at the end.
TEST_F(ExperimentTest, ClausesFailWithTheReason) {
  const RunResult r =
      experiment(services(", \"--no-breaker\"") +
                     "[steady_state]\ncheckout = { success_rate = 0.95, window = \"1s\" }\n"
                     "[[step]]\nat = \"1s\"\nenable = [\"" +
                     api_ +
                     ":partition\"]\n"
                     "[[step]]\nat = \"2.5s\"\ndisable = [\"" +
                     api_ +
                     ":partition\"]\n"
                     "[[step]]\nat = \"3s\"\nkill = \"" +
                     redis_ +
                     "\"\n"
                     "[expect]\nduring = { checkout = { success_rate = 0.9 } }\n"
                     "recover_within = \"1s\"\n",
                 {"--junit", path("junit.xml"), "--report", path("report.html")});
  EXPECT_EQ(r.status(), 1) << r.out << r.err;
  // The report says why: the clause's measured value and the probe's failure reasons.
  const auto html = read_file(path("report.html"));
  ASSERT_TRUE(html);
  EXPECT_NE(html->find("the hypothesis did not hold"), std::string::npos);
  EXPECT_NE(html->find("<td>status 503</td>"), std::string::npos) << *html;
  const json j = journal();
  for (const char* kind : {"steady_state.end", "expect.during", "expect.recover_within"}) {
    const json* c = clause(j, kind);
    ASSERT_NE(c, nullptr) << kind;
    EXPECT_FALSE((*c)["held"].get<bool>()) << kind << ": " << (*c)["value"];
  }
  EXPECT_TRUE(clause(j, "steady_state.before")->at("held").get<bool>());
  // Impact: the enable step was followed by a failed probe.
  EXPECT_TRUE(j["measures"]["impact"][0]["impact_ms"].is_number()) << j["measures"];
  EXPECT_NE(r.out.find("NOT HELD"), std::string::npos);
  const auto junit = read_file(path("junit.xml"));
  ASSERT_TRUE(junit);
  EXPECT_NE(junit->find("failures=\"3\""), std::string::npos) << *junit;
  expect_all_stopped(j);
}

// The stop condition: faults off in every session at once, rollbacks run, exit 3.
TEST_F(ExperimentTest, StopConditionLiftsEveryFaultAndRollsBack) {
  const RunResult r =
      experiment(services(", \"--no-breaker\"") +
                 "[steady_state]\ncheckout = { success_rate = 0.95, window = \"1s\" }\n"
                 "[[step]]\nat = \"1s\"\nenable = [\"" +
                 api_ +
                 ":partition\"]\n"
                 "[[step]]\nat = \"20s\"\ndisable = [\"" +
                 api_ +
                 ":partition\"]\n"
                 "[stop]\ncheckout = { success_rate_below = 0.5, window = \"2s\" }\n");
  EXPECT_EQ(r.status(), 3) << r.out << r.err;
  const json j = journal();
  ASSERT_TRUE(j["stop"].is_object());
  EXPECT_NE(j["stop"]["reason"].get<std::string>().find("success rate"), std::string::npos);
  EXPECT_LT(j["stop"]["reaction_ms"].get<double>(), 100.0);
  EXPECT_LT(j["end"].get<double>(), 15.0) << "the run went on after the stop";
  // Time to detect is measured for a stopped run too.
  EXPECT_TRUE(j["measures"]["impact"][0]["impact_ms"].is_number()) << j["measures"];
  EXPECT_TRUE(file_exists(path("rolled-back")));
  expect_all_stopped(j);
}

// Ctrl-C and SIGTERM are stops: faults off, rollbacks, services stopped, journal, exit 3.
TEST_F(ExperimentTest, SigintAndSigtermStopEverything) {
  ASSERT_TRUE(write_file(path("exp.toml"),
                         services("") + "[[step]]\nat = \"30s\"\nkill = \"" + redis_ + "\"\n"));
  for (const auto& [sig, reason] : {std::pair{SIGINT, std::string("Interrupt")},
                                    std::pair{SIGTERM, std::string("Terminated")}}) {
    ::unlink(path("rolled-back").c_str());
    Background b;
    ASSERT_TRUE(b.start({cli(), "experiment", "run", path("exp.toml"), "--json",
                         path("journal.json"), "--logs", path("logs")}));
    bool started = false;
    for (int i = 0; i < 100 && !started; ++i) {
      const auto line = b.read_line(30s);
      if (!line) break;
      started = line->find("the method starts") != std::string::npos;
    }
    ASSERT_TRUE(started);
    ::kill(b.pid(), sig);
    const RunResult r = b.stop(20s);
    EXPECT_EQ(r.status(), 3) << r.err;
    const json j = journal();
    EXPECT_NE(j["stop"]["reason"].get<std::string>().find(reason), std::string::npos) << j["stop"];
    EXPECT_TRUE(file_exists(path("rolled-back")));
    expect_all_stopped(j);
  }
}

// Even a runner that is SIGKILLed (no cleanup of its own can run) takes its services along:
// they die with it (PR_SET_PDEATHSIG).
TEST_F(ExperimentTest, ServicesDieWithAKilledRunner) {
  ASSERT_TRUE(write_file(path("exp.toml"),
                         services("") + "[[step]]\nat = \"30s\"\nkill = \"" + redis_ + "\"\n"));
  Background b;
  ASSERT_TRUE(b.start({cli(), "experiment", "run", path("exp.toml"), "--logs", path("logs")}));
  std::vector<pid_t> pids;
  bool started = false;
  const std::regex pid_re("started: pid ([0-9]+)");
  for (int i = 0; i < 100 && !started; ++i) {
    const auto line = b.read_line(30s);
    if (!line) break;
    std::smatch m;
    if (std::regex_search(*line, m, pid_re)) pids.push_back(std::stoi(m[1]));
    started = line->find("the method starts") != std::string::npos;
  }
  ASSERT_TRUE(started);
  ASSERT_EQ(pids.size(), 2u);
  ::kill(b.pid(), SIGKILL);
  b.stop(5s);
  for (pid_t pid : pids) {
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone = ::kill(pid, 0) != 0;
      if (!gone) usleep(10'000);
    }
    EXPECT_TRUE(gone) << "pid " << pid << " outlived the runner";
    if (!gone) ::kill(pid, SIGKILL);
  }
  // The sessions the killed runner left behind are stale, not taken: the next run starts.
  ASSERT_TRUE(write_file(path("again.toml"), services("")));
  const RunResult again =
      faultline({"experiment", "run", path("again.toml"), "--logs", path("logs")});
  EXPECT_EQ(again.status(), 0) << again.out << again.err;
}

TEST_F(ExperimentTest, NeverReadyIsExit2WithEverythingStopped) {
  ASSERT_TRUE(write_file(
      path("exp.toml"),
      fmt("version = 1\n[[service]]\nname = \"{redis}\"\ncommand = [\"redis-server\", "
          "\"--port\", \"{redis_port}\", \"--bind\", \"127.0.0.2\", \"--save\", \"\"]\nready = "
          "{ log = \"Ready to accept connections\" }\n"
          "[[service]]\nname = \"{api}\"\ncommand = [\"sleep\", \"60\"]\nready = { command = "
          "[\"sh\", \"-c\", \"exit 1\"], timeout = \"1s\" }\n"
          "[[rollback]]\ncommand = [\"touch\", \"{dir}/rolled-back\"]\n")));
  RunOptions options;
  options.timeout = 30s;
  const RunResult r = faultline({"experiment", "run", path("exp.toml"), "--json",
                                 path("journal.json"), "--logs", path("logs")},
                                options);
  EXPECT_EQ(r.status(), 2) << r.out << r.err;
  EXPECT_NE(r.out.find("not ready within 1.000s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(redis_ + " ready"), std::string::npos) << r.out;  // by its log line
  EXPECT_TRUE(file_exists(path("rolled-back")));
  expect_all_stopped(journal());
}

// kill with the restart rule, pause/resume: the service events say what happened.
// set, add and remove edit the service's session (the same code as the CLI's edits);
// throttle stops and continues it.
TEST_F(ExperimentTest, KillRestartsPauseResumesAndEditsApply) {
  ASSERT_TRUE(write_file(
      path("extra.toml"),
      "[[fault]]\nname = \"extra\"\ncalls = [\"fsync\"]\nerror = \"EIO\"\nenabled = false\n"));
  const RunResult r = experiment(
      services("", "on-failure") + "[[step]]\nat = \"0.5s\"\nkill = \"" + redis_ +
      "\"\n[[step]]\nat = \"2s\"\npause = \"" + api_ + "\"\nfor = \"2s\"\n" +
      "[[step]]\nat = \"4.5s\"\nset = { \"" + api_ + ":partition\" = { probability = 0.5 } }\n" +
      "[[step]]\nat = \"4.6s\"\nadd = { \"" + api_ + "\" = \"extra.toml\" }\n" +
      "[[step]]\nat = \"4.7s\"\nremove = [\"" + api_ + ":extra\"]\n" +
      "[[step]]\nat = \"4.8s\"\nthrottle = \"" + api_ + "\"\ncpu = \"50%\"\nfor = \"1s\"\n" +
      "[steady_state]\ncheckout = { success_rate = 0.9, window = \"1s\" }\n");
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  const json j = journal();
  ASSERT_EQ(j["steps"].size(), 6u);
  for (const auto& st : j["steps"]) EXPECT_TRUE(st["ok"].get<bool>()) << st;
  EXPECT_NE(r.out.find("throttle ended"), std::string::npos) << r.out;
  std::string events;
  for (const auto& ev : j["service_events"])
    events += ev["service"].get<std::string>() + " " + ev["kind"].get<std::string>() + "\n";
  EXPECT_NE(events.find(redis_ + " exited"), std::string::npos) << events;
  EXPECT_NE(events.find(redis_ + " restarted"), std::string::npos) << events;
  EXPECT_NE(events.find(api_ + " resumed"), std::string::npos) << events;
  // The pause made the probe time out: its impact is measured.
  bool paused_impact = false;
  for (const auto& m : j["measures"]["impact"])
    paused_impact |=
        m["action"].get<std::string>().starts_with("pause") && m["impact_ms"].is_number();
  EXPECT_TRUE(paused_impact) << j["measures"];
  expect_all_stopped(j);
}

// A service writing a tracked file under [durability]: each incarnation appends "synced" and
// fsyncs it, then appends "unsynced" and never syncs. Two powercut steps each cut it, the
// runner reverts the file before the restart, and the second cut reverts only what came after
// the first: what is left is the start and the two synced lines.
TEST_F(ExperimentTest, PowercutStepsLoseWhatWasNeverSyncedAndTheServiceRestarts) {
  ASSERT_EQ(::mkdir(path("d").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(path("d/data"), "start\n"));
  ASSERT_EQ(run({"/bin/sync"}).status(), 0);
  ASSERT_TRUE(write_file(path("writer.py"),
                         "import os, sys, time\n"
                         "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
                         "os.write(fd, b'synced\\n')\n"
                         "os.fsync(fd)\n"
                         "os.write(fd, b'unsynced\\n')\n"
                         "print('ready', flush=True)\n"
                         "for _ in range(600):\n"
                         "    time.sleep(0.1)\n"));
  ASSERT_TRUE(
      write_file(path("dur.toml"), fmt("version = 1\n[durability]\npath = \"{dir}/d/*\"\n")));
  const std::string svc = session("writer");
  const RunResult r = experiment(fmt(
      "version = 1\ntitle = \"cut\"\nseed = 3\n"
      "[[service]]\nname = \"" +
      svc +
      "\"\ncommand = [\"python3\", \"{dir}/writer.py\", "
      "\"{dir}/d/data\"]\npolicy = \"dur.toml\"\nready = { log = \"ready\", timeout = \"10s\" }\n"
      "restart = \"on-failure\"\nrestart_delay = \"100ms\"\n"
      "[[probe]]\nname = \"data\"\ncommand = [\"test\", \"-s\", \"{dir}/d/data\"]\n"
      "every = \"200ms\"\n"
      "[[step]]\nat = \"1s\"\npowercut = \"" +
      svc +
      "\"\n"
      "[[step]]\nat = \"3s\"\npowercut = \"" +
      svc +
      "\"\n"
      // A last step, so the experiment outlives the second restart.
      "[[step]]\nat = \"5s\"\npause = \"" +
      svc + "\"\nfor = \"200ms\"\n"));
  EXPECT_LE(r.status(), 1) << r.out << r.err;
  const json j = journal();
  ASSERT_EQ(j["steps"].size(), 3u) << r.out;
  for (const auto& st : j["steps"]) EXPECT_TRUE(st["ok"].get<bool>()) << st;
  int cuts = 0, restarts = 0;
  for (const auto& ev : j["service_events"]) {
    if (ev["kind"] == "power cut") {
      ++cuts;
      EXPECT_NE(ev["detail"].get<std::string>().find(path("d/data") + " size"), std::string::npos)
          << ev;
    }
    restarts += ev["kind"] == "restarted";
  }
  EXPECT_EQ(cuts, 2) << j["service_events"];
  EXPECT_EQ(restarts, 2) << j["service_events"];
  // The third incarnation's unsynced line is still there: the end of an experiment is a
  // stop, not a cut.
  EXPECT_EQ(read_file(path("d/data")).value_or("<none>"),
            "start\nsynced\nsynced\nsynced\nunsynced\n");
  expect_all_stopped(j);
  EXPECT_FALSE(file_exists(path(".faultline-undo." + svc))) << "undo area left behind";
}

}  // namespace
}  // namespace fltest
