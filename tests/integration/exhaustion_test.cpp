// Resource exhaustion in real programs: allocations that fail (python3, sqlite3, a C++ program
// of ours, python3 on jemalloc), a memory quota, running out of file descriptors, and a disk
// that fills up across a process tree (python3 + dd) or under a server (redis-server's AOF).
// Every verdict is what the program itself reported, plus what it left on disk.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kSqlite = "/usr/bin/sqlite3";
constexpr const char* kJemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
constexpr const char* kRedisServer = "/usr/bin/redis-server";
constexpr const char* kRedisCli = "/usr/bin/redis-cli";

class ExhaustionTest : public IntegrationTest {
 protected:
  RunResult run_under(const std::string& policy_text, const std::vector<std::string>& argv,
                      RunOptions options = {}) {
    EXPECT_TRUE(write_file(path("policy.toml"), policy_text));
    std::vector<std::string> args{"run", "-p", path("policy.toml"), "--"};
    args.insert(args.end(), argv.begin(), argv.end());
    return faultline(args, options);
  }
};

// ---- @memory: a size selector ------------------------------------------------------------

// One big allocation fails; the small ones around it (the interpreter's own, and 1000 small
// bytearrays afterwards) keep working, and the interpreter exits normally.
constexpr const char* kBigAllocPy = R"PY(
try:
    big = bytearray(50_000_000)
    print("big: allocated")
except MemoryError:
    print("big: MemoryError")
small = [bytearray(1000) for _ in range(1000)]
print("small: %d" % len(small))
)PY";

constexpr const char* kBigAllocPolicy = R"(version = 1
[[fault]]
name = "big"
calls = ["@memory"]
size = "10MiB.."
error = "ENOMEM"
)";

TEST_F(ExhaustionTest, PythonBigAllocationFailsSmallOnesWork) {
  ASSERT_TRUE(write_file(path("big.py"), kBigAllocPy));
  const std::vector<std::string> argv{kPython, path("big.py")};
  const RunResult r = run_under(kBigAllocPolicy, argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "big: MemoryError\nsmall: 1000\n") << why;
  EXPECT_EQ(summary_injected(r.err, "big").value_or(0), 1u) << why;
  // The same script without the fault allocates: the failure above was ours.
  const RunResult plain = run(argv);
  EXPECT_EQ(plain.out, "big: allocated\nsmall: 1000\n") << describe(argv, plain);
}

// ---- @memory: quota -----------------------------------------------------------------------

// Grows a list of 1 MiB bytearrays until MemoryError, reports how many it got, frees them all
// and allocates 10 MiB again (which works only if freed blocks were given back to the quota).
constexpr const char* kGrowPy = R"PY(
chunks = []
try:
    while len(chunks) < 4096:
        chunks.append(bytearray(1 << 20))
    print("grew to the end")
except MemoryError:
    print("MemoryError at %d MiB" % len(chunks))
del chunks
again = bytearray(10 << 20)
print("after free: %d MiB" % (len(again) >> 20))
)PY";

TEST_F(ExhaustionTest, PythonQuotaStopsGrowthNearTheLimit) {
  ASSERT_TRUE(write_file(path("grow.py"), kGrowPy));
  const std::vector<std::string> argv{kPython, path("grow.py")};
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "cap"
calls = ["@memory"]
quota = "200MiB"
)",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << why;
  int mib = -1;
  ASSERT_EQ(std::sscanf(lines[0].c_str(), "MemoryError at %d MiB", &mib), 1) << why;
  // The band: the quota counts every live block the interpreter mallocs, its own start-up heap
  // included (about 3 MiB on python 3.11, well under 16), each chunk a little over 1 MiB of
  // usable size. So the list stops at most at 200 chunks and at least at 200 - 16.
  EXPECT_LE(mib, 200) << why;
  EXPECT_GE(mib, 184) << why;
  EXPECT_EQ(lines[1], "after free: 10 MiB") << why;
  EXPECT_GE(summary_injected(r.err, "cap").value_or(0), 1u) << why;
}

// ---- @memory: sqlite3 out of memory -------------------------------------------------------

TEST_F(ExhaustionTest, SqliteReportsOutOfMemoryAndKeepsTheDatabase) {
  const std::string db = path("db.sqlite");
  const RunResult setup =
      run({kSqlite, db,
           "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
           "INSERT INTO t(v) SELECT hex(randomblob(100)) FROM (WITH RECURSIVE c(x) AS "
           "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c);"});
  ASSERT_EQ(setup.status(), 0) << setup.err;
  // Every allocation after the first 400 fails: sqlite3 has opened the database by then and
  // is inside the INSERT, which needs thousands.
  const std::vector<std::string> argv{
      kSqlite, db,
      "INSERT INTO t(v) SELECT hex(randomblob(200)) FROM (WITH RECURSIVE c(x) AS "
      "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c);"
      "SELECT 'inserted';"};
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "oom"
calls = ["malloc", "calloc", "realloc"]
error = "ENOMEM"
after = 400
)",
                                argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.signal, 0) << "sqlite3 crashed\n" << why;
  EXPECT_NE(r.status(), 0) << why;
  EXPECT_NE(r.err.find("out of memory"), std::string::npos) << why;
  EXPECT_EQ(r.err.find("unable to open"), std::string::npos) << "failed too early\n" << why;
  EXPECT_EQ(r.out.find("inserted"), std::string::npos) << why;
  EXPECT_GE(summary_injected(r.err, "oom").value_or(0), 1u) << why;
  // Without faults: intact, and the failed statement left nothing behind.
  const RunResult check = run({kSqlite, db, "PRAGMA integrity_check; SELECT count(*) FROM t;"});
  EXPECT_EQ(check.status(), 0) << check.err;
  EXPECT_EQ(check.out, "ok\n100\n") << check.err;
}

// ---- @memory: C++ std::bad_alloc ----------------------------------------------------------

constexpr const char* kCppOomLines =
    "new: bad_alloc ok\n"
    "nothrow: nullptr ok\n"
    "vector: bad_alloc at 4194304 elements, intact ok\n"  // 16 MiB of ints; doubling needs 32
    "realloc: NULL, old block intact ok\n"
    "memalign: ENOMEM ok, errno untouched ok, out untouched ok\n"
    "small: 10000 strings ok\n";

constexpr const char* kCppOomPolicy = R"(version = 1
[[fault]]
name = "big"
calls = ["@memory"]
size = "32MiB.."
error = "ENOMEM"
)";

TEST_F(ExhaustionTest, CppProgramCatchesBadAlloc) {
  const std::vector<std::string> argv{BAD_ALLOC_PROGRAM};
  const RunResult r = run_under(kCppOomPolicy, argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, kCppOomLines) << why;
  EXPECT_EQ(summary_injected(r.err, "big").value_or(0), 5u) << why;
  const RunResult plain = run(argv);
  EXPECT_EQ(plain.out.find("bad_alloc"), std::string::npos) << describe(argv, plain);
}

// ---- @memory on jemalloc --------------------------------------------------------------------

// The program runs on jemalloc (preloaded after the shim): the shim's real allocator is
// jemalloc, found with dlsym(RTLD_NEXT), so every block goes back to the allocator that made
// it. Mixing them (a glibc block freed into jemalloc) would crash; jemalloc's own statistics,
// printed at exit, prove it served the program.
TEST_F(ExhaustionTest, JemallocProgramsKeepOneAllocator) {
  ASSERT_TRUE(file_exists(kJemalloc)) << "libjemalloc2 missing (scripts/deps.sh)";
  ASSERT_TRUE(write_file(path("big.py"), kBigAllocPy));
  ASSERT_TRUE(write_file(path("policy.toml"), kBigAllocPolicy));
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim() + ":" + kJemalloc},
                 {"FAULTLINE_POLICY", path("policy.toml")},
                 {"MALLOC_CONF", "stats_print:true"}};
  const std::vector<std::string> py{kPython, path("big.py")};
  const RunResult r = run(py, options);
  const std::string why = describe(py, r);
  EXPECT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "big: MemoryError\nsmall: 1000\n") << why;
  EXPECT_NE(r.err.find("Begin jemalloc statistics"), std::string::npos) << why;

  // jemalloc defines operator new/delete itself (built with C++ support), so on jemalloc
  // `new` never reaches malloc and is not faulted (docs/limits.md); the C allocator is, and
  // the program keeps working on one allocator throughout.
  ASSERT_TRUE(write_file(path("policy.toml"), kCppOomPolicy));
  const std::vector<std::string> cpp{BAD_ALLOC_PROGRAM};
  const RunResult c = run(cpp, options);
  EXPECT_EQ(c.status(), 0) << describe(cpp, c);
  EXPECT_EQ(c.out,
            "new: allocated\n"
            "nothrow: allocated\n"
            "vector: grew to the end\n"
            "realloc: NULL, old block intact ok\n"
            "memalign: ENOMEM ok, errno untouched ok, out untouched ok\n"
            "small: 10000 strings ok\n")
      << describe(cpp, c);
  EXPECT_NE(c.err.find("Begin jemalloc statistics"), std::string::npos) << describe(cpp, c);
}

// ---- @open: limit ----------------------------------------------------------------------------

constexpr const char* kOpenLoopPy = R"PY(
import os
start = len(os.listdir("/proc/self/fd")) - 1  # listdir's own fd is listed too
files = []
try:
    while len(files) < 1000:
        files.append(open("/dev/null"))
    print("opened all")
except OSError as e:
    print("errno %d after %d opens, %d open at start" % (e.errno, len(files), start))
for f in files:
    f.close()
f = open("/dev/null")
print("after closing: ok")
)PY";

TEST_F(ExhaustionTest, PythonRunsOutOfFdsAtTheLimit) {
  ASSERT_TRUE(write_file(path("fds.py"), kOpenLoopPy));
  const std::vector<std::string> argv{kPython, path("fds.py")};
  const RunResult r = run_under(R"(version = 1
[[fault]]
name = "fds"
calls = ["@open"]
limit = 64
)",
                                argv);
  const std::string why = describe(argv, r);
  ASSERT_EQ(r.status(), 0) << why;
  const auto lines = split_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << why;
  int err = 0, opened = 0, start = 0;
  ASSERT_EQ(std::sscanf(lines[0].c_str(), "errno %d after %d opens, %d open at start", &err,
                        &opened, &start),
            3)
      << why;
  EXPECT_EQ(err, EMFILE) << why;
  EXPECT_EQ(start + opened, 64) << "the 65th fd must fail, not another\n" << why;
  EXPECT_EQ(lines[1], "after closing: ok") << why;
  EXPECT_EQ(summary_injected(r.err, "fds").value_or(0), 1u) << why;
}

// ---- @write: one quota for a process tree --------------------------------------------------

// python3 writes 512 KiB to a.bin, then runs dd (a child process, another program) to write
// 2 MiB to b.bin, then tries 64 KiB more itself. Under a 1 MiB quota on out/* shared by the
// session, dd gets the other 512 KiB and then the disk is full for both.
constexpr const char* kTreePy = R"PY(
import os, subprocess, sys
out = sys.argv[1]
with open(os.path.join(out, "a.bin"), "wb", buffering=0) as f:
    for _ in range(8):
        f.write(b"a" * 65536)
print("a: 524288", flush=True)
dd = subprocess.run(["/usr/bin/dd", "if=/dev/zero", "of=" + os.path.join(out, "b.bin"),
                     "bs=64K", "count=32"], capture_output=True, text=True)
print("dd: exit %d" % dd.returncode, flush=True)
sys.stderr.write(dd.stderr)
fd = os.open(os.path.join(out, "a.bin"), os.O_WRONLY | os.O_APPEND)
try:
    os.write(fd, b"a" * 65536)
    print("a again: written")
except OSError as e:
    print("a again: errno %d" % e.errno)
)PY";

class SharedWriteQuotaTest : public ExhaustionTest,
                             public ::testing::WithParamInterface<const char*> {};

TEST_P(SharedWriteQuotaTest, ProcessTreeFillsOneDisk) {
  const std::string err_name = GetParam();
  const bool edquot = err_name == "EDQUOT";
  ASSERT_EQ(run({"/bin/mkdir", path("out")}).status(), 0);
  ASSERT_TRUE(write_file(path("tree.py"), kTreePy));
  std::string policy = "version = 1\n[[fault]]\nname = \"disk\"\ncalls = [\"@write\"]\npath = \"" +
                       path("out") + "/*\"\nquota = \"1MiB\"\n";
  if (edquot) policy += "error = \"EDQUOT\"\n";
  const std::vector<std::string> argv{kPython, path("tree.py"), path("out")};
  const RunResult r = run_under(policy, argv);
  const std::string why = describe(argv, r);
  EXPECT_EQ(r.status(), 0) << why;
  EXPECT_EQ(r.out, "a: 524288\ndd: exit 1\na again: errno " +
                       std::to_string(edquot ? EDQUOT : ENOSPC) + "\n")
      << why;
  EXPECT_NE(r.err.find(edquot ? "Disk quota exceeded" : "No space left on device"),
            std::string::npos)
      << why;
  EXPECT_EQ(file_size(path("out/a.bin")).value_or(0), 512u * 1024) << why;
  EXPECT_EQ(file_size(path("out/b.bin")).value_or(0), 512u * 1024) << why;
}

INSTANTIATE_TEST_SUITE_P(Errors, SharedWriteQuotaTest, ::testing::Values("ENOSPC", "EDQUOT"),
                         [](const auto& info) { return std::string(info.param); });

// ---- redis-server: a full disk under its append-only file ----------------------------------

class RedisTest : public ExhaustionTest {
 protected:
  RunResult redis_cli(const std::vector<std::string>& args, RunOptions options = {}) {
    std::vector<std::string> argv{kRedisCli, "-h", "127.0.0.1", "-p", std::to_string(port_)};
    argv.insert(argv.end(), args.begin(), args.end());
    options.timeout = std::chrono::seconds(10);
    return run(argv, options);
  }
  // `n` SETs of 1 KiB values through one client; returns the reply lines.
  std::vector<std::string> set_many(int first, int n) {
    RunOptions options;
    std::string commands;
    const std::string value(1024, 'v');
    for (int i = first; i < first + n; ++i)
      commands += "SET key:" + std::to_string(i) + " " + value + "\n";
    options.stdin_text = commands;
    const RunResult r = redis_cli({}, options);
    EXPECT_EQ(r.status(), 0) << r.err;
    return split_lines(r.out);
  }
  int port_ = -1;
};

TEST_F(RedisTest, AofWriteErrorsReachClientsAndHealWhenLifted) {
  ASSERT_TRUE(file_exists(kRedisServer)) << "redis-server missing (scripts/deps.sh)";
  port_ = free_port();
  ASSERT_GT(port_, 0);
  const std::string name = session("redis");
  ASSERT_TRUE(write_file(path("policy.toml"),
                         "version = 1\n[[fault]]\nname = \"aof-full\"\ncalls = [\"@write\"]\n"
                         "path = \"" +
                             path("appendonlydir") + "/*\"\nquota = \"64KiB\"\n"));
  Background server;
  ASSERT_TRUE(server.start({cli(),
                            "run",
                            "-q",
                            "-s",
                            name,
                            "-p",
                            path("policy.toml"),
                            "--",
                            kRedisServer,
                            "--port",
                            std::to_string(port_),
                            "--bind",
                            "127.0.0.1",
                            "--dir",
                            dir_.path(),
                            "--appendonly",
                            "yes",
                            "--appendfsync",
                            "everysec",
                            "--save",
                            "",
                            "--daemonize",
                            "no",
                            "--logfile",
                            path("redis.log")}));
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {  // at most 10 s
    up = redis_cli({"PING"}).out == "PONG\n";
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << "redis-server did not answer\n" << server.err();

  // 200 KiB of writes into a 64 KiB disk: the first SETs succeed, then redis refuses writes
  // and says why, instead of acknowledging data it could not persist.
  const auto replies = set_many(0, 200);
  int ok = 0, misconf = 0;
  for (const auto& line : replies) {
    if (line == "OK") ++ok;
    if (line.find("MISCONF") != std::string::npos && line.find("AOF") != std::string::npos &&
        line.find("No space left on device") != std::string::npos)
      ++misconf;
  }
  EXPECT_GT(ok, 0) << ::testing::PrintToString(replies);
  EXPECT_LT(ok, 200) << "every write was acknowledged";
  EXPECT_GT(misconf, 0) << ::testing::PrintToString(replies);
  EXPECT_EQ(ok + misconf, 200) << ::testing::PrintToString(replies);

  // Lift the fault live: redis retries its AOF write on its own and accepts writes again.
  const RunResult disable = faultline({"disable", name, "aof-full"});
  ASSERT_EQ(disable.status(), 0) << disable.err;
  bool healed = false;
  for (int i = 0; i < 100 && !healed; ++i) {  // at most 10 s; redis retries once a second
    healed = redis_cli({"SET", "after", "lifted"}).out == "OK\n";
    if (!healed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(healed) << read_file(path("redis.log")).value_or("");
  EXPECT_EQ(redis_cli({"GET", "after"}).out, "lifted\n");
  redis_cli({"SHUTDOWN", "NOSAVE"});
  const RunResult end = server.stop();
  EXPECT_FALSE(end.timed_out);
}

}  // namespace
}  // namespace fltest
