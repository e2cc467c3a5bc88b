// fl_stack_static: a C++ program with no shared C++ runtime (linked -static-libstdc++ and
// -static-libgcc, tests/integration/CMakeLists.txt), so the shim finds no __cxa_demangle in
// it to name its frames with. What it tries to break: a `stack` glob written with the
// demangled name that a dynamically linked build of the same program would match, templates
// included, must still match.
//
//   fl_stack_static FILE
//
// Appends one line to FILE through journal::Writer::append(int, char const*) const, one
// through plain_write(int, char const*) and one through journal::typed_write<std::string>;
// prints "append ok|err <errno>", "plain ok|err <errno>" and "typed ok|err <errno>".
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>

namespace journal {
struct Writer {
  int append(int fd, const char* text) const;
};

// noinline and a barrier: each keeps its own frame.
__attribute__((noinline)) int Writer::append(int fd, const char* text) const {
  const std::string line = std::string(text) + "\n";
  const int err = write(fd, line.data(), line.size()) < 0 ? errno : 0;
  asm volatile("" ::: "memory");
  return err;
}
}  // namespace journal

__attribute__((noinline)) int plain_write(int fd, const char* text) {
  const std::string line = std::string(text) + "\n";
  const int err = write(fd, line.data(), line.size()) < 0 ? errno : 0;
  asm volatile("" ::: "memory");
  return err;
}

namespace journal {
template <class Text>
__attribute__((noinline)) int typed_write(int fd, const Text& text) {
  const std::string line = std::string(text) + "\n";
  const int err = write(fd, line.data(), line.size()) < 0 ? errno : 0;
  asm volatile("" ::: "memory");
  return err;
}
}  // namespace journal

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 3;
  const journal::Writer writer;
  const int a = writer.append(fd, "append");
  const int p = plain_write(fd, "plain");
  const int t = journal::typed_write(fd, std::string("typed"));
  for (const auto& [what, err] :
       {std::pair{"append", a}, std::pair{"plain", p}, std::pair{"typed", t}}) {
    if (err)
      std::printf("%s err %d\n", what, err);
    else
      std::printf("%s ok\n", what);
  }
  return close(fd) == 0 ? 0 : 4;
}
