// Bounded memory on live edits (docs/reliability.md): a program whose threads make armed calls
// without pause runs under a 64-fault policy while this test makes 2,000 `set` edits through
// the session API (ControlSession::edit_fault, as `faultline set` does), each one making the shim
// compile a new copy of the rules in the program. The program reports its own resident-set growth,
// which must stay under 1 MiB (each copy of 64 faults is ~186 KB: leaked, 2,000 of them would be
// ~370 MB).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "session/session.h"
#include "session_wait.h"

namespace fltest {
namespace {

class HostileEditsTest : public IntegrationTest {};

TEST_F(HostileEditsTest, TwoThousandSetEditsGrowTheProgramByLessThanOneMebibyte) {
  const std::string name = session("edits");
  // 64 write faults that never match (their path is never written), so every write decides.
  std::string policy = "version = 1\n";
  for (int i = 0; i < 64; ++i)
    policy += "[[fault]]\nname = \"f" + std::to_string(i) +
              "\"\ncalls = [\"write\"]\npath = \"/nonexistent/edits-" + std::to_string(i) +
              "\"\nerror = \"EIO\"\nprobability = 0.5\n";
  ASSERT_TRUE(write_file(path("p.toml"), policy));
  // 2,000 in CI; FAULTLINE_EDITS=10000 for the figure in docs/reliability.md.
  const char* edits_env = std::getenv("FAULTLINE_EDITS");
  const long kEdits = edits_env ? std::atol(edits_env) : 2000;

  Background program;
  RunOptions options;
  options.timeout = std::chrono::seconds(300);
  ASSERT_TRUE(program.start({cli(), "run", "-s", name, "-p", path("p.toml"), "--",
                             std::string(FL_PROGRAMS_DIR) + "/fl_edits_rss"},
                            options));
  bool ready = false;
  program.read_until("ready", ready, 30s);
  ASSERT_TRUE(ready) << program.err();
  auto session = attach_when_ready(name);
  ASSERT_NE(session, nullptr);
  const int index = session->find_fault("f0");
  ASSERT_GE(index, 0);

  // Paced (one edit per ~200 us, bounded in time) so that the program's threads see most
  // generations and compile a copy for each, as they would for edits a human makes.
  long edits = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (; edits < kEdits && std::chrono::steady_clock::now() < deadline; ++edits) {
    // What `faultline set f0 probability=...` publishes (one writer-locked edit).
    ASSERT_TRUE(session->edit_fault(
        index, [&](faultline::FaultSpec& spec) { spec.probability = edits % 2 ? 0.5 : 0.25; }));
    std::this_thread::sleep_for(200us);
  }
  ASSERT_TRUE(program.write_stdin("measure\n"));
  const auto line = program.read_line(30s);
  ASSERT_TRUE(line.has_value()) << program.err();
  long rss = 0, heap = 0, writes = 0;
  ASSERT_EQ(std::sscanf(line->c_str(), "rss_growth_kib %ld heap_growth_kib %ld writes %ld", &rss,
                        &heap, &writes),
            3)
      << *line;
  std::printf("%ld edits: program RSS %+ld KiB, heap %+ld KiB, %ld writes\n", edits, rss, heap,
              writes);
  const RunResult r = program.stop(30s);
  EXPECT_EQ(r.status(), 0) << r.out << r.err;
  EXPECT_EQ(edits, kEdits);
  EXPECT_GT(writes, kEdits) << "the program hardly ran: the test proves nothing";
  EXPECT_LE(rss, 1024) << "KiB of resident growth over " << edits << " edits";
  EXPECT_LE(heap, 1024) << "KiB of heap growth over " << edits << " edits";
}

}  // namespace
}  // namespace fltest
