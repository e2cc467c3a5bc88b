// A C++ program with its own libstdc++ (dynamically linked) under the shim, which carries a
// private, statically linked copy (shim/CMakeLists.txt). It throws and catches through several
// frames (a std::runtime_error, a derived type caught by base, a rethrow), uses iostreams and
// std::string, and writes through ofstream to a file the policy may fault: if any libstdc++
// symbol leaked from the shim and the dynamic linker bound the program to it, type_info
// comparisons, the personality routine or the stream's vtables would disagree and a catch
// would miss (std::terminate) or a write would crash.
// Usage: fl_cxx_exceptions FILE. Prints "caught N" lines, then "ok" or "write failed".
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Custom : std::runtime_error {
  explicit Custom(int v) : std::runtime_error("custom " + std::to_string(v)), value(v) {}
  int value;
};

[[gnu::noinline]] void deep(int depth, int v) {
  std::vector<std::string> held(3, std::string(40, 'x'));  // destroyed while unwinding
  if (depth == 0) throw Custom(v);
  deep(depth - 1, v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  int caught = 0;
  for (int i = 0; i < 3; ++i) {
    try {
      deep(5, i);
    } catch (const std::runtime_error& e) {  // a derived type caught by its base
      if (std::string(e.what()) == "custom " + std::to_string(i)) ++caught;
    }
  }
  try {
    try {
      throw std::out_of_range("inner");
    } catch (const std::logic_error&) {
      throw;  // rethrown as is
    }
  } catch (const std::out_of_range& e) {
    if (std::string(e.what()) == "inner") ++caught;
  }
  std::cout << "caught " << caught << std::endl;
  std::ofstream out(argv[1]);
  out << "line\n";
  out.flush();
  std::cout << (out.good() ? "ok" : "write failed") << std::endl;
  return caught == 4 ? 0 : 1;
}
