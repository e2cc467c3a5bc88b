// See stack_helper.h. Every call is followed by a compiler barrier so that -O2 cannot turn it
// into a tail call, which would take the caller's frame off the stack.
#include "stack_helper.h"

#define FL_HELPER_EXPORT __attribute__((visibility("default")))

namespace {

__attribute__((noinline)) void helper_static_frame(fl_helper_callback fn, void* arg) {
  fn(arg);
  asm volatile("" ::: "memory");
}

}  // namespace

extern "C" FL_HELPER_EXPORT __attribute__((noinline)) void fl_helper_call(fl_helper_callback fn,
                                                                          void* arg) {
  helper_static_frame(fn, arg);
  asm volatile("" ::: "memory");
}

extern "C" FL_HELPER_EXPORT __attribute__((noinline)) void fl_helper_recurse(int depth,
                                                                             fl_helper_callback fn,
                                                                             void* arg) {
  if (depth <= 0)
    fn(arg);
  else
    fl_helper_recurse(depth - 1, fn, arg);
  asm volatile("" ::: "memory");
}

namespace flhelper {

FL_HELPER_EXPORT __attribute__((noinline)) void Outer::call_through(fl_helper_callback fn,
                                                                    void* arg) {
  fl_helper_call(fn, arg);
  asm volatile("" ::: "memory");
}

}  // namespace flhelper
