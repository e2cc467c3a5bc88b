// A shared library for the stack selector's unit tests (libfl_stack_helper.so): frames in
// another object than the test, built -O2 without frame pointers like distribution
// binaries, one of them a static function that only the library's .symtab names.
#pragma once

extern "C" {
using fl_helper_callback = void (*)(void* arg);
// fl_helper_call -> (anonymous namespace)::helper_static_frame -> fn(arg)
void fl_helper_call(fl_helper_callback fn, void* arg);
// `depth` nested frames of fl_helper_recurse, then fn(arg).
void fl_helper_recurse(int depth, fl_helper_callback fn, void* arg);
}

namespace flhelper {
struct Outer {
  // Outer::call_through -> fl_helper_call -> ...: a C++ frame whose name is demangled.
  static void call_through(fl_helper_callback fn, void* arg);
};
}  // namespace flhelper
