// What a signal handler can reach in the shim allocates nothing: deciding and recording an
// injected call (the event ring, the JSON line in the log, the stderr line) and the
// diagnostic of an unopenable event log. Counted without a preload: this test binary replaces
// malloc, calloc, realloc and free with counting forwarders to glibc's own allocator (not
// under a sanitizer, whose runtime owns those names: ASan, TSan, LSan), and the text builder is
// checked for the line format the log promises.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "shim/engine/engine.h"
#include "shim/engine/net_select.h"
#include "shim/engine/text_buf.h"
#include "test_session.h"

#if defined(FAULTLINE_SANITIZED) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FL_COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define FL_COUNT_MALLOC 0
#endif
#endif
#ifndef FL_COUNT_MALLOC
#define FL_COUNT_MALLOC 1
#endif

namespace {
// Counts only on the thread that set it, only while set.
__thread bool t_counting = false;
std::atomic<long> g_allocations{0};
}  // namespace

#if FL_COUNT_MALLOC
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);

void* malloc(size_t size) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}
void* calloc(size_t n, size_t size) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t size) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, size);
}
void free(void* p) { __libc_free(p); }
}
#endif

namespace faultline {
namespace {

using testing::TestSession;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Decides and records one write to `fd` under the session, counting allocations meanwhile.
long allocations_of_one_injection(int fd) {
  g_allocations.store(0);
  t_counting = true;
  {
    shim::Guard guard;
    shim::CallArgs args{kCall_write, fd};
    args.size = 5;
    args.has_size = true;
    shim::Decision d;
    if (shim::decide(guard, args, d) && d.inject) shim::emit_event(d, args, -1);
  }
  t_counting = false;
  return g_allocations.load();
}

class SignalSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FL_COUNT_MALLOC) GTEST_SKIP() << "malloc belongs to the sanitizer runtime";
    char dir[] = "/tmp/fl-sigsafe-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir));
    dir_ = dir;
    // A long path: std::string's inline buffer would hide an allocation for a short one.
    data_ = dir_ + "/a-data-file-with-a-long-enough-name.log";
    fd_ = open(data_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    std::remove(data_.c_str());
    std::remove((dir_ + "/events-of-the-signal-safety-test.jsonl").c_str());
    rmdir(dir_.c_str());
  }
  std::string policy(const std::string& log) const {
    return "version = 1\nseed = 9\n[log]\npath = '" + log + "'\nstderr = true\n" +
           "[[fault]]\nname = 'w-eio'\ncalls = ['write']\npath = '*/a-data-file-*'\n"
           "error = 'EIO'\n";
  }
  std::string dir_, data_;
  int fd_ = -1;
};

TEST_F(SignalSafety, DecidingAndLoggingAnInjectionAllocatesNothing) {
  const std::string log = dir_ + "/events-of-the-signal-safety-test.jsonl";
  TestSession s(policy(log));
  ::testing::internal::CaptureStderr();  // the `[log] stderr` line
  shim::diag_init(nullptr);
  const long first = allocations_of_one_injection(fd_);  // rules rebuilt, fd looked up
  const long again = allocations_of_one_injection(fd_);
  const std::string err = ::testing::internal::GetCapturedStderr();
  shim::diag_init(nullptr);  // fd 2 is the real stderr again
  EXPECT_EQ(first, 0);
  EXPECT_EQ(again, 0);
  const std::string line = read_all(log);
  EXPECT_NE(line.find("\"fault\":\"w-eio\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"ts_ns\":\""), std::string::npos) << line;
  EXPECT_NE(line.find(",\"seed\":\"9\"}\n"), std::string::npos) << line;
  EXPECT_NE(err.find("faultline: injected error into write(fd "), std::string::npos) << err;
}

TEST_F(SignalSafety, TheUnopenableLogDiagnosticAllocatesNothing) {
  TestSession s(policy(dir_ + "/no-such-dir/events.jsonl"));
  ::testing::internal::CaptureStderr();
  shim::diag_reset_for_tests();
  shim::diag_init(nullptr);
  const long allocations = allocations_of_one_injection(fd_);
  const std::string err = ::testing::internal::GetCapturedStderr();
  shim::diag_init(nullptr);  // fd 2 is the real stderr again
  shim::diag_reset_for_tests();
  EXPECT_EQ(allocations, 0);
  EXPECT_NE(err.find("cannot open event log"), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
}

// ---- the text builder ------------------------------------------------------------------------

TEST(TextBuf, JsonTextEscapesAndKeepsTheLineValidUtf8) {
  char buf[128];
  shim::TextBuf t(buf, sizeof buf);
  t.json_text("a\"b\\c\n\x01 caf\xc3\xa9 \xff\xc3\t\r\x7f");
  // The escapes nlohmann::json writes (the CLI's `events --json` prints the same line).
  EXPECT_EQ(std::string(t.data(), t.size()),
            "a\\\"b\\\\c\\n\\u0001 caf\xc3\xa9 \\\\xff\\\\xc3\\t\\r\x7f");
}

TEST(TextBuf, TruncatesWithoutOverflowAndNeverMidEscape) {
  char buf[8];
  shim::TextBuf t(buf, sizeof buf);
  t.json_text("abcd\"efgh");
  EXPECT_EQ(std::string(t.data()), "abcd\\\"e");
  EXPECT_TRUE(t.truncated());
  char small[6];
  shim::TextBuf u(small, sizeof small);
  u.json_text("abcd\"e");  // the escape does not fit whole: stops before it
  EXPECT_EQ(std::string(u.data()), "abcd");
}

TEST(TextBuf, FormatsTheShimsPrintfSubset) {
  char buf[256];
  shim::TextBuf t(buf, sizeof buf);
  t.format("%d|%u|%lld|%llu|%zu|%x|%s|%.3s|%5d|%-4s|%03d|%c|%%", -42, 7u, -9000000000ll,
           18446744073709551615ull, static_cast<std::size_t>(12), 255u, "str", "abcdef", 42, "ab",
           7, 'z');
  EXPECT_EQ(std::string(t.data()),
            "-42|7|-9000000000|18446744073709551615|12|ff|str|abc|   42|ab  |007|z|%");
}

TEST(TextBuf, UtcTime) {
  char buf[64];
  shim::TextBuf t(buf, sizeof buf);
  t.utc_time(1796400053123456789ll);
  EXPECT_EQ(std::string(t.data()), "2026-12-04T16:00:53.123456789Z");
  shim::TextBuf u(buf, sizeof buf);
  u.utc_time(0, 3);
  EXPECT_EQ(std::string(u.data()), "1970-01-01T00:00:00.000Z");
}

// Socket addresses in events are formatted by hand (inet_ntop and snprintf need ~2 KiB of
// stack): the text must be inet_ntop's, byte for byte.
TEST(TextBuf, SocketAddressesAreWrittenAsInetNtopWritesThem) {
  for (const char* text :
       {"::", "::1", "1::", "1:2:3:4:5:6:7:8", "2001:db8::1", "2001:db8:0:0:1::1", "fe80::1:0:0:0",
        "::ffff:10.1.2.3", "::10.1.2.3", "0:0:1::", "1:0:0:2::3", "::ffff:0:0", "abcd:ef01::"}) {
    struct sockaddr_in6 a {};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(8080);
    ASSERT_EQ(inet_pton(AF_INET6, text, &a.sin6_addr), 1) << text;
    char expected[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a.sin6_addr, expected, sizeof expected);
    char buf[80];
    shim::format_sockaddr(reinterpret_cast<struct sockaddr*>(&a), sizeof a, buf, sizeof buf);
    EXPECT_EQ(std::string(buf), "[" + std::string(expected) + "]:8080") << text;
  }
  struct sockaddr_in b {};
  b.sin_family = AF_INET;
  b.sin_port = htons(53);
  inet_pton(AF_INET, "192.168.0.255", &b.sin_addr);
  char buf[80];
  shim::format_sockaddr(reinterpret_cast<struct sockaddr*>(&b), sizeof b, buf, sizeof buf);
  EXPECT_EQ(std::string(buf), "192.168.0.255:53");
}

}  // namespace
}  // namespace faultline
