/* bench/net/epoll_echo.c: the physical limit for bench/net/compare's echo
 * rows: one thread, one epoll set, non-blocking sockets, no runtime at all.
 *
 *   epoll_echo [address]      (default 127.0.0.1:9000; port 0 picks one)
 *
 * Prints "listening on <address>" when ready, like the example servers.
 * Level-triggered: each readable connection is read once per wake-up (up to
 * 4 KiB) and what was read is written back at once; a short write (the
 * client is not reading) keeps the rest and waits for EPOLLOUT, so no byte
 * is lost and the loop never blocks. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kBuf = 4096, kEvents = 256 };

struct conn {
  int fd;
  size_t pending, off; /* bytes read but not yet written back */
  char buf[kBuf];
};

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int listen_on(const char* address) {
  char host[256];
  const char* colon = strrchr(address, ':');
  if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
    fprintf(stderr, "epoll_echo: bad address %s\n", address);
    exit(2);
  }
  memcpy(host, address, (size_t)(colon - address));
  host[colon - address] = '\0';
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "epoll_echo: bad host %s\n", host);
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) != 0) die("bind");
  if (listen(fd, 4096) != 0) die("listen");
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr*)&sa, &len);
  char shown[64];
  inet_ntop(AF_INET, &sa.sin_addr, shown, sizeof shown);
  printf("listening on %s:%u\n", shown, ntohs(sa.sin_port));
  fflush(stdout);
  return fd;
}

static void close_conn(int ep, struct conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Writes what is pending; returns -1 on a closed connection, else 0 (with
 * c->pending > 0 when the socket's buffer is full). */
static int flush(struct conn* c) {
  while (c->pending > 0) {
    ssize_t n = write(c->fd, c->buf + c->off, c->pending);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) return -1;
    c->off += (size_t)n;
    c->pending -= (size_t)n;
  }
  c->off = 0;
  return 0;
}

int main(int argc, char** argv) {
  int lfd = listen_on(argc > 1 ? argv[1] : "127.0.0.1:9000");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data = {.ptr = NULL}};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) die("epoll_ctl");
  struct epoll_event evs[kEvents];
  for (;;) {
    int n = epoll_wait(ep, evs, kEvents, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; ++i) {
      struct conn* c = evs[i].data.ptr;
      if (c == NULL) { /* the listener: take every pending connection */
        for (;;) {
          int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = malloc(sizeof *c);
          if (c == NULL) {
            close(fd);
            continue;
          }
          c->fd = fd;
          c->pending = c->off = 0;
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data = {.ptr = c}};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
            close(fd);
            free(c);
          }
        }
        continue;
      }
      if (c->pending > 0) { /* waiting for EPOLLOUT */
        if (flush(c) != 0) {
          close_conn(ep, c);
          continue;
        }
        if (c->pending == 0) {
          struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data = {.ptr = c}};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        }
        continue;
      }
      ssize_t got = read(c->fd, c->buf, kBuf);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        close_conn(ep, c);
        continue;
      }
      c->pending = (size_t)got;
      c->off = 0;
      if (flush(c) != 0) {
        close_conn(ep, c);
        continue;
      }
      if (c->pending > 0) {
        struct epoll_event cev = {.events = EPOLLOUT | EPOLLRDHUP, .data = {.ptr = c}};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
      }
    }
  }
}
