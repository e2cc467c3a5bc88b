/* call_loop CALL N: N calls of one interposable function and nothing else, for instruction
 * counts under `valgrind --tool=callgrind` (bench/calls.sh). Run at two values of N: the
 * difference in total instructions divided by the difference in N is the cost of one
 * iteration (loop, PLT, any preloaded wrapper, libc), with start-up and exit cancelled.
 *
 *   write          1-byte write() to /dev/null
 *   pwrite         1-byte pwrite() to /dev/null at offset 0
 *   read           1-byte read() from /dev/zero
 *   fsync          fsync() of an empty, unlinked file in /dev/shm (or /tmp)
 *   malloc         malloc(64) + free
 *   open-close     open("/dev/null") + close
 *   connect-udp    connect() of one UDP socket to 127.0.0.1:PORT (a bound UDP socket)
 *   write-udp      1-byte write() on a UDP socket connected to 127.0.0.1:PORT
 *   connect-tcp    socket + connect + close (SO_LINGER 0) to a 127.0.0.1 listener, which a
 *                  helper thread accepts and closes: the count includes the helper's work
 *   gai-numeric    getaddrinfo("127.0.0.1", AI_NUMERICHOST) + freeaddrinfo
 *   gai-localhost  getaddrinfo("localhost"), answered from /etc/hosts, + freeaddrinfo
 *
 * Failures inside the loop are counted, not fatal: under a fault policy some calls fail by
 * design. The setup (open, bind, listen) must succeed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

/* A socket bound to 127.0.0.1 on a kernel-chosen port (in *addr), listening if TCP. */
static int loopback_socket(int type, struct sockaddr_in* addr) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) die("call_loop: socket");
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (bind(fd, (struct sockaddr*)addr, sizeof *addr) != 0) die("call_loop: bind");
  if (getsockname(fd, (struct sockaddr*)addr, &len) != 0) die("call_loop: getsockname");
  if (type == SOCK_STREAM && listen(fd, 4096) != 0) die("call_loop: listen");
  return fd;
}

struct listener {
  int fd;
  int stop; /* set (atomically) by main before it shuts fd down */
};

/* Drains the accept queue (a full queue would make connect wait for SYN retransmits) until
 * main shuts the listener down. */
static void* acceptor(void* arg) {
  struct listener* l = arg;
  for (;;) {
    int c = accept(l->fd, NULL, NULL);
    if (c >= 0)
      close(c);
    else if (__atomic_load_n(&l->stop, __ATOMIC_RELAXED))
      return NULL;
  }
}

static long long lookups(const char* node, int flags, long long n) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  long long failed = 0;
  for (long long i = 0; i < n; ++i) {
    struct addrinfo* res = NULL;
    if (getaddrinfo(node, "6379", &hints, &res) == 0)
      freeaddrinfo(res);
    else
      ++failed;
  }
  return failed;
}

int main(int argc, char** argv) {
  char* end = NULL;
  long long n = argc == 3 ? strtoll(argv[2], &end, 10) : -1;
  if (argc != 3 || !end || *end || n < 0) {
    fprintf(
        stderr,
        "usage: %s "
        "write|pwrite|read|fsync|malloc|open-close|connect-udp|write-udp|connect-tcp|gai-numeric|"
        "gai-localhost N\n",
        argv[0]);
    return 2;
  }
  const char* call = argv[1];
  long long failed = 0;
  if (strcmp(call, "write") == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) die("call_loop: /dev/null");
    const char byte = 'x';
    for (long long i = 0; i < n; ++i) failed += write(fd, &byte, 1) < 0;
    close(fd);
  } else if (strcmp(call, "pwrite") == 0) {
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) die("call_loop: /dev/null");
    const char byte = 'x';
    for (long long i = 0; i < n; ++i) failed += pwrite(fd, &byte, 1, 0) < 0;
    close(fd);
  } else if (strcmp(call, "read") == 0) {
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0) die("call_loop: /dev/zero");
    char byte;
    for (long long i = 0; i < n; ++i) failed += read(fd, &byte, 1) < 0;
    close(fd);
  } else if (strcmp(call, "fsync") == 0) {
    char path[] = "/dev/shm/faultline-call-loop-XXXXXX";
    char fallback[] = "/tmp/faultline-call-loop-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
      unlink(path);
    } else {
      fd = mkstemp(fallback);
      if (fd < 0) die("call_loop: mkstemp");
      unlink(fallback);
    }
    for (long long i = 0; i < n; ++i) failed += fsync(fd) != 0;
    close(fd);
  } else if (strcmp(call, "malloc") == 0) {
    for (long long i = 0; i < n; ++i) {
      /* volatile: the compiler may not pair the malloc with the free and remove both. */
      void* volatile p = malloc(64);
      failed += p == NULL;
      free(p);
    }
  } else if (strcmp(call, "open-close") == 0) {
    for (long long i = 0; i < n; ++i) {
      int fd = open("/dev/null", O_RDONLY);
      failed += fd < 0;
      if (fd >= 0) close(fd);
    }
  } else if (strcmp(call, "connect-udp") == 0) {
    struct sockaddr_in peer;
    int receiver = loopback_socket(SOCK_DGRAM, &peer);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("call_loop: socket");
    for (long long i = 0; i < n; ++i)
      failed += connect(fd, (struct sockaddr*)&peer, sizeof peer) != 0;
    close(fd);
    close(receiver);
  } else if (strcmp(call, "write-udp") == 0) {
    struct sockaddr_in peer;
    int receiver = loopback_socket(SOCK_DGRAM, &peer);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    /* Under a p=0.001 policy this setup connect may be refused: try again (bounded). */
    int connected = -1;
    for (int tries = 0; fd >= 0 && connected != 0 && tries < 100; ++tries)
      connected = connect(fd, (struct sockaddr*)&peer, sizeof peer);
    if (connected != 0) die("call_loop: connect");
    const char byte = 'x';
    for (long long i = 0; i < n; ++i) failed += write(fd, &byte, 1) < 0;
    close(fd);
    close(receiver);
  } else if (strcmp(call, "connect-tcp") == 0) {
    struct sockaddr_in peer;
    struct listener l = {loopback_socket(SOCK_STREAM, &peer), 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, acceptor, &l) != 0) die("call_loop: pthread_create");
    const struct linger abort_on_close = {1, 0};
    for (long long i = 0; i < n; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
      failed += connect(fd, (struct sockaddr*)&peer, sizeof peer) != 0;
      close(fd);
    }
    __atomic_store_n(&l.stop, 1, __ATOMIC_RELAXED);
    shutdown(l.fd, SHUT_RDWR);
    pthread_join(thread, NULL);
    close(l.fd);
  } else if (strcmp(call, "gai-numeric") == 0) {
    failed = lookups("127.0.0.1", AI_NUMERICHOST | AI_NUMERICSERV, n);
  } else if (strcmp(call, "gai-localhost") == 0) {
    failed = lookups("localhost", AI_NUMERICSERV, n);
  } else {
    fprintf(stderr, "call_loop: unknown call '%s'\n", call);
    return 2;
  }
  /* Printed so the loop has an observable result; failures are expected under a policy. */
  printf("%s: %lld calls, %lld failed\n", call, n, failed);
  return 0;
}
