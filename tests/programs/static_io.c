/* static_io: a statically linked C program (built with -static) for the seccomp backend's tests
 * (tests/integration/seccomp_test.cpp): no loader, so no preload can reach it. Every result
 * is the program's own line on stdout, from the errno its libc saw.
 *   static_io file PATH        write "hello\n" to PATH, then fsync: "write: ok|ERR", "fsync: ..."
 *   static_io connect PORT     connect to 127.0.0.1:PORT: "connect: ok|ERR"
 *   static_io writes PATH N    N one-byte writes to PATH: "write I: ok|ERR" each
 *   static_io loop PATH        per line on stdin: a write and an fsync of PATH, then
 *                              "fsync I: ok|ERR" (the test steers faults live in between)
 *   static_io fs DIR           create DIR/a, rename it to DIR/b, unlink DIR/b:
 *                              "rename: ok|ERR", "unlink: ok|ERR"
 *   static_io fsloop DIR       per line on stdin: create DIR/x, rename it to DIR/y, then
 *                              "rename I: ok|ERR", and unlink DIR/x and DIR/y
 *   static_io echo PORT        connect to 127.0.0.1:PORT, send "ping\n", read the answer:
 *                              "send: ok|ERR", "read: N bytes|ERR", then one more read
 *   static_io bhconnect PORT   a non-blocking connect to 127.0.0.1:PORT polled for 500 ms:
 *                              "nonblocking: ERR, poll: timeout|ready (SO_ERROR)"; then a
 *                              blocking one with SO_SNDTIMEO 500 ms: "blocking: ok|ERR"
 *   static_io syncpipe         fsync of a pipe, which Linux refuses (EINVAL): "fsync: ok|ERR"
 *   static_io rw PATH          write "0123456789", write "ABC", pwrite "xyz" at 20 to PATH,
 *                              then pread 64 bytes at 0 and read 64 from the start: the counts
 *                              ("write: N"...), and what was read ("read: N TEXT", NUL as '.') */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char* result(int rc) { return rc < 0 ? strerror(errno) : "ok"; }

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "file") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      printf("open: %s\n", strerror(errno));
      return 1;
    }
    printf("write: %s\n", result((int)write(fd, "hello\n", 6)));
    printf("fsync: %s\n", result(fsync(fd)));
    close(fd);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "connect") == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    printf("connect: %s\n", result(connect(s, (struct sockaddr*)&sa, sizeof sa)));
    close(s);
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "writes") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int n = atoi(argv[3]);
    for (int i = 0; i < n && i < 10000; ++i)
      printf("write %d: %s\n", i, result((int)write(fd, "x", 1)));
    close(fd);
    return 0;
  }
  if (argc >= 3 && (strcmp(argv[1], "fs") == 0 || strcmp(argv[1], "fsloop") == 0)) {
    char from[4096], to[4096];
    const int loop = strcmp(argv[1], "fsloop") == 0;
    snprintf(from, sizeof from, "%s/%s", argv[2], loop ? "x" : "a");
    snprintf(to, sizeof to, "%s/%s", argv[2], loop ? "y" : "b");
    char line[64];
    for (int i = 0; i < 1000 && (!loop || fgets(line, sizeof line, stdin) != NULL); ++i) {
      close(open(from, O_WRONLY | O_CREAT | O_TRUNC, 0644));
      if (!loop) {
        printf("rename: %s\n", result(rename(from, to)));
        printf("unlink: %s\n", result(unlink(to)));
        return 0;
      }
      printf("rename %d: %s\n", i, result(rename(from, to)));
      unlink(from);
      unlink(to);
    }
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "loop") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char line[64];
    for (int i = 0; i < 1000 && fgets(line, sizeof line, stdin) != NULL; ++i) {
      if (write(fd, "x", 1) < 0) perror("write");
      printf("fsync %d: %s\n", i, result(fsync(fd)));
    }
    close(fd);
    return 0;
  }
  if (argc >= 3 && (strcmp(argv[1], "echo") == 0 || strcmp(argv[1], "bhconnect") == 0)) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (strcmp(argv[1], "echo") == 0) {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(s, (struct sockaddr*)&sa, sizeof sa) != 0) {
        printf("connect: %s\n", strerror(errno));
        return 1;
      }
      printf("send: %s\n", result((int)write(s, "ping\n", 5)));
      for (int i = 0; i < 2; ++i) {
        char buf[64];
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0)
          printf("read: %s\n", strerror(errno));
        else
          printf("read: %d bytes\n", (int)n);
      }
      close(s);
      return 0;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(s, (struct sockaddr*)&sa, sizeof sa);
    printf("nonblocking: %s, ", result(rc));
    struct pollfd p = {s, POLLOUT, 0};
    if (poll(&p, 1, 500) == 0) {
      printf("poll: timeout\n");
    } else {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      printf("poll: ready (%s)\n", err ? strerror(err) : "connected");
    }
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {0, 500000};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    printf("blocking: %s\n", result(connect(s, (struct sockaddr*)&sa, sizeof sa)));
    close(s);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "rw") == 0) {
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    printf("write: %d\n", (int)write(fd, "0123456789", 10));
    printf("write: %d\n", (int)write(fd, "ABC", 3));
    printf("pwrite: %d\n", (int)pwrite(fd, "xyz", 3, 20));
    char buf[64];
    printf("pread: %d\n", (int)pread(fd, buf, sizeof buf, 0));
    lseek(fd, 0, SEEK_SET);
    int n = (int)read(fd, buf, sizeof buf);
    for (int i = 0; i < n; ++i)
      if (buf[i] == '\0') buf[i] = '.';
    printf("read: %d %.*s\n", n, n > 0 ? n : 0, buf);
    close(fd);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "syncpipe") == 0) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    printf("fsync: %s\n", result(fsync(fds[1])));
    return 0;
  }
  fprintf(stderr,
          "usage: static_io file PATH | connect PORT | writes PATH N | loop PATH | fs DIR | "
          "fsloop DIR | echo PORT | bhconnect PORT | syncpipe | rw PATH\n");
  return 2;
}
