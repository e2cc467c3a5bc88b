// The engine's triggers and selectors, driven directly (no preload): which call indices
// get injected for after/every/times/probability, and that a seed replays exactly.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "shim/engine/draw.h"
#include "shim/engine/fault_facts.h"
#include "shim/engine/fd_table.h"
#include "shim/engine/safe_copy.h"
#include "shim/engine/wait.h"
#include "test_session.h"

namespace faultline {
namespace {

using testing::TestSession;

std::vector<int> injected_indices(int calls, std::uint32_t call = kCall_fsync, int fd = -1) {
  std::vector<int> out;
  shim::Guard guard;
  for (int i = 0; i < calls; ++i) {
    shim::CallArgs args{call, fd};
    shim::Decision d;
    if (shim::decide(guard, args, d) && d.inject) out.push_back(i);
  }
  return out;
}

const char* kHeader = "version = 1\nseed = 42\n";

TEST(EngineTriggers, AfterEveryTimes) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nafter=2\nevery=3\ntimes=3\n");
  EXPECT_EQ(injected_indices(20), (std::vector<int>{2, 5, 8}));
  EXPECT_EQ(s.slot("f").seen.load(), 20u);
  EXPECT_EQ(s.slot("f").matched.load(), 20u);
  EXPECT_EQ(s.slot("f").injected.load(), 3u);
}

TEST(EngineTriggers, CallsOutsideTheFaultAreNotSeen) {
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  EXPECT_TRUE(injected_indices(5, kCall_fdatasync).empty());
  EXPECT_EQ(s.slot("f").seen.load(), 0u);
}

TEST(EngineTriggers, ProbabilityIsReproducibleBySeed) {
  const std::string policy =
      "version = 1\nseed = 7\n[[fault]]\nname='p'\ncalls=['fsync']\nerror='EIO'\n"
      "probability=0.3\n";
  std::vector<int> first, second;
  {
    TestSession s(policy);
    first = injected_indices(1000);
  }
  {
    TestSession s(policy);
    second = injected_indices(1000);
  }
  EXPECT_EQ(first, second);
  // 0.3 of 1000 within a generous binomial band (sd ~ 14.5).
  EXPECT_GT(first.size(), 240u);
  EXPECT_LT(first.size(), 360u);
}

TEST(EngineTriggers, DifferentSeedsGiveDifferentInjections) {
  auto run = [](int seed) {
    TestSession s("version = 1\nseed = " + std::to_string(seed) +
                  "\n[[fault]]\nname='p'\ncalls=['fsync']\nerror='EIO'\nprobability=0.5\n");
    return injected_indices(200);
  };
  EXPECT_NE(run(1), run(2));
}

TEST(EngineTriggers, DisabledFaultDoesNothingUntilEnabled) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nenabled=false\n");
  EXPECT_TRUE(injected_indices(3).empty());
  s.session().set_enabled(s.session().find_fault("f"), true);
  EXPECT_EQ(injected_indices(3).size(), 3u);
}

TEST(EngineTriggers, StartAfterWindowHoldsBackInjections) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nstart_after='1h'\n");
  EXPECT_TRUE(injected_indices(5).empty());
  EXPECT_EQ(s.slot("f").matched.load(), 5u);
}

// The ends of the time window (docs/policy.md, "Limits"): 100 years is the far future, and
// a start_after added to a clock near 2^63 saturates instead of wrapping into the window.
TEST(EngineTriggers, HundredYearWindowsBehaveAsFarFuture) {
  {
    TestSession s(std::string(kHeader) +
                  "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nstart_after='876000h'\n");
    EXPECT_TRUE(injected_indices(3).empty());
  }
  {
    TestSession s(std::string(kHeader) +
                  "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nduration='876000h'\n");
    EXPECT_EQ(injected_indices(3), (std::vector<int>{0, 1, 2}));
  }
  {
    // Enabled "at" a clock near 2^63: since + start_after overflows int64. Before saturation
    // the sum wrapped negative and the window opened at once.
    TestSession s(std::string(kHeader) +
                  "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\nstart_after='876000h'\n");
    s.slot("f").enabled_since_ns.store(std::numeric_limits<std::int64_t>::max() - 1000);
    EXPECT_TRUE(injected_indices(3).empty());
  }
}

TEST(EngineTriggers, CountersAtUint64MaxBehave) {
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  ControlSession& session = s.session();
  const int index = session.find_fault("f");
  auto publish = [&](std::uint64_t after, std::uint64_t every, std::uint64_t times) {
    ASSERT_TRUE(session.edit_fault(index, [&](FaultSpec& spec) {
      spec.after = after;
      spec.every = every;
      spec.times = times;
    }));
    s.slot("f").matched.store(0);
    s.slot("f").injected.store(0);
  };
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  publish(kMax, 1, kUnlimited);  // after = max: never reached
  EXPECT_TRUE(injected_indices(5).empty());
  publish(0, kMax, kUnlimited);  // every = max: the first call only
  EXPECT_EQ(injected_indices(5), (std::vector<int>{0}));
  publish(0, 1, kMax);  // times = max: unlimited
  EXPECT_EQ(injected_indices(5), (std::vector<int>{0, 1, 2, 3, 4}));
  // The match counter itself at the top: (n - after) % every never divides by zero or wraps.
  publish(0, 2, kUnlimited);
  s.slot("f").matched.store(kMax - 1);
  EXPECT_EQ(injected_indices(3), (std::vector<int>{0, 2}));  // n = max-1, max, then 0
}

TEST(EngineTriggers, MaxFaultsDisarmsTheSession) {
  TestSession s(std::string(kHeader) +
                "[safety]\nmax_faults=2\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n");
  EXPECT_EQ(injected_indices(10), (std::vector<int>{0, 1}));
  EXPECT_EQ(s.session().block().header.armed_mask.load(), 0u);
  EXPECT_TRUE(s.session().block().header.flags.load() & kFlagBudgetSpent);
}

TEST(EngineSelectors, SizeRange) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['msync']\nerror='EIO'\nsize='4KiB..8KiB'\n");
  shim::Guard guard;
  auto hit = [&](std::uint64_t size) {
    shim::CallArgs args{kCall_msync};
    args.size = size;
    args.has_size = true;
    shim::Decision d;
    return shim::decide(guard, args, d) && d.inject;
  };
  EXPECT_FALSE(hit(4095));
  EXPECT_TRUE(hit(4096));
  EXPECT_TRUE(hit(8192));
  EXPECT_FALSE(hit(8193));
}

TEST(EngineSelectors, PathGlobThroughTheFdTable) {
  char dir[] = "/tmp/fl-engine-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string a = std::string(dir) + "/a.log", b = std::string(dir) + "/b.log";
  int fa = open(a.c_str(), O_CREAT | O_WRONLY, 0600);
  int fb = open(b.c_str(), O_CREAT | O_WRONLY, 0600);
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\npath='*/a.log'\n");
  EXPECT_EQ(injected_indices(2, kCall_fsync, fa).size(), 2u);
  EXPECT_TRUE(injected_indices(2, kCall_fsync, fb).empty());
  // The fd number is reused for another file: the table must not keep the old path.
  close(fa);
  shim::fd_invalidate(fa);
  int fb2 = open(b.c_str(), O_WRONLY);
  ASSERT_EQ(fb2, fa);
  EXPECT_TRUE(injected_indices(2, kCall_fsync, fb2).empty());
  close(fb);
  close(fb2);
  unlink(a.c_str());
  unlink(b.c_str());
  rmdir(dir);
}

TEST(EngineSelectors, PathListsExcludeNegatedGlobs) {
  char dir[] = "/tmp/fl-engine-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string tmp = std::string(dir) + "/tmp";
  ASSERT_EQ(mkdir(tmp.c_str(), 0700), 0);
  const std::string a = std::string(dir) + "/a.log", t = tmp + "/t.log";
  int fa = open(a.c_str(), O_CREAT | O_WRONLY, 0600);
  int ft = open(t.c_str(), O_CREAT | O_WRONLY, 0600);
  {
    // Through the fd table (fsync on an fd) and through the path argument (open).
    TestSession s(std::string(kHeader) +
                  "[[fault]]\nname='f'\ncalls=['fsync', 'open']\n"
                  "error='EIO'\npath=['" +
                  dir + "/*', '!" + dir + "/tmp/*']\n");
    EXPECT_EQ(injected_indices(2, kCall_fsync, fa).size(), 2u);
    EXPECT_TRUE(injected_indices(2, kCall_fsync, ft).empty());
    shim::Guard guard;
    shim::Decision d;
    shim::CallArgs open_a{kCall_open};
    open_a.path = a.c_str();
    EXPECT_TRUE(shim::decide(guard, open_a, d) && d.inject);
    shim::CallArgs open_t{kCall_open};
    open_t.path = t.c_str();
    EXPECT_FALSE(shim::decide(guard, open_t, d) && d.inject);
  }
  {
    // A negation alone: every file but those.
    TestSession s(std::string(kHeader) +
                  "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\npath='!" + tmp + "/*'\n");
    EXPECT_EQ(injected_indices(1, kCall_fsync, fa).size(), 1u);
    EXPECT_TRUE(injected_indices(1, kCall_fsync, ft).empty());
  }
  for (int fd : {fa, ft}) {
    close(fd);
    shim::fd_invalidate(fd);
  }
  unlink(a.c_str());
  unlink(t.c_str());
  rmdir(tmp.c_str());
  rmdir(dir);
}

// The fd number becomes another file behind the table's back (a raw dup2, no invalidation):
// the identity check before the injection relearns it, and the counters stay the new file's.
TEST(EngineSelectors, StaleFdEntryIsCheckedBeforeInjecting) {
  char dir[] = "/tmp/fl-engine-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string a = std::string(dir) + "/a.log", b = std::string(dir) + "/b.log";
  int fa = open(a.c_str(), O_CREAT | O_WRONLY, 0600);
  int fb = open(b.c_str(), O_CREAT | O_WRONLY, 0600);
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\npath='*/a.log'\n");
  EXPECT_EQ(injected_indices(2, kCall_fsync, fa).size(), 2u);  // cached as a.log
  ASSERT_EQ(dup2(fb, fa), fa);  // the test links no preload: the table is not told
  EXPECT_TRUE(injected_indices(3, kCall_fsync, fa).empty());
  EXPECT_EQ(s.slot("f").seen.load(), 5u);
  EXPECT_EQ(s.slot("f").matched.load(), 2u);  // the stale pass's count was given back
  EXPECT_EQ(s.slot("f").injected.load(), 2u);
  close(fa);
  close(fb);
  shim::fd_invalidate(fa);
  shim::fd_invalidate(fb);
  unlink(a.c_str());
  unlink(b.c_str());
  rmdir(dir);
}

// The verdict cache and `seen` in batches (engine.h, fd_call_quiet): a call that missed every
// fault because of its fd's path makes the next calls on the fd quiet; their `seen` reaches
// the shared counter exactly once, also from threads that end without flushing themselves
// (the thread-exit key does it; under TSan, the credits race with each other). An
// invalidation of the fd ends the verdict at once.
TEST(EngineVerdict, QuietCallsCountSeenExactlyOnceAcrossThreads) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['write']\nerror='EIO'\npath='/nonexistent/*'\n");
  const int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(injected_indices(1, kCall_write, fd).empty());  // decides, caches "no fault"
  EXPECT_EQ(s.slot("f").seen.load(), 1u);
  constexpr int kThreads = 4;
  std::atomic<int> quiet{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, n = 1000 + 37 * t] {
      for (int i = 0; i < n; ++i) quiet += shim::fd_call_quiet(kCall_write, fd);
    });
  for (int i = 0; i < 45; ++i) quiet += shim::fd_call_quiet(kCall_write, fd);
  for (auto& t : threads) t.join();
  EXPECT_EQ(quiet.load(), 45 + 1000 + 1037 + 1074 + 1111);
  EXPECT_LE(s.slot("f").seen.load(), 1u + quiet.load());  // this thread's batch is pending
  shim::seen_batch_flush();
  EXPECT_EQ(s.slot("f").seen.load(), 1u + quiet.load());
  EXPECT_EQ(s.slot("f").matched.load(), 0u);
  // Another call id on the same fd has no verdict; an invalidation ends this one.
  EXPECT_FALSE(shim::fd_call_quiet(kCall_pwrite, fd));
  shim::fd_invalidate(fd);
  EXPECT_FALSE(shim::fd_call_quiet(kCall_write, fd));
  close(fd);
  shim::seen_batch_flush();
  EXPECT_EQ(s.slot("f").seen.load(), 1u + quiet.load());
}

TEST(EngineSelectors, WritesToSocketsAreNotWriteFamily) {
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['@write']\nerror='EIO'\n");
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_TRUE(injected_indices(3, kCall_write, sv[0]).empty());
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  EXPECT_EQ(injected_indices(3, kCall_write, p[1]).size(), 3u);
  for (int fd : {sv[0], sv[1], p[0], p[1]}) close(fd);
}

TEST(EngineActions, ShortLengthAndQuota) {
  TestSession s(std::string(kHeader) + "[[fault]]\nname='q'\ncalls=['write']\nquota='1KiB'\n");
  shim::Decision d{};
  d.fault = s.session().find_fault("q");
  d.quota_bytes = 1024;
  EXPECT_EQ(shim::quota_reserve(d, 1000), 1000u);
  EXPECT_EQ(shim::quota_reserve(d, 100), 24u);
  EXPECT_EQ(shim::quota_reserve(d, 10), 0u);
  shim::quota_release(d, 24);
  EXPECT_EQ(shim::quota_reserve(d, 100), 24u);

  shim::Decision half{};
  half.short_percent = 50;
  EXPECT_EQ(shim::short_length(half, 4096), 2048u);
  EXPECT_EQ(shim::short_length(half, 1), 1u);
  shim::Decision one{};
  one.short_bytes = 1;
  EXPECT_EQ(shim::short_length(one, 4096), 1u);
}

TEST(EngineActions, CorruptFlipsExactlyTheBitsAsked) {
  shim::Decision d{};
  d.corrupt_bits = 1;
  d.draw = 12345;
  std::vector<unsigned char> buf(64, 0);
  shim::corrupt_buffer(d, buf.data(), buf.size());
  int ones = 0;
  for (unsigned char c : buf) ones += __builtin_popcount(c);
  EXPECT_EQ(ones, 1);
}

// Caller memory (shim/engine/safe_copy.h): an iovec is summed only when the kernel would accept it,
// read without ever faulting; scratch never reuses a page the program just unmapped.
TEST(SafeCopy, IovTotalReadsOnlyWhatTheKernelWouldAccept) {
  char a[10], b[20];
  struct iovec v[2] = {{a, sizeof a}, {b, sizeof b}};
  std::uint64_t total = 0;
  ASSERT_TRUE(shim::iov_total_safe(v, 2, total));
  EXPECT_EQ(total, 30u);
  ASSERT_TRUE(shim::iov_total_safe(nullptr, 0, total));
  EXPECT_EQ(total, 0u);
  void* gone = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(gone, MAP_FAILED);
  munmap(gone, 4096);
  for (const void* bad : {static_cast<const void*>(nullptr), reinterpret_cast<const void*>(16),
                          static_cast<const void*>(gone)})
    EXPECT_FALSE(shim::iov_total_safe(static_cast<const struct iovec*>(bad), 1, total));
  EXPECT_FALSE(shim::iov_total_safe(v, 100000, total));
  EXPECT_FALSE(shim::iov_total_safe(v, -1, total));
  struct iovec huge = {a, static_cast<std::size_t>(SSIZE_MAX) + 1};
  EXPECT_FALSE(shim::iov_total_safe(&huge, 1, total));
  // 1024 entries of SSIZE_MAX: accepted by the kernel (it clamps), the sum saturates.
  std::vector<struct iovec> many(1024, iovec{a, static_cast<std::size_t>(SSIZE_MAX)});
  ASSERT_TRUE(shim::iov_total_safe(many.data(), 1024, total));
  EXPECT_EQ(total, static_cast<std::uint64_t>(SSIZE_MAX));
}

// An open whose path the kernel would refuse (NULL, wild, no NUL within PATH_MAX) is never
// decided, not even by a fault without a path selector; nothing is counted for it.
TEST(SafeCopy, OpenWithABadPathIsNotDecided) {
  TestSession s(std::string(kHeader) + "[[fault]]\nname='f'\ncalls=['open']\nerror='EACCES'\n");
  shim::Guard guard;
  shim::Decision d;
  std::string endless(5000, 'x');  // no NUL within PATH_MAX
  for (const char* bad : {static_cast<const char*>(nullptr), reinterpret_cast<const char*>(16)}) {
    shim::CallArgs args{kCall_open};
    args.path = bad;
    EXPECT_FALSE(shim::decide(guard, args, d));
  }
  shim::CallArgs long_args{kCall_open};
  long_args.path = endless.data();
  EXPECT_FALSE(shim::decide(guard, long_args, d));
  EXPECT_EQ(s.slot("f").matched.load(), 0u);
  shim::CallArgs good{kCall_open};
  good.path = "/tmp/fl-good";
  EXPECT_TRUE(shim::decide(guard, good, d));
}

TEST(SafeCopy, ScratchNeverLandsOnAPageTheProgramFreed) {
  for (int i = 0; i < 8; ++i) {
    void* gone = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(gone, MAP_FAILED);
    munmap(gone, 4096);
    shim::CopyScratch scratch(4096);
    ASSERT_TRUE(scratch.ok());
    EXPECT_NE(scratch.data(), gone);
    char probe;
    EXPECT_EQ(shim::safe_read(&probe, gone, 1), shim::SafeCopy::kFault);
  }
}

__extension__ typedef unsigned __int128 U128;

// cp asks copy_file_range for SSIZE_MAX bytes: 50% of that is half, not a wrapped product
// (count * 50 past 2^64 made it 2%), and every percentage of every count stays <= count.
TEST(EngineActions, ShortLengthIsOverflowSafe) {
  shim::Decision half{};
  half.short_percent = 50;
  const std::uint64_t cp_count = 0x7fffffffffffffffULL;  // SSIZE_MAX, 9.2e18
  EXPECT_EQ(shim::short_length(half, cp_count), cp_count / 2);
  EXPECT_EQ(shim::short_length(half, UINT64_MAX), UINT64_MAX / 2);
  for (std::uint32_t pct : {1u, 33u, 99u, 100u}) {
    shim::Decision d{};
    d.short_percent = pct;
    for (std::uint64_t count : {std::uint64_t{2}, std::uint64_t{101}, std::uint64_t{4096}, cp_count,
                                UINT64_MAX - 1, UINT64_MAX}) {
      const std::uint64_t n = shim::short_length(d, count);
      EXPECT_GE(n, 1u);
      EXPECT_LE(n, count);
      // floor(count * pct / 100), computed in 128 bits.
      const auto exact = static_cast<std::uint64_t>(static_cast<U128>(count) * pct / 100);
      EXPECT_EQ(n, std::max<std::uint64_t>(exact, 1)) << count << " at " << pct << "%";
    }
  }
  shim::Decision bytes{};
  bytes.short_bytes = UINT64_MAX;
  EXPECT_EQ(shim::short_length(bytes, cp_count), cp_count);
}

// SSIZE_MAX requests against a quota: the boundary, then nothing. (Each reservation adds at
// most quota + 1 to the shared counter, so concurrent huge ones cannot wrap it either.)
TEST(EngineActions, QuotaOfHugeRequestsDoesNotWrap) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='q'\ncalls=['copy_file_range']\nquota='1KiB'\n");
  shim::Decision d{};
  d.fault = s.session().find_fault("q");
  d.quota_bytes = 1024;
  const std::uint64_t huge = 0x7fffffffffffffffULL;
  EXPECT_EQ(shim::quota_reserve(d, huge), 1024u);
  EXPECT_EQ(shim::quota_reserve(d, huge), 0u);
  EXPECT_EQ(shim::quota_reserve(d, UINT64_MAX), 0u);
  shim::quota_release(d, 1024);
  EXPECT_EQ(shim::quota_reserve(d, 10), 10u);
}

// `corrupt` is capped at the bits the data has: 4294967295 on 6 bytes inverts all 48 bits at
// once (it took 16 s of CPU), and more than half the bits costs at most one pass.
TEST(EngineActions, CorruptIsCappedAtTheBitsTheDataHas) {
  shim::Decision d{};
  d.corrupt_bits = 4294967295u;
  d.draw = 99;
  std::vector<unsigned char> buf(6, 0);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) shim::corrupt_buffer(d, buf.data(), buf.size());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // An even number of inversions: back to zero; one more: every bit set.
  EXPECT_EQ(buf, std::vector<unsigned char>(6, 0));
  shim::corrupt_buffer(d, buf.data(), buf.size());
  EXPECT_EQ(buf, std::vector<unsigned char>(6, 0xff));

  d.corrupt_bits = 48;  // exactly the bits there are
  std::vector<unsigned char> exact(6, 0x0f);
  shim::corrupt_buffer(d, exact.data(), exact.size());
  EXPECT_EQ(exact, std::vector<unsigned char>(6, 0xf0));

  // Many bits of a large buffer: bounded work (one inversion pass plus the complement drawn).
  d.corrupt_bits = 4000000000u;
  std::vector<unsigned char> big(1 << 20, 0);
  const auto big_start = std::chrono::steady_clock::now();
  shim::corrupt_buffer(d, big.data(), big.size());
  EXPECT_LT(std::chrono::steady_clock::now() - big_start, std::chrono::seconds(5));
  std::uint64_t ones = 0;
  for (unsigned char c : big) ones += static_cast<std::uint64_t>(__builtin_popcount(c));
  EXPECT_EQ(ones, 8u << 20);  // 4e9 >= 8 Mi bits: all of them
}

}  // namespace
}  // namespace faultline

namespace faultline {
namespace {

// Several threads deciding at once, while a controller edits the fault live: counters stay
// exact, `times` is never exceeded, and the injected indices are the single-threaded ones.
TEST(EngineConcurrency, ThreadsGetExactCountsAndTheSameIndices) {
  const std::string policy =
      "version = 1\nseed = 11\n[[fault]]\nname='p'\ncalls=['fsync']\nerror='EIO'\n"
      "probability=0.25\n";
  constexpr int kThreads = 4, kCallsPerThread = 2000;
  std::vector<std::uint64_t> single;
  {
    testing::TestSession s(policy);
    shim::Guard guard;
    for (int i = 0; i < kThreads * kCallsPerThread; ++i)
      if (shim::Decision d; shim::decide(guard, shim::CallArgs{kCall_fsync}, d))
        single.push_back(i);
  }
  testing::TestSession s(policy);
  std::vector<std::vector<std::uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      shim::Guard guard;
      for (int i = 0; i < kCallsPerThread; ++i) {
        shim::Decision d;
        if (shim::decide(guard, shim::CallArgs{kCall_fsync}, d)) per_thread[t].push_back(d.index);
      }
    });
  }
  // A live edit that changes nothing the trigger reads: readers rebuild mid-run.
  ControlSession& session = s.session();
  int index = session.find_fault("p");
  for (int i = 0; i < 20; ++i)
    session.update_fault(index, read_fault_spec(session.block().faults[index]));
  for (auto& th : threads) th.join();
  std::vector<std::uint64_t> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, single);
  EXPECT_EQ(s.slot("p").matched.load(), std::uint64_t{kThreads * kCallsPerThread});
  EXPECT_EQ(s.slot("p").injected.load(), all.size());
}

// The resident set of this process, in KiB (0 when /proc is not readable).
long resident_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  long kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::atol(line + 6);
  std::fclose(f);
  return kib;
}

// Live edits must not grow memory (docs/reliability.md, "Bounded memory on live edits"):
// 4 threads decide without pause while 10,000 edits are published, so readers keep rebuilding
// and the copies they replace are freed under them. Every replaced copy is freed or waits for
// a reader, none is leaked, and the process does not grow. ASan turns a copy freed under a
// reader into a crash here; TSan checks the publication.
TEST(EngineReclaim, TenThousandLiveEditsUnderFourDecidingThreadsStayBounded) {
  std::string policy = "version = 1\nseed = 3\n";
  for (int i = 0; i < 16; ++i)
    policy += "[[fault]]\nname='f" + std::to_string(i) +
              "'\ncalls=['fsync','fdatasync']\nerror='EIO'\nprobability=0.5\n";
  TestSession s(policy);
  ControlSession& session = s.session();
  const int index = session.find_fault("f0");
  ASSERT_GE(index, 0);
  const FaultSpec spec = read_fault_spec(session.block().faults[index]);
  {
    shim::Guard guard;
    shim::Decision d;
    shim::decide(guard, shim::CallArgs{kCall_fsync}, d);  // the first copy, before measuring
  }
  const shim::RulesMemory before = shim::engine_rules_memory();
  const long rss_before = resident_kib();

  constexpr int kThreads = 4;
#if defined(__SANITIZE_THREAD__)
  constexpr int kEdits = 2000;  // TSan runs this ~20 times slower (10,000 took 130 s)
#else
  constexpr int kEdits = 10000;
#endif
  std::atomic<bool> stop{false};
  std::atomic<long> decisions{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      shim::Guard guard;
      long n = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
      while (!stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < deadline)
        for (int i = 0; i < 16; ++i, ++n) {
          shim::Decision d;
          shim::decide(guard, shim::CallArgs{n % 2 ? kCall_fsync : kCall_fdatasync}, d);
        }
      decisions.fetch_add(n);
    });
  }
  std::uint64_t most_retired = 0;
  {
    // This thread decides after each edit too, and after every 8th until a copy of that
    // generation is built (on 2 cores the readers alone see a burst of edits as one, and a
    // decide that finds another thread rebuilding keeps the previous copy; waiting out that
    // thread's time slice on every edit would take half a minute), while the readers hold
    // older ones.
    shim::Guard guard;
    for (int i = 0; i < kEdits; ++i) {
      const std::uint64_t built_before = shim::engine_rules_memory().built;
      ASSERT_TRUE(session.update_fault(index, spec));
      const int max_tries = i % 8 == 0 ? 1000 : 1;
      for (int tries = 0; tries < max_tries && shim::engine_rules_memory().built == built_before;
           ++tries) {
        shim::Decision d;
        shim::decide(guard, shim::CallArgs{kCall_fsync}, d);
        if (tries > 0) std::this_thread::yield();
      }
      if (i % 16 == 0) most_retired = std::max(most_retired, shim::engine_rules_memory().retired);
    }
    stop.store(true);
    for (auto& th : threads) th.join();
    // The readers are gone: the next rebuild frees every copy they held.
    ASSERT_TRUE(session.update_fault(index, spec));
    shim::Decision d;
    shim::decide(guard, shim::CallArgs{kCall_fsync}, d);
  }
  const shim::RulesMemory after = shim::engine_rules_memory();
  const long rss_after = resident_kib();
  const std::uint64_t built = after.built - before.built;
  const std::uint64_t freed = after.freed - before.freed;
  std::printf(
      "%d edits: %llu copies built, %llu freed, %llu leaked, at most %llu retired, "
      "%ld decisions, RSS %+ld KiB\n",
      kEdits, static_cast<unsigned long long>(built), static_cast<unsigned long long>(freed),
      static_cast<unsigned long long>(after.leaked - before.leaked),
      static_cast<unsigned long long>(most_retired), decisions.load(), rss_after - rss_before);
  EXPECT_GT(built, std::uint64_t{kEdits / 10}) << "too few rebuilds to prove anything";
  EXPECT_EQ(after.leaked, before.leaked);
  // Each deciding thread holds at most one copy; the rest are freed at the next rebuild.
  EXPECT_LE(most_retired, std::uint64_t{kThreads + 1});
  EXPECT_EQ(after.retired, 0u);
  EXPECT_LE(built - freed, std::uint64_t{1});
  // 10,000 leaked copies of 16 faults would be ~45 MiB. A sanitizer's runtime grows by itself
  // (ASan's allocator quarantine; TSan's shadow of every new mapping, ~9 MiB over 2,000
  // copies, not given back at munmap): the counters above are the exact check there.
#if defined(__SANITIZE_THREAD__)
  constexpr long kMaxGrowthKib = 64 * 1024;
#elif defined(__SANITIZE_ADDRESS__)
  constexpr long kMaxGrowthKib = 8 * 1024;
#else
  constexpr long kMaxGrowthKib = 1024;
#endif
  EXPECT_LT(rss_after - rss_before, kMaxGrowthKib) << "KiB";
}

// A fork child has one thread: the slots of the others, which may name the copies they were
// reading at the fork, are reset (engine_after_fork_child, the shim's atfork handler), so the
// child's rebuilds free every copy it retires instead of keeping them for dead readers.
TEST(EngineReclaim, AForkChildFreesTheCopiesItsParentsThreadsWereReading) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support fork of a multi-threaded process";
#endif
  TestSession s(
      "version = 1\n[[fault]]\nname='f'\ncalls=['fsync']\nerror='EIO'\n"
      "probability=0.5\n");
  ControlSession& session = s.session();
  const int index = session.find_fault("f");
  const FaultSpec spec = read_fault_spec(session.block().faults[index]);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      shim::Guard guard;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < deadline) {
        shim::Decision d;
        shim::decide(guard, shim::CallArgs{kCall_fsync}, d);
      }
    });
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(session.update_fault(index, spec));
  const pid_t child = fork();
  if (child == 0) {
    shim::engine_after_fork_child();
    shim::Guard guard;
    for (int i = 0; i < 3; ++i) {
      session.update_fault(index, spec);
      shim::Decision d;
      shim::decide(guard, shim::CallArgs{kCall_fsync}, d);
    }
    const shim::RulesMemory m = shim::engine_rules_memory();
    _exit(m.retired == 0 && m.leaked == 0
              ? 0
              : 10 + static_cast<int>(std::min<std::uint64_t>(m.retired, 100)));
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "the child kept " << WEXITSTATUS(status) - 10 << " retired copies";
}

TEST(EngineConcurrency, TimesIsNeverExceeded) {
  testing::TestSession s(
      "version = 1\n[[fault]]\nname='t'\ncalls=['fsync']\nerror='EIO'\n"
      "times=100\n");
  std::atomic<int> injected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      shim::Guard guard;
      for (int i = 0; i < 500; ++i)
        if (shim::Decision d; shim::decide(guard, shim::CallArgs{kCall_fsync}, d)) ++injected;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(injected.load(), 100);
  EXPECT_EQ(s.slot("t").injected.load(), 100u);
}

// ---- delays: the one wait primitive (shim/engine/wait.h)
// -----------------------------------------

// Decides one fsync under `policy` and holds it for its delay, lifting the fault with `lift`
// (run on another thread 100 ms in) unless it is null. Returns apply_delay's answer, the
// decision as it was left and the time it took.
struct HeldDelay {
  bool stands = false;
  shim::Decision d{};
  std::chrono::milliseconds took{0};
};

template <class Lift>
HeldDelay hold_delay(Lift lift) {
  HeldDelay out;
  shim::Guard guard;
  shim::CallArgs args{kCall_fsync};
  EXPECT_TRUE(shim::decide(guard, args, out.d));
  std::thread lifter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    lift();
  });
  const auto start = std::chrono::steady_clock::now();
  out.stands = shim::apply_delay(guard, out.d, args);
  out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  lifter.join();
  return out;
}

constexpr const char* kSlowFailingFsync =
    "[[fault]]\nname='f'\ncalls=['fsync']\ndelay='10s'\nerror='EIO'\n";

TEST(EngineDelay, ADisabledFaultEndsItsDelayAndItsErrorDoesNotApply) {
  TestSession s(std::string(kHeader) + kSlowFailingFsync);
  const HeldDelay r =
      hold_delay([&] { s.session().set_enabled(s.session().find_fault("f"), false); });
  EXPECT_FALSE(r.stands);
  EXPECT_EQ(r.d.action, 0u);  // delay only: the call runs
  EXPECT_LT(r.took, std::chrono::seconds(2));
}

TEST(EngineDelay, PanicEndsADelay) {
  TestSession s(std::string(kHeader) + kSlowFailingFsync);
  const HeldDelay r = hold_delay([&] { s.session().panic(); });
  EXPECT_FALSE(r.stands);
  EXPECT_LT(r.took, std::chrono::seconds(2));
}

TEST(EngineDelay, RemovingTheFaultEndsADelay) {
  TestSession s(std::string(kHeader) + kSlowFailingFsync);
  const HeldDelay r = hold_delay([&] { s.session().remove_fault(s.session().find_fault("f")); });
  EXPECT_FALSE(r.stands);
  EXPECT_LT(r.took, std::chrono::seconds(2));
}

TEST(EngineDelay, AnUnliftedDelayRunsItsCourseAndTheDecisionStands) {
  TestSession s(std::string(kHeader) +
                "[[fault]]\nname='f'\ncalls=['fsync']\ndelay='120ms'\nerror='EIO'\n");
  const HeldDelay r = hold_delay([] {});
  EXPECT_TRUE(r.stands);
  EXPECT_EQ(r.d.action, static_cast<std::uint32_t>(kActError));
  EXPECT_GE(r.took, std::chrono::milliseconds(115));
}

TEST(EngineDelay, WaitsAreCancellationPointsWhereTheCallIsOne) {
  EXPECT_TRUE(shim::call_is_cancellation_point(kCall_write));
  EXPECT_TRUE(shim::call_is_cancellation_point(kCall_connect));
  EXPECT_TRUE(shim::call_is_cancellation_point(kCall_recv));
  EXPECT_TRUE(shim::call_is_cancellation_point(kCall_getaddrinfo));
  EXPECT_FALSE(shim::call_is_cancellation_point(kCall_malloc));
  EXPECT_FALSE(shim::call_is_cancellation_point(kCall_dup2));
  EXPECT_FALSE(shim::call_is_cancellation_point(kCall_socket));
}

// ---- p99: the log-normal draw ----------------------------------------------------------

TEST(EngineDraws, OwnLogAndExpAgreeWithLibm) {
  for (double x : {1e-9, 0.001, 0.5, 1.0, 2.0, 3.14159, 1e6, 2e18}) {
    EXPECT_NEAR(shim::draw_log(x), std::log(x), 1e-9 * std::max(1.0, std::fabs(std::log(x)))) << x;
  }
  for (double x : {-20.0, -1.0, 0.0, 0.3, 1.0, 10.0, 42.0}) {
    EXPECT_NEAR(shim::draw_exp(x) / std::exp(x), 1.0, 1e-12) << x;
  }
}

TEST(EngineDraws, LogNormalHasTheAskedMedianAndP99) {
  const std::int64_t median = 200'000'000, p99 = 2'000'000'000;
  std::vector<std::int64_t> draws;
  for (std::uint64_t i = 0; i < 20'000; ++i)
    draws.push_back(shim::lognormal_ns(median, p99, i * 0x9e3779b97f4a7c15ull + 7));
  std::sort(draws.begin(), draws.end());
  // Sampling error at n = 20,000: the median within ~2%, the p99 within ~8%.
  EXPECT_NEAR(static_cast<double>(draws[draws.size() / 2]) / median, 1.0, 0.04);
  EXPECT_NEAR(static_cast<double>(draws[draws.size() * 99 / 100]) / p99, 1.0, 0.15);
  EXPECT_GE(draws.front(), 0);
  EXPECT_LE(draws.back(), p99 * 100);
  // The same word, the same value: a seed replays the tail.
  EXPECT_EQ(shim::lognormal_ns(median, p99, 12345), shim::lognormal_ns(median, p99, 12345));
  // A p99 equal to the median is no spread at all.
  EXPECT_EQ(shim::lognormal_ns(median, median, 99), median);
}

TEST(EngineDraws, DelayWithP99IsDrawnPerInjection) {
  TestSession s(std::string(kHeader) + R"([[fault]]
name = "tail"
calls = ["fsync"]
delay = "10ms"
p99 = "100ms"
)");
  shim::Guard guard;
  std::vector<std::int64_t> delays;
  for (int i = 0; i < 200; ++i) {
    shim::CallArgs args{kCall_fsync, -1};
    shim::Decision d;
    ASSERT_TRUE(shim::decide(guard, args, d));
    delays.push_back(d.delay_ns);
  }
  std::sort(delays.begin(), delays.end());
  EXPECT_LT(delays.front(), 10'000'000);  // a spread both ways around the median
  EXPECT_GT(delays.back(), 10'000'000);
  EXPECT_NEAR(static_cast<double>(delays[100]) / 10'000'000, 1.0, 0.3);
}

// The facts an event names, per rules copy: the newest note at or before the copy's epoch;
// an unchanged fault adds no note; four renames evict the oldest, and an event that needs it
// is then nameless, never given a later name.
TEST(FaultFacts, AnEventGetsTheNameItsRulesCopyHad) {
  constexpr int kSlot = static_cast<int>(kMaxFaults) - 1;
  constexpr std::uint32_t kBase = 0x70000000;  // past any epoch the other tests' rebuilds used
  auto note = [&](std::uint32_t epoch, const char* name, bool log_stack) {
    FaultSpec spec{};
    std::snprintf(spec.name, sizeof spec.name, "%s", name);
    spec.log_stack = log_stack;
    shim::fault_facts_note(kSlot, kBase + epoch, spec);
  };
  auto name_at = [&](std::uint32_t epoch) {
    char name[kNameMax];
    bool log_stack = true;
    const bool known = shim::fault_facts_read(kSlot, kBase + epoch, name, log_stack);
    return std::string(known ? "" : "?") + name + (log_stack ? "+stack" : "");
  };
  note(10, "first", false);
  note(11, "first", false);  // a rebuild that changed nothing in this slot
  note(12, "second", true);
  EXPECT_EQ(name_at(10), "first");
  EXPECT_EQ(name_at(11), "first");
  EXPECT_EQ(name_at(12), "second+stack");
  EXPECT_EQ(name_at(40), "second+stack");
  note(20, "third", false);
  note(21, "fourth", false);
  EXPECT_EQ(name_at(11), "first");  // four entries: still there
  note(22, "fifth", false);         // evicts "first"
  EXPECT_EQ(name_at(11), "?");
  EXPECT_EQ(name_at(12), "second+stack");
  EXPECT_EQ(name_at(21), "fourth");
  EXPECT_EQ(name_at(30), "fifth");
}

}  // namespace
}  // namespace faultline
