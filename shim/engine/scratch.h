// Scratch memory for the armed path's big buffers (a path from /proc/self/fd, the absolute
// form of an open()'s argument, the event line), kept off the caller's stack: a program may
// run a signal handler on an 8 KiB sigaltstack, and the shim's budget there is 1 KiB
// (docs/reliability.md). Nor in per-thread storage: glibc carves static TLS out of every
// thread's stack, so 12 KiB of TLS would make pthread_create with a small stack fail.
//
// A process-wide pool of fixed buffers, each claimed with one atomic exchange (lock-free, so
// a signal handler may claim one while the thread it interrupted holds another); when all are
// busy, an anonymous mmap (async-signal-safe) stands in. No malloc anywhere.
#pragma once

#include <cstddef>

namespace faultline::shim {

class Scratch {
 public:
  static constexpr std::size_t kBytes = 16384;

  // Nothing is claimed until get(): a context that may need a buffer costs nothing when it
  // does not.
  Scratch() noexcept = default;
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  // kBytes of memory, claimed on the first call; nullptr when neither a pool buffer nor a
  // mapping could be had.
  char* get() noexcept {
    if (!data_) claim();
    return data_;
  }

 private:
  void claim() noexcept;

  char* data_ = nullptr;
  int slot_ = -1;  // pool index, or -1 for a mapping
};

}  // namespace faultline::shim
