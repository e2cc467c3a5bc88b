// Precise targeting with real programs: the `stack` selector in Debian's sqlite3 and python3
// (-O2, no frame pointers, calls across shared libraries) and in a program of ours whose
// static functions only its .symtab names; `log_stack`; the `thread` and `process` selectors
// following the program's own renames; and libunwind staying out of the program's symbols.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "targeting_util.h"

namespace fltest {
namespace {

class StackTest : public TargetingTest {};

// ---- the WAL fsync of the checkpointer --------------------------------------------------------

// Three commits in WAL mode (each syncs the WAL at commit with synchronous=FULL), then an
// explicit checkpoint, which syncs the WAL before copying it into the database.
constexpr const char* kWalScript = R"(PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE t(x);
INSERT INTO t VALUES(1);
INSERT INTO t VALUES(2);
INSERT INTO t VALUES(3);
PRAGMA wal_checkpoint;
SELECT 'rows ' || count(*) FROM t;
)";

std::string wal_policy(const std::string& header, bool with_stack) {
  return header +
         "[[fault]]\nname = \"ckpt-sync\"\ncalls = [\"fsync\", \"fdatasync\"]\n"
         "path = \"*-wal\"\nerror = \"EIO\"\nlog_stack = true\n" +
         (with_stack ? "stack = \"sqlite3WalCheckpoint\"\n" : "");
}

TEST_F(StackTest, SqliteFailsOnlyTheCheckpointersWalSync) {
  RunOptions options;
  options.stdin_text = kWalScript;
  const std::vector<std::string> argv{kSqlite, path("db")};
  const RunResult r = run_under(wal_policy(header(), true), argv, options);
  const std::string why = describe(argv, r) + "\nevents:\n" + events();
  // Every commit went through: only the checkpoint (line 7) failed.
  EXPECT_NE(r.out.find("rows 3"), std::string::npos) << why;
  EXPECT_NE(r.err.find("near line 7: disk I/O error"), std::string::npos) << why;
  EXPECT_EQ(count_substr(r.err, "disk I/O error"), 1u) << why;

  const auto injected = counter("ckpt-sync", "injected");
  const auto matched = counter("ckpt-sync", "matched");
  const auto seen = counter("ckpt-sync", "seen");
  ASSERT_TRUE(injected && matched && seen) << summary_;
  EXPECT_GE(*injected, 1u);
  EXPECT_EQ(*matched, *injected);
  EXPECT_GE(*seen, *matched + 3) << "the commits' WAL syncs were seen and let through";

  const auto lines = log_lines_with(events(), {"\"fault\":\"ckpt-sync\""});
  ASSERT_EQ(lines.size(), *injected) << why;
  for (const auto& line : lines) {
    EXPECT_NE(line.find("\"path\":\"" + path("db") + "-wal\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"sqlite3WalCheckpoint (libsqlite3.so.0)\""), std::string::npos) << line;
  }
}

// The shipped example is the recipe above, and the crash example validates.
TEST_F(StackTest, ShippedExamplesWork) {
  const std::string examples = std::string(FAULTLINE_SOURCE_DIR) + "/examples/";
  for (const char* name : {"sqlite-checkpoint-wal.toml", "crash-before-fsync.toml"}) {
    const RunResult r = faultline({"validate", examples + name});
    EXPECT_EQ(r.status(), 0) << name << ": " << r.err;
  }
  RunOptions options;
  options.stdin_text = kWalScript;
  options.cwd = dir_.path();  // the example logs to faultline-events.jsonl, here
  const RunResult r = faultline(
      {"run", "-p", examples + "sqlite-checkpoint-wal.toml", "--", kSqlite, path("db")}, options);
  EXPECT_NE(r.out.find("rows 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("near line 7: disk I/O error"), std::string::npos) << r.err;
  EXPECT_NE(read_file(path("faultline-events.jsonl")).value_or("").find("sqlite3WalCheckpoint"),
            std::string::npos);
}

// The control: the same fault without `stack` fails the first commit's WAL sync instead.
TEST_F(StackTest, WithoutTheStackSelectorTheFirstCommitFails) {
  RunOptions options;
  options.stdin_text = kWalScript;
  const std::vector<std::string> argv{kSqlite, path("db")};
  const RunResult r = run_under(wal_policy(header(), false), argv, options);
  const std::string why = describe(argv, r);
  EXPECT_NE(r.err.find("near line 3: disk I/O error"), std::string::npos) << why;
}

// ---- fail only inside one library -------------------------------------------------------------

TEST_F(StackTest, PythonWritesFailOnlyInsideLibsqlite3) {
  ASSERT_TRUE(write_file(path("mixed.py"), R"PY(
import os, sqlite3, sys
d = sys.argv[1]
def raw(tag):
    fd = os.open(os.path.join(d, "plain.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, tag.encode() + b"\n")
        print(tag, "ok", flush=True)
    except OSError as e:
        print(tag, "err", e.errno, flush=True)
    os.close(fd)
raw("before")
try:
    con = sqlite3.connect(os.path.join(d, "app.db"))
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    print("sqlite ok", flush=True)
except sqlite3.Error as e:
    print("sqlite error:", e, flush=True)
raw("after")
)PY"));
  const std::vector<std::string> argv{kPython, path("mixed.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"in-sqlite\"\ncalls = [\"@write\"]\n"
                                    "stack = \"libsqlite3.so*\"\nerror = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "before ok\nsqlite error: disk I/O error\nafter ok\n") << why;
  EXPECT_EQ(read_file(path("plain.log")).value_or(""), "before\nafter\n");
  // python's own writes (stdout, plain.log) reached the fault and were let through.
  EXPECT_GT(counter("in-sqlite", "seen").value_or(0), counter("in-sqlite", "matched").value_or(0))
      << summary_;
}

// The same selector on another family: allocations made inside libsqlite3 fail (here the
// first, sqlite3_initialize's, when python imports its sqlite3 module); python's own do not.
TEST_F(StackTest, AllocationsFailOnlyInsideLibsqlite3) {
  ASSERT_TRUE(write_file(path("alloc.py"), R"PY(
blocks = [bytearray(100000) for _ in range(10)]
print("python allocations ok", flush=True)
try:
    import sqlite3
    print("sqlite3 imported", flush=True)
except ImportError as e:
    print("import failed:", e, flush=True)
more = [bytearray(100000) for _ in range(10)]
print("python allocations ok", flush=True)
)PY"));
  const std::vector<std::string> argv{kPython, path("alloc.py")};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"m\"\ncalls = [\"@memory\"]\n"
                                    "stack = \"libsqlite3.so*\"\nerror = \"ENOMEM\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "python allocations ok\nimport failed: out of memory\npython allocations ok\n")
      << why;
  EXPECT_EQ(counter("m", "injected").value_or(0), 1u) << summary_;
}

// ---- our -O2 binary without frame pointers --------------------------------------------------

class StackDemoTest : public StackTest,
                      public ::testing::WithParamInterface<std::pair<const char*, const char*>> {};

// Both records reach write(2) through append_all(); only the stack tells them apart.
TEST_P(StackDemoTest, StaticFunctionsOfAnOptimisedBinary) {
  const auto [glob, expected] = GetParam();
  const std::vector<std::string> argv{FL_STACK_DEMO, dir_.path(), "3"};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"s\"\ncalls = [\"write\"]\n"
                                    "path = \"*.log\"\nerror = \"EIO\"\nstack = \"" +
                                    std::string(glob) + "\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, expected) << why;
}

INSTANTIATE_TEST_SUITE_P(
    Globs, StackDemoTest,
    ::testing::Values(
        // a static function, named from the executable's .symtab and demangled
        std::pair{"*write_journal_record*",
                  "journal 1 err 5\ndata 1 ok\njournal 2 err 5\ndata 2 ok\njournal 3 err 5\n"
                  "data 3 ok\n"},
        std::pair{"(anonymous namespace)::write_data_record(int, int)",
                  "journal 1 ok\ndata 1 err 5\njournal 2 ok\ndata 2 err 5\njournal 3 ok\n"
                  "data 3 err 5\n"},
        // the shared helper is on both stacks; so is the executable itself
        std::pair{"*append_all*",
                  "journal 1 err 5\ndata 1 err 5\njournal 2 err 5\ndata 2 err 5\n"
                  "journal 3 err 5\ndata 3 err 5\n"},
        std::pair{"fl_stack_demo",
                  "journal 1 err 5\ndata 1 err 5\njournal 2 err 5\ndata 2 err 5\n"
                  "journal 3 err 5\ndata 3 err 5\n"},
        // a name on no stack
        std::pair{"*write_index_record*",
                  "journal 1 ok\ndata 1 ok\njournal 2 ok\ndata 2 ok\njournal 3 ok\ndata 3 ok\n"}),
    [](const auto& info) { return "glob" + std::to_string(info.index); });

// ---- libunwind stays private --------------------------------------------------------------

// libunwind is loaded (the stack is unwound), yet none of its symbols is visible to the
// program: its _Unwind_* would otherwise take over C++ exception unwinding, and its weak
// `backtrace` glibc's.
TEST_F(StackTest, LibunwindNeverJoinsTheProgramsSymbols) {
  ASSERT_TRUE(write_file(path("private.py"), R"PY(
import ctypes, os, sys
fd = os.open(os.path.join(sys.argv[1], "x.log"), os.O_WRONLY | os.O_CREAT, 0o644)
try:
    os.write(fd, b"x")
except OSError as e:
    print("write err", e.errno)
loaded = any("libunwind" in line for line in open("/proc/self/maps"))
print("libunwind loaded" if loaded else "libunwind not loaded")
me = ctypes.CDLL(None)
for name in ("unw_backtrace", "_ULx86_64_step", "_U_dyn_register", "__libunwind_Unwind_Backtrace"):
    print(name, "visible" if hasattr(me, name) else "hidden")
)PY"));
  const std::vector<std::string> argv{kPython, path("private.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"s\"\ncalls = [\"write\"]\n"
                                    "path = \"*/x.log\"\nstack = \"_Py_write\"\nerror = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out,
            "write err 5\nlibunwind loaded\nunw_backtrace hidden\n_ULx86_64_step hidden\n"
            "_U_dyn_register hidden\n__libunwind_Unwind_Backtrace hidden\n")
      << why << "\n"
      << summary_;
}

// A stack fault added to a running program (nothing loaded libunwind at its start), its glob
// changed, then removed, with `faultline add` and `set`: each takes effect on the next call.
TEST_F(StackTest, LiveStackFaultsTakeEffectOnTheNextCall) {
  ASSERT_TRUE(write_file(path("live.py"), R"PY(
import os, sys
d = sys.argv[1]
for line in sys.stdin:
    if line.strip() == "q":
        break
    fd = os.open(os.path.join(d, "live.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"x\n")
        result = "ok"
    except OSError as e:
        result = "err %d" % e.errno
    os.close(fd)
    loaded = any("libunwind" in l for l in open("/proc/self/maps"))
    print(result, "loaded" if loaded else "not-loaded", flush=True)
)PY"));
  ASSERT_TRUE(write_file(path("snippet.toml"),
                         "[[fault]]\nname = \"live\"\ncalls = [\"write\"]\n"
                         "path = \"*/live.log\"\nstack = \"_Py_write\"\nerror = \"EIO\"\n"));
  const std::string name = session("livestack");
  Background program;
  ASSERT_TRUE(
      program.start({cli(), "run", "-q", "-s", name, "--", kPython, path("live.py"), dir_.path()}));
  auto step = [&](const std::string& expected) {
    EXPECT_TRUE(program.write_stdin("w\n"));
    EXPECT_EQ(program.read_line(15s).value_or("<nothing>"), expected) << program.err();
  };
  auto control = [&](const std::vector<std::string>& args) {
    const RunResult r = faultline(args);
    EXPECT_EQ(r.status(), 0) << describe(args, r);
  };
  step("ok not-loaded");
  control({"add", name, "-p", path("snippet.toml")});
  step("err 5 loaded");
  control({"set", name, "live", "stack=nothing_like_this"});
  step("ok loaded");
  control({"set", name, "live", "stack="});  // no stack selector: every write to live.log
  step("err 5 loaded");
  EXPECT_TRUE(program.write_stdin("q\n"));
  EXPECT_EQ(program.stop(10s).status(), 0);
}

// ---- selector lists ---------------------------------------------------------------------------

class SelectorListTest : public TargetingTest {};

// `path = ["DIR/*", "!DIR/tmp/*"]`: python3 writes a file in each; only the one outside tmp/
// fails, with the fault's errno. The same single path glob would fail both.
TEST_F(SelectorListTest, PathListSparesTheNegatedDirectory) {
  const std::string data = path("data");
  ASSERT_EQ(mkdir(data.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((data + "/tmp").c_str(), 0755), 0);
  ASSERT_TRUE(write_file(path("writer.py"), R"PY(
import errno, os, sys
for name in sys.argv[1:]:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"data\n")
        print(os.path.basename(name), "ok", flush=True)
    except OSError as e:
        print(os.path.basename(name), errno.errorcode[e.errno], flush=True)
    os.close(fd)
)PY"));
  const RunResult r =
      run_under(header() +
                    "[[fault]]\nname = \"disk\"\ncalls = [\"write\"]\n"
                    "path = [\"" +
                    data + "/*\", \"!" + data + "/tmp/*\"]\nerror = \"ENOSPC\"\n",
                {kPython, path("writer.py"), data + "/db.log", data + "/tmp/scratch"});
  ASSERT_EQ(r.status(), 0) << r.err;
  EXPECT_EQ(r.out, "db.log ENOSPC\nscratch ok\n") << r.err;
  EXPECT_EQ(read_file(data + "/tmp/scratch").value_or(""), "data\n");
  EXPECT_EQ(counter("disk", "injected").value_or(0), 1u) << summary_;
}

// ---- thread and process names ---------------------------------------------------------------

class NameTest : public TargetingTest {};

// Threads name themselves (prctl), are named by another thread (pthread_setname_np), and
// rename themselves again: the selector follows every change.
TEST_F(NameTest, ThreadSelectorFollowsRenames) {
  ASSERT_TRUE(write_file(path("threads.py"), R"PY(
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
d = sys.argv[1]
def write(tag):
    fd = os.open(os.path.join(d, "out-" + tag), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
        r = "ok"
    except OSError as e:
        r = "err %d" % e.errno
    os.close(fd)
    print(tag, r, flush=True)
def name_self(name):
    libc.prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)  # PR_SET_NAME
write("main")
def first():
    name_self("worker-1")
    write("t1-as-worker")
    name_self("idle")
    write("t1-as-idle")
t = threading.Thread(target=first)
t.start()
t.join()
ready, go = threading.Event(), threading.Event()
def second():
    ready.set()
    go.wait()
    write("t2-named-by-main")
t = threading.Thread(target=second)
t.start()
ready.wait()
libc.pthread_setname_np(ctypes.c_ulong(t.ident), b"worker-2")
go.set()
t.join()
write("main-end")
)PY"));
  const std::vector<std::string> argv{kPython, path("threads.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"w\"\ncalls = [\"write\"]\n"
                                    "path = \"*/out-*\"\nthread = \"worker-*\"\n"
                                    "error = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out,
            "main ok\nt1-as-worker err 5\nt1-as-idle ok\nt2-named-by-main err 5\nmain-end ok\n")
      << why;
  EXPECT_EQ(counter("w", "injected").value_or(0), 2u) << summary_;
}

// The program renames itself (prctl on its main thread): `process` matches from then on, and
// event lines carry the new name.
TEST_F(NameTest, ProcessSelectorFollowsTheProgramRenamingItself) {
  ASSERT_TRUE(write_file(path("rename.py"), R"PY(
import ctypes, os, sys
d = sys.argv[1]
def write(tag):
    fd = os.open(os.path.join(d, "out-" + tag), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
        r = "ok"
    except OSError as e:
        r = "err %d" % e.errno
    os.close(fd)
    print(tag, r, flush=True)
write("as-python")
ctypes.CDLL(None).prctl(15, b"renamed-db", 0, 0, 0)
write("as-renamed")
)PY"));
  const std::vector<std::string> argv{kPython, path("rename.py"), dir_.path()};
  const RunResult r = run_under(header() +
                                    "[[fault]]\nname = \"p\"\ncalls = [\"write\"]\n"
                                    "path = \"*/out-*\"\nprocess = \"renamed-*\"\n"
                                    "error = \"EIO\"\n",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "as-python ok\nas-renamed err 5\n") << why;
  EXPECT_EQ(log_lines_with(events(), {"\"process\":\"renamed-db\"", "\"fault\":\"p\""}).size(), 1u)
      << events();
}

}  // namespace
}  // namespace fltest
