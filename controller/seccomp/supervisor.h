// The seccomp backend's supervisor: answers the program's trapped system calls from inside
// `faultline run`, with the shim's own decision engine (shim/engine/engine.h) deciding against the
// same control block, so triggers, the seed, counters, events and live control are the
// preload backend's.
//
// One thread serves the listener. For each notification it reads what the selectors need
// from the program — a descriptor duplicated with pidfd_getfd (its path, kind and peer as the
// engine learns them for its own descriptors), a path or a socket address read with
// process_vm_readv, comm from /proc — then checks that the notification is still valid
// (SECCOMP_IOCTL_NOTIF_ID_VALID) before the engine decides and before anything is acted on.
// A call that is not injected continues (SECCOMP_USER_NOTIF_FLAG_CONTINUE); an error is the
// answer; a delay is an answer given later from a deadline list, so one held call never holds
// another; a crash is a signal to the calling thread before the call; lie is success without
// the call. reset, eof and blackhole act on the program's socket through the duplicate (a
// RST by connect(AF_UNSPEC), a shutdown, a connect to a tarpit whose SYNs go unanswered);
// short and corrupt make the call here on the duplicate, the bytes moved with
// process_vm_readv/writev, never blocking this thread (docs/limits.md, "the two backends").
// Panic, the TTL and a disabled fault release held calls unfaulted. A notification the kernel
// cancelled (the thread was killed, or interrupted before the supervisor took it) is dropped:
// ENOENT.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "faultline/control_block.h"

namespace faultline::seccomp {

class Supervisor {
 public:
  // Serves `listener` (taken over: closed at the end) for the session's block; `member` is
  // the program's index in the block's pid table (its `seen` counter), `child` its pid.
  Supervisor(int listener, ControlBlock& block, int member, pid_t child);
  // Releases every held call, stops serving and closes the listener. When processes of the
  // tree still hold the filter (they outlived CMD), a helper process takes the listener over
  // and lets their calls through, unfaulted, until they end: returns true then. Once.
  bool finish();
  // Blocks until the loop has ended by itself: no process holds the filter any more (POLLHUP
  // on the listener), so nothing can be trapped again. For a server that lives as long as the
  // program's tree (serve_detached.h); finish() afterwards hands nothing off.
  void wait_unheld();
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

 private:
  void run() noexcept;

  int listener_;
  int stop_fd_;
  ControlBlock& block_;
  pid_t child_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> done_{false};
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace faultline::seccomp
