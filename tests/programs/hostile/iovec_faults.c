/* Vectored I/O with good arguments under `short` and `corrupt`: the shim shortens and
 * corrupts iovecs through its own copies (mmap'd scratch), never the caller's array or
 * buffers. Writes three buffers (10+20+30 bytes) with writev, sendmsg and pwritev, reads them
 * back with readv, preadv and recvmsg, and prints per call "name ret differing-bits intact",
 * where differing-bits compares what arrived with what was sent (over the bytes that arrived)
 * and intact says whether the caller's own buffers and iovec array are unchanged.
 * Usage: fl_iovec_faults DIR
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static char src[60], back[60];

static void fill(void) {
  memset(src, 'a', 10);
  memset(src + 10, 'b', 20);
  memset(src + 30, 'c', 30);
}

static int intact(const struct iovec* v) {
  char want[60];
  memset(want, 'a', 10);
  memset(want + 10, 'b', 20);
  memset(want + 30, 'c', 30);
  return memcmp(src, want, 60) == 0 && v[0].iov_base == src && v[0].iov_len == 10 &&
         v[1].iov_base == src + 10 && v[1].iov_len == 20 && v[2].iov_base == src + 30 &&
         v[2].iov_len == 30;
}

static int bits_differ(const char* a, const char* b, long n) {
  int bits = 0;
  for (long i = 0; i < n; ++i) bits += __builtin_popcount((unsigned char)(a[i] ^ b[i]));
  return bits;
}

static void report(const char* name, long r, const char* got, const struct iovec* v) {
  printf("%s %ld %d %d\n", name, r, r > 0 ? bits_differ(src, got, r) : 0, intact(v));
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char path[4096];
  snprintf(path, sizeof path, "%s/iovec_faults.dat", argv[1]);
  int s[2];
  int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (f < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) return 2;
  fill();
  struct iovec v[3] = {{src, 10}, {src + 10, 20}, {src + 30, 30}};
  struct iovec in[3] = {{back, 10}, {back + 10, 20}, {back + 30, 30}};

  long r = writev(f, v, 3);
  memset(back, 0, sizeof back);
  long got = pread(f, back, sizeof back, 0);
  report("writev", r, back, v);
  printf("writev-file %ld\n", got);

  r = pwritev(f, v, 3, 0);
  memset(back, 0, sizeof back);
  pread(f, back, sizeof back, 0);
  report("pwritev", r, back, v);

  struct msghdr m = {0};
  m.msg_iov = v;
  m.msg_iovlen = 3;
  r = sendmsg(s[0], &m, 0);
  memset(back, 0, sizeof back);
  got = recv(s[1], back, sizeof back, MSG_DONTWAIT);
  report("sendmsg", r, back, v);
  printf("sendmsg-arrived %ld\n", got);

  /* The reads: a clean copy of src in the file and on the socket first. */
  for (long done = 0, n; done < 60; done += n)
    if ((n = pwrite(f, src + done, 60 - done, done)) <= 0) return 2;
  for (long done = 0, n; done < 60; done += n)
    if ((n = send(s[0], src + done, 60 - done, 0)) <= 0) return 2;
  memset(back, 0, sizeof back);
  r = preadv(f, in, 3, 0);
  report("preadv", r, back, v);
  memset(back, 0, sizeof back);
  lseek(f, 0, SEEK_SET);
  r = readv(f, in, 3);
  report("readv", r, back, v);
  memset(back, 0, sizeof back);
  struct msghdr rm = {0};
  rm.msg_iov = in;
  rm.msg_iovlen = 3;
  r = recvmsg(s[1], &rm, MSG_DONTWAIT);
  report("recvmsg", r, back, v);
  printf("recvmsg-flags %d\n", rm.msg_flags);
  return 0;
}
