// What the shim brings into every target (docs/performance.md, "Start-up"): libc and the dynamic
// linker alone in its DT_NEEDED list (no libstdc++, libm or libgcc_s), and a dynamic symbol table
// that exports only the interposed libc names and faultline's own marker, so a C++ program's own
// libstdc++ never binds to the shim's private copy. And such a program, throwing and catching
// through its own libstdc++, runs under the shim unchanged, with a fault armed on its file writes;
// a C program, which has no unwinder loaded, survives an exception thrown and caught inside the
// shim (the shim's unwinder calls are forwarded to libgcc_s.so.1, loaded then:
// shim/unwind_forward.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace fltest {
namespace {

class HostileShimElfTest : public IntegrationTest {
 protected:
  // Output of a shell command (the tools are binutils', always there where we build).
  static std::string command_output(const std::string& command) {
    std::string out;
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char buf[4096];
      std::size_t n;
      while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
      pclose(pipe);
    }
    return out;
  }
};

// libgcc_s is not needed: shim/unwind_forward.cpp forwards libsupc++'s _Unwind_* calls to the
// libgcc_s.so.1 that glibc loads for a cancellation (HostileWaitsTest) or that the shim loads
// for its own first exception (below). Start-up without it is about 0.14 ms shorter.
TEST_F(HostileShimElfTest, NeedsOnlyLibcAndTheDynamicLinker) {
  const std::string dynamic = command_output("readelf -d '" + shim() + "'");
  ASSERT_NE(dynamic.find("(NEEDED)"), std::string::npos) << dynamic;
  std::set<std::string> needed;
  std::istringstream lines(dynamic);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("(NEEDED)") == std::string::npos) continue;
    const auto open = line.find('['), close = line.find(']');
    if (open != std::string::npos && close != std::string::npos)
      needed.insert(line.substr(open + 1, close - open - 1));
  }
  EXPECT_EQ(needed, (std::set<std::string>{"libc.so.6", "ld-linux-x86-64.so.2"})) << dynamic;
}

// No unwinder and no demangler inside the shim: their code would be a second copy of what
// libgcc_s.so.1 and the program's libstdc++ have (shim/unwind_forward.cpp, terminate_handler.cpp).
TEST_F(HostileShimElfTest, CarriesNoUnwinderAndNoDemangler) {
  const std::string symbols = command_output("nm '" + shim() + "'");
  if (symbols.find(" T ") == std::string::npos && symbols.find(" t ") == std::string::npos)
    GTEST_SKIP() << "the shim has no symbol table (stripped)";
  for (const char* name :
       {" uw_frame_state_for", " _Unwind_Find_FDE", " __cxa_demangle", " d_print_comp",
        " __gnu_cxx::__verbose_terminate_handler", " _ZN9__gnu_cxx27__verbose_terminate_handlerEv"})
    EXPECT_EQ(symbols.find(name), std::string::npos) << "the shim contains" << name;
}

// A C program has no libgcc_s loaded. A policy with a syntax error makes toml++ throw inside
// the shim's constructor: the throw, the unwinding and the catch must work there (the shim loads
// libgcc_s.so.1 for it), the error is reported and the program runs with nothing armed.
TEST_F(HostileShimElfTest, ExceptionInsideTheShimOfACProgram) {
  const std::string policy = path("broken.toml");
  ASSERT_TRUE(write_file(policy, "version = 1\n[[fault]\nname = \"x\"\n"));
  const std::vector<std::string> argv{"/bin/echo", "still here"};
  RunOptions options;
  options.env = {{"LD_PRELOAD", shim()}, {"FAULTLINE_POLICY", policy}};
  const RunResult r = run(argv, options);
  EXPECT_EQ(r.status(), 0) << describe(argv) << "\n" << r.err;
  EXPECT_EQ(r.out, "still here\n") << r.err;
  EXPECT_NE(r.err.find("policy refused"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

TEST_F(HostileShimElfTest, ExportsOnlyTheInterposedCallsAndItsMarker) {
  std::set<std::string> allowed{"faultline_shim_instance"};
  // Every row of the call table, the tracked calls (fd bookkeeping) included.
#define FL_CALL(fam, name, ...) allowed.insert(#name);
#include "calls/calls.def"
  // Defined dynamic symbols only: what another object could bind to.
  const std::string symbols =
      command_output("nm -D --defined-only --format=posix '" + shim() + "'");
  ASSERT_FALSE(symbols.empty());
  std::istringstream lines(symbols);
  int exported = 0;
  for (std::string line; std::getline(lines, line);) {
    std::string name = line.substr(0, line.find(' '));
    name = name.substr(0, name.find('@'));  // a version suffix, if any
    ++exported;
    EXPECT_TRUE(allowed.count(name)) << "the shim exports " << name;
    EXPECT_NE(name.rfind("_Z", 0), 0u) << "a C++ symbol leaks: " << name;
  }
  EXPECT_GT(exported, 50);
}

TEST_F(HostileShimElfTest, CxxProgramWithItsOwnLibstdcxxThrowsAndCatches) {
  const std::string policy = path("policy.toml");
  // Armed on the program's writes, never matching: the ofstream write takes the armed path.
  ASSERT_TRUE(write_file(policy,
                         "version = 1\n[[fault]]\nname = \"elsewhere\"\n"
                         "calls = [\"@write\"]\npath = \"/nonexistent/*\"\n"
                         "error = \"EIO\"\n"));
  const std::vector<std::string> args{
      "run",          "-p", policy, "--", std::string(FL_PROGRAMS_DIR) + "/fl_cxx_exceptions",
      path("out.txt")};
  const RunResult r = faultline(args);
  EXPECT_EQ(r.status(), 0) << describe(args, r);
  EXPECT_NE(r.out.find("caught 4\nok\n"), std::string::npos) << describe(args, r);
  EXPECT_EQ(read_file(path("out.txt")).value_or(""), "line\n");
}

}  // namespace
}  // namespace fltest
