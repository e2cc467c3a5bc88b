// The pieces of @memory and `limit` that need no preload: the bootstrap arena, the set of
// counted allocations, the per-process quota ledger, the size floor published in the armed
// word, and the engine's decisions for allocations and fd limits.
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "shim/engine/bootstrap_arena.h"
#include "shim/engine/fd_count.h"
#include "shim/engine/mem_ledger.h"
#include "shim/engine/ptr_set.h"
#include "test_session.h"

namespace faultline {
namespace {

using shim::arena_alloc;
using shim::arena_block_size;
using shim::arena_owns;
using testing::TestSession;

// ---- policy ----------------------------------------------------------------------------------

Policy compile(const std::string& toml) {
  CompileResult result = compile_policy_string(toml, "p.toml");
  EXPECT_FALSE(result.error) << result.error->to_string();
  return result.policy.value_or(Policy{});
}

std::string refusal(const std::string& toml) {
  CompileResult result = compile_policy_string(toml, "p.toml");
  EXPECT_TRUE(result.error);
  return result.error ? result.error->to_string() : "";
}

TEST(MemoryPolicy, MemoryFaultsCompile) {
  Policy p = compile(
      "version = 1\n[[fault]]\nname = 'big'\ncalls = ['@memory']\n"
      "size = '10MiB..'\nerror = 'ENOMEM'\n"
      "[[fault]]\nname = 'cap'\ncalls = ['malloc', 'realloc']\nquota = '200MiB'\n");
  ASSERT_EQ(p.faults.size(), 2u);
  EXPECT_EQ(p.faults[0].families, std::uint32_t{kFamMemory});
  EXPECT_EQ(p.faults[0].size_min, 10u << 20);
  EXPECT_EQ(p.faults[0].error, ENOMEM);
  EXPECT_EQ(p.faults[1].actions, std::uint32_t{kActQuota});
  EXPECT_EQ(p.faults[1].quota_bytes, 200u << 20);
  EXPECT_TRUE(p.warnings.empty());
}

TEST(MemoryPolicy, PathDoesNotApplyToAllocations) {
  EXPECT_EQ(refusal("version = 1\n[[fault]]\nname = 'a'\ncalls = ['@memory']\n"
                    "path = '/tmp/*'\nerror = 'ENOMEM'\n"),
            "p.toml:5:1: 'path' does not apply to call 'malloc' (@memory has no file; use size, "
            "process, thread)");
}

TEST(MemoryPolicy, AnErrnoMallocCannotReturnIsAWarning) {
  Policy p = compile("version = 1\n[[fault]]\nname = 'a'\ncalls = ['malloc']\nerror = 'EIO'\n");
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("malloc cannot return EIO"), std::string::npos) << p.warnings[0];
  Policy aligned =
      compile("version = 1\n[[fault]]\nname = 'a'\ncalls = ['posix_memalign']\nerror = 'EINVAL'\n");
  EXPECT_TRUE(aligned.warnings.empty());
}

TEST(LimitPolicy, LimitCompilesAloneOrWithItsErrno) {
  Policy p = compile(
      "version = 1\n[[fault]]\nname = 'fds'\ncalls = ['@open']\nlimit = 64\n"
      "[[fault]]\nname = 'nfile'\ncalls = ['open']\nlimit = 8\nerror = 'ENFILE'\n");
  ASSERT_EQ(p.faults.size(), 2u);
  EXPECT_EQ(p.faults[0].actions, std::uint32_t{kActLimit});
  EXPECT_EQ(p.faults[0].fd_limit, 64u);
  EXPECT_EQ(p.faults[0].families, std::uint32_t{kFamOpen});
  EXPECT_EQ(p.faults[1].actions, std::uint32_t{kActLimit | kActError});
  EXPECT_EQ(p.faults[1].error, ENFILE);
}

TEST(LimitPolicy, BadLimits) {
  EXPECT_EQ(refusal("version = 1\n[[fault]]\nname = 'a'\ncalls = ['@open']\nlimit = -1\n"),
            "p.toml:5:9: 'limit' must be >= 0");
  EXPECT_EQ(refusal("version = 1\n[[fault]]\nname = 'a'\ncalls = ['@open']\nlimit = 4\n"
                    "crash = 'SIGKILL'\n"),
            "p.toml:6:1: fault 'a' has two actions, 'limit' and 'crash' (one per fault; only "
            "'delay' may be added)");
  EXPECT_NE(refusal("version = 1\n[[fault]]\nname = 'a'\ncalls = ['malloc']\nlimit = 4\n")
                .find("action 'limit' is not valid for call 'malloc'"),
            std::string::npos);
}

TEST(LimitPolicy, SetChangesTheLimitLive) {
  Policy p = compile("version = 1\n[[fault]]\nname = 'fds'\ncalls = ['@open']\nlimit = 64\n");
  FaultSpec spec = p.faults.at(0);
  ASSERT_FALSE(apply_fault_setting(spec, "limit", "10"));
  EXPECT_EQ(spec.fd_limit, 10u);
  ASSERT_FALSE(apply_fault_setting(spec, "error", "ENFILE"));
  EXPECT_EQ(spec.actions, std::uint32_t{kActLimit | kActError});
  EXPECT_EQ(spec.fd_limit, 10u);
}

// ---- bootstrap arena -----------------------------------------------------------------------

TEST(BootstrapArena, BlocksAreZeroedAlignedOwnedAndSized) {
  void* a = arena_alloc(24);
  void* b = arena_alloc(100, 64);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 16, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 64, 0u);
  EXPECT_TRUE(arena_owns(a));
  EXPECT_TRUE(arena_owns(b));
  EXPECT_EQ(arena_block_size(a), 24u);
  EXPECT_EQ(arena_block_size(b), 100u);
  // Blocks never overlap and come zero-filled (calloc is served from here).
  EXPECT_GE(static_cast<char*>(b), static_cast<char*>(a) + 24);
  const auto* bytes = static_cast<const unsigned char*>(b);
  EXPECT_TRUE(std::all_of(bytes, bytes + 100, [](unsigned char c) { return c == 0; }));
}

TEST(BootstrapArena, OwnsOnlyItsOwnAddresses) {
  int on_stack = 0;
  void* heap = std::malloc(16);
  EXPECT_FALSE(arena_owns(nullptr));
  EXPECT_FALSE(arena_owns(&on_stack));
  EXPECT_FALSE(arena_owns(heap));
  EXPECT_FALSE(arena_owns(shim::g_arena + shim::kArenaSize));
  EXPECT_TRUE(arena_owns(shim::g_arena));
  std::free(heap);
}

TEST(BootstrapArena, RefusesWhatDoesNotFit) {
  EXPECT_EQ(arena_alloc(shim::kArenaSize + 1), nullptr);
  EXPECT_EQ(arena_alloc(8, 24), nullptr);  // not a power of two
}

TEST(BootstrapArena, ConcurrentAllocationsAreDisjoint) {
  constexpr int kThreads = 4;
  constexpr int kEach = 50;
  std::vector<std::vector<char*>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&got, t] {
      for (int i = 0; i < kEach; ++i)
        if (void* p = arena_alloc(32)) got[t].push_back(static_cast<char*>(p));
    });
  for (auto& t : threads) t.join();
  std::vector<char*> all;
  for (const auto& v : got) all.insert(all.end(), v.begin(), v.end());
  ASSERT_FALSE(all.empty());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_GE(all[i], all[i - 1] + 32);
  // The arena fills up at some point and then says so, instead of overlapping.
  while (arena_alloc(1024)) {
  }
  EXPECT_EQ(arena_alloc(1024), nullptr);
  EXPECT_LE(shim::arena_used(), shim::kArenaSize);
}

// ---- the counted-allocation set ------------------------------------------------------------

class PtrSetTest : public ::testing::Test {
 protected:
  void SetUp() override { shim::ledger_reset(); }
  void TearDown() override { shim::ledger_reset(); }
};

void* fake_ptr(std::uintptr_t i) { return reinterpret_cast<void*>(0x10000 + i * 16); }

TEST_F(PtrSetTest, InsertRemoveAndSlots) {
  EXPECT_FALSE(shim::ptrset_active());
  ASSERT_TRUE(shim::ptrset_insert(fake_ptr(1), 3));
  ASSERT_TRUE(shim::ptrset_insert(fake_ptr(2), 63));
  EXPECT_TRUE(shim::ptrset_active());
  EXPECT_EQ(shim::ptrset_size(), 2u);
  shim::PtrEntry e = shim::ptrset_remove(fake_ptr(2));
  EXPECT_TRUE(e.found);
  EXPECT_EQ(e.slot, 63);
  EXPECT_FALSE(shim::ptrset_remove(fake_ptr(2)).found);  // only once
  EXPECT_FALSE(shim::ptrset_remove(fake_ptr(7)).found);  // never counted
  EXPECT_EQ(shim::ptrset_remove(fake_ptr(1)).slot, 3);
  EXPECT_FALSE(shim::ptrset_active());
}

TEST_F(PtrSetTest, RefusesWhatItCannotEncode) {
  EXPECT_FALSE(shim::ptrset_insert(nullptr, 0));
  EXPECT_FALSE(shim::ptrset_insert(reinterpret_cast<void*>(1ull << 60), 0));
  EXPECT_FALSE(shim::ptrset_insert(fake_ptr(1), 64));
  EXPECT_FALSE(shim::ptrset_active());
}

// Many more entries than the first table holds: the set grows, and every entry is found.
TEST_F(PtrSetTest, GrowsPastTheFirstTable) {
  constexpr std::uintptr_t kCount = 100000;
  for (std::uintptr_t i = 0; i < kCount; ++i)
    ASSERT_TRUE(shim::ptrset_insert(fake_ptr(i), static_cast<int>(i % 64))) << i;
  EXPECT_EQ(shim::ptrset_size(), kCount);
  for (std::uintptr_t i = 0; i < kCount; ++i) {
    shim::PtrEntry e = shim::ptrset_remove(fake_ptr(i));
    ASSERT_TRUE(e.found) << i;
    EXPECT_EQ(e.slot, static_cast<int>(i % 64));
  }
  EXPECT_FALSE(shim::ptrset_active());
}

// Churn (insert, remove, repeat) reuses tombstones: a million operations on a small working
// set fit in the first tables.
TEST_F(PtrSetTest, ChurnDoesNotExhaustTheSet) {
  for (std::uintptr_t round = 0; round < 1000; ++round) {
    for (std::uintptr_t i = 0; i < 1000; ++i)
      ASSERT_TRUE(shim::ptrset_insert(fake_ptr(round * 1000 + i), 1));
    for (std::uintptr_t i = 0; i < 1000; ++i)
      ASSERT_TRUE(shim::ptrset_remove(fake_ptr(round * 1000 + i)).found);
  }
  EXPECT_EQ(shim::ptrset_size(), 0u);
}

TEST_F(PtrSetTest, ConcurrentInsertsAndRemoves) {
  constexpr int kThreads = 4;
  constexpr std::uintptr_t kEach = 20000;
  std::atomic<int> missing{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t, &missing] {
      const std::uintptr_t base = static_cast<std::uintptr_t>(t) * kEach;
      for (std::uintptr_t i = 0; i < kEach; ++i)
        if (!shim::ptrset_insert(fake_ptr(base + i), t)) ++missing;
      for (std::uintptr_t i = 0; i < kEach; i += 2) {
        shim::PtrEntry e = shim::ptrset_remove(fake_ptr(base + i));
        if (!e.found || e.slot != t) ++missing;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(shim::ptrset_size(), kThreads * kEach / 2);
  for (std::uintptr_t i = 1; i < kThreads * kEach; i += 2)
    ASSERT_TRUE(shim::ptrset_remove(fake_ptr(i)).found) << i;
  EXPECT_FALSE(shim::ptrset_active());
}

// ---- the quota ledger (real blocks from the real allocator) -------------------------------

TEST_F(PtrSetTest, LedgerCountsUsableBytesAndGivesThemBack) {
  constexpr std::uint64_t kQuota = 1 << 20;
  void* a = std::malloc(1000);
  ASSERT_TRUE(shim::ledger_reserve(5, kQuota, 1000));
  ASSERT_TRUE(shim::ledger_count(5, a, 1000));
  EXPECT_EQ(shim::ledger_live(5), malloc_usable_size(a));
  // A block allocated before the quota (never counted) changes nothing when freed.
  void* before = std::malloc(64);
  EXPECT_FALSE(shim::ledger_forget(before).found);
  std::free(before);
  // All or nothing: a request that does not fit takes nothing.
  EXPECT_FALSE(shim::ledger_reserve(5, kQuota, kQuota));
  EXPECT_EQ(shim::ledger_live(5), malloc_usable_size(a));
  shim::Forgotten f = shim::ledger_forget(a);
  EXPECT_TRUE(f.found);
  EXPECT_EQ(f.slot, 5);
  EXPECT_EQ(shim::ledger_live(5), 0u);
  // A failed realloc puts the old block back on the books.
  shim::ledger_restore(a, f);
  EXPECT_EQ(shim::ledger_live(5), malloc_usable_size(a));
  EXPECT_TRUE(shim::ledger_forget(a).found);
  std::free(a);
  EXPECT_TRUE(shim::ledger_reserve(5, kQuota, kQuota));
  shim::ledger_unreserve(5, kQuota);
  EXPECT_EQ(shim::ledger_live(5), 0u);
}

// ---- the size floor in the armed word ------------------------------------------------------

std::uint64_t memory_floor(TestSession& s) {
  const std::uint64_t word = s.session().block().header.armed_mask.load();
  EXPECT_TRUE(word & kFamMemory);
  return word >> kMemoryFloorShift;
}

TEST(MemoryFloor, IsTheSmallestSizeOfTheArmedMemoryFaults) {
  TestSession s(
      "version = 1\n"
      "[[fault]]\nname='big'\ncalls=['@memory']\nsize='1MiB..'\nerror='ENOMEM'\n"
      "[[fault]]\nname='mid'\ncalls=['malloc']\nsize='64KiB..'\nerror='ENOMEM'\n"
      "enabled=false\n"
      "[[fault]]\nname='w'\ncalls=['write']\nsize='1..'\nerror='EIO'\n");
  ControlSession& session = s.session();
  EXPECT_EQ(memory_floor(s), 1u << 20);  // the disabled fault and the write fault do not count
  // A live edit re-publishes the floor with the armed bits: smaller allocations now reach
  // the engine without any process having to notice a new generation first.
  session.set_enabled(session.find_fault("mid"), true);
  EXPECT_EQ(memory_floor(s), 64u << 10);
  FaultSpec spec = read_fault_spec(session.block().faults[session.find_fault("big")]);
  ASSERT_FALSE(apply_fault_setting(spec, "size", "\"..100\""));
  session.update_fault(session.find_fault("big"), spec);
  EXPECT_EQ(memory_floor(s), 0u);
  session.set_enabled(session.find_fault("big"), false);
  session.set_enabled(session.find_fault("mid"), false);
  EXPECT_EQ(session.block().header.armed_mask.load(), std::uint64_t{kFamWrite});
}

TEST(MemoryFloor, NoSizeSelectorMeansEveryAllocationAndHugeSizesSaturate) {
  TestSession any("version = 1\n[[fault]]\nname='q'\ncalls=['@memory']\nquota='1MiB'\n");
  EXPECT_EQ(memory_floor(any), 0u);
  TestSession huge(
      "version = 1\n[[fault]]\nname='h'\ncalls=['malloc']\nsize='64GiB..'\n"
      "error='ENOMEM'\n");
  EXPECT_EQ(memory_floor(huge), kMemoryFloorMax);
}

// ---- engine decisions -----------------------------------------------------------------------

bool decide_alloc(std::uint32_t call, std::uint64_t size, shim::Decision& d) {
  shim::Guard guard;
  shim::CallArgs args{call};
  args.size = size;
  args.has_size = true;
  return shim::decide(guard, args, d);
}

TEST(EngineMemory, SizeSelectorPicksLargeAllocations) {
  TestSession s(
      "version = 1\n[[fault]]\nname='big'\ncalls=['@memory']\nsize='10MiB..'\n"
      "error='ENOMEM'\n");
  shim::Decision d;
  EXPECT_FALSE(decide_alloc(kCall_malloc, 4096, d));
  ASSERT_TRUE(decide_alloc(kCall_calloc, 50'000'000, d));
  EXPECT_TRUE(d.inject);
  EXPECT_EQ(d.action, std::uint32_t{kActError});
  EXPECT_EQ(d.error, ENOMEM);
  EXPECT_EQ(s.slot("big").injected.load(), 1u);
}

TEST(EngineMemory, QuotaIsACountNotATrigger) {
  TestSession s("version = 1\n[[fault]]\nname='q'\ncalls=['@memory']\nquota='1MiB'\n");
  shim::Decision d;
  ASSERT_TRUE(decide_alloc(kCall_malloc, 100, d));
  EXPECT_FALSE(d.inject);
  EXPECT_TRUE(d.quota);
  EXPECT_EQ(d.quota_bytes, 1u << 20);
  EXPECT_EQ(s.slot("q").injected.load(), 0u);
}

// ---- limit -----------------------------------------------------------------------------------

TEST(FdLimit, CountsOpenFdsAndWhatACallAdds) {
  const long before = shim::count_open_fds();
  ASSERT_GT(before, 2);  // at least stdin, stdout, stderr
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_EQ(shim::count_open_fds(), before + 2);
  shim::CallArgs args{kCall_pipe};
  EXPECT_EQ(shim::fds_added_by(args), 2);
  shim::CallArgs onto_open{kCall_dup2, fds[0]};
  onto_open.fd2 = fds[1];
  EXPECT_EQ(shim::fds_added_by(onto_open), 0);  // replaces fds[1]
  shim::CallArgs onto_free{kCall_dup2, fds[0]};
  onto_free.fd2 = 900;
  EXPECT_EQ(shim::fds_added_by(onto_free), 1);
  EXPECT_EQ(shim::fds_added_by(shim::CallArgs{kCall_open}), 1);
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(shim::count_open_fds(), before);
}

TEST(FdLimit, FailsOnlyPastTheLimit) {
  TestSession s("version = 1\n[[fault]]\nname='fds'\ncalls=['@open']\nlimit=100000\n");
  // Counted with the session open (it holds the block's fd), then set live to one more.
  const long open_now = shim::count_open_fds();
  ASSERT_GT(open_now, 0);
  ControlSession& session = s.session();
  FaultSpec spec = read_fault_spec(session.block().faults[session.find_fault("fds")]);
  ASSERT_FALSE(apply_fault_setting(spec, "limit", std::to_string(open_now + 1)));
  session.update_fault(session.find_fault("fds"), spec);
  shim::Guard guard;
  shim::Decision d;
  // An open names its path (a NULL one is the kernel's EFAULT, never decided).
  shim::CallArgs open_args{kCall_open};
  open_args.path = "/tmp/fl-limit-test";
  EXPECT_FALSE(shim::decide(guard, open_args, d));                  // one more fits
  ASSERT_TRUE(shim::decide(guard, shim::CallArgs{kCall_pipe}, d));  // two do not
  EXPECT_TRUE(d.inject);
  EXPECT_EQ(d.action, std::uint32_t{kActError});
  EXPECT_EQ(d.error, EMFILE);
  EXPECT_EQ(s.slot("fds").injected.load(), 1u);
}

TEST(FdLimit, NamesItsErrno) {
  TestSession s("version = 1\n[[fault]]\nname='fds'\ncalls=['open']\nlimit=0\nerror='ENFILE'\n");
  shim::Guard guard;
  shim::Decision d;
  shim::CallArgs args{kCall_open};
  args.path = "/tmp/fl-limit-test";
  ASSERT_TRUE(shim::decide(guard, args, d));
  EXPECT_EQ(d.error, ENFILE);
}

}  // namespace
}  // namespace faultline
