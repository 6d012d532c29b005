/* bench/nats/cnats_bench.c: the same three shapes as goro_nats_bench.cc,
 * with cnats called directly from C threads (the floor goro::nats adds to). */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static natsConnection* conn(const char* url) {
  natsConnection* nc = NULL;
  if (natsConnection_ConnectTo(&nc, url) != NATS_OK) {
    fprintf(stderr, "connect failed\n");
    exit(1);
  }
  return nc;
}

static volatile long q_got;
static long q_n;
static double q_first, q_last;

static void on_queue(natsConnection* nc, natsSubscription* sub, natsMsg* m, void* c) {
  (void)nc; (void)sub; (void)c;
  long g = ++q_got;
  if (g == 1) q_first = now_s();
  if (g == q_n) q_last = now_s();
  natsMsg_Destroy(m);
}

static void on_req(natsConnection* nc, natsSubscription* sub, natsMsg* m, void* c) {
  (void)sub; (void)c;
  natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
  natsMsg_Destroy(m);
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  if (argc < 4) return 64;
  const char* mode = argv[1];
  const char* url = argv[2];
  long n = atol(argv[3]);
  int size = argc > 4 ? atoi(argv[4]) : 16;
  char* body = malloc(size + 1);
  memset(body, 'x', size);
  if (strcmp(mode, "pub") == 0) {
    natsConnection* nc = conn(url);
    double t0 = now_s();
    for (long i = 0; i < n; ++i) natsConnection_Publish(nc, "bench.pub", body, size);
    natsConnection_Flush(nc);
    printf("pub_rate=%.0f\n", n / (now_s() - t0));
    natsConnection_Destroy(nc);
    return 0;
  }
  if (strcmp(mode, "queue") == 0) {
    natsConnection* snc = conn(url);
    natsSubscription* sub = NULL;
    q_n = n;
    natsConnection_QueueSubscribe(&sub, snc, "bench.q", "q", on_queue, NULL);
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(snc);
    natsConnection* pub = conn(url);
    for (long i = 0; i < n; ++i) natsConnection_Publish(pub, "bench.q", body, size);
    natsConnection_Flush(pub);
    while (q_got < n) nats_Sleep(1);
    printf("queue_rate=%.0f\n", (n - 1) / (q_last - q_first));
    return 0;
  }
  if (strcmp(mode, "req") == 0) {
    natsConnection* rnc = conn(url);
    natsSubscription* sub = NULL;
    natsConnection_Subscribe(&sub, rnc, "bench.req", on_req, NULL);
    natsConnection_Flush(rnc);
    natsConnection* nc = conn(url);
    double* us = malloc(sizeof(double) * n);
    for (long i = 0; i < n; ++i) {
      natsMsg* reply = NULL;
      double t0 = now_s();
      if (natsConnection_Request(&reply, nc, "bench.req", body, size, 5000) != NATS_OK) return 1;
      us[i] = (now_s() - t0) * 1e6;
      natsMsg_Destroy(reply);
    }
    qsort(us, n, sizeof(double), cmp);
    printf("req_p50=%.1f req_p99=%.1f\n", us[n / 2], us[n * 99 / 100]);
    return 0;
  }
  return 64;
}
