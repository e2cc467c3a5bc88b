// bad_alloc: a C++ program that handles running out of memory the way the language promises,
// for the @memory integration tests. Each check prints one line; the test compares them.
//
//   new         `new char[64 MiB]` throws std::bad_alloc
//   nothrow     `new (std::nothrow) char[64 MiB]` returns nullptr
//   vector      a std::vector<int> grown by push_back throws std::bad_alloc when it has to
//               reallocate past the limit, and keeps every element it had (strong guarantee)
//   realloc     a failed realloc returns NULL and leaves the old block valid and unchanged
//   memalign    posix_memalign returns ENOMEM and leaves errno and the out-pointer alone
//   small       small allocations keep working afterwards
//
// Run under a fault that fails allocations of 32 MiB and more, every line ends in "ok".
// Without the fault the big allocations succeed and the lines say so instead.
#include <errno.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kBig = 64u << 20;

void check_new() {
  try {
    std::unique_ptr<char[]> p(new char[kBig]);
    p[kBig - 1] = 1;
    std::puts("new: allocated");
  } catch (const std::bad_alloc&) {
    std::puts("new: bad_alloc ok");
  }
}

void check_nothrow() {
  std::unique_ptr<char[]> p(new (std::nothrow) char[kBig]);
  std::puts(p ? "nothrow: allocated" : "nothrow: nullptr ok");
}

void check_vector() {
  std::vector<int> v;
  try {
    for (int i = 0; i < (1 << 26); ++i) v.push_back(i);  // up to 256 MiB of ints
    std::puts("vector: grew to the end");
  } catch (const std::bad_alloc&) {
    bool intact = true;
    for (std::size_t i = 0; i < v.size(); ++i) intact = intact && v[i] == static_cast<int>(i);
    std::printf("vector: bad_alloc at %zu elements, %s\n", v.size(),
                intact ? "intact ok" : "CORRUPT");
  }
}

void check_realloc() {
  char* p = static_cast<char*>(std::malloc(1024));
  if (!p) return (void)std::puts("realloc: setup failed");
  std::memset(p, 'x', 1024);
  errno = 0;
  char* q = static_cast<char*>(std::realloc(p, kBig));
  if (q) {
    std::puts("realloc: allocated");
    std::free(q);
    return;
  }
  bool intact = errno == ENOMEM;
  for (int i = 0; i < 1024; ++i) intact = intact && p[i] == 'x';
  std::puts(intact ? "realloc: NULL, old block intact ok" : "realloc: NULL, old block CHANGED");
  std::free(p);
}

void check_posix_memalign() {
  void* out = &out;  // a sentinel: must be left alone on failure
  errno = 1234;
  int rc = posix_memalign(&out, 4096, kBig);
  if (rc == 0) {
    std::puts("memalign: allocated");
    std::free(out);
  } else {
    std::printf("memalign: %s, errno %s, out %s\n", rc == ENOMEM ? "ENOMEM ok" : "other error",
                errno == 1234 ? "untouched ok" : "CHANGED",
                out == &out ? "untouched ok" : "CHANGED");
  }
}

void check_small() {
  std::vector<std::string> words;
  for (int i = 0; i < 10000; ++i)
    words.push_back(std::string(100, static_cast<char>('a' + i % 26)));
  std::printf("small: %zu strings ok\n", words.size());
}

}  // namespace

int main() {
  check_new();
  check_nothrow();
  check_vector();
  check_realloc();
  check_posix_memalign();
  check_small();
  return 0;
}
