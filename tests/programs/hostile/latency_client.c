// latency_client: a client that waits for its replies every way a program can (edge- and
// level-triggered epoll, poll, ppoll, select, a blocking recv with SO_RCVTIMEO, a
// non-blocking connect), against a loopback echo server it starts itself in a thread on
// 127.0.0.1:PORT. Under `latency` it tries to catch the shim out: a byte seen before its
// time, a readiness report followed by EAGAIN, a wait that returns 0 events before its
// timeout (a spurious wakeup), an edge-triggered socket whose edge never comes (a hang), a
// lost or reordered byte. The server echoes each request in two halves 30 ms apart, so a
// reply is two arrivals: an edge-triggered reader must get an edge for each.
//
//   latency_client PORT epoll-et|epoll-lt|poll|ppoll|select ROUNDS
//       "rounds=R bytes=B min_ms=X max_ms=Y spurious=S false_ready=F bad=K cpu_ms=C"
//   latency_client PORT rcvtimeo MS     blocking recv with SO_RCVTIMEO=MS:
//       "recv errno=E after_ms=X"
//   latency_client PORT connect-nb MS   non-blocking connect, poll POLLOUT (MS max):
//       "connect errno=E early=W writable_ms=X so_error=E"
//   latency_client PORT hold            blocking recv, no timeout; prints "holding" first:
//       "got N after_ms=X"
//       (with LATENCY_CLIENT_TRACE set, also one "rt_us=N" line per round: bench/latency.sh)
//   latency_client PORT eintr           blocking recv, interrupted after 300 ms by a SIGALRM
//                                       handler without SA_RESTART:
//       "recv errno=E after_ms=X alarms=N"
//   latency_client PORT serve           only the server (until stdin closes): "ready"
//   latency_client PORT udp-send N      N datagrams from a socket connected to 127.0.0.1:PORT
//                                       to one bound there, 50 at a time, each batch drained:
//       "sent=N ok=S received=M"
//   latency_client PORT udp-recv N      the same, the receiver connected to the sender (so
//                                       its receives have a peer an `addr` can match)
//   latency_client PORT udp-mmsg N      udp-recv, receiving with recvmmsg (8 at a time)
//   latency_client PORT download KIB    a server thread sends KIB KiB and closes; a blocking
//                                       recv loop takes it all: "bytes=B ms=T"
//   latency_client PORT upload KIB nb|block   KIB KiB to a server thread that reads it all;
//                                       non-blocking: poll POLLOUT then send, counting sends
//                                       that found no room right after poll said writable:
//       "bytes=B ms=T short=S false_ready=F"
//   latency_client PORT accept-nb MS    a non-blocking listener of its own: accept (EAGAIN),
//                                       a client connects, poll POLLIN (MS max), accept:
//       "accept first=E early=W readable_ms=X accepted=A"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_port;
static volatile sig_atomic_t g_alarms;
static void on_alarm(int sig) {
  (void)sig;
  g_alarms++;
}
static int g_listener = -1;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000L + ts.tv_nsec / 1000L;
}

static const char* ename(int err) {
  const char* n = strerrorname_np(err);
  return n ? n : "E?";
}

static struct sockaddr_in server_addr(void) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)g_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Echo, each request in two halves 30 ms apart; one client after another.
static void* serve(void* arg) {
  (void)arg;
  for (;;) {
    int c = accept(g_listener, NULL, NULL);
    if (c < 0) return NULL;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[4096];
    ssize_t n;
    while ((n = recv(c, buf, sizeof buf, 0)) > 0) {
      ssize_t half = n / 2;
      send(c, buf, (size_t)half, MSG_NOSIGNAL);
      usleep(30000);
      send(c, buf + half, (size_t)(n - half), MSG_NOSIGNAL);
    }
    close(c);
  }
}

// download: send g_bulk bytes and close; upload (g_bulk < 0): read until EOF.
static long g_bulk;
static void* bulk(void* arg) {
  (void)arg;
  int c = accept(g_listener, NULL, NULL);
  if (c < 0) return NULL;
  static char buf[65536];
  if (g_bulk >= 0) {
    for (long sent = 0; sent < g_bulk;) {
      size_t n = (size_t)(g_bulk - sent) < sizeof buf ? (size_t)(g_bulk - sent) : sizeof buf;
      ssize_t r = send(c, buf, n, MSG_NOSIGNAL);
      if (r <= 0) break;
      sent += r;
    }
  } else {
    while (recv(c, buf, sizeof buf, 0) > 0) {
    }
  }
  close(c);
  return NULL;
}

static int start_server(void) {
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(g_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = server_addr();
  if (bind(g_listener, (struct sockaddr*)&a, sizeof a) != 0 || listen(g_listener, 16) != 0) {
    printf("server errno=%s\n", ename(errno));
    return -1;
  }
  pthread_t t;
  pthread_create(&t, NULL, serve, NULL);
  pthread_detach(t);
  return 0;
}

static int dial(int nonblocking) {
  int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  struct sockaddr_in a = server_addr();
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0 && errno != EINPROGRESS) {
    printf("connect errno=%s\n", ename(errno));
    exit(1);
  }
  if (nonblocking) {  // wait until connected (a latency makes that later)
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 10000) != 1) {
      printf("connect timeout\n");
      exit(1);
    }
  }
  return fd;
}

// One waiter over the modes: 1 readable, 0 timed out, -1 error. `timeout_ms` as the call's.
static int wait_readable(const char* mode, int fd, int ep, int timeout_ms) {
  if (!strncmp(mode, "epoll", 5)) {
    struct epoll_event ev;
    int r = epoll_wait(ep, &ev, 1, timeout_ms);
    return r < 0 ? -1 : r;
  }
  if (!strcmp(mode, "poll")) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    return r < 0 ? -1 : (r > 0 && (p.revents & POLLIN)) ? 1 : r > 0 ? -1 : 0;
  }
  if (!strcmp(mode, "ppoll")) {
    struct pollfd p = {fd, POLLIN, 0};
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    int r = ppoll(&p, 1, &ts, NULL);
    return r < 0 ? -1 : (r > 0 && (p.revents & POLLIN)) ? 1 : r > 0 ? -1 : 0;
  }
  fd_set rd;
  FD_ZERO(&rd);
  FD_SET(fd, &rd);
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  int r = select(fd + 1, &rd, NULL, NULL, &tv);
  return r < 0 ? -1 : (r > 0 && FD_ISSET(fd, &rd)) ? 1 : 0;
}

static int rounds_mode(const char* mode, int rounds) {
  const int fd = dial(1);
  int ep = -1;
  const int et = !strcmp(mode, "epoll-et");
  if (!strncmp(mode, "epoll", 5)) {
    ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN | (et ? EPOLLET : 0), {.fd = fd}};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long min_ms = 1L << 30, max_ms = 0, bytes = 0;
  int spurious = 0, false_ready = 0, bad = 0;
  const int kWaitMs = 5000;
  for (int i = 0; i < rounds; ++i) {
    char req[64], got[128];
    int len = snprintf(req, sizeof req, "round-%03d-abcdefghijklmnopqrstuvwxyz", i);
    const long start = now_ms();
    const long start_us = now_us();
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) bad++;
    int have = 0;
    while (have < len) {
      const long before = now_ms();
      int w = wait_readable(mode, fd, ep, kWaitMs);
      if (w < 0) {
        printf("wait errno=%s\n", ename(errno));
        return 1;
      }
      if (w == 0) {
        if (now_ms() - before < kWaitMs - 50) spurious++;
        printf("hang at round %d have=%d\n", i, have);
        return 1;
      }
      int took = 0;
      for (;;) {  // edge-triggered: drain until EAGAIN; others: one read
        ssize_t n = recv(fd, got + have, sizeof got - (size_t)have, MSG_DONTWAIT);
        if (n < 0 && errno == EAGAIN) {
          if (!took) false_ready++;
          break;
        }
        if (n <= 0) {
          printf("recv r=%zd errno=%s\n", n, ename(errno));
          return 1;
        }
        have += (int)n;
        took = 1;
        if (!et) break;
      }
    }
    const long ms = now_ms() - start;
    if (getenv("LATENCY_CLIENT_TRACE")) printf("rt_us=%ld\n", now_us() - start_us);
    if (have != len || memcmp(got, req, (size_t)len) != 0) bad++;
    bytes += have;
    if (ms < min_ms) min_ms = ms;
    if (ms > max_ms) max_ms = ms;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);  // a wait that spins (a level-triggered set never quieted) burns CPU
  const long cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
                      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
  printf("rounds=%d bytes=%ld min_ms=%ld max_ms=%ld spurious=%d false_ready=%d bad=%d cpu_ms=%ld\n",
         rounds, bytes, min_ms, max_ms, spurious, false_ready, bad, cpu_ms);
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  g_port = atoi(argv[1]);
  const char* mode = argv[2];
  if (!strcmp(mode, "udp-send") || !strcmp(mode, "udp-recv") || !strcmp(mode, "udp-mmsg")) {
    const int n = argc > 3 ? atoi(argv[3]) : 1000;
    const int r = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    const int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = server_addr();
    struct sockaddr_in from;
    memset(&from, 0, sizeof from);
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t from_len = sizeof from;
    if (bind(r, (struct sockaddr*)&a, sizeof a) != 0 ||
        bind(s, (struct sockaddr*)&from, sizeof from) != 0 ||
        getsockname(s, (struct sockaddr*)&from, &from_len) != 0 ||
        connect(s, (struct sockaddr*)&a, sizeof a) != 0)
      return 1;
    const int mmsg = !strcmp(mode, "udp-mmsg");
    if (strcmp(mode, "udp-send") && connect(r, (struct sockaddr*)&from, sizeof from) != 0) return 1;
    int ok = 0, received = 0;
    for (int sent = 0; sent < n;) {
      for (int i = 0; i < 50 && sent < n; ++i, ++sent) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "d%05d", sent);
        ok += send(s, msg, (size_t)len, 0) == len;
      }
      usleep(5000);
      char buf[8][64];
      if (mmsg) {  // up to 8 at a time
        struct mmsghdr v[8];
        struct iovec io[8];
        memset(v, 0, sizeof v);
        for (int i = 0; i < 8; ++i) {
          io[i].iov_base = buf[i];
          io[i].iov_len = sizeof buf[i];
          v[i].msg_hdr.msg_iov = &io[i];
          v[i].msg_hdr.msg_iovlen = 1;
        }
        int got;
        while ((got = recvmmsg(r, v, 8, 0, NULL)) > 0) received += got;
      } else {
        while (recv(r, buf[0], sizeof buf[0], 0) > 0) received++;
      }
    }
    printf("sent=%d ok=%d received=%d\n", n, ok, received);
    return 0;
  }
  if (!strcmp(mode, "download") || !strcmp(mode, "upload")) {
    const long total = (argc > 3 ? atol(argv[3]) : 1024) * 1024;
    g_listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(g_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = server_addr();
    if (bind(g_listener, (struct sockaddr*)&a, sizeof a) != 0 || listen(g_listener, 4) != 0)
      return 1;
    pthread_t t;
    g_bulk = !strcmp(mode, "download") ? total : -1;
    pthread_create(&t, NULL, bulk, NULL);
    const int nb = argc > 4 && !strcmp(argv[4], "nb");
    const int fd = dial(nb);
    static char buf[65536];
    long bytes = 0;
    int shorts = 0, false_ready = 0;
    const long start = now_ms();
    if (g_bulk >= 0) {
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, 0)) > 0) bytes += n;
    } else {
      while (bytes < total) {
        size_t want = (size_t)(total - bytes) < sizeof buf ? (size_t)(total - bytes) : sizeof buf;
        if (nb) {
          struct pollfd p = {fd, POLLOUT, 0};
          if (poll(&p, 1, 10000) != 1) break;
        }
        ssize_t n = send(fd, buf, want, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN && nb) {
          false_ready++;
          continue;
        }
        if (n <= 0) break;
        if ((size_t)n < want) shorts++;
        bytes += n;
      }
      shutdown(fd, SHUT_WR);
    }
    const long ms = now_ms() - start;
    printf("bytes=%ld ms=%ld short=%d false_ready=%d\n", bytes, ms, shorts, false_ready);
    pthread_join(t, NULL);
    return 0;
  }
  if (!strcmp(mode, "accept-nb")) {
    const int ms = argc > 3 ? atoi(argv[3]) : 5000;
    const int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = server_addr();
    if (bind(l, (struct sockaddr*)&a, sizeof a) != 0 || listen(l, 16) != 0) return 1;
    const int first = accept(l, NULL, NULL) < 0 ? errno : 0;
    const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const long start = now_ms();
    connect(c, (struct sockaddr*)&a, sizeof a);
    usleep(20000);  // the connection is in the accept queue now
    struct pollfd p = {l, POLLIN, 0};
    const int early = poll(&p, 1, 0);
    p.revents = 0;
    const int r = poll(&p, 1, ms);
    const long readable = now_ms() - start;
    const int accepted = accept(l, NULL, NULL) >= 0;
    printf("accept first=%s early=%d readable_ms=%ld accepted=%d\n", first ? ename(first) : "none",
           early, r == 1 ? readable : -1L, accepted);
    return 0;
  }
  if (start_server() != 0) return 1;
  if (!strcmp(mode, "serve")) {
    printf("ready\n");
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }
  if (!strcmp(mode, "rcvtimeo")) {
    const int ms = argc > 3 ? atoi(argv[3]) : 1000;
    const int fd = dial(0);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    send(fd, "hello", 5, MSG_NOSIGNAL);
    char buf[16];
    const long start = now_ms();
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    printf("recv errno=%s after_ms=%ld\n", n < 0 ? ename(errno) : "none", now_ms() - start);
    return 0;
  }
  if (!strcmp(mode, "connect-nb")) {
    const int ms = argc > 3 ? atoi(argv[3]) : 5000;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = server_addr();
    const long start = now_ms();
    int r = connect(fd, (struct sockaddr*)&a, sizeof a);
    const int err = r == 0 ? 0 : errno;
    // Asked at once: a connect that completes only later is not writable yet.
    struct pollfd p = {fd, POLLOUT, 0};
    const int early = poll(&p, 1, 0);
    p.revents = 0;
    r = poll(&p, 1, ms);
    const long writable = now_ms() - start;
    int so_error = -1;
    socklen_t len = sizeof so_error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    printf("connect errno=%s early=%d writable_ms=%ld so_error=%d\n", err ? ename(err) : "none",
           early, r == 1 ? writable : -1L, so_error);
    return 0;
  }
  if (!strcmp(mode, "eintr")) {  // a SIGALRM handler without SA_RESTART after 300 ms
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    const int fd = dial(0);
    send(fd, "hello", 5, MSG_NOSIGNAL);
    struct itimerval it = {{0, 0}, {0, 300000}};
    setitimer(ITIMER_REAL, &it, NULL);
    char buf[16];
    const long start = now_ms();
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    printf("recv errno=%s after_ms=%ld alarms=%d\n", n < 0 ? ename(errno) : "none",
           now_ms() - start, (int)g_alarms);
    return 0;
  }
  if (!strcmp(mode, "hold")) {
    const int fd = dial(0);
    send(fd, "hello", 5, MSG_NOSIGNAL);
    printf("holding\n");
    char buf[16];
    const long start = now_ms();
    int got = 0;
    while (got < 5) {  // both halves
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got += (int)n;
    }
    printf("got %d after_ms=%ld\n", got, now_ms() - start);
    return 0;
  }
  return rounds_mode(mode, argc > 3 ? atoi(argv[3]) : 10);
}
