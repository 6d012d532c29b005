// A worker pool whose results come out in input order. Go: a fixed number
// of goroutines reading a jobs channel; order restored by giving each job
// its own one-slot result channel and reading those channels in order
// (a "queue of futures").
// The mistake it prevents: collecting results from a shared channel yields
// them in completion order, and sorting afterwards needs every result in
// memory before the first can be used.
#include <goro/goro.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "leakcheck.h"

using namespace std::chrono_literals;

struct Job {
  int n;
  goro::Chan<std::string> result;  // capacity 1: the worker never waits for the reader
};

int main() {
  goro::run([] {
    constexpr int kWorkers = 3, kJobs = 12;
    goro::Chan<Job> jobs(0);
    goro::Chan<goro::Chan<std::string>> in_order(kJobs);  // futures, in submission order

    goro::WaitGroup workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.go([jobs] {
        for (Job j : jobs) {
          goro::sleep_for(std::chrono::milliseconds((j.n * 7) % 5));  // uneven work: finishes out of order
          j.result.send("job " + std::to_string(j.n) + " -> " + std::to_string(j.n * j.n));
        }
      });
    }
    goro::go([jobs, in_order] {  // the submitter
      for (int n = 0; n < kJobs; ++n) {
        goro::Chan<std::string> r(1);
        in_order.send(r);
        jobs.send(Job{n, r});
      }
      jobs.close();
      in_order.close();
    });
    for (goro::Chan<std::string> r : in_order) std::printf("%s\n", r.recv()->c_str());
    workers.wait();
  });
  return report_leaks();
}
