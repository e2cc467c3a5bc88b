// `faultline explore`'s shim side without a preload: `record` faults write each distinct call
// site once, `site` selectors fail exactly the calls made from one site (its k-th occurrence
// with `after`), and the policy keys behind them. Call sites come from frames of a real shared
// library (libfl_stack_helper.so, -O2 without frame pointers): in this test executable the
// engine is linked in, so the executable's own leading frames count as the shim's and are
// dropped, and a site starts in the helper library.
#include "shim/engine/site.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "policy/policy.h"
#include "policy/site_policy.h"
#include "shim/engine/stack.h"
#include "stack_helper.h"
#include "test_session.h"

namespace faultline {
namespace {

using testing::TestSession;

bool fsync_injected() {
  shim::Guard guard;
  shim::CallArgs site{kCall_fsync, -1};
  shim::Decision d;
  return shim::decide(guard, site, d) && d.inject;
}

void probe(void* arg) { *static_cast<bool*>(arg) = fsync_injected(); }

// noinline: the third frame of a site is then the same return address whichever line of a test
// calls these (a deeper site would tell the test's lines apart, as it should).
__attribute__((noinline)) bool via_helper() {
  bool injected = false;
  fl_helper_call(probe, &injected);
  return injected;
}

__attribute__((noinline)) bool via_outer() {
  bool injected = false;
  flhelper::Outer::call_through(probe, &injected);
  return injected;
}

class SiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shim::site_reset_for_tests();
    char dir[] = "/tmp/fl-site-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::remove(record_path().c_str());
    rmdir(dir_.c_str());
  }
  std::string record_path() const { return dir_ + "/sites.tsv"; }
  std::string record_policy(const std::string& extra = "") const {
    return "version = 1\n[[fault]]\nname='rec'\ncalls=['fsync']\nrecord='" + record_path() + "'\n" +
           extra;
  }
  // The record file's lines, split into tab-separated fields.
  std::vector<std::vector<std::string>> records() const {
    std::vector<std::vector<std::string>> out;
    std::ifstream in(record_path());
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> fields;
      std::stringstream ss(line);
      for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
      out.push_back(fields);
    }
    return out;
  }

  std::string dir_;
};

TEST_F(SiteTest, RecordWritesEachDistinctSiteOnceAndNeverInjects) {
  TestSession s(record_policy());
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(via_helper());
    EXPECT_FALSE(via_outer());
  }
  const auto lines = records();
  ASSERT_EQ(lines.size(), 2u) << "two call paths, each recorded once";
  for (const auto& fields : lines) {
    ASSERT_GE(fields.size(), 5u);
    EXPECT_EQ(fields[0], "rec");
    EXPECT_EQ(fields[1], "fsync");
    EXPECT_EQ(fields[2].rfind("libfl_stack_helper.so+0x", 0), 0u) << fields[2];
    EXPECT_EQ(fields[3],
              "(anonymous namespace)::helper_static_frame(void (*)(void*), void*) "
              "(libfl_stack_helper.so)");
    EXPECT_EQ(fields[4], "fl_helper_call (libfl_stack_helper.so)");
  }
  EXPECT_NE(lines[0][2], lines[1][2]);
  EXPECT_EQ(s.slot("rec").injected.load(), 0u);
  EXPECT_EQ(s.slot("rec").matched.load(), 10u);
}

TEST_F(SiteTest, DepthDecidesWhatIsOneSite) {
  // helper_static_frame <- fl_helper_call is common to both paths: two frames are one site.
  TestSession s(record_policy("site_depth = 2\n"));
  via_helper();
  via_outer();
  const auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(std::count(lines[0][2].begin(), lines[0][2].end(), ';'), 1) << lines[0][2];
}

TEST_F(SiteTest, ASiteFailsOnlyCallsFromThere) {
  std::string outer_site;
  {
    TestSession s(record_policy("site_depth = 3\n"));
    via_helper();
    via_outer();
    for (const auto& fields : records())
      if (fields.size() == 6 && fields[5].find("Outer::call_through") != std::string::npos)
        outer_site = fields[2];
  }
  ASSERT_FALSE(outer_site.empty());
  TestSession s("version = 1\n[[fault]]\nname='at'\ncalls=['fsync']\nerror='EIO'\nsite='" +
                outer_site + "'\n");
  EXPECT_FALSE(via_helper());
  EXPECT_FALSE(fsync_injected());
  EXPECT_TRUE(via_outer());
  EXPECT_TRUE(via_outer());
  EXPECT_EQ(s.slot("at").seen.load(), 4u);
  EXPECT_EQ(s.slot("at").matched.load(), 2u);
}

TEST_F(SiteTest, AfterPicksTheKthOccurrenceAndRecordingGoesOn) {
  std::string site;
  {
    TestSession s(record_policy("site_depth = 3\n"));
    via_helper();
    ASSERT_EQ(records().size(), 1u);
    site = records()[0][2];
  }
  std::remove(record_path().c_str());
  shim::site_reset_for_tests();
  // Explore's targeted run: the record fault first (it never injects), then the site's fault.
  TestSession s(record_policy("site_depth = 3\n") +
                "[[fault]]\nname='at'\ncalls=['fsync']\nerror='EIO'\nsite='" + site +
                "'\nafter=2\ntimes=1\n");
  EXPECT_FALSE(via_helper());
  EXPECT_FALSE(via_helper());
  EXPECT_TRUE(via_helper()) << "the third call from the site";
  EXPECT_FALSE(via_helper());
  EXPECT_FALSE(via_outer());
  EXPECT_EQ(records().size(), 2u) << "the record fault saw every call, injected or not";
}

TEST_F(SiteTest, AnOffsetOrObjectThatDiffersDoesNotMatch) {
  std::string site;
  {
    TestSession s(record_policy("site_depth = 1\n"));
    via_helper();
    ASSERT_EQ(records().size(), 1u);
    site = records()[0][2];
  }
  std::string_view object;
  std::uint64_t offset = 0;
  ASSERT_TRUE(parse_site_frame(site, object, offset)) << site;
  char moved[256];
  std::snprintf(moved, sizeof moved, "%.*s+0x%llx", static_cast<int>(object.size()), object.data(),
                static_cast<unsigned long long>(offset + 1));
  for (const std::string& other :
       {std::string(moved), "libother.so+0x" + site.substr(site.find("+0x") + 3)}) {
    SCOPED_TRACE(other);
    TestSession s("version = 1\n[[fault]]\nname='at'\ncalls=['fsync']\nerror='EIO'\nsite='" +
                  other + "'\n");
    EXPECT_FALSE(via_helper());
  }
  TestSession s("version = 1\n[[fault]]\nname='at'\ncalls=['fsync']\nerror='EIO'\nsite='" + site +
                "'\n");
  EXPECT_TRUE(via_helper()) << "the control";
}

TEST_F(SiteTest, ThreadsRecordEachSiteOnce) {
  TestSession s(record_policy("site_depth = 3\n"));
  ASSERT_FALSE(fsync_injected());  // build the rules before the threads race for them
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([] {
      for (int i = 0; i < 100; ++i) {
        via_helper();
        via_outer();
      }
    });
  for (auto& t : threads) t.join();
  // The direct call above, and the two paths through the helper.
  EXPECT_EQ(records().size(), 3u);
  EXPECT_EQ(shim::site_recorded_count(), 3u);
  EXPECT_EQ(s.slot("rec").matched.load(), 801u);
}

TEST_F(SiteTest, AStackThatCannotBeUnwoundMatchesNoSiteAndRecordsNothing) {
  shim::stack_set_backtrace_for_tests([](void**, int) { return 0; });
  {
    TestSession s(record_policy() +
                  "[[fault]]\nname='at'\ncalls=['fsync']\nerror='EIO'\nsite='x+0x1'\n");
    EXPECT_FALSE(via_helper());
  }
  shim::stack_set_backtrace_for_tests(nullptr);
  EXPECT_TRUE(records().empty());
}

// ---- policy keys ------------------------------------------------------------------------------

std::string compile_error(const std::string& fault_keys) {
  CompileResult r = compile_policy_string("version = 1\n[[fault]]\nname='f'\n" + fault_keys, "p");
  return r.error ? r.error->to_string() : "";
}

TEST(SitePolicy, SitesParseAndBadOnesAreRefused) {
  CompileResult ok = compile_policy_string(
      "version = 1\n[[fault]]\nname='f'\ncalls=['malloc']\nerror='ENOMEM'\n"
      "site='libstdc++.so.6+0xa1b2;prog+0x10'\n",
      "p");
  ASSERT_FALSE(ok.error) << ok.error->to_string();
  EXPECT_STREQ(ok.policy->faults[0].site, "libstdc++.so.6+0xa1b2;prog+0x10");
  std::string_view object;
  std::uint64_t offset = 0;
  ASSERT_TRUE(parse_site_frame("libstdc++.so.6+0xa1b2", object, offset));
  EXPECT_EQ(object, "libstdc++.so.6");
  EXPECT_EQ(offset, 0xa1b2u);

  for (const char* bad :
       {"prog", "prog+0x", "+0x10", "prog+0xzz", "prog+0x1;", "a b+0x1", "prog+0x1;;q+0x2"}) {
    SCOPED_TRACE(bad);
    EXPECT_NE(compile_error(std::string("calls=['malloc']\nerror='ENOMEM'\nsite='") + bad + "'\n")
                  .find("in 'site'"),
              std::string::npos);
  }
  std::string deep;
  for (int i = 0; i < 17; ++i) deep += (i ? ";" : "") + std::string("p+0x1");
  EXPECT_NE(compile_error("calls=['malloc']\nerror='ENOMEM'\nsite='" + deep + "'\n")
                .find("more than 16 frames"),
            std::string::npos);
}

TEST(SitePolicy, RecordTakesNoActionAndDepthNeedsRecord) {
  CompileResult ok = compile_policy_string(
      "version = 1\n[[fault]]\nname='f'\ncalls=['@memory','@fsync']\n"
      "record='/tmp/x'\nsite_depth=4\n",
      "p");
  ASSERT_FALSE(ok.error) << ok.error->to_string();
  EXPECT_EQ(ok.policy->faults[0].actions, 0u);
  EXPECT_EQ(ok.policy->faults[0].site_depth, 4u);
  EXPECT_NE(ok.policy->faults[0].families & kFamMemory, 0u) << "recording arms the family";
  EXPECT_NE(
      compile_error("calls=['fsync']\nrecord='/tmp/x'\nerror='EIO'\n").find("takes no action"),
      std::string::npos);
  EXPECT_NE(compile_error("calls=['fsync']\nerror='EIO'\nsite_depth=3\n")
                .find("'site_depth' applies only to 'record'"),
            std::string::npos);
  EXPECT_NE(compile_error("calls=['fsync']\nrecord='/tmp/x'\nsite_depth=17\n").find("1 to 16"),
            std::string::npos);
  EXPECT_EQ(compile_error("calls=['fsync']\n"), "")
      << "without record, no action is the natural error (policy.md)";
  FaultSpec spec = ok.policy->faults[0];
  EXPECT_TRUE(apply_fault_setting(spec, "error", "EIO").has_value()) << "live edits check too";
}

}  // namespace
}  // namespace faultline
