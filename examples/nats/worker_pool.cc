// examples/nats/worker_pool.cc: a distributed worker pool over NATS.
//
// A producer process hands jobs to worker processes through a queue group:
// NATS gives each job to one member, and the result comes back by
// request/reply. Every process is a goro program: the producer keeps many
// requests in flight from goroutines (each parks on its reply), and a
// worker answers each job in a goroutine of its own.
//
//   worker_pool worker <url> <name>          one member of queue group "pool"
//   worker_pool producer <url> <jobs>        sends the jobs, checks every answer
//   worker_pool demo [workers] [jobs]        all of it on this machine: starts a
//                                            nats-server on a free port, the
//                                            workers as processes, then the producer
//
// On several hosts: run nats-server (or a cluster) where all can reach it,
// `worker_pool worker nats://host:4222 w1` on each worker host, and the
// producer anywhere (docs/SCALE_OUT.md).
#include <goro/goro.h>
#include <goro/nats.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace nats = goro::nats;
using namespace std::chrono_literals;

namespace {

// The work: the number of primes below n (a job of a few milliseconds).
std::uint64_t primes_below(std::uint64_t n) {
  std::uint64_t count = 0;
  for (std::uint64_t i = 2; i < n; ++i) {
    bool prime = true;
    for (std::uint64_t d = 2; d * d <= i; ++d)
      if (i % d == 0) {
        prime = false;
        break;
      }
    count += prime;
  }
  return count;
}

std::uint64_t parse(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

int worker(const std::string& url, const std::string& name) {
  return goro::run([&] {
    auto nc = nats::connect(url, nats::Options{.name = name});
    auto jobs = nc.subscribe("jobs", {.queue = "pool"});
    auto quit = nc.subscribe("pool.quit");
    nc.flush();
    std::printf("%s ready\n", name.c_str());
    std::fflush(stdout);
    goro::WaitGroup wg;
    bool done = false;
    while (!done) {
      goro::select(
          goro::recv(jobs.messages(), [&](std::optional<nats::Msg> m) {
            if (!m) return;
            wg.go([m = *m, &name] {
              // A blocking computation: not a scheduling point, so it runs in
              // goro::blocking and the worker thread's other goroutines move on.
              std::uint64_t r = goro::blocking([&] { return primes_below(parse(m.data())); });
              m.respond(name + " " + std::to_string(r));
            });
          }),
          goro::recv(quit.messages(), [&](auto) { done = true; }));
    }
    wg.wait();
    nc.close();
    return 0;
  });
}

int producer(const std::string& url, int njobs) {
  return goro::run([&] {
    auto nc = nats::connect(url);
    std::map<std::string, int> per_worker;
    goro::Mutex mu;
    goro::Chan<std::monostate> slots(32);  // at most 32 jobs in flight
    goro::WaitGroup wg;
    int wrong = 0;
    auto t0 = goro::Clock::now();
    for (int i = 0; i < njobs; ++i) {
      slots.send({});
      std::uint64_t n = 20000 + static_cast<std::uint64_t>(i % 7) * 5000;
      wg.go([&, n] {
        auto [ctx, cancel] = goro::with_timeout(goro::Context(), 10s);
        std::error_code ec;
        nats::Msg reply = nc.request("jobs", std::to_string(n), ctx, ec);
        cancel();
        std::lock_guard lk(mu);
        if (ec) {
          std::fprintf(stderr, "job %llu: %s\n", static_cast<unsigned long long>(n), ec.message().c_str());
          ++wrong;
        } else {
          std::string_view body = reply.data();
          auto sp = body.find(' ');
          ++per_worker[std::string(body.substr(0, sp))];
          if (parse(body.substr(sp + 1)) != primes_below(n)) ++wrong;
        }
        slots.recv();
      });
    }
    wg.wait();
    double secs = std::chrono::duration<double>(goro::Clock::now() - t0).count();
    std::printf("%d jobs in %.2f s, %d wrong or failed; per worker:", njobs, secs, wrong);
    for (auto& [w, c] : per_worker) std::printf(" %s=%d", w.c_str(), c);
    std::printf("\n");
    nc.publish("pool.quit", "");
    nc.flush();
    return wrong == 0 ? 0 : 1;
  });
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

pid_t spawn(std::vector<std::string> args, bool quiet = false) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (quiet) {  // the server's log
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Every part is its own process (fork and exec only: this process never
// starts goro or cnats threads, which a fork would not carry over).
int demo(const char* self, int nworkers, int njobs) {
  int port = free_port();
  std::string url = "nats://127.0.0.1:" + std::to_string(port);
  pid_t server = spawn({"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port)}, true);
  for (int i = 0; i < 250 && !port_open(port); ++i) ::usleep(20000);
  if (!port_open(port)) {
    std::fprintf(stderr, "nats-server did not start (is it installed? apt-get install nats-server)\n");
    ::kill(server, SIGTERM);
    ::waitpid(server, nullptr, 0);
    return 1;
  }
  std::printf("nats-server on %s; %d worker processes, %d jobs\n", url.c_str(), nworkers, njobs);
  std::fflush(stdout);
  std::vector<pid_t> workers;
  for (int i = 0; i < nworkers; ++i) workers.push_back(spawn({self, "worker", url, "w" + std::to_string(i + 1)}));
  ::sleep(1);  // the workers join the queue group (each prints "ready")
  pid_t prod = spawn({self, "producer", url, std::to_string(njobs)});
  int st = 0;
  ::waitpid(prod, &st, 0);
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
  for (pid_t w : workers) ::waitpid(w, nullptr, 0);  // they leave on the producer's "pool.quit"
  ::kill(server, SIGTERM);
  ::waitpid(server, nullptr, 0);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "demo";
  if (mode == "worker" && argc == 4) return worker(argv[2], argv[3]);
  if (mode == "producer" && argc == 4) return producer(argv[2], std::atoi(argv[3]));
  if (mode == "demo") return demo(argv[0], argc > 2 ? std::atoi(argv[2]) : 3, argc > 3 ? std::atoi(argv[3]) : 300);
  std::fprintf(stderr, "usage: worker_pool worker <url> <name> | producer <url> <jobs> | demo [workers] [jobs]\n");
  return 64;
}
