// Signal handlers and the shim (docs/reliability.md, "Signal handlers and stack" and "The
// shim's own output"): a handler's write(2) is an armed call like any other, so what the shim
// does for it must fit on a small sigaltstack and must not allocate; and nothing the shim says
// may land in a file the program opened on fd 0-2.
#include <gtest/gtest.h>

#include <iostream>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileSignalTest : public IntegrationTest {
 protected:
  static std::string program(const char* name) {
    return std::string(FL_PROGRAMS_DIR) + "/fl_" + name;
  }
  // A fault on data.log's writes whose events are logged (and shown on stderr).
  std::string policy_with_log(const std::string& log_path, bool to_stderr = true) {
    const std::string policy = path("policy.toml");
    EXPECT_TRUE(write_file(policy, "version = 1\n[log]\npath = \"" + log_path +
                                       "\"\nstderr = " + (to_stderr ? "true" : "false") +
                                       "\n[[fault]]\nname = \"data-eio\"\ncalls = [\"write\"]\n"
                                       "path = \"*/data.log\"\nerror = \"EIO\"\n"));
    return policy;
  }
  static long used_stack(const std::string& out) {
    std::smatch m;
    static const std::regex used(R"(used (\d+))");
    return std::regex_search(out, m, used) ? std::stol(m[1].str()) : -1;
  }
};

// The handler's stack high-water mark natively and under an armed, logged, matching fault:
// the shim may add at most 1 KiB (a path, a decision, an event line all live off the stack).
TEST_F(HostileSignalTest, AnArmedLoggedFaultAddsAtMostOneKibOfStackInAHandler) {
  const std::string prog = program("altstack_write");
  // A roomy alternate stack, so that both runs survive to report what they used.
  const std::vector<std::string> args{prog, "65536", path("data.log")};
  const RunResult native = run(args);
  ASSERT_EQ(native.status(), 0) << describe(args, native);
  const long native_used = used_stack(native.out);
  ASSERT_GT(native_used, 0) << native.out;
  EXPECT_NE(native.out.find("data 1 ok"), std::string::npos) << native.out;

  std::vector<std::string> under{"run", "-p", policy_with_log(path("events.jsonl")), "--"};
  under.insert(under.end(), args.begin(), args.end());
  const RunResult faulted = faultline(under);
  ASSERT_EQ(faulted.status(), 0) << describe(under, faulted);
  // The fault really ran in the handler: the program saw EIO and the event was logged.
  EXPECT_NE(faulted.out.find("data -1 Input/output error"), std::string::npos) << faulted.out;
  EXPECT_NE(faulted.out.find("null 1 ok"), std::string::npos) << faulted.out;
  const auto log = read_file(path("events.jsonl"));
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("\"fault\":\"data-eio\""), std::string::npos) << *log;
  const long faulted_used = used_stack(faulted.out);
  ASSERT_GT(faulted_used, 0) << faulted.out;
  std::cout << "handler stack: native " << native_used << " bytes, under faultline " << faulted_used
            << " bytes (+" << faulted_used - native_used << ")\n";
  EXPECT_LE(faulted_used - native_used, 1024)
      << "native " << native_used << ", under faultline " << faulted_used;
}

// On an alternate stack that is enough natively (8 KiB, with the kernel's signal frame), the
// same handler must not overflow under faultline.
TEST_F(HostileSignalTest, ASmallSigaltstackDoesNotOverflow) {
  const std::string prog = program("altstack_write");
  const std::vector<std::string> args{prog, "8192", path("data.log")};
  const RunResult native = run(args);
  ASSERT_EQ(native.status(), 0) << describe(args, native);
  std::vector<std::string> under{"run", "-p", policy_with_log(path("events.jsonl")), "--"};
  under.insert(under.end(), args.begin(), args.end());
  const RunResult faulted = faultline(under);
  EXPECT_EQ(faulted.status(), 0) << describe(under, faulted);
  EXPECT_EQ(faulted.signal, 0) << describe(under, faulted);
  EXPECT_NE(faulted.out.find("data -1 Input/output error"), std::string::npos) << faulted.out;
}

// A SIGALRM handler writes into a faulted, logged file thousands of times while the main
// thread only mallocs and frees: the event path must not allocate (the heap would be
// corrupted, or malloc would deadlock on its own lock and the run time out).
TEST_F(HostileSignalTest, EventsFromAHandlerDoNotTouchTheHeap) {
  const std::string prog = program("signal_malloc");
  // A long log path: a short one would fit in std::string's inline buffer and not allocate.
  const std::string log = path("a-rather-long-directory-name-for-the-event-log.jsonl");
  std::vector<std::string> under{
      "run", "-p", policy_with_log(log, false), "--", prog, path("data.log"), "3000000"};
  RunOptions options;
  options.timeout = 60s;
  const RunResult r = faultline(under, options);
  ASSERT_FALSE(r.timed_out) << "deadlocked (malloc re-entered from the handler?)\n"
                            << describe(under, r);
  ASSERT_EQ(r.status(), 0) << describe(under, r);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(ok (\d+) signals)"))) << r.out;
  EXPECT_GT(std::stol(m[1].str()), 10) << "too few signals to mean anything: " << r.out;
  const auto events = read_file(log);
  ASSERT_TRUE(events.has_value());
  EXPECT_NE(events->find("\"fault\":\"data-eio\""), std::string::npos);
}

// A daemon that closed 0-2 and opened its database as 0, 1 and 2: the shim's diagnostic (the
// event log cannot be opened) and its `[log] stderr` line must not land in the database.
TEST_F(HostileSignalTest, TheShimNeverWritesIntoAFileThatReplacedStderr) {
  const std::string prog = program("reuse_stdio");
  const std::string db = path("database");
  const std::vector<std::string> under{
      "run",           "-p", policy_with_log(path("no-such-dir/events.jsonl")), "--", prog, db,
      path("data.log")};
  const RunResult r = faultline(under);
  ASSERT_EQ(r.status(), 0) << describe(under, r);
  const auto content = read_file(db);
  ASSERT_TRUE(content.has_value());
  EXPECT_EQ(*content, "record 0\nrecord 1\nrecord 2\nrecord 3\n");
  // The fault did inject (the summary counts it): the shim had something to say.
  EXPECT_EQ(summary_injected(r.err, "data-eio"), std::optional<std::uint64_t>{1}) << r.err;
}

// The same daemon with FAULTLINE_DIAG set: the diagnostic goes to that file instead.
TEST_F(HostileSignalTest, DiagnosticsGoToFaultlineDiagWhenStderrWasReplaced) {
  const std::string prog = program("reuse_stdio");
  const std::string db = path("database");
  const std::vector<std::string> under{"run",
                                       "-p",
                                       policy_with_log(path("no-such-dir/events.jsonl"), false),
                                       "--",
                                       prog,
                                       db,
                                       path("data.log")};
  RunOptions options;
  options.env = {{"FAULTLINE_DIAG", path("diag.log")}};
  const RunResult r = faultline(under, options);
  ASSERT_EQ(r.status(), 0) << describe(under, r);
  EXPECT_EQ(read_file(db).value_or(""), "record 0\nrecord 1\nrecord 2\nrecord 3\n");
  EXPECT_NE(read_file(path("diag.log")).value_or("").find("cannot open event log"),
            std::string::npos);
}

}  // namespace
}  // namespace fltest
