/* seccomp_listener: runs a command under a seccomp filter that already has a listener, as a
 * container runtime or a supervisor may install one. The kernel allows one listener in a
 * filter chain, so the seccomp backend of the `faultline run` started inside cannot have its
 * own: it must say so and refuse to run the program, never run it unfaulted.
 *   fl_seccomp_listener CMD [ARGS...]
 * The filter traps getcpu only (no program here calls it); its listener stays open across exec
 * (close-on-exec cleared), which keeps the listener alive in the whole tree. */
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fl_seccomp_listener CMD [ARGS...]\n");
    return 2;
  }
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("prctl");
    return 2;
  }
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (fd < 0) {
    perror("seccomp");
    return 2;
  }
  fcntl((int)fd, F_SETFD, 0);
  execv(argv[1], argv + 1);
  perror("execv");
  return 127;
}
