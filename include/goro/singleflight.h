// goro/singleflight.h: golang.org/x/sync/singleflight: duplicate calls
// suppressed. While a call for a key is in flight, other calls for the same
// key wait for it and share its result instead of running their own.
//
//  - call(key, fn): runs fn() (returning T) unless a call for key is in
//    flight, in which case it waits for that one. Returns {value, shared}:
//    `shared` is true when the value went to more than one caller. If fn
//    throws, the exception is rethrown to the caller that ran it and to
//    every caller that waited for it.
//  - call_chan(key, fn): the same without waiting: the result arrives on a
//    channel (capacity 1, never blocks the call) as a ChanResult, whose
//    `error` holds fn's exception, if any. A call it starts runs in a new
//    goroutine.
//  - forget(key): later calls for key run fn anew instead of waiting for
//    the one in flight (which still delivers to its own waiters).
// Callable from goroutines and plain threads: a waiting goroutine parks.
// A SingleFlight must outlive the calls in flight on it.
#pragma once

#include <goro/chan.h>
#include <goro/detail/raw_mutex.h>
#include <goro/runtime.h>
#include <goro/sync.h>

#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace goro {

template <class Key, class T, class Hash = std::hash<Key>, class KeyEqual = std::equal_to<Key>>
class SingleFlight {
 public:
  struct Result {
    T value;
    bool shared = false;
  };
  struct ChanResult {
    std::optional<T> value;  // empty when fn threw
    std::exception_ptr error;
    bool shared = false;
  };

  SingleFlight() = default;
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;

  template <class F>
  Result call(const Key& key, F&& fn) {
    std::unique_lock<detail::RawMutex> lk(mu_);
    if (auto it = calls_.find(key); it != calls_.end()) {
      std::shared_ptr<Call> c = it->second;
      ++c->dups;
      lk.unlock();
      c->done.wait();
      if (c->error) std::rethrow_exception(c->error);
      return Result{*c->value, true};
    }
    auto c = std::make_shared<Call>();
    c->done.add(1);
    calls_.emplace(key, c);
    lk.unlock();
    bool shared = run(c, key, fn);
    if (c->error) std::rethrow_exception(c->error);
    return Result{*c->value, shared};
  }

  template <class F>
  Chan<ChanResult> call_chan(const Key& key, F&& fn) {
    Chan<ChanResult> out(1);
    std::unique_lock<detail::RawMutex> lk(mu_);
    if (auto it = calls_.find(key); it != calls_.end()) {
      ++it->second->dups;
      it->second->chans.push_back(out);
      return out;
    }
    auto c = std::make_shared<Call>();
    c->done.add(1);
    c->chans.push_back(out);
    calls_.emplace(key, c);
    lk.unlock();
    ::goro::go([this, c, key, fn = std::decay_t<F>(std::forward<F>(fn))]() mutable { run(c, key, fn); });
    return out;
  }

  void forget(const Key& key) {
    std::lock_guard<detail::RawMutex> lk(mu_);
    calls_.erase(key);
  }

 private:
  struct Call {
    WaitGroup done;               // released once value/error are set
    std::optional<T> value;       // written before done is released, then read-only
    std::exception_ptr error;     // likewise
    int dups = 0;                 // mu_
    std::vector<Chan<ChanResult>> chans;  // mu_
  };

  // Runs fn for c, publishes the outcome to waiters and channels, and drops
  // the key (unless forgotten and reused meanwhile). Returns `shared`.
  template <class F>
  bool run(const std::shared_ptr<Call>& c, const Key& key, F& fn) {
    try {
      c->value.emplace(fn());
    } catch (...) {
      c->error = std::current_exception();
    }
    std::vector<Chan<ChanResult>> chans;
    bool shared = false;
    {
      std::lock_guard<detail::RawMutex> lk(mu_);
      shared = c->dups > 0;
      chans = std::move(c->chans);
      if (auto it = calls_.find(key); it != calls_.end() && it->second == c) calls_.erase(it);
    }
    c->done.done();  // after the last write to value/error
    for (auto& ch : chans) {
      ChanResult r{c->value, c->error, shared};
      ch.try_send(r);  // capacity 1, one send each: never full
    }
    return shared;
  }

  detail::RawMutex mu_;
  std::unordered_map<Key, std::shared_ptr<Call>, Hash, KeyEqual> calls_;  // mu_
};

}  // namespace goro
