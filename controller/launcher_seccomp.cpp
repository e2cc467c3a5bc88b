// The io_uring gate's seccomp filter (launcher_seccomp.h). Classic BPF over seccomp_data: on
// the native architecture (and, on x86_64, the i386 and x32 ABIs, whose io_uring numbers are
// the same 425..427 — the unified syscall table of Linux 5.1 — with x32's marker bit), the
// three io_uring calls fail with ENOSYS, as on a kernel built without io_uring, which is the
// error every fallback checks for. Everything else is allowed. The filter is never removed:
// it is inherited across fork and exec, so the whole process tree of the program is covered.
#include "controller/launcher_seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace faultline::launch {
namespace {

#if defined(__x86_64__)
constexpr unsigned kNativeArch = AUDIT_ARCH_X86_64;
constexpr unsigned kCompatArch = AUDIT_ARCH_I386;
#elif defined(__aarch64__)
constexpr unsigned kNativeArch = AUDIT_ARCH_AARCH64;
constexpr unsigned kCompatArch = AUDIT_ARCH_ARM;
#else
#error "launcher_seccomp.cpp: name this architecture's AUDIT_ARCH_* values"
#endif

// Linux 5.1's unified numbers, the same on every ABI above (not taken from <sys/syscall.h>,
// which names only the native ones).
constexpr unsigned kIoUringSetup = 425;
constexpr unsigned kIoUringEnter = 426;
constexpr unsigned kIoUringRegister = 427;
constexpr unsigned kX32Bit = 0x40000000;  // __X32_SYSCALL_BIT

constexpr unsigned kDeny = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);

// Jump offsets count from the next instruction. Layout:
//  0 load arch; 1 native? -> 4; 2 compat? -> 4; 3 allow (an ABI we do not know stays untouched)
//  4 load nr;   5 clear the x32 bit; 6..8 an io_uring call? -> 10;  9 allow;  10 deny
constexpr sock_filter kFilter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kCompatArch, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~kX32Bit),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kIoUringSetup, 3, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kIoUringEnter, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kIoUringRegister, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_RET | BPF_K, kDeny),
};

}  // namespace

int deny_io_uring() noexcept {
  // Without CAP_SYS_ADMIN the kernel installs a filter only under no_new_privs (seccomp(2)).
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  sock_fprog program{static_cast<unsigned short>(sizeof kFilter / sizeof kFilter[0]),
                     const_cast<sock_filter*>(kFilter)};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) return errno;
  return 0;
}

}  // namespace faultline::launch
