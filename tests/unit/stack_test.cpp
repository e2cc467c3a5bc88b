// Targeting without a preload: the `stack` selector over frames of a real shared library
// (libfl_stack_helper.so, -O2 without frame pointers), the per-address cache, `log_stack`
// event lines, the `thread` selector following renames, the `process` selector following
// the program's own rename, and the policy keys behind them.
#include "shim/engine/stack.h"

#include <cxxabi.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shim/engine/symbols.h"
#include "stack_helper.h"
#include "test_session.h"

namespace faultline {
namespace {

using testing::TestSession;

// decide() for one fsync, as the fsync wrapper would call it.
bool fsync_injected(shim::Decision* out = nullptr) {
  shim::Guard guard;
  shim::CallArgs site{kCall_fsync, -1};
  shim::Decision d;
  const bool injected = shim::decide(guard, site, d) && d.inject;
  if (injected && out) *out = d;
  return injected;
}

struct Probe {
  bool injected = false;
  shim::Decision decision{};
};

void probe_fsync(void* arg) {
  auto* p = static_cast<Probe*>(arg);
  p->injected = fsync_injected(&p->decision);
}

// The same fsync made from inside the helper library (fl_helper_call -> static frame).
bool injected_via_helper() {
  Probe p;
  fl_helper_call(probe_fsync, &p);
  return p.injected;
}

std::string policy_with_stack(const std::string& glob, const std::string& extra = "") {
  return "version = 1\nseed = 1\n" + extra +
         "[[fault]]\nname='s'\ncalls=['fsync']\nerror='EIO'\nstack='" + glob + "'\n";
}

std::vector<std::string> frames_via_helper() {
  struct Out {
    std::vector<std::string> frames;
  } out;
  fl_helper_call(
      [](void* arg) {
        shim::CapturedStack stack;
        if (!shim::capture_stack(stack)) return;
        shim::visit_frames(
            stack,
            [](const shim::FrameInfo& f, void* o) {
              char text[600];
              shim::format_frame(f, text, sizeof text);
              static_cast<Out*>(o)->frames.push_back(text);
            },
            arg);
      },
      &out);
  return out.frames;
}

// ---- capture and naming -------------------------------------------------------------------

// The fallback demangler (a program with no shared C++ runtime) must write what
// __cxa_demangle writes, or the same name without its parameter list: never another name, so a
// `stack` glob written from a dynamically linked build keeps matching (docs/limits.md).
TEST(StackDemangleSimple, AgreesWithCxaDemangleOrStopsBeforeTheParameters) {
  struct Case {
    const char* mangled;
    bool full;  // demangle_simple writes the whole name
  };
  const Case cases[] = {
      {"_Z11plain_writeiPKc", true},
      {"_ZNK7journal6Writer6appendEiPKc", true},
      {"_ZN12_GLOBAL__N_117write_data_recordEii", true},
      {"_ZN5OuterC2Ev", true},
      {"_ZN5OuterD1Ev", true},
      {"_ZN3fooL3barE", false},  // not handled: the mangled name stays
      {"_ZNSt6vectorIiSaIiEE9push_backERKi", false},
      {"_ZN12_GLOBAL__N_110append_allEiRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
       false},
      {"_Z1fPPVKc", false},
      {"_ZN4core3fmt5write17h0123456789abcdefE", true},  // Rust's legacy mangling
      {"_Z3sumdfeb", true},
      {"_ZN2ns5Class6methodEv", true},
      {"_ZNK2ns1C3getERKNS_1DE", false},
      // GCC's clones, as explore names a crash in one
      {"_ZN12_GLOBAL__N_120report_out_of_memoryEPKc.constprop.0", true},
      {"_Z3fooi.isra.0.cold", true},
      {"_Z3foov.cold.12", true},
      {"_ZNK5Outer3getEv.part.0", true},
      {"_ZNSt6vectorIiSaIiEE9push_backERKi.cold", false},
  };
  for (const Case& c : cases) {
    int status = 0;
    char* expected = abi::__cxa_demangle(c.mangled, nullptr, nullptr, &status);
    ASSERT_NE(expected, nullptr) << c.mangled;
    const std::string want = expected;
    std::free(expected);
    char out[512];
    const bool named = shim::demangle_simple(c.mangled, out, sizeof out);
    if (!named) {
      EXPECT_FALSE(c.full) << c.mangled;
      continue;
    }
    if (c.full) {
      EXPECT_EQ(std::string(out), want) << c.mangled;
    } else {
      // The name alone: the demangled text up to its parameter list.
      const std::string got = out;
      EXPECT_EQ(want.compare(0, got.size(), got), 0) << c.mangled << " -> " << got;
      EXPECT_EQ(want[got.size()], '(') << c.mangled << " -> " << got;
    }
  }
  char small[8];
  EXPECT_FALSE(shim::demangle_simple("_ZN7journal6Writer6appendEiPKc", small, sizeof small));
  EXPECT_FALSE(shim::demangle_simple("plain_c_name", small, sizeof small));
  char out[512];
  EXPECT_FALSE(shim::demangle_simple("_Z3foo.cold", out, sizeof out));  // as __cxa_demangle
  EXPECT_FALSE(
      shim::demangle_simple("_ZN4core3fmt5write17h0123456789abcdefE.llvm.1", out, sizeof out));
}

TEST(StackCapture, NamesFramesOfAnotherLibraryWithoutFramePointers) {
  const std::vector<std::string> frames = frames_via_helper();
  ASSERT_GE(frames.size(), 3u) << ::testing::PrintToString(frames);
  // The capture's own frames (and the callback's, in this executable) are dropped: the first
  // frame is the helper's static function, named from the library's .symtab and demangled.
  EXPECT_EQ(frames[0],
            "(anonymous namespace)::helper_static_frame(void (*)(void*), void*) "
            "(libfl_stack_helper.so)")
      << ::testing::PrintToString(frames);
  EXPECT_EQ(frames[1], "fl_helper_call (libfl_stack_helper.so)");
  // ... and the unwind continues through it into this test (unit_tests is not stripped).
  bool saw_test = false;
  for (const std::string& f : frames)
    saw_test |= f.find("NamesFramesOfAnotherLibraryWithoutFramePointers") != std::string::npos;
  EXPECT_TRUE(saw_test) << ::testing::PrintToString(frames);
}

TEST(StackCapture, DeepStacksAreCutAtTheFrameLimit) {
  struct Out {
    int count = 0;
  } out;
  fl_helper_recurse(
      300,
      [](void* arg) {
        shim::CapturedStack stack;
        if (shim::capture_stack(stack)) static_cast<Out*>(arg)->count = stack.count;
      },
      &out);
  EXPECT_EQ(out.count, shim::kMaxStackFrames);
}

TEST(StackCapture, NoUnwinderMeansNoFrames) {
  shim::stack_set_backtrace_for_tests([](void**, int) { return 0; });
  shim::CapturedStack stack;
  EXPECT_FALSE(shim::capture_stack(stack));
  shim::stack_set_backtrace_for_tests(nullptr);
  EXPECT_TRUE(shim::capture_stack(stack));
}

TEST(StackCapture, FrameTextWithoutASymbolIsAnObjectOffset) {
  const char* empty = "";
  shim::FrameInfo f{empty, empty, "/usr/bin/python3.11", "python3.11", 0x1f2e3};
  char text[128];
  shim::format_frame(f, text, sizeof text);
  EXPECT_STREQ(text, "?? (python3.11+0x1f2e3)");
  shim::FrameInfo unknown{empty, empty, empty, empty, 0x7f0000001000};
  shim::format_frame(unknown, text, sizeof text);
  EXPECT_STREQ(text, "?? (0x7f0000001000)");
}

// ---- the selector ---------------------------------------------------------------------------

TEST(StackSelector, MatchesOnlyCallsMadeInsideTheLibrary) {
  TestSession s(policy_with_stack("libfl_stack_helper.so"));
  EXPECT_FALSE(fsync_injected());
  EXPECT_TRUE(injected_via_helper());
  EXPECT_FALSE(fsync_injected());
  EXPECT_EQ(s.slot("s").seen.load(), 3u);
  EXPECT_EQ(s.slot("s").matched.load(), 1u);
  EXPECT_EQ(s.slot("s").injected.load(), 1u);
}

TEST(StackSelector, GlobsMatchFunctionNamesInEveryForm) {
  const char* matching[] = {
      "fl_helper_call",         // exported C name (.dynsym)
      "*helper_static_frame*",  // static function (.symtab), demangled
      "(anonymous namespace)::helper_static_frame(*",
      "_ZN12_GLOBAL__N_119helper_static_frame*",  // the raw (mangled) symbol
      "*/libfl_stack_helper.so",                  // the object's path
      "libfl_stack_*",                            // the object's basename
  };
  for (const char* glob : matching) {
    SCOPED_TRACE(glob);
    TestSession s(policy_with_stack(glob));
    EXPECT_TRUE(injected_via_helper());
    EXPECT_FALSE(fsync_injected()) << "a direct call has no helper frame";
  }
  for (const char* glob : {"fl_helper", "helper_static_frame", "libfl_stack_helper", "x*"}) {
    SCOPED_TRACE(glob);
    TestSession s(policy_with_stack(glob));
    EXPECT_FALSE(injected_via_helper()) << "a glob matches the whole name, not a part";
  }
}

TEST(StackSelector, DemangledCxxFrames) {
  TestSession s(policy_with_stack("flhelper::Outer::call_through*"));
  Probe p;
  flhelper::Outer::call_through(probe_fsync, &p);
  EXPECT_TRUE(p.injected);
  EXPECT_FALSE(injected_via_helper()) << "fl_helper_call alone is not Outer::call_through";
}

TEST(StackSelector, FramesOfTheCallerAboveTheLibraryMatchToo) {
  // Any frame of the stack, not just the innermost: the test function that called the helper.
  TestSession s(policy_with_stack("*StackSelector_FramesOfTheCallerAboveTheLibraryMatchToo*"));
  EXPECT_TRUE(injected_via_helper());
}

std::string policy_with_stack_list(const std::string& list) {
  return "version = 1\nseed = 1\n[[fault]]\nname='s'\ncalls=['fsync']\nerror='EIO'\nstack=" + list +
         "\n";
}

TEST(StackSelector, ListsMatchWhenAFrameHitsAnEntryAndNoFrameANegatedOne) {
  Probe p;
  {
    // Any of the entries, each on its own frame.
    TestSession s(policy_with_stack_list("['no_such_function', 'fl_helper_call']"));
    EXPECT_TRUE(injected_via_helper());
    EXPECT_FALSE(fsync_injected());
  }
  {
    // The positive entry hits fl_helper_call's frame, the negated one an outer frame
    // (Outer::call_through, which calls fl_helper_call): excluded.
    TestSession s(policy_with_stack_list("['fl_helper_call', '!flhelper::Outer::call_through*']"));
    EXPECT_TRUE(injected_via_helper());
    flhelper::Outer::call_through(probe_fsync, &p);
    EXPECT_FALSE(p.injected);
  }
  {
    // Negated entries alone: every stack but those with such a frame.
    TestSession s(policy_with_stack_list("'!libfl_stack_helper.so'"));
    EXPECT_TRUE(fsync_injected());
    EXPECT_FALSE(injected_via_helper());
    flhelper::Outer::call_through(probe_fsync, &p);
    EXPECT_FALSE(p.injected);
  }
  {
    // A frame hit by both a positive and a negated entry is excluded.
    TestSession s(policy_with_stack_list("['fl_helper_call', '!fl_helper_*']"));
    EXPECT_FALSE(injected_via_helper());
  }
}

TEST(StackSelector, AStackThatCannotBeUnwoundDoesNotMatch) {
  TestSession s(policy_with_stack("libfl_stack_helper.so"));
  shim::stack_set_backtrace_for_tests([](void**, int) { return 0; });
  EXPECT_FALSE(injected_via_helper());
  shim::stack_set_backtrace_for_tests(nullptr);
  EXPECT_TRUE(injected_via_helper());
  EXPECT_EQ(s.slot("s").matched.load(), 1u);
}

TEST(StackSelector, IsCheckedAfterTheCheaperSelectors) {
  // Each call below is made from a return address of this test that was never named before:
  // naming it is the proof that the stack was unwound.
  {
    // A thread glob that never matches: the stack is never unwound.
    TestSession s(policy_with_stack("*") + "thread='no-such-thread'\n");
    const std::uint64_t before = shim::stack_symbolised_count();
    fl_helper_call([](void*) { fsync_injected(); }, nullptr);
    EXPECT_EQ(shim::stack_symbolised_count(), before);
  }
  {
    TestSession s(policy_with_stack("*"));
    const std::uint64_t before = shim::stack_symbolised_count();
    fl_helper_call([](void*) { fsync_injected(); }, nullptr);
    EXPECT_GT(shim::stack_symbolised_count(), before) << "the control: this one unwinds";
  }
}

TEST(StackSelector, AHotCallSiteIsNamedOnce) {
  TestSession s(policy_with_stack("libfl_stack_helper.so"));
  std::uint64_t named = 0;
  for (int i = 0; i < 1001; ++i) {  // one call site: the first call names its frames
    ASSERT_TRUE(injected_via_helper());
    if (i == 0) named = shim::stack_symbolised_count();
  }
  EXPECT_EQ(shim::stack_symbolised_count(), named) << "a cached address was symbolised again";
  EXPECT_EQ(s.slot("s").injected.load(), 1001u);
}

TEST(StackSelector, CachedMatchesFollowANewPolicy) {
  // Same call sites, a new rules epoch: the cached bits of the old one must not answer.
  {
    TestSession s(policy_with_stack("fl_helper_call"));
    EXPECT_TRUE(injected_via_helper());
  }
  {
    TestSession s(policy_with_stack("something_else"));
    EXPECT_FALSE(injected_via_helper());
  }
  {
    TestSession s(policy_with_stack("fl_helper_call"));
    ASSERT_TRUE(s.session().edit_fault(s.session().find_fault("s"), [](FaultSpec& spec) {
      std::snprintf(spec.stack, sizeof spec.stack, "%s", "nothing*");
    }));
    EXPECT_FALSE(injected_via_helper()) << "a live edit of the glob must be seen";
  }
}

TEST(StackSelector, ThreadsShareTheCacheAndCountExactly) {
  TestSession s(policy_with_stack("*helper_static_frame*"));
  // Build this session's rules first: threads that race the rebuild decide with the previous
  // rules meanwhile, by design (engine.cpp, current_rules).
  ASSERT_FALSE(fsync_injected());
  constexpr int kThreads = 4, kCalls = 200;
  std::atomic<int> injected{0}, direct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        if (injected_via_helper()) injected.fetch_add(1);
        if (fsync_injected()) direct.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(injected.load(), kThreads * kCalls);
  EXPECT_EQ(direct.load(), 0);
  EXPECT_EQ(s.slot("s").matched.load(), static_cast<std::uint64_t>(kThreads * kCalls));
}

// ---- log_stack ------------------------------------------------------------------------------

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void emit_fsync(void*) {
  shim::Decision d;
  if (fsync_injected(&d)) shim::emit_event(d, shim::CallArgs{kCall_fsync, -1}, -1);
}

TEST(LogStack, EventLinesCarryTheSymbolisedStack) {
  char dir[] = "/tmp/fl-stack-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string log = std::string(dir) + "/events.jsonl";
  TestSession s("version = 1\nseed = 3\n[log]\npath = '" + log +
                "'\n[[fault]]\nname='l'\ncalls=['fsync']\nerror='EIO'\nlog_stack=true\n"
                "[[fault]]\nname='quiet'\ncalls=['fdatasync']\nerror='EIO'\n");
  fl_helper_call(emit_fsync, nullptr);
  const std::string line = read_all(log);
  std::remove(log.c_str());
  rmdir(dir);
  ASSERT_FALSE(line.empty());
  EXPECT_NE(line.find("\"stack\":[\"(anonymous namespace)::helper_static_frame(void (*)(void*), "
                      "void*) (libfl_stack_helper.so)\",\"fl_helper_call "
                      "(libfl_stack_helper.so)\","),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("],\"seed\":\"3\"}\n"), std::string::npos) << line;
}

TEST(LogStack, ADeepStackKeepsTheLineBoundedAndValid) {
  char dir[] = "/tmp/fl-stack-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string log = std::string(dir) + "/events.jsonl";
  TestSession s("version = 1\nseed = 3\n[log]\npath = '" + log +
                "'\n[[fault]]\nname='l'\ncalls=['fsync']\nerror='EIO'\nlog_stack=true\n");
  fl_helper_recurse(500, emit_fsync, nullptr);
  const std::string line = read_all(log);
  std::remove(log.c_str());
  rmdir(dir);
  ASSERT_FALSE(line.empty());
  EXPECT_LT(line.size(), 8192u);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.rfind("}\n"), line.size() - 2);
  // At most 32 frames: 32 quoted strings in the array.
  const std::size_t open = line.find("\"stack\":[");
  const std::size_t close = line.find(']', open);
  ASSERT_NE(open, std::string::npos);
  ASSERT_NE(close, std::string::npos);
  std::size_t quotes = 0;
  for (std::size_t i = open + 9; i < close; ++i) quotes += line[i] == '"';
  EXPECT_EQ(quotes, 2u * 32);
}

TEST(LogStack, OffByDefault) {
  char dir[] = "/tmp/fl-stack-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string log = std::string(dir) + "/events.jsonl";
  TestSession s("version = 1\n[log]\npath = '" + log +
                "'\n[[fault]]\nname='l'\ncalls=['fsync']\nerror='EIO'\n");
  fl_helper_call(emit_fsync, nullptr);
  const std::string line = read_all(log);
  std::remove(log.c_str());
  rmdir(dir);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.find("\"stack\""), std::string::npos) << line;
}

// ---- thread and process names ---------------------------------------------------------------

TEST(ThreadSelector, FollowsRenamesOfTheCallingThread) {
  TestSession s(
      "version = 1\n[[fault]]\nname='t'\ncalls=['fsync']\nerror='EIO'\n"
      "thread='worker-*'\n");
  std::vector<bool> results;
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "idle");
    results.push_back(fsync_injected());
    pthread_setname_np(pthread_self(), "worker-7");
    results.push_back(fsync_injected());
    prctl(PR_SET_NAME, "resting", 0, 0, 0);
    results.push_back(fsync_injected());
  });
  worker.join();
  EXPECT_EQ(results, (std::vector<bool>{false, true, false}));
  EXPECT_FALSE(fsync_injected()) << "the main thread is not a worker";
}

TEST(ThreadSelector, ListsExcludeNegatedNames) {
  TestSession s(
      "version = 1\n[[fault]]\nname='t'\ncalls=['fsync']\nerror='EIO'\n"
      "thread=['worker-*', '!worker-0']\n");
  std::vector<bool> results;
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "worker-7");
    results.push_back(fsync_injected());
    pthread_setname_np(pthread_self(), "worker-0");
    results.push_back(fsync_injected());
    pthread_setname_np(pthread_self(), "idle");
    results.push_back(fsync_injected());
  });
  worker.join();
  EXPECT_EQ(results, (std::vector<bool>{true, false, false}));
}

TEST(ProcessSelector, ANegatedNameAloneMatchesEveryOtherProcess) {
  char original[17] = {};
  prctl(PR_GET_NAME, original, 0, 0, 0);
  TestSession s(
      "version = 1\n[[fault]]\nname='p'\ncalls=['fsync']\nerror='EIO'\n"
      "process=['!renamed-proc', '!other-proc']\n");
  EXPECT_TRUE(fsync_injected());
  prctl(PR_SET_NAME, "renamed-proc", 0, 0, 0);
  shim::engine_process_renamed();
  EXPECT_FALSE(fsync_injected());
  prctl(PR_SET_NAME, original, 0, 0, 0);
  shim::engine_process_renamed();
  EXPECT_TRUE(fsync_injected());
}

TEST(ProcessSelector, FollowsTheProgramRenamingItself) {
  char original[17] = {};
  prctl(PR_GET_NAME, original, 0, 0, 0);
  TestSession s(
      "version = 1\n[[fault]]\nname='p'\ncalls=['fsync']\nerror='EIO'\n"
      "process='renamed-proc'\n");
  EXPECT_FALSE(fsync_injected());
  prctl(PR_SET_NAME, "renamed-proc", 0, 0, 0);  // this test runs on the main thread
  shim::engine_process_renamed();  // what the shim's prctl wrapper does after the real call
  EXPECT_TRUE(fsync_injected());
  EXPECT_STREQ(shim::engine_process_name(), "renamed-proc");
  prctl(PR_SET_NAME, original, 0, 0, 0);
  shim::engine_process_renamed();
  EXPECT_FALSE(fsync_injected());
  EXPECT_STREQ(shim::engine_process_name(), original);
}

// ---- the policy keys ------------------------------------------------------------------------

TEST(TargetingPolicy, StackAndLogStackCompile) {
  CompileResult r = compile_policy_string(
      "version = 1\n[[fault]]\nname='a'\ncalls=['@write']\nerror='EIO'\n"
      "stack='libsqlite3.so*'\nlog_stack=true\n",
      "p.toml");
  ASSERT_FALSE(r.error) << r.error->to_string();
  EXPECT_STREQ(r.policy->faults[0].stack, "libsqlite3.so*");
  EXPECT_EQ(r.policy->faults[0].log_stack, 1);
  // log_stack alone, no stack selector: every matching call, stack logged.
  r = compile_policy_string(
      "version = 1\n[[fault]]\nname='a'\ncalls=['fsync']\nerror='EIO'\nlog_stack=false\n", "p");
  ASSERT_FALSE(r.error) << r.error->to_string();
  EXPECT_STREQ(r.policy->faults[0].stack, "");
  EXPECT_EQ(r.policy->faults[0].log_stack, 0);
}

TEST(TargetingPolicy, BadValuesAreRefusedWithTheirPosition) {
  struct Bad {
    const char* key_value;
    int column;
    const char* message;
  } bad[] = {
      {"stack = ''", 9, "'stack' must not be empty (leave it out to match everything)"},
      {"stack = 'a[b'", 9, "bad glob 'a[b': unterminated [...] class"},
      {"stack = 3", 9, "'stack' must be a glob or a list of them"},
      {"log_stack = 'yes'", 13, "'log_stack' must be true or false"},
      {"stak = 'x'", 1, "unknown key 'stak' (did you mean 'stack'?)"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.key_value);
    CompileResult r = compile_policy_string(
        std::string("version = 1\n[[fault]]\nname='a'\ncalls=['fsync']\nerror='EIO'\n") +
            b.key_value + "\n",
        "p.toml");
    ASSERT_TRUE(r.error);
    EXPECT_EQ(r.error->line, 6);
    EXPECT_EQ(r.error->column, b.column);
    EXPECT_NE(r.error->message.find(b.message), std::string::npos) << r.error->message;
  }
  std::string long_glob(256, 'x');
  CompileResult r = compile_policy_string(
      "version = 1\n[[fault]]\nname='a'\ncalls=['fsync']\nerror='EIO'\nstack='" + long_glob + "'\n",
      "p.toml");
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message.find("'stack' is too long (at most 255 characters)"),
            std::string::npos);
}

TEST(TargetingPolicy, LiveSetChangesTheStackGlob) {
  CompileResult r = compile_policy_string(
      "version = 1\n[[fault]]\nname='a'\ncalls=['fsync']\nerror='EIO'\n", "p.toml");
  ASSERT_FALSE(r.error);
  FaultSpec spec = r.policy->faults[0];
  EXPECT_FALSE(apply_fault_setting(spec, "stack", "sqlite3Wal*"));
  EXPECT_STREQ(spec.stack, "sqlite3Wal*");
  EXPECT_FALSE(apply_fault_setting(spec, "log_stack", "true"));
  EXPECT_EQ(spec.log_stack, 1);
  EXPECT_TRUE(apply_fault_setting(spec, "stack", "'a[b'"));
  EXPECT_STREQ(spec.stack, "sqlite3Wal*") << "a refused value changes nothing";
  EXPECT_FALSE(apply_fault_setting(spec, "stack", ""));  // `set f stack=` removes it
  EXPECT_STREQ(spec.stack, "");
}

}  // namespace
}  // namespace faultline
