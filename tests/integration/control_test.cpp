// Live control, observability and safety with real programs: every kind of key
// edited live on a running loop and checked against what the program itself sees; faults
// added and removed while four threads write; panic reaching three processes of a tree; the
// TTL firing with no controller alive; max_faults exact under four threads; corrupted,
// truncated, foreign and other-version blocks never trusted; `events --json` equal to the
// event log; the run summary as JSON; `watch` read off a tmux screen; `run` cleaning up when
// it is told to stop. Programs and test take turns over stdin/stdout, so no step depends on
// timing, and every loop is bounded.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "faultline/control_block.h"
#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

// ---- programs -------------------------------------------------------------------------------

// Commands on stdin, files in argv[1]; "done" ends every answer. At most 20000 writes in all.
//   w FILE SIZE N   N writes of SIZE bytes 'A' (appended): "ok BYTES MS" or "err ERRNO" each
//   s FILE          fsync it: "ok" or "err ERRNO"
//   r FILE          truncate it to 0 bytes
//   c FILE          "same" if the file holds only 'A' bytes, else "diff"
//   t NAME          name the calling (main) thread, as a `thread` selector sees it
//   q               quit ("bye")
constexpr const char* kLoopPy = R"PY(
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
base = sys.argv[1]
fds = {}
def fd_of(name):
    if name not in fds:
        fds[name] = os.open(os.path.join(base, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return fds[name]
budget = 20000
print("ready", flush=True)
for line in sys.stdin:
    w = line.split()
    if not w:
        continue
    if w[0] == "q":
        break
    if w[0] == "w":
        size, n = int(w[2]), min(int(w[3]), budget)
        budget -= n
        for _ in range(n):
            start = time.monotonic()
            try:
                done = os.write(fd_of(w[1]), b"A" * size)
                print("ok %d %d" % (done, (time.monotonic() - start) * 1000), flush=True)
            except OSError as e:
                print("err %d" % e.errno, flush=True)
    elif w[0] == "s":
        try:
            os.fsync(fd_of(w[1]))
            print("ok", flush=True)
        except OSError as e:
            print("err %d" % e.errno, flush=True)
    elif w[0] == "r":
        os.ftruncate(fd_of(w[1]), 0)
    elif w[0] == "c":
        with open(os.path.join(base, w[1]), "rb") as f:
            data = f.read()
        print("same" if data.strip(b"A") == b"" else "diff", flush=True)
    elif w[0] == "t":
        libc.prctl(15, w[1].encode(), 0, 0, 0)  # PR_SET_NAME
    print("done", flush=True)
print("bye", flush=True)
)PY";

// Four threads writing to f-<thread>.dat in argv[1].
//   go N      each thread makes N writes; then "ok=X err=Y errnos=E,..."
//   spin      the threads write until `stop` (at most 100000 writes each); "spinning" once all
//             four have written
//   stop      "ok=X err=Y errnos=E,..." for everything since `spin`
constexpr const char* kThreadsPy = R"PY(
import os, sys, threading
base = sys.argv[1]
fds = [os.open(os.path.join(base, "f-%d.dat" % t), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
       for t in range(4)]
class Tally:
    def __init__(self):
        self.lock = threading.Lock(); self.ok = 0; self.err = 0; self.errnos = set()
    def add(self, ok, err, errnos):
        with self.lock:
            self.ok += ok; self.err += err; self.errnos |= errnos
    def line(self):
        return "ok=%d err=%d errnos=%s" % (self.ok, self.err, ",".join(str(e) for e in sorted(self.errnos)))
def work(t, limit, tally, stop, started):
    ok = err = 0; errnos = set()
    for i in range(limit):
        if stop is not None and stop.is_set():
            break
        try:
            os.write(fds[t], b"x")
            ok += 1
        except OSError as e:
            err += 1; errnos.add(e.errno)
        if i == 0 and started is not None:
            started.release()
    tally.add(ok, err, errnos)
print("ready", flush=True)
spinning = None
for line in sys.stdin:
    w = line.split()
    if not w:
        continue
    if w[0] == "go":
        tally = Tally()
        ts = [threading.Thread(target=work, args=(t, int(w[1]), tally, None, None)) for t in range(4)]
        for th in ts: th.start()
        for th in ts: th.join()
        print(tally.line(), flush=True)
    elif w[0] == "spin":
        tally, stop, started = Tally(), threading.Event(), threading.Semaphore(0)
        ts = [threading.Thread(target=work, args=(t, 100000, tally, stop, started)) for t in range(4)]
        for th in ts: th.start()
        for _ in range(4): started.acquire()
        spinning = (tally, stop, ts)
        print("spinning", flush=True)
    elif w[0] == "stop":
        tally, stop, ts = spinning
        stop.set()
        for th in ts: th.join()
        print(tally.line(), flush=True)
    elif w[0] == "q":
        break
print("bye", flush=True)
)PY";

// A tree of three processes: this one, a fork, and a fresh python3 exec'd by it (which joins
// through LD_PRELOAD and FAULTLINE_SESSION). "w N": each makes N writes to tree-<pid>.dat and
// the root prints one "PID ok=X err=Y" line per process, then "done".
constexpr const char* kTreePy = R"PY(
import os, subprocess, sys
base = sys.argv[1]
def writes(n):
    fd = os.open(os.path.join(base, "tree-%d.dat" % os.getpid()), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ok = err = 0
    for _ in range(n):
        try:
            os.write(fd, b"t"); ok += 1
        except OSError:
            err += 1
    os.close(fd)
    return "%d ok=%d err=%d" % (os.getpid(), ok, err)
def serve(rd, wr):
    for line in rd:
        w = line.split()
        if not w or w[0] == "q":
            break
        wr.write(writes(int(w[1])) + "\n"); wr.flush()
if len(sys.argv) > 2 and sys.argv[2] == "child":
    serve(sys.stdin, sys.stdout)
    sys.exit(0)
down_r, down_w = os.pipe(); up_r, up_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(down_w); os.close(up_r)
    serve(os.fdopen(down_r), os.fdopen(up_w, "w"))
    os._exit(0)
os.close(down_r); os.close(up_w)
forked_in, forked_out = os.fdopen(down_w, "w"), os.fdopen(up_r)
execd = subprocess.Popen([sys.executable, sys.argv[0], base, "child"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
print("pids %d %d %d" % (os.getpid(), pid, execd.pid), flush=True)
for line in sys.stdin:
    w = line.split()
    if not w or w[0] == "q":
        break
    for pipe in (forked_in, execd.stdin):
        pipe.write(line); pipe.flush()
    print(writes(int(w[1])), flush=True)
    print(forked_out.readline().strip(), flush=True)
    print(execd.stdout.readline().strip(), flush=True)
    print("done", flush=True)
for pipe in (forked_in, execd.stdin):
    pipe.write("q\n"); pipe.flush()
os.waitpid(pid, 0); execd.wait()
print("bye", flush=True)
)PY";

// Writes every 20 ms (at most 1000 times): "failing" at the first error, then "recovered
// after N failures" at the first success after an error, and exits. "never" if it never
// recovered.
constexpr const char* kTtlPy = R"PY(
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
fails = 0
for i in range(1000):
    try:
        os.write(fd, b"t")
        if fails:
            print("recovered after %d failures" % fails, flush=True)
            sys.exit(0)
    except OSError:
        fails += 1
        if fails == 1:
            print("failing", flush=True)
    time.sleep(0.02)
print("never", flush=True)
)PY";

// ---- helpers --------------------------------------------------------------------------------

// The raw value of "field" in the JSON object of fault `fault` (flat objects only), or of a
// top-level field when `fault` is empty.
std::optional<std::string> json_field(const std::string& json, const std::string& fault,
                                      const std::string& field) {
  std::size_t start = 0;
  std::size_t end = json.size();
  if (!fault.empty()) {
    start = json.find("{\"name\":\"" + fault + "\"");
    if (start == std::string::npos) return std::nullopt;
    end = json.find('}', start);
  }
  const std::string key = "\"" + field + "\":";
  const std::size_t at = json.find(key, start);
  if (at == std::string::npos || at > end) return std::nullopt;
  const std::size_t value = at + key.size();
  const std::size_t stop = json.find_first_of(",}", value);
  return json.substr(value, stop - value);
}

std::uint64_t json_u64(const std::string& json, const std::string& fault,
                       const std::string& field) {
  auto text = json_field(json, fault, field);
  // 64-bit instants and the seed are strings of digits ("1796400053123456789").
  if (text && text->size() >= 2 && text->front() == '"') *text = text->substr(1, text->size() - 2);
  return text && !text->empty() && std::isdigit(static_cast<unsigned char>((*text)[0]))
             ? std::stoull(*text)
             : ~0ull;
}

std::string shm_path(const std::string& session) { return "/dev/shm/faultline." + session; }

class ControlTest : public IntegrationTest {
 protected:
  // Starts loop.py under `faultline run` (or plain LD_PRELOAD when `env` is given).
  void start_loop(const std::vector<std::string>& run_args, Background& program,
                  const Env& env = {}) {
    ASSERT_TRUE(write_file(path("loop.py"), kLoopPy));
    std::vector<std::string> argv;
    if (env.empty()) {
      argv = {cli(), "run"};
      argv.insert(argv.end(), run_args.begin(), run_args.end());
      argv.insert(argv.end(), {"--", kPython, path("loop.py"), dir_.path()});
    } else {
      argv = {kPython, path("loop.py"), dir_.path()};
    }
    RunOptions options;
    options.env = env;
    ASSERT_TRUE(program.start(argv, options));
    ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "ready") << program.err();
  }

  // Sends one command and returns the lines before "done".
  std::vector<std::string> ask(Background& program, const std::string& command) {
    EXPECT_TRUE(program.write_stdin(command + "\n"));
    bool done = false;
    auto lines = program.read_until("done", done);
    EXPECT_TRUE(done) << "no answer to '" << command << "'; stderr:\n" << program.err();
    return lines;
  }

  // "w FILE SIZE N", summarised: the first word of each answer line, e.g. {"ok 16", "err 5"}.
  std::vector<std::string> writes(Background& program, const std::string& file, int size, int n) {
    std::vector<std::string> out;
    for (const auto& line :
         ask(program, "w " + file + " " + std::to_string(size) + " " + std::to_string(n))) {
      std::istringstream words(line);
      std::string verdict, value;
      words >> verdict >> value;
      out.push_back(verdict + " " + value);
    }
    EXPECT_EQ(out.size(), static_cast<std::size_t>(n));
    return out;
  }

  static std::vector<std::string> repeat(const std::string& line, int n) {
    return std::vector<std::string>(static_cast<std::size_t>(n), line);
  }

  void control(const std::vector<std::string>& args) {
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
  }

  std::string status_json(const std::string& name) {
    const RunResult r = faultline({"status", name, "--json"});
    EXPECT_EQ(r.status(), 0) << r.err;
    return r.out;
  }

  void quit(Background& program, int expected_status = 0) {
    program.write_stdin("q\n");
    const RunResult end = program.stop(10s);
    EXPECT_FALSE(end.timed_out);
    EXPECT_EQ(end.status(), expected_status) << end.err;
  }

  // Overwrites bytes of a session's block file in place (what a stray writer would do).
  static bool scribble(const std::string& session, std::size_t offset, const std::string& bytes) {
    const int fd = ::open(shm_path(session).c_str(), O_WRONLY);
    if (fd < 0) return false;
    const bool ok = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
                    static_cast<ssize_t>(bytes.size());
    ::close(fd);
    return ok;
  }

  // A process joining a block it must refuse runs unfaulted and says why once; `status` refuses
  // the block with the same reason and exit status 2.
  void expect_refused(const std::string& name, const std::string& policy, const std::string& why) {
    const std::string tmp = dir_.path();
    RunOptions options;
    options.env = {
        {"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", policy}, {"FAULTLINE_SESSION", name}};
    const std::string file = tmp + "/a.dat";
    const std::vector<std::string> argv{
        "/bin/sh", "-c", "for i in 1 2 3 4 5; do echo x >> " + file + " || exit 9; done"};
    const RunResult r = run(argv, options);
    EXPECT_EQ(r.status(), 0) << describe(argv, r);
    EXPECT_EQ(read_file(file).value_or(""), "x\nx\nx\nx\nx\n") << "the writes were faulted";
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("no faults armed"), std::string::npos) << r.err;
    const RunResult status = run({cli(), "status", name});
    EXPECT_EQ(status.status(), 2) << status.err;
    EXPECT_NE(status.err.find(why), std::string::npos) << status.err;
  }

  static std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 gen(seed);
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(gen() & 0xff);
    return out;
  }
};

// ---- live edits -----------------------------------------------------------------------------

TEST_F(ControlTest, LiveEditsOfTriggerSelectorAndActionKeys) {
  const std::string name = session("edit");
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "f"
calls = ["write"]
path = "*/a.dat"
error = "EIO"
enabled = false
)"));
  Background program;
  start_loop({"-s", name, "-p", path("policy.toml")}, program);
  EXPECT_EQ(writes(program, "a.dat", 16, 3), repeat("ok 16", 3)) << "loaded disabled";
  const auto count = [&](const char* field) { return json_u64(status_json(name), "f", field); };

  // Triggers. Counters are kept across edits: `after` and `times` count from the fault's
  // matched and injected totals.
  control({"set", name, "f", "enabled=true"});
  EXPECT_EQ(writes(program, "a.dat", 16, 2), repeat("err 5", 2)) << "enabled=true";
  control({"set", name, "f", "after=" + std::to_string(count("matched") + 3)});
  EXPECT_EQ(writes(program, "a.dat", 16, 5),
            (std::vector<std::string>{"ok 16", "ok 16", "ok 16", "err 5", "err 5"}))
      << "after";
  control({"set", name, "f", "after=0", "every=2"});
  const bool even = count("matched") % 2 == 0;
  const auto alternate = writes(program, "a.dat", 16, 4);
  EXPECT_EQ(alternate, even ? (std::vector<std::string>{"err 5", "ok 16", "err 5", "ok 16"})
                            : (std::vector<std::string>{"ok 16", "err 5", "ok 16", "err 5"}))
      << "every=2";
  control({"set", name, "f", "every=1", "times=" + std::to_string(count("injected") + 2)});
  EXPECT_EQ(writes(program, "a.dat", 16, 4),
            (std::vector<std::string>{"err 5", "err 5", "ok 16", "ok 16"}))
      << "times";
  control({"set", name, "f", "times=1000000", "probability=0"});
  EXPECT_EQ(writes(program, "a.dat", 16, 10), repeat("ok 16", 10)) << "probability=0";
  control({"set", name, "f", "probability=1", "start_after=1h"});
  EXPECT_EQ(writes(program, "a.dat", 16, 3), repeat("ok 16", 3)) << "start_after=1h";
  control({"set", name, "f", "start_after=0s", "duration=1h"});
  EXPECT_EQ(writes(program, "a.dat", 16, 3), repeat("err 5", 3)) << "duration=1h";

  // Selectors: globs, size ranges, process and thread names, re-validated like a file.
  control({"set", name, "f", "path=*/b.dat"});
  EXPECT_EQ(writes(program, "a.dat", 16, 2), repeat("ok 16", 2)) << "path moved away";
  EXPECT_EQ(writes(program, "b.dat", 16, 2), repeat("err 5", 2)) << "path=*/b.dat";
  control({"set", name, "f", "size=100.."});
  EXPECT_EQ(writes(program, "b.dat", 16, 2), repeat("ok 16", 2)) << "size=100.. (small)";
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("err 5", 2)) << "size=100.. (large)";
  control({"set", name, "f", "process=nomatch*"});
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("ok 200", 2)) << "process=nomatch*";
  control({"set", name, "f", "process=python3*"});
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("err 5", 2)) << "process=python3*";
  control({"set", name, "f", "thread=worker-*"});
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("ok 200", 2)) << "thread=worker-*";
  ask(program, "t worker-1");
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("err 5", 2)) << "thread named worker-1";
  control({"set", name, "f", "thread=", "path="});  // an empty value removes a selector
  EXPECT_EQ(writes(program, "a.dat", 200, 2), repeat("err 5", 2)) << "selectors removed";
  control({"set", name, "f", "path=*/b.dat"});

  // Bad values are refused with the compiler's messages, and change nothing.
  for (const auto& [setting, message] : std::vector<std::pair<std::string, std::string>>{
           {"size=12..4", "bad size range"},
           {"error=EBOGUS", "unknown errno name 'EBOGUS'"},
           {"path=[abc", "unterminated [...] class"},
           {"delay=5 parsecs", "duration"},
           {"tiems=3", "did you mean 'times'"}}) {
    const RunResult r = faultline({"set", name, "f", setting});
    EXPECT_EQ(r.status(), 2) << setting << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << setting << "\n" << r.err;
  }
  EXPECT_EQ(writes(program, "b.dat", 200, 1), repeat("err 5", 1)) << "after refused edits";

  // Actions, each replacing the last.
  control({"set", name, "f", "error=ENOSPC"});
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("err 28", 2)) << "error=ENOSPC";
  control({"set", name, "f", "short=50%"});
  EXPECT_EQ(writes(program, "b.dat", 200, 2), repeat("ok 100", 2)) << "short=50%";
  ask(program, "r b.dat");
  control({"set", name, "f", "corrupt=1"});
  EXPECT_EQ(writes(program, "b.dat", 200, 1), repeat("ok 200", 1)) << "corrupt=1";
  EXPECT_EQ(ask(program, "c b.dat"), std::vector<std::string>{"diff"}) << "corrupt=1";
  control({"set", name, "f", "quota=300"});
  EXPECT_EQ(writes(program, "b.dat", 200, 3),
            (std::vector<std::string>{"ok 200", "ok 100", "err 28"}))
      << "quota=300";
  control({"set", name, "f", "error=EIO", "delay=200ms"});
  const auto slow = ask(program, "w b.dat 200 1");
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_EQ(slow[0].substr(0, 5), "err 5") << "delay + error";
  control({"set", name, "f", "short=1", "delay=150ms"});
  const auto delayed = ask(program, "w b.dat 200 1");
  ASSERT_EQ(delayed.size(), 1u);
  std::istringstream words(delayed[0]);
  std::string verdict;
  int bytes = 0, ms = 0;
  words >> verdict >> bytes >> ms;
  EXPECT_EQ(verdict + " " + std::to_string(bytes), "ok 1") << "short=1";
  // A sleep never ends early: a lower bound only, never an upper one.
  EXPECT_GE(ms, 150) << "delay=150ms: the write returned after " << ms << " ms";

  // The last edit: the program dies at its next write, as a crash would kill it.
  control({"set", name, "f", "crash=SIGKILL"});
  program.write_stdin("w b.dat 200 1\n");
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 128 + SIGKILL) << end.err;
  EXPECT_FALSE(file_exists(shm_path(name))) << "`run` removes its session at exit";
}

// ---- add / remove under four writing threads ----------------------------------------------

TEST_F(ControlTest, AddAndRemoveWhileFourThreadsWrite) {
  const std::string name = session("threads");
  ASSERT_TRUE(write_file(path("threads.py"), kThreadsPy));
  ASSERT_TRUE(write_file(path("eio.toml"), R"([[fault]]
name = "t-eio"
calls = ["@write"]
path = "*/f-*.dat"
error = "EIO"
)"));
  const std::string log = path("events.jsonl");
  // Every injection must be a line here: lift the default [log] max_rate (1000 a second).
  ASSERT_TRUE(write_file(path("unlimited.toml"), "version = 1\n[log]\nmax_rate = 1000000000\n"));
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "-p", path("unlimited.toml"), "--log", log,
                             "--", kPython, path("threads.py"), dir_.path()}));
  ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "ready") << program.err();
  const auto ask_line = [&](const std::string& command) {
    program.write_stdin(command + "\n");
    return program.read_line(30s).value_or("<nothing>");
  };

  EXPECT_EQ(ask_line("go 100"), "ok=400 err=0 errnos=") << "no fault yet";
  control({"add", name, "-p", path("eio.toml")});
  EXPECT_EQ(ask_line("go 100"), "ok=0 err=400 errnos=5") << "added: every thread sees it";
  control({"remove", name, "t-eio"});
  EXPECT_EQ(ask_line("go 100"), "ok=400 err=0 errnos=") << "removed: no thread sees it";

  // Now the edits land while the threads are writing. Each added fault is waited for until
  // it has injected (bounded), so every cycle is seen by the threads.
  EXPECT_EQ(ask_line("spin"), "spinning");
  for (int cycle = 0; cycle < 10; ++cycle) {
    control({"add", name, "-p", path("eio.toml")});
    bool injected = false;
    for (int poll = 0; poll < 500 && !injected; ++poll) {
      const RunResult r = faultline({"status", name, "--json"});
      const std::uint64_t n = json_u64(r.out, "t-eio", "injected");
      injected = n != ~0ull && n > 0;
    }
    EXPECT_TRUE(injected) << "cycle " << cycle << ": the added fault never fired";
    control({"remove", name, "t-eio"});
  }
  const std::string spun = ask_line("stop");
  EXPECT_NE(spun.find("errnos=5"), std::string::npos) << spun << " (only EIO, and some)";
  EXPECT_EQ(spun.find("errnos=5,"), std::string::npos) << spun;
  // Exactly the injections the event log recorded reached the program, no more, no fewer.
  const std::size_t err_at = spun.find("err=");
  ASSERT_NE(err_at, std::string::npos) << spun;
  const std::uint64_t errors = std::stoull(spun.substr(err_at + 4));
  EXPECT_GE(errors, 10u);
  EXPECT_EQ(split_lines(read_file(log).value_or("")).size(), errors + 400)
      << "the first added fault injected 400 times before the spin";

  EXPECT_EQ(ask_line("go 100"), "ok=400 err=0 errnos=") << "after the last remove";
  program.write_stdin("q\n");
  EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "bye");
  const RunResult end = program.stop(10s);
  EXPECT_EQ(end.status(), 0) << end.err;
}

// ---- panic across a process tree ------------------------------------------------------------

TEST_F(ControlTest, PanicReachesThreeProcessesOfATree) {
  const std::string name = session("tree");
  ASSERT_TRUE(write_file(path("tree.py"), kTreePy));
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[[fault]]
name = "tree-eio"
calls = ["write"]
path = "*/tree-*.dat"
error = "EIO"
)"));
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", kPython,
                             path("tree.py"), dir_.path()}));
  const std::string pids_line = program.read_line(15s).value_or("<nothing>");
  ASSERT_EQ(pids_line.rfind("pids ", 0), 0u) << pids_line << program.err();
  std::istringstream pid_words(pids_line.substr(5));
  std::set<std::string> pids;
  for (std::string pid; pid_words >> pid;) pids.insert(pid);
  ASSERT_EQ(pids.size(), 3u) << pids_line;

  // Each answer line is "PID ok=X err=Y", one per process.
  const auto round = [&](const std::string& expect) {
    const auto lines = ask(program, "w 5");
    std::set<std::string> seen;
    for (const auto& line : lines) {
      const std::string pid = line.substr(0, line.find(' '));
      seen.insert(pid);
      EXPECT_EQ(line.substr(line.find(' ') + 1), expect) << "process " << pid;
    }
    EXPECT_EQ(seen, pids);
  };
  round("ok=0 err=5");

  const RunResult sessions = faultline({"sessions"});
  for (const auto& pid : pids)
    EXPECT_NE(sessions.out.find(pid), std::string::npos) << "member " << pid << "\n"
                                                         << sessions.out;

  control({"panic", name});
  round("ok=5 err=0");
  control({"resume", name});
  round("ok=0 err=5");

  program.write_stdin("q\n");
  EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "bye");
  EXPECT_EQ(program.stop(10s).status(), 0);
}

// ---- the dead man's switch -------------------------------------------------------------------

// 3 s: long enough that a loaded machine still starts python3 and fails its first write
// inside the TTL, short enough to keep the test quick.
constexpr const char* kTtlPolicy = R"(version = 1
[safety]
ttl = "3s"
[[fault]]
name = "ttl-eio"
calls = ["write"]
path = "*/ttl.dat"
error = "EIO"
)";

TEST_F(ControlTest, TtlDisarmsAfterTheControllerIsKilled) {
  const std::string name = session("ttlrun");
  ASSERT_TRUE(write_file(path("ttl.py"), kTtlPy));
  ASSERT_TRUE(write_file(path("policy.toml"), kTtlPolicy));
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", kPython,
                             path("ttl.py"), path("ttl.dat")}));
  ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "failing") << program.err();
  // The controller dies without cleaning up: only the block itself can end the faults.
  ASSERT_EQ(kill(program.pid(), SIGKILL), 0);
  EXPECT_EQ(program.read_line(25s).value_or("<nothing>").rfind("recovered after ", 0), 0u)
      << program.err();
  const RunResult status = faultline({"status", name, "--json"});
  EXPECT_NE(status.out.find("\"state\":\"expired\""), std::string::npos) << status.out;
  program.stop(5s);
}

TEST_F(ControlTest, TtlDisarmsAPlainPreloadSessionWithNoControllerAtAll) {
  const std::string name = session("ttlpre");
  ASSERT_TRUE(write_file(path("ttl.py"), kTtlPy));
  ASSERT_TRUE(write_file(path("policy.toml"), kTtlPolicy));
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", name}};
  options.timeout = 30s;
  const RunResult r = run({kPython, path("ttl.py"), path("ttl.dat")}, options);
  EXPECT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(split_lines(r.out).at(0), "failing") << r.out;
  EXPECT_EQ(r.out.find("never"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recovered after "), std::string::npos) << r.out;
}

// ---- the session budget ----------------------------------------------------------------------

TEST_F(ControlTest, MaxFaultsIsExactUnderFourThreads) {
  const std::string name = session("budget");
  ASSERT_TRUE(write_file(path("threads.py"), kThreadsPy));
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
[safety]
max_faults = 100
[[fault]]
name = "odd"
calls = ["write"]
path = "*/f-[13].dat"
error = "EIO"
[[fault]]
name = "even"
calls = ["write"]
path = "*/f-[02].dat"
error = "ENOSPC"
)"));
  Background program;
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "-p", path("policy.toml"), "--", kPython,
                             path("threads.py"), dir_.path()}));
  ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "ready") << program.err();
  program.write_stdin("go 300\n");
  const std::string tally = program.read_line(30s).value_or("<nothing>");
  EXPECT_EQ(tally.substr(0, tally.find(" errnos")), "ok=1100 err=100") << tally;
  const std::string status = status_json(name);
  EXPECT_EQ(json_u64(status, "", "injected_total"), 100u) << status;
  EXPECT_EQ(json_u64(status, "odd", "injected") + json_u64(status, "even", "injected"), 100u)
      << status;
  EXPECT_NE(status.find("\"state\":\"over budget\""), std::string::npos) << status;
  program.write_stdin("q\n");
  EXPECT_EQ(program.stop(10s).status(), 0);
}

// ---- blocks that must not be trusted -------------------------------------------------------

constexpr const char* kEioPolicy = R"(version = 1
[[fault]]
name = "f"
calls = ["write"]
path = "*/a.dat"
error = "EIO"
)";

TEST_F(ControlTest, RandomBytesOverTheFaultSlotsDisarmAndAreExplained) {
  const std::string name = session("scribble");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  const Env env{{"LD_PRELOAD", shim()},
                {"FAULTLINE_POLICY", path("policy.toml")},
                {"FAULTLINE_SESSION", name}};
  Background first;
  start_loop({}, first, env);
  EXPECT_EQ(writes(first, "a.dat", 16, 2), repeat("err 5", 2));

  ASSERT_TRUE(scribble(name, offsetof(faultline::ControlBlock, faults),
                       random_bytes(sizeof(faultline::ControlBlock::faults), 1234)));
  // The running process never trusts what it did not check: unfaulted from its next call.
  EXPECT_EQ(writes(first, "a.dat", 16, 5), repeat("ok 16", 5));

  // A process joining now finds no fault it can trust, says so once, and runs unfaulted.
  Background joiner;
  start_loop({}, joiner, Env{{"LD_PRELOAD", shim()}, {"FAULTLINE_SESSION", name}});
  EXPECT_EQ(writes(joiner, "a.dat", 16, 20), repeat("ok 16", 20));
  ask(joiner, "s a.dat");
  EXPECT_EQ(writes(joiner, "a.dat", 16, 20), repeat("ok 16", 20));
  quit(joiner);
  EXPECT_EQ(count_substr(joiner.err(), "are corrupt and ignored"), 1u) << joiner.err();

  const RunResult status = faultline({"status", name});
  EXPECT_EQ(status.status(), 2) << status.out << status.err;
  EXPECT_NE(status.err.find("fault slot 0 is corrupt"), std::string::npos) << status.err;
  EXPECT_NE(status.err.find("corrupt fault slot(s)"), std::string::npos) << status.err;
  quit(first);
}

TEST_F(ControlTest, ACorruptSlotIsReportedOnceByTheProcessThatMeetsIt) {
  const std::string name = session("badslot");
  ASSERT_TRUE(write_file(path("policy.toml"), std::string(kEioPolicy) + R"(
[[fault]]
name = "g"
calls = ["write"]
path = "*/never.dat"
error = "EIO"
)"));
  Background first;
  start_loop({"-s", name, "-p", path("policy.toml")}, first);
  EXPECT_EQ(writes(first, "a.dat", 16, 2), repeat("err 5", 2));
  // Garbage in the spec of slot 0 only: the slot still says "used, enabled", and no writer has
  // recomputed the armed mask, so every process still takes the armed path.
  const std::size_t spec_at =
      offsetof(faultline::ControlBlock, faults) + offsetof(faultline::FaultSlot, spec_words);
  ASSERT_TRUE(scribble(name, spec_at, random_bytes(sizeof(faultline::FaultSpec), 99)));

  Background joiner;
  start_loop({}, joiner, Env{{"LD_PRELOAD", shim()}, {"FAULTLINE_SESSION", name}});
  EXPECT_EQ(writes(joiner, "a.dat", 16, 30), repeat("ok 16", 30));
  // An edit of the sound fault: every process rebuilds and meets the corrupt slot again.
  control({"set", name, "g", "probability=0.5"});
  EXPECT_EQ(writes(joiner, "a.dat", 16, 30), repeat("ok 16", 30));
  EXPECT_EQ(writes(first, "a.dat", 16, 3), repeat("ok 16", 3));
  quit(joiner);
  quit(first);
  const std::string report = "fault slot(s) of session " + name + " are corrupt and ignored";
  EXPECT_EQ(count_substr(joiner.err(), report), 1u) << joiner.err();
  EXPECT_EQ(count_substr(first.err(), report), 1u) << first.err();
}

TEST_F(ControlTest, StatusExplainsCorruptSlots) {
  const std::string name = session("badstatus");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  Background program;
  start_loop({"-s", name, "-p", path("policy.toml")}, program);
  const std::size_t spec_at =
      offsetof(faultline::ControlBlock, faults) + offsetof(faultline::FaultSlot, spec_words);
  ASSERT_TRUE(scribble(name, spec_at, random_bytes(sizeof(faultline::FaultSpec), 99)));
  const RunResult json = faultline({"status", name, "--json"});
  EXPECT_EQ(json.status(), 2) << json.err;
  EXPECT_NE(json.out.find("\"corrupt\":[{\"slot\":0,\"problem\":"), std::string::npos) << json.out;
  EXPECT_NE(json.err.find("fault slot 0 is corrupt"), std::string::npos) << json.err;
  quit(program);
}

TEST_F(ControlTest, TruncatedBlockIsRefused) {
  const std::string name = session("trunc");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  const int fd = ::open(shm_path(name).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  const std::string junk = random_bytes(100, 7);
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), 100);
  ::close(fd);
  expect_refused(name, path("policy.toml"), "truncated control block (100 bytes)");
}

TEST_F(ControlTest, BlockOfAnotherVersionIsRefused) {
  const std::string name = session("version");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", name}};
  ASSERT_EQ(run({"/bin/true"}, options).status(), 0);  // leaves a named session behind
  ASSERT_TRUE(file_exists(shm_path(name)));
  const std::uint32_t version = 99;
  ASSERT_TRUE(scribble(name, offsetof(faultline::ControlHeader, abi_version),
                       std::string(reinterpret_cast<const char*>(&version), 4)));
  expect_refused(name, path("policy.toml"), "control block ABI version 99");
}

TEST_F(ControlTest, BlockOpenToOthersIsRefused) {
  const std::string name = session("mode");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", name}};
  ASSERT_EQ(run({"/bin/true"}, options).status(), 0);
  ASSERT_EQ(chmod(shm_path(name).c_str(), 0666), 0);
  expect_refused(name, path("policy.toml"), "open to other users (mode 0666");
}

TEST_F(ControlTest, AnotherUsersBlockIsRefused) {
  if (geteuid() != 0 || !file_exists("/usr/bin/setpriv"))
    GTEST_SKIP() << "needs root and setpriv to act as a second user";
  const std::string name = session("owner");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(path("policy.toml").c_str(), 0644), 0);
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", name}};
  // The preload starts after the switch of user: setpriv itself must not create the block.
  const std::vector<std::string> as_nobody{"/usr/bin/setpriv",
                                           "--reuid=65534",
                                           "--regid=65534",
                                           "--clear-groups",
                                           "/usr/bin/env",
                                           "LD_PRELOAD=" + shim(),
                                           "FAULTLINE_POLICY=" + path("policy.toml"),
                                           "FAULTLINE_SESSION=" + name,
                                           "/bin/true"};
  const RunResult made = run(as_nobody);
  ASSERT_EQ(made.status(), 0) << describe(as_nobody, made);
  struct stat st;
  ASSERT_EQ(stat(shm_path(name).c_str(), &st), 0)
      << "nobody's session was not created: " << made.err;
  ASSERT_EQ(st.st_uid, 65534u);
  expect_refused(name, path("policy.toml"), "belongs to uid 65534, not to you (uid 0)");

  // And the other way round: nobody cannot use root's session either.
  const std::string mine = session("mine");
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"FAULTLINE_SESSION", mine}};
  ASSERT_EQ(run({"/bin/true"}, options).status(), 0);
  const RunResult status = run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                "--clear-groups", cli(), "status", mine});
  EXPECT_EQ(status.status(), 2) << status.err;
  EXPECT_NE(status.err.find("belongs to uid 0, not to you (uid 65534)"), std::string::npos)
      << status.err;
}

// ---- sessions ---------------------------------------------------------------------------------

TEST_F(ControlTest, DeadSessionsAreSweptAndReplaced) {
  const std::string name = session("sweep");
  ASSERT_TRUE(write_file(path("once.toml"), R"(version = 1
[[fault]]
name = "once"
calls = ["write"]
path = "*/once.dat"
error = "EIO"
times = 1
)"));
  RunOptions options;
  options.env = {
      {"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", path("once.toml")}, {"FAULTLINE_SESSION", name}};
  const std::vector<std::string> argv{
      "/bin/sh", "-c", "echo x > " + path("once.dat") + " && echo wrote || echo failed"};
  EXPECT_EQ(run(argv, options).out, "failed\n");
  ASSERT_TRUE(file_exists(shm_path(name))) << "a named session outlives its processes";
  // A restart of the program starts a fresh session instead of joining a spent one.
  EXPECT_EQ(run(argv, options).out, "failed\n") << "times = 1 of the dead session was reused";

  // Nothing alive in it, and older than the 2 s grace for a session starting up: swept.
  const std::int64_t long_ago = 0;
  ASSERT_TRUE(scribble(name, offsetof(faultline::ControlHeader, start_real_ns),
                       std::string(reinterpret_cast<const char*>(&long_ago), 8)));
  const RunResult sessions = faultline({"sessions"});
  EXPECT_EQ(sessions.status(), 0);
  EXPECT_EQ(sessions.out.find(name), std::string::npos) << sessions.out;
  EXPECT_FALSE(file_exists(shm_path(name)));
}

TEST_F(ControlTest, RunRemovesItsSessionWhenItIsToldToStop) {
  ASSERT_TRUE(write_file(path("sig.py"), R"PY(
import signal, sys
def stop(sig, frame):
    print("got %d" % sig, flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
sys.stdin.readline()
print("eof", flush=True)
)PY"));
  for (const int sig : {SIGTERM, SIGINT}) {
    const std::string name = session("sig");
    Background program;
    ASSERT_TRUE(program.start({cli(), "run", "-s", name, "--", kPython, path("sig.py")}));
    ASSERT_EQ(program.read_line(15s).value_or("<nothing>"), "ready") << program.err();
    ASSERT_TRUE(file_exists(shm_path(name)));
    ASSERT_EQ(kill(program.pid(), sig), 0);  // to faultline only, which forwards it
    EXPECT_EQ(program.read_line(10s).value_or("<nothing>"), "got " + std::to_string(sig));
    const RunResult end = program.stop(10s);
    EXPECT_EQ(end.status(), 3) << end.err;
    EXPECT_FALSE(file_exists(shm_path(name))) << "signal " << sig;
  }
}

// ---- observability ----------------------------------------------------------------------------

TEST_F(ControlTest, EventsJsonMatchesTheEventLogFieldForField) {
  const std::string name = session("events");
  ASSERT_TRUE(write_file(path("policy.toml"), R"(version = 1
seed = 5
[[fault]]
name = "eio"
calls = ["write"]
path = "*/a.dat"
error = "EIO"
[[fault]]
name = "half"
calls = ["write"]
path = "*/b.dat"
short = "50%"
[[fault]]
name = "slow-sync"
calls = ["fsync"]
delay = "1ms"
[[fault]]
name = "full"
calls = ["write"]
path = "*/c.dat"
quota = "100B"
)"));
  const std::string log = path("events.jsonl");
  Background program;
  start_loop({"-s", name, "-p", path("policy.toml"), "--log", log}, program);
  EXPECT_EQ(writes(program, "a.dat", 16, 3), repeat("err 5", 3));
  EXPECT_EQ(writes(program, "b.dat", 64, 2), repeat("ok 32", 2));
  EXPECT_EQ(ask(program, "s a.dat"), std::vector<std::string>{"ok"});
  EXPECT_EQ(writes(program, "c.dat", 64, 3),
            (std::vector<std::string>{"ok 64", "ok 36", "err 28"}));

  const RunResult events = faultline({"events", name, "--json"});
  ASSERT_EQ(events.status(), 0) << events.err;
  ASSERT_TRUE(write_file(path("ring.jsonl"), events.out));
  ASSERT_TRUE(write_file(path("compare.py"), R"PY(
import json, sys
log = [json.loads(l, object_pairs_hook=list) for l in open(sys.argv[1])]
ring = [json.loads(l, object_pairs_hook=list) for l in open(sys.argv[2])]
if len(log) != len(ring):
    print("count %d in the log, %d from events" % (len(log), len(ring)))
for a, b in zip(log, ring):
    if a != b:
        print("log:    %s\nevents: %s" % (a, b))
print("compared %d" % len(log))
)PY"));
  const RunResult compared = run({kPython, path("compare.py"), log, path("ring.jsonl")});
  EXPECT_EQ(compared.out, "compared 8\n") << compared.out << compared.err;
  // The kinds of line compared: errno, bytes of a short write, a delay, a quota's ENOSPC.
  for (const char* field : {"\"errno\":\"EIO\"", "\"bytes\":32", "\"delay_ns\":1000000",
                            "\"errno\":\"ENOSPC\"", "\"size\":64", "\"process\":\"python3\""})
    EXPECT_NE(events.out.find(field), std::string::npos) << field << "\n" << events.out;
  quit(program);
}

TEST_F(ControlTest, RunSummaryAsJsonForScripts) {
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  const std::string script = "for i in 1 2 3; do echo x >> " + path("a.dat") + "; done; exit 0";
  for (const auto& flags :
       std::vector<std::vector<std::string>>{{"--json"}, {"-q", "--json-summary", "-"}}) {
    std::vector<std::string> args{"run", "--seed", "77", "-p", path("policy.toml")};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"--", "/bin/sh", "-c", script});
    const RunResult r = faultline(args);
    ASSERT_EQ(r.status(), 0) << describe(args, r);
    const auto lines = split_lines(r.err);
    ASSERT_FALSE(lines.empty()) << r.err;
    const std::string json = lines.back();
    EXPECT_EQ(json.front(), '{') << r.err;
    EXPECT_EQ(json_u64(json, "", "seed"), 77u) << json;
    EXPECT_EQ(json_u64(json, "f", "injected"), 3u) << json;
    EXPECT_EQ(json_u64(json, "f", "matched"), 3u) << json;
    EXPECT_GT(json_u64(json, "f", "first_injection_ns"), 0u) << json;
    EXPECT_GE(json_u64(json, "f", "last_injection_ns"), json_u64(json, "f", "first_injection_ns"));
    // Nothing but the JSON on stderr (the shell's own complaints aside).
    EXPECT_EQ(r.err.find("faultline: session"), std::string::npos) << r.err;
    const RunResult valid =
        run({kPython, "-c", "import json,sys; json.loads(sys.argv[1]); print('ok')", json});
    EXPECT_EQ(valid.out, "ok\n") << json << valid.err;
  }
}

TEST_F(ControlTest, ShimDiagnosticsGoToTheDiagFileOncePerCause) {
  ASSERT_TRUE(write_file(path("bad.toml"), "version = 1\n[[fault]]\nname = \"f\"\nerorr = 1\n"));
  const std::string diag = path("diag.log");
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("bad.toml")},
                 {"FAULTLINE_SESSION", session("diag")},
                 {"FAULTLINE_DIAG", diag}};
  const RunResult r = run({"/bin/sh", "-c", "echo hi"}, options);
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_EQ(r.err, "") << "diagnostics belong in FAULTLINE_DIAG";
  const std::string text = read_file(diag).value_or("");
  EXPECT_NE(text.find("bad.toml:4:1:"), std::string::npos) << text;
  EXPECT_NE(text.find("policy refused"), std::string::npos) << text;

  // An event log that cannot be written: one line for 50 injections, on stderr.
  ASSERT_TRUE(write_file(path("log.toml"), R"(version = 1
[log]
path = "/nonexistent-dir/events.jsonl"
[[fault]]
name = "f"
calls = ["write"]
path = "*/a.dat"
error = "EIO"
)"));
  options.env = {{"LD_PRELOAD", shim()},
                 {"FAULTLINE_POLICY", path("log.toml")},
                 {"FAULTLINE_SESSION", session("diaglog")}};
  const std::string loop = "i=0; while [ $i -lt 50 ]; do echo x >> " + path("a.dat") +
                           "; i=$((i+1)); done; echo finished";
  const RunResult flood = run({"/bin/sh", "-c", loop}, options);
  EXPECT_EQ(flood.out, "finished\n") << flood.err;
  EXPECT_EQ(count_substr(flood.err, "cannot open event log /nonexistent-dir/events.jsonl"), 1u)
      << flood.err;
}

// `watch` in a real terminal (tmux): the screen shows the counters move, per fault and per
// process, and the session's state.
TEST_F(ControlTest, WatchShowsTheCountersMovingInATerminal) {
  if (!file_exists("/usr/bin/tmux")) GTEST_SKIP() << "tmux is not installed (scripts/deps.sh)";
  const std::string name = session("watch");
  ASSERT_TRUE(write_file(path("policy.toml"), kEioPolicy));
  Background program;
  start_loop({"-s", name, "-p", path("policy.toml")}, program);
  const std::string socket = path("tmux.sock");
  const std::string tmux_session = "flwatch";
  RunOptions tmux_env;
  tmux_env.env = {{"TERM", "xterm-256color"}};
  const RunResult started = run({"/usr/bin/tmux", "-S", socket, "new-session", "-d", "-s",
                                 tmux_session, "-x", "200", "-y", "50", cli() + " watch " + name},
                                tmux_env);
  ASSERT_EQ(started.status(), 0) << started.err;
  struct Server {
    std::string socket;
    ~Server() { run({"/usr/bin/tmux", "-S", socket, "kill-server"}); }
  } server{socket};

  // Polls the screen (bounded) until `done(screen)`; returns the last screen.
  const auto poll_screen = [&](const std::function<bool(const std::string&)>& done) {
    std::string screen;
    for (int i = 0; i < 100; ++i) {
      screen =
          run({"/usr/bin/tmux", "-S", socket, "capture-pane", "-p", "-t", tmux_session}, tmux_env)
              .out;
      if (done(screen)) break;
      std::this_thread::sleep_for(100ms);
    }
    return screen;
  };
  // The words of the first line starting with `first_word`.
  const auto row = [](const std::string& screen, const std::string& first_word) {
    for (const auto& line : split_lines(screen)) {
      std::istringstream words(line);
      std::vector<std::string> cols;
      for (std::string w; words >> w;) cols.push_back(w);
      if (!cols.empty() && cols[0] == first_word) return cols;
    }
    return std::vector<std::string>();
  };
  // FAULT ON ACTION SEEN MATCHED INJECTED SEEN/s INJ/s LAST: "f yes error=EIO ...".
  const auto fault_injected = [&](const std::string& screen) {
    const auto cols = row(screen, "f");
    return cols.size() > 5 ? cols[5] : std::string("?");
  };

  EXPECT_EQ(writes(program, "a.dat", 16, 5), repeat("err 5", 5));
  std::string screen = poll_screen([&](const std::string& s) {
    return s.find("state armed") != std::string::npos && fault_injected(s) == "5";
  });
  EXPECT_EQ(fault_injected(screen), "5") << screen;
  EXPECT_NE(screen.find("error=EIO"), std::string::npos) << screen;

  EXPECT_EQ(writes(program, "a.dat", 16, 7), repeat("err 5", 7));
  screen = poll_screen([&](const std::string& s) { return fault_injected(s) == "12"; });
  EXPECT_EQ(fault_injected(screen), "12") << "the counters did not move\n" << screen;
  const auto fault = row(screen, "f");
  EXPECT_EQ(fault.size() > 2 ? fault[fault.size() - 1] : "", "ago") << "no last injection\n"
                                                                    << screen;
  // The per-process table: PID PROCESS CALLS INJECTED CALLS/s INJ/s LAST.
  bool python_row = false;
  for (const auto& line : split_lines(screen)) {
    std::istringstream words(line);
    std::vector<std::string> cols;
    for (std::string w; words >> w;) cols.push_back(w);
    python_row |= cols.size() > 3 && cols[1] == "python3" && cols[3] == "12";
  }
  EXPECT_TRUE(python_row) << "no python3 row with 12 injections\n" << screen;

  control({"panic", name});
  screen = poll_screen(
      [](const std::string& s) { return s.find("state panicked") != std::string::npos; });
  EXPECT_NE(screen.find("state panicked"), std::string::npos) << screen;
  quit(program);
}

}  // namespace
}  // namespace fltest
