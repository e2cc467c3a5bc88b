/* Hands every vectored I/O call bad pointers and bad counts: a NULL, a wild ((void*)16) and an
 * unmapped (mmap + munmap) iovec, msghdr or mmsghdr vector, iovcnt of 100000 and -1, an iovec
 * whose buffer is wild or whose length is past SSIZE_MAX, a msghdr whose msg_iov or msg_name
 * is wild, a connect to a NULL or wild address, an open of a NULL or wild path. The kernel answers
 * each with -1 and EFAULT, EINVAL or EMSGSIZE; a shim that reads the caller's arrays before the
 * kernel has checked them dies of SIGSEGV instead. Prints one line per call, "name ret errno", so
 * that a run under faultline can be compared with a native one line for line. Usage: fl_wild_iovec
 * DIR [seccomp] (a directory for its scratch file; `seccomp` first installs a filter that fails
 * process_vm_readv/writev with ENOSYS, as a container's profile may, and ends with a good writev:
 * the shim must pass the calls through).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char* name, long ret) {
  printf("%s %ld %d\n", name, ret, ret < 0 ? errno : 0);
  fflush(stdout);
}

#define CALL(name, expr) \
  do {                   \
    errno = 0;           \
    long r_ = (expr);    \
    report(name, r_);    \
  } while (0)

/* process_vm_readv and process_vm_writev fail with ENOSYS; everything else is allowed. */
static int deny_process_vm(void) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
                 prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0
             ? 0
             : -1;
}

int main(int argc, char** argv) {
  const int seccomp = argc == 3 && strcmp(argv[2], "seccomp") == 0;
  if (argc != 2 && !seccomp) {
    fprintf(stderr, "usage: %s DIR [seccomp]\n", argv[0]);
    return 2;
  }
  if (seccomp && deny_process_vm() != 0) {
    perror("seccomp");
    return 2;
  }
  char file[4096];
  snprintf(file, sizeof file, "%s/wild_iovec.dat", argv[1]);
  int f = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
  int p[2], s[2];
  if (f < 0 || pipe2(p, O_NONBLOCK) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) {
    perror("setup");
    return 2;
  }
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (tcp < 0) {
    perror("socket");
    return 2;
  }
  fcntl(s[0], F_SETFL, O_NONBLOCK);
  fcntl(s[1], F_SETFL, O_NONBLOCK);
  /* Data waiting on every readable fd: a read that got past its checks would not block. */
  if (write(p[1], "hello", 5) < 0 || pwrite(f, "hello", 5, 0) < 0 || send(s[1], "hi", 2, 0) < 0) {
    perror("setup");
    return 2;
  }

  void* gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(gone, 4096);
  void* wild = (void*)16;
  char buf[16];
  struct iovec good = {buf, sizeof buf};
  struct iovec wild_base = {wild, 8};
  struct iovec huge_len = {buf, (size_t)SSIZE_MAX + 1};
  /* volatile: open() is declared nonnull, and the compiler would conclude bad[i] != NULL. */
  const struct iovec* volatile bad[3] = {NULL, wild, gone};
  const char* bad_name[3] = {"null", "wild", "unmapped"};
  char name[64];

  for (int i = 0; i < 3; ++i) {
#define NAMED(call) (snprintf(name, sizeof name, "%s-%s", call, bad_name[i]), name)
    CALL(NAMED("writev"), writev(p[1], bad[i], 1));
    CALL(NAMED("readv"), readv(p[0], bad[i], 1));
    CALL(NAMED("pwritev"), pwritev(f, bad[i], 1, 0));
    CALL(NAMED("preadv"), preadv(f, bad[i], 1, 0));
    CALL(NAMED("pwritev2"), pwritev2(f, bad[i], 1, 0, 0));
    CALL(NAMED("preadv2"), preadv2(f, bad[i], 1, 0, 0));
    CALL(NAMED("writev-sock"), writev(s[0], bad[i], 1));
    CALL(NAMED("readv-sock"), readv(s[0], bad[i], 1));
    CALL(NAMED("write"), write(p[1], bad[i], 8));
    CALL(NAMED("send"), send(s[0], bad[i], 8, 0));
    if (bad[i]) /* a NULL address is a plain send */
      CALL(NAMED("sendto-addr"), sendto(s[0], "x", 1, 0, (const struct sockaddr*)bad[i], 16));
    CALL(NAMED("connect"), connect(tcp, (const struct sockaddr*)bad[i], 16));
    CALL(NAMED("open"), open((const char*)bad[i], O_RDONLY));
    CALL(NAMED("openat"), openat(AT_FDCWD, (const char*)bad[i], O_RDONLY));
    CALL(NAMED("creat"), creat((const char*)bad[i], 0600));
    CALL(NAMED("sendmsg"), sendmsg(s[0], (const struct msghdr*)bad[i], 0));
    CALL(NAMED("recvmsg"), recvmsg(s[0], (struct msghdr*)bad[i], MSG_DONTWAIT));
    CALL(NAMED("sendmmsg"), sendmmsg(s[0], (struct mmsghdr*)bad[i], 1, 0));
    CALL(NAMED("recvmmsg"), recvmmsg(s[0], (struct mmsghdr*)bad[i], 1, MSG_DONTWAIT, NULL));
    struct msghdr m = {0};
    m.msg_iov = (struct iovec*)bad[i];
    m.msg_iovlen = 1;
    CALL(NAMED("sendmsg-iov"), sendmsg(s[0], &m, 0));
    CALL(NAMED("recvmsg-iov"), recvmsg(s[0], &m, MSG_DONTWAIT));
    struct mmsghdr mm = {0};
    mm.msg_hdr = m;
    CALL(NAMED("sendmmsg-iov"), sendmmsg(s[0], &mm, 1, 0));
    CALL(NAMED("recvmmsg-iov"), recvmmsg(s[0], &mm, 1, MSG_DONTWAIT, NULL));
    struct msghdr named = {0};
    named.msg_iov = &good;
    named.msg_iovlen = 1;
    named.msg_name = (void*)bad[i];
    named.msg_namelen = 16;
    if (bad[i]) CALL(NAMED("sendmsg-name"), sendmsg(s[0], &named, 0));
#undef NAMED
  }

  const int counts[2] = {100000, -1};
  for (int i = 0; i < 2; ++i) {
    const int n = counts[i];
#define NAMED(call) (snprintf(name, sizeof name, "%s-count%d", call, n), name)
    CALL(NAMED("writev"), writev(p[1], &good, n));
    CALL(NAMED("readv"), readv(p[0], &good, n));
    CALL(NAMED("pwritev"), pwritev(f, &good, n, 0));
    CALL(NAMED("preadv"), preadv(f, &good, n, 0));
    CALL(NAMED("pwritev2"), pwritev2(f, &good, n, 0, 0));
    CALL(NAMED("preadv2"), preadv2(f, &good, n, 0, 0));
    CALL(NAMED("writev-sock"), writev(s[0], &good, n));
    CALL(NAMED("readv-sock"), readv(s[0], &good, n));
    struct msghdr m = {0};
    m.msg_iov = &good;
    m.msg_iovlen = (size_t)(long)n;
    CALL(NAMED("sendmsg"), sendmsg(s[0], &m, 0));
    CALL(NAMED("recvmsg"), recvmsg(s[0], &m, MSG_DONTWAIT));
    struct mmsghdr mm = {0};
    mm.msg_hdr = m;
    CALL(NAMED("sendmmsg"), sendmmsg(s[0], &mm, 1, 0));
    CALL(NAMED("recvmmsg"), recvmmsg(s[0], &mm, 1, MSG_DONTWAIT, NULL));
#undef NAMED
  }

  /* A readable array whose buffer is wild, and one whose length the kernel refuses. */
  CALL("writev-wildbase", writev(p[1], &wild_base, 1));
  CALL("readv-wildbase", readv(p[0], &wild_base, 1));
  CALL("pwritev-wildbase", pwritev(f, &wild_base, 1, 0));
  CALL("preadv-wildbase", preadv(f, &wild_base, 1, 0));
  CALL("writev-sock-wildbase", writev(s[0], &wild_base, 1));
  CALL("writev-hugelen", writev(p[1], &huge_len, 1));
  CALL("readv-hugelen", readv(p[0], &huge_len, 1));
  CALL("pwritev-hugelen", pwritev(f, &huge_len, 1, 0));
  struct msghdr wb = {0};
  wb.msg_iov = &wild_base;
  wb.msg_iovlen = 1;
  CALL("sendmsg-wildbase", sendmsg(s[0], &wb, 0));
  CALL("writev-null-zero", writev(p[1], NULL, 0));
  CALL("sendmmsg-null-zero", sendmmsg(s[0], NULL, 0, 0));
  if (seccomp) {
    struct iovec two[2] = {{buf, 8}, {buf + 8, 8}};
    CALL("writev-good", writev(p[1], two, 2));
  }
  printf("done\n");
  return 0;
}
