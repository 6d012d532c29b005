// tests/nats/server.h: a real nats-server (Debian's package) for a test:
// started on a free loopback port with its own store directory, stopped
// (and its directory removed) by the destructor. Also a 3-node cluster.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace goro_test {

// A port nobody listens on now (the kernel's pick; the server binds it a
// moment later: a race another process could win, so start() retries).
inline int free_port() {
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

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

inline bool have_nats_server() { return std::system("command -v nats-server >/dev/null 2>&1") == 0; }

class NatsServer {
 public:
  // jetstream: with a file store in its own directory.
  explicit NatsServer(bool jetstream = false, int port = 0, std::string dir = {})
      : js_(jetstream), port_(port), fixed_port_(port != 0) {
    if (dir.empty()) {
      char tmpl[] = "/tmp/goro-nats-XXXXXX";
      dir_ = ::mkdtemp(tmpl);
      own_dir_ = true;
    } else {
      dir_ = std::move(dir);
    }
  }
  NatsServer(const NatsServer&) = delete;
  ~NatsServer() {
    stop();
    if (own_dir_) std::filesystem::remove_all(dir_);
  }

  void set_cluster(std::string name, int cluster_port, std::vector<int> route_ports, std::string server_name) {
    cluster_name_ = std::move(name);
    cluster_port_ = cluster_port;
    routes_ = std::move(route_ports);
    server_name_ = std::move(server_name);
  }

  // Starts (or restarts, on the same port and store) the server and waits
  // until it accepts connections. False if it could not.
  bool start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (!fixed_port_ && (port_ == 0 || attempt > 0)) {
        port_ = free_port();
      } else if (attempt > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the old process's port
      }
      std::vector<std::string> args{"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port_)};
      if (js_) {
        args.insert(args.end(), {"-js", "-sd", dir_ + "/store"});
      }
      if (!server_name_.empty()) args.insert(args.end(), {"-n", server_name_});
      if (cluster_port_ != 0) {
        args.insert(args.end(), {"--cluster_name", cluster_name_, "--cluster",
                                 "nats://127.0.0.1:" + std::to_string(cluster_port_)});
        std::string routes;
        for (int r : routes_) routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(r);
        if (!routes.empty()) args.insert(args.end(), {"--routes", routes});
      }
      std::string log = dir_ + "/server.log";
      pid_ = ::fork();
      if (pid_ == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp("nats-server", argv.data());
        ::_exit(127);
      }
      for (int i = 0; i < 500; ++i) {  // up to 10 s
        if (port_open(port_)) {
          fixed_port_ = true;  // a restart comes back on this port
          return true;
        }
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      stop();
    }
    return false;
  }

  // SIGTERM (a clean shutdown) or SIGKILL; waits for the process.
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  void set_port(int p) {
    port_ = p;
    fixed_port_ = true;
  }

 private:
  bool js_;
  int port_;
  bool fixed_port_;
  std::string dir_;
  bool own_dir_ = false;
  pid_t pid_ = -1;
  std::string cluster_name_, server_name_;
  int cluster_port_ = 0;
  std::vector<int> routes_;
};

// Three JetStream servers in one cluster on loopback.
class NatsCluster {
 public:
  NatsCluster() {
    int client[3], route[3];
    for (int i = 0; i < 3; ++i) {
      client[i] = free_port();
      route[i] = free_port();
    }
    for (int i = 0; i < 3; ++i) {
      nodes_.push_back(std::make_unique<NatsServer>(true));
      nodes_[i]->set_port(client[i]);
      std::vector<int> others;
      for (int j = 0; j < 3; ++j)
        if (j != i) others.push_back(route[j]);
      nodes_[i]->set_cluster("goro-test", route[i], others, "n" + std::to_string(i + 1));
    }
  }
  bool start() {
    for (auto& n : nodes_)
      if (!n->start()) return false;
    return true;
  }
  NatsServer& node(int i) { return *nodes_[i]; }
  std::string urls() const {
    std::string u;
    for (auto& n : nodes_) u += (u.empty() ? "" : ",") + n->url();
    return u;
  }

 private:
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

}  // namespace goro_test
