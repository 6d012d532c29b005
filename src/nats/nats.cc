// src/nats/nats.cc: goro::nats, a goro-shaped wrapper of cnats (the official
// C client). docs/SCALE_OUT.md is the user's guide; this comment is the
// design.
//
// I/O on goroutines. cnats is driven through its external event-loop API
// (natsOptions_SetEventLoop) with "send as soon as possible": it runs no
// reader and no flusher thread. Two goroutines per connection serve the
// socket through goro::net::RawConn (the netpoller): the reader parks until
// the socket is readable and calls natsConnection_ProcessReadEvent, which
// parses and queues each message in its subscription; the writer wakes when
// cnats asks for a write event (its first publish after the buffer was
// emptied) and calls natsConnection_ProcessWriteEvent, so everything
// published before the writer runs goes out in one write, and a request's
// bytes leave without the 1 ms cnats's flusher waits for more. cnats's
// callbacks for the loop (ev_*) run with the connection's lock held: they
// record state and wake a goroutine, nothing else.
//
// Subscriptions are synchronous in cnats's terms (no delivery thread).
// cnats's message filter, on the reader, takes each message of a
// subscription that is the only one of its connection to match its
// subject, onto that subscription's backlog (see take_direct); the others
// cnats queues. After each read the reader wakes the pump goroutine of
// each subscription with messages waiting (see dispatch), which moves them
// into the subscription's channel in order. So a message goes from the
// socket to its consumer on goroutines only; replies to requests reach
// their waiters from the reader itself (see deliver_reply). Threads remain
// where cnats needs them: cnats's timer, reconnect and JetStream
// publish-ack threads, and one thread of ours per JetStream pull
// subscription (the fetcher). Those threads hand results to goroutines
// through goro channels as plain threads.
//
// The rule. No cnats call that can block its thread runs on a goro worker
// as a plain call. Every cnats call that takes the connection's lock
// (publish, subscribe, unsubscribe, ack, the read and write events,
// JetStream admin requests) runs through off_worker(), which is
// goro::blocking's inline path: a function call's cost while the call does
// not block, and when it does (a lock held long, a JetStream admin request
// waiting for the server) the monitor moves the worker's queue to another
// thread. No call writes or reads the socket in a way that blocks: the
// socket is non-blocking and only the read and write events touch it.
// Waits for the server that a goroutine starts (request, JetStream publish,
// flush) park the goroutine on a channel that the reply mux or the
// JetStream publish-ack handler completes.
//
// Back-pressure. A subscription's channel is bounded (SubOptions::capacity).
// When it is full the pump parks in a select on {send, done}; meanwhile
// the backlog (or cnats) holds what arrives up to the pending limits, then
// drops and counts it (Subscription::dropped(), error() == slow_consumer).
// So memory is bounded by capacity + pending limits, and the pump never
// waits past unsubscribe or close (they close done, or the connection's
// io_stop).
//
// Lifetimes. ConnState is the core that callbacks and goroutines use; the
// program's handles (Conn, and a Msg, which needs the connection to
// respond or ack) count on an Owner whose end closes the connection there
// and then, except when it ends inside one of our callbacks on a cnats
// thread (which must not join its own connection's threads): then the
// reaper does it. Closing waits for the reader and writer to end before
// cnats's connection is freed. A SubState lives while a handle or its pump
// needs it; a pull subscription's fetcher thread holds it until it stops,
// and is joined by the reaper.
//
// The reaper (Reaper) is one thread of ours that runs such deferred work in
// order. It is joined at exit by a static's destructor after it has run
// everything queued, so no thread of ours, and none of cnats's that a
// queued close joins, is left running or unjoined when the process ends
// (a detached close used to be cut short by exit: TSan's "thread leak").
#include "goro/nats.h"

#include <nats/nats.h>

#include <poll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "arch/sanitizer.h"
#include "diag/monitor.h"
#include "goro/blocking.h"
#include "goro/errc.h"
#include "goro/net.h"
#include "goro/runtime.h"
#include "goro/sync.h"
#include "goro/time.h"


namespace goro::nats {

// ---------------------------------------------------------------- errors
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "nats"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::no_responders: return "no responders available for request";
      case errc::timeout: return "timeout";
      case errc::connection_closed: return "connection closed";
      case errc::no_server: return "no servers available for connection";
      case errc::slow_consumer: return "slow consumer, messages dropped";
      case errc::invalid_subject: return "invalid subject";
      case errc::max_payload: return "maximum payload exceeded";
      case errc::jetstream: return "JetStream error";
      case errc::not_found: return "stream or consumer not found";
      case errc::io: return "I/O error";
      case errc::invalid_argument: return "invalid argument";
      case errc::other: return "NATS error";
    }
    return "unknown NATS error";
  }
};

std::error_code to_ec_slow(natsStatus s);

inline std::error_code to_ec(natsStatus s) {
  if (s == NATS_OK) [[likely]] return {};
  return to_ec_slow(s);
}

std::error_code to_ec_slow(natsStatus s) {
  switch (s) {
    case NATS_OK: return {};
    case NATS_NO_RESPONDERS: return errc::no_responders;
    case NATS_TIMEOUT: return errc::timeout;
    case NATS_CONNECTION_CLOSED: return errc::connection_closed;
    case NATS_NO_SERVER: return errc::no_server;
    case NATS_SLOW_CONSUMER: return errc::slow_consumer;
    case NATS_INVALID_SUBJECT: return errc::invalid_subject;
    case NATS_MAX_PAYLOAD: return errc::max_payload;
    case NATS_NOT_FOUND: return errc::not_found;
    case NATS_IO_ERROR:
    case NATS_SYS_ERROR: return errc::io;
    case NATS_INVALID_ARG: return errc::invalid_argument;
    case NATS_ERR: return errc::jetstream;
    default: return errc::other;
  }
}

// A NUL-terminated copy of a string_view for cnats: on the stack when
// short (subjects usually are), so a publish allocates nothing.
class CStr {
 public:
  explicit CStr(std::string_view s) {
    char* p = buf_;
    if (s.size() >= sizeof buf_) {
      heap_.reset(new char[s.size() + 1]);
      p = heap_.get();
    }
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    p_ = p;
  }
  CStr(const CStr&) = delete;
  CStr& operator=(const CStr&) = delete;
  const char* c_str() const { return p_; }

 private:
  char buf_[128];
  std::unique_ptr<char[]> heap_;
  const char* p_;
};

[[noreturn]] void raise(const std::error_code& ec, const char* what) { throw std::system_error(ec, what); }

// TSan: cnats keeps per-thread state (its error stack, under a pthread
// key) that every goroutine running on one worker shares; two goroutines
// that both reach it (any cnats call that fails writes it) would be
// reported as racing, though they run one after the other on that thread
// and cannot interleave inside a call (no cnats call parks). So the memory
// accesses of cnats calls made on goroutines go unrecorded (TSan's ignore
// scope, which belongs to the goroutine's fiber; synchronization inside
// cnats is still seen). The cost: a race on the bytes a goroutine hands to
// publish goes unseen. Elsewhere in TSan builds nothing changes.
struct CnatsScope {
  CnatsScope() {
#if GORO_TSAN
    __tsan_ignore_thread_begin();
#endif
  }
  ~CnatsScope() {
#if GORO_TSAN
    __tsan_ignore_thread_end();
#endif
  }
  CnatsScope(const CnatsScope&) = delete;
  CnatsScope& operator=(const CnatsScope&) = delete;
};

// A cnats call that cannot block (it takes no lock another thread holds
// long), from a goroutine.
template <class F>
auto cn(F&& f) {
  CnatsScope scope;
  return f();
}

// Runs a cnats call that may block its thread: see the file comment.
template <class F>
auto off_worker(F&& f) {
  return goro::blocking([&] {
    CnatsScope scope;
    return f();
  });
}

std::int64_t ms_left(const Context& ctx, std::int64_t dflt) {
  auto d = ctx.deadline();
  if (!d) return dflt;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*d - Clock::now()).count();
  return left < 1 ? 1 : left;
}

}  // namespace

const std::error_category& category() noexcept {
  static const Category c;
  return c;
}

// ---------------------------------------------------------------- state
// No std::call_once here: libstdc++ hands the callable to pthread_once
// through thread-local variables, written at every call, and goroutines
// that share an OS thread write them in turn. ThreadSanitizer, which sees
// each goroutine as a thread of its own, reported that as a race between
// two goroutines installing the message filter (NatsTest.ManySubscriptions-
// EachGetExactlyTheMessagesTheirSubjectMatches, CI's TSan run). A once here
// is an atomic exchange, or a flag checked again under a mutex.
namespace detail {

// The reaper: see the file comment. Constructed by the first connect, so it
// is destroyed (and joined) at exit after every static made later.
class Reaper {
 public:
  static Reaper& get() {
    static Reaper r;
    return r;
  }
  // Runs job on the reaper's thread, after what was queued before it. At
  // exit, once the reaper has stopped, the job is dropped unrun (the
  // process is ending; a job must be safe to destroy unrun).
  void add(std::function<void()> job) {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopped_) return;
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    jobs_.push_back(std::move(job));
    cv_.notify_one();
  }
  ~Reaper() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopped_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Reaper() = default;
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stopped_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopped, and nothing left to run
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();
      job = nullptr;  // destroyed outside the lock too
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // mu_
  bool stopped_ = false;                    // mu_
  std::thread thread_;                      // started by the first add (mu_)
};

// A thread handed to the reaper to join. Detached instead if the job is
// dropped unrun (at exit), as std::thread must not be destroyed joinable.
struct JoinLater {
  std::thread t;
  explicit JoinLater(std::thread th) : t(std::move(th)) {}
  JoinLater(JoinLater&&) = default;
  ~JoinLater() {
    if (t.joinable()) t.detach();
  }
};

// True while this thread runs one of our callbacks from cnats (or is our
// fetcher thread): a connection must not be closed and joined from here.
thread_local bool tls_in_callback = false;
struct InCallback {
  bool was = tls_in_callback;
  InCallback() { tls_in_callback = true; }
  ~InCallback() { tls_in_callback = was; }
};

// libnats frees a message through its global garbage-collector thread
// (natsMsg_Destroy queues it under one process-wide lock and wakes that
// thread): a lock, often a futex wake, and a thread hop per message, 45% of
// the futex calls of a consume run. natsMsg_free (exported by libnats 3.x,
// not in its public header; weak, so a libnats without it falls back)
// frees it here, on the thread that drops the last handle. Only for
// messages of core subscriptions and replies (`plain`): the one message
// libnats marks as not ours to destroy is a JetStream one.
extern "C" void natsMsg_free(void*) __attribute__((weak));

void free_msg(natsMsg* m, bool plain) {
  if (plain && m != nullptr && natsMsg_free != nullptr) {
    natsMsg_free(m);
  } else {
    natsMsg_Destroy(m);
  }
}

void give_back(ConnState* cs, natsMsg* m);

struct MsgState {
  natsMsg* m = nullptr;
  std::shared_ptr<ConnState> conn;  // to respond
  std::shared_ptr<void> sub;        // a JetStream message's subscription: its ack uses it
  ~MsgState() {
    if (sub == nullptr && conn != nullptr && m != nullptr && natsMsg_free != nullptr) {
      give_back(conn.get(), m);
    } else {
      free_msg(m, sub == nullptr);
    }
  }
  static Msg make(natsMsg* m, std::shared_ptr<ConnState> conn, std::shared_ptr<void> sub = nullptr) {
    Msg out;
    out.s_ = std::make_shared<MsgState>();
    out.s_->m = m;
    out.s_->conn = std::move(conn);
    out.s_->sub = std::move(sub);
    return out;
  }
  static natsMsg* raw(const Msg& m) { return m.s_ ? m.s_->m : nullptr; }
};

// The connection's socket as the I/O goroutines see it: a RawConn over a
// duplicate of cnats's descriptor, replaced at each (re)connect. stale is
// set (and the waits interrupted by a past deadline) when cnats stops
// polling it: the goroutines then drop it, and the last handle closes the
// duplicate.
struct Attachment {
  goro::net::RawConn rc;
  natsConnection* nc = nullptr;  // as cnats gave it (ConnState::nc is set only when connect returns)
  std::atomic<bool> stale{false};
  void interrupt() {
    stale.store(true, std::memory_order_release);
    std::error_code ignored;
    rc.set_deadline(Clock::now() - std::chrono::seconds(1), ignored);
  }
};

// Lets a map keyed by std::string be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view v) const noexcept { return std::hash<std::string_view>{}(v); }
};

// The connection's core: what cnats's callbacks, the I/O goroutines and the
// reaper use. It lives while any of them needs it (shared_ptr<ConnState>
// "core" references). The program's handles (Conn, Msg, JetStream,
// Subscription's weak one) count on Owner instead, through aliasing
// pointers to this same object: the last of them closes the connection
// (Owner's destructor), while the core stays valid for whoever still runs.
struct ConnState {
  natsConnection* nc = nullptr;
  natsOptions* opts = nullptr;
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<bool> closed{false};
  std::weak_ptr<ConnState> owner_ref;  // aliasing: counts on Owner
  std::weak_ptr<ConnState> core_ref;   // the core's own count (for pumps)

  // The reply mux: one wildcard subscription "<inbox>.*" (see
  // deliver_reply) for every request and flush of this connection; each
  // waiter owns a token.
  std::mutex mux_mu;  // never held across a park or a cnats call
  std::atomic<natsSubscription*> mux_sub{nullptr};
  std::string mux_prefix;  // written once, before mux_ready
  std::atomic<bool> mux_ready{false};  // the filter may read mux_prefix
  std::uint64_t mux_next = 0;
  std::unordered_map<std::uint64_t, Chan<Msg>> waiters;

  // JetStream context and its publishes awaiting their ack, keyed by the
  // message. The publishing goroutine registers after js_PublishMsgAsync
  // returns (cnats reads the message until then), so whichever of it and
  // the ack handler comes second frees the message, under js_mu: the free
  // is ordered after every read (TSan sees the order; the real one runs
  // through the server).
  using JsResult = std::pair<PubAck, std::error_code>;
  struct JsPending {
    Chan<JsResult> ch;              // the waiter, once registered; nil again if it gave up
    std::optional<JsResult> early;  // the ack came before the registration
  };
  std::mutex js_mu;
  jsCtx* js = nullptr;
  std::unordered_map<natsMsg*, JsPending> js_pending;

  // ---- I/O (cnats's external event loop; see the file comment)
  std::mutex io_mu;                 // never held across a park or a cnats call
  std::shared_ptr<Attachment> att;  // io_mu: the socket now, if connected
  std::atomic<bool> want_write{false};  // cnats has data to write (its write ADD .. REMOVE)
  std::atomic<std::size_t> unflushed{0};  // bytes published since the writer last ran (about)
  Chan<std::monostate> reader_wake{1}, writer_wake{1};
  Chan<std::monostate> io_stop{0};  // closed once, by stop_io
  std::atomic<bool> io_stopping{false};  // stop_io's once (no std::call_once: see above)
  goro::WaitGroup io_wg;            // the reader and the writer
  // Plain subscriptions, for the filter to deliver to and the reader to
  // wake their pumps, by subject: literal ones in a map, those with a
  // wildcard token in a list. A subscription is registered before its SUB
  // is sent and unregistered by its pump before the pump ends, so a
  // pointer here is live while subs_mu is held. Lock order: subs_mu, then
  // a SubState's dmu, then a channel's lock; or subs_mu, then cnats's
  // locks.
  std::mutex subs_mu;
  std::unordered_map<std::string, std::vector<SubState*>, StringHash, std::equal_to<>> literal_subs;
  std::vector<SubState*> wild_subs;
  std::atomic<std::size_t> ndirect{0};  // subs_mu to write: how many are direct
  std::vector<SubState*> to_wake;       // subs_mu: direct ones whose pump this read wakes
  std::uint64_t subs_gen = 0;           // subs_mu: bumped by every change above
  // The filter's memo of its last look-up (the reader's alone, read and
  // written under subs_mu): consecutive messages usually share a subject.
  std::string last_subject;
  std::uint64_t last_gen = ~std::uint64_t{0};
  SubState* last_target = nullptr;
  // The message filter (conn_filter), installed once: by the first request
  // (the reply mux) or subscription, where libnats has it (mux_is_async).
  // Once it is, it sees every message the reader's read events parse and
  // notes its subject in `seen` (the reader's alone: the filter runs
  // inside those events): NUL-terminated subjects, nseen of them (a
  // subject is noted again unless it follows itself), or seen_overflow
  // once a read brought more than kSeenMax.
  std::mutex filter_mu;  // serializes the install; never held across a park
  std::atomic<bool> filtered{false};
  std::string seen;
  int nseen = 0;
  bool seen_overflow = false;
  void install_filter();

  // Messages the program let go of, for the reader to free (give_back):
  // small plain ones, about spent_bytes of them (at most kSpentBytesMax).
  // spent_mu is a leaf, held only to push or to swap the list.
  std::mutex spent_mu;
  std::vector<natsMsg*> spent;  // spent_mu
  std::size_t spent_bytes = 0;  // spent_mu
  ~ConnState() {
    for (natsMsg* m : spent) natsMsg_free(m);
  }

  std::error_code ensure_mux();
  std::error_code ensure_js();
  void shutdown();  // flush, close, stop the I/O goroutines; once
  void stop_io();
  // shutdown, then waits for the I/O goroutines and frees cnats's objects.
  // Not on the reader goroutine nor a cnats thread (they must not wait for
  // themselves): Owner sends those here through the reaper.
  void finish();
};

// Where a plain message's memory goes back. cnats allocates each message
// on the reader's thread (its parse, inside the read event); freed on the
// consumer's thread, the block goes back to the reader's malloc arena
// under that arena's lock, while the reader takes the same lock for the
// next message: in a queue-consume run at P=2, malloc and free were 45% of
// the profile (arena lock waits and wakes, and heap growth). So a small
// message is handed back to the reader, which frees the lot before its
// next read (free_spent), where its allocations reuse them. Past
// kSpentBytesMax waiting (the reader is not reading: the connection is
// down, closed, or quiet), the giver frees them all itself; so at most
// that much outlives its handles, and ~ConnState frees what is left.
// The bound is in bytes, not messages: a consumer behind a backlog frees
// thousands of messages between two reads of 32 KiB (each read parses
// ~800 small ones), and with a bound of 1,024 messages it freed them
// itself at every other read, each batch a trim of the arena's top that
// the reader's next allocations faulted back in (twice the page faults
// of Go's client in the queue-consume benchmark, 20% slower).
constexpr int kSpentMsgBytesMax = 1024;         // bigger messages are freed at once
constexpr std::size_t kSpentOverhead = 128;     // cnats's header and the subject, about
constexpr std::size_t kSpentBytesMax = 1 << 20; // data + kSpentOverhead each

void give_back(ConnState* cs, natsMsg* m) {
  std::vector<natsMsg*> batch;
  const int len = natsMsg_GetDataLength(m);
  if (len <= kSpentMsgBytesMax) {
    std::lock_guard<std::mutex> lk(cs->spent_mu);
    if (cs->spent_bytes < kSpentBytesMax) {
      cs->spent.push_back(m);
      cs->spent_bytes += static_cast<std::size_t>(len) + kSpentOverhead;
      return;
    }
    batch.swap(cs->spent);
    cs->spent_bytes = 0;
  }
  for (natsMsg* x : batch) natsMsg_free(x);
  natsMsg_free(m);
}

// On the reader, before a read: frees what give_back collected. `local`
// is the reader's, swapped with the shared list so that neither allocates.
void free_spent(ConnState* cs, std::vector<natsMsg*>& local) {
  {
    std::lock_guard<std::mutex> lk(cs->spent_mu);
    if (cs->spent.empty()) return;
    local.swap(cs->spent);
    cs->spent_bytes = 0;
  }
  for (natsMsg* m : local) natsMsg_free(m);
  local.clear();
}

// What the program's handles count on; see ConnState.
struct Owner {
  std::shared_ptr<ConnState> core;
  ~Owner() {
    std::shared_ptr<ConnState> c = std::move(core);
    if (tls_in_callback) {
      Reaper::get().add([c] { c->finish(); });
    } else {
      c->finish();
    }
  }
};

struct RawSink final : Sink {
  Chan<Msg> ch;
  void deliver(Msg m, const Chan<std::monostate>& done) override {
    if (ch.try_send(m)) return;
    goro::select(goro::send(ch, std::move(m)), goro::recv(done));
  }
  void close() override { ch.close(); }
};

struct SubState {
  natsSubscription* sub = nullptr;
  std::string subject;  // as subscribed: dispatch matches arrivals against it
  bool wild = false;    // it has a `*` or `>` token
  // Owns sub (destroys it with the last owner). A JetStream message holds
  // it too (its ack goes through the subscription), but not the SubState:
  // a message left in the channel must not keep the channel alive.
  std::shared_ptr<natsSubscription> owner;
  std::weak_ptr<ConnState> conn;  // aliasing: counts on Owner
  std::unique_ptr<Sink> sink;
  Chan<Msg> ch;  // the RawSink's channel, for messages(); nil for typed
  Chan<std::monostate> done{0};
  std::atomic<bool> done_closing{false};  // stop_delivery's once (no std::call_once: see above)
  Chan<std::monostate> wake{1};  // the reader: messages are waiting (the backlog, or cnats's queue)
  std::atomic<bool> completed{false};
  // Direct delivery (see "The reader delivers" above take_direct). While
  // `direct`, the filter takes every message of this subscription as
  // cnats parses it, onto `backlog`, for the pump. Set when the
  // subscription is registered, cleared for good (both under the
  // connection's subs_mu) once another subscription of the connection
  // could match one of its subjects; read by the pump without the lock.
  std::atomic<bool> direct{false};
  int pending_msgs = 0, pending_bytes = 0;  // SubOptions' limits, for the backlog
  bool wake_noted = false;           // the connection's subs_mu: in ConnState::to_wake
  std::mutex dmu;                    // a leaf
  std::vector<natsMsg*> backlog;     // dmu: in arrival order
  bool draining = false;             // dmu: the pump holds a batch taken from backlog
  std::size_t held_msgs = 0;         // dmu: in backlog or the pump's batch (the limits' count)
  std::size_t held_bytes = 0;        // dmu: their data bytes
  std::atomic<std::uint64_t> direct_dropped{0};  // over the limits, as cnats's dropped
  // JetStream pull: the fetcher thread, which holds the SubState (self)
  // until it stops.
  std::shared_ptr<SubState> self;
  std::thread fetcher;
  std::atomic<bool> stopping{false};

  void stop_delivery() {
    if (!done_closing.exchange(true, std::memory_order_acq_rel)) done.close();
  }
  void complete() {
    if (completed.exchange(true)) return;
    sink->close();
  }
  ~SubState() {
    // The fetcher's own last reference may end here, on that thread: the
    // reaper joins it (the fetcher returns right after).
    if (fetcher.joinable()) {
      Reaper::get().add([j = std::make_shared<JoinLater>(std::move(fetcher))] { j->t.join(); });
    }
    for (natsMsg* m : backlog) free_msg(m, true);
    if (!owner) natsSubscription_Destroy(sub);
  }
};

struct JsState {
  std::shared_ptr<ConnState> conn;
};

namespace {

void on_reconnected(natsConnection*, void* closure) {
  InCallback in_callback;
  static_cast<ConnState*>(closure)->reconnects.fetch_add(1, std::memory_order_relaxed);
}

// Wakes the goroutine that waits on c, unless a wake is pending already.
void poke(const Chan<std::monostate>& c) {
  std::monostate v;
  c.try_send(v);
}

// A reply to the mux: hands it to its waiter, if it still waits. A reply
// channel has room for one: never blocks.
void deliver_reply(ConnState* cs, natsMsg* m) {
  const char* subj = natsMsg_GetSubject(m);
  std::size_t len = std::strlen(subj);
  std::size_t dot = std::string_view(subj, len).rfind('.');
  std::uint64_t token = 0;
  if (dot == std::string_view::npos || std::from_chars(subj + dot + 1, subj + len, token).ec != std::errc{}) {
    natsMsg_Destroy(m);
    return;
  }
  Chan<Msg> ch;
  {
    std::lock_guard<std::mutex> lk(cs->mux_mu);
    auto it = cs->waiters.find(token);
    if (it != cs->waiters.end()) {
      ch = it->second;
      cs->waiters.erase(it);
    }
  }
  std::shared_ptr<ConnState> owner = cs->owner_ref.lock();
  if (!ch || owner == nullptr) {
    natsMsg_Destroy(m);  // its waiter gave up (context ended), or the connection is closing
    return;
  }
  Msg msg = MsgState::make(m, std::move(owner));
  ch.try_send(msg);
}

// How replies reach deliver_reply. The mux subscription is synchronous,
// and cnats's message filter (natsConn_setFilterWithClosure: exported by
// libnats 3.x, though not in its public header) takes each of its messages
// on the reader goroutine, while cnats parses them, before they are
// queued: a reply goes from the socket to its waiter with no thread in
// between. The filter also sees a no-responders reply with its subject
// (natsSubscription_NextMsg would consume it and return only a status,
// losing the waiter). Where the symbol is missing (another libnats), the
// mux is an asynchronous subscription instead: on_reply, on cnats's
// delivery thread for it, one thread hop slower (mux_is_async; tests run
// that path with GORO_DEBUG=natsasyncmux=1).
using MsgFilter = void (*)(natsConnection*, natsMsg**, void*);
extern "C" void natsConn_setFilterWithClosure(natsConnection*, MsgFilter, void*) __attribute__((weak));

// How many distinct subjects one read may note before dispatch gives up
// matching them and looks at every subscription.
constexpr int kSeenMax = 64;

// The reader delivers. With the filter on, a subscription that is the
// only one of its connection to match its subjects (SubState::direct)
// gets its messages from the filter, on the reader, as cnats parses them:
// cnats neither queues them nor takes the subscription's lock for them.
// They go onto the subscription's backlog, within SubOptions' pending
// limits (beyond them a message is dropped and counted, as cnats would),
// and after the read the reader wakes the pump, which takes the whole
// backlog under one lock and hands it to the channel in order. Before,
// every message went through cnats's queue: the reader took the
// subscription's lock to queue it and the pump took it again to dequeue
// it, each spinning on it while the other held it (cnats's locks spin
// 2,000 times before they sleep): a quarter of a queue-consume profile at
// P=2 was pthread_mutex_trylock and unlock. (Sending into the channel from
// the filter when it had room, to save the pump's hop, was slower, 1.88
// against 2.20 M msgs/s: the consumer, as fast as the reader, found the
// channel empty after almost every message and was woken for each, 11x
// the context switches. Waking the pump at the first message of a read,
// not after the read, gained nothing (1.73 against 1.77 M): it took a few
// messages at a time, on the other core, under a lock the reader wanted.)
//
// Order. The backlog is in arrival order and only the pump takes from
// it. A subscription that loses direct delivery (add_sub) has its later
// messages queued by cnats; its pump hands over the backlog before it
// looks at cnats's queue, and a pump that reads `direct` false (acquire)
// sees every message the filter put in the backlog before the change.

bool subject_matches(std::string_view pattern, std::string_view subj);

// Under subs_mu: the subscription whose messages the filter takes for
// this subject, if any. A direct subscription overlaps no other, so the
// first one found that matches is the only one.
SubState* direct_target(ConnState* cs, std::string_view subj) {
  if (auto it = cs->literal_subs.find(subj); it != cs->literal_subs.end()) {
    SubState* s = it->second.front();
    return s->direct.load(std::memory_order_relaxed) ? s : nullptr;
  }
  for (SubState* s : cs->wild_subs)
    if (subject_matches(s->subject, subj)) return s->direct.load(std::memory_order_relaxed) ? s : nullptr;
  return nullptr;
}

// Under subs_mu: puts m, now ours, on direct subscription s's backlog,
// within its pending limits (beyond them it is dropped and counted, as
// cnats would). The pump is woken after the read (dispatch), so that it
// finds the read's messages together.
void take_direct(ConnState* cs, SubState* s, natsMsg* m) {
  const int len = natsMsg_GetDataLength(m);
  bool idle;
  {
    std::lock_guard<std::mutex> lk(s->dmu);
    if (s->stopping.load(std::memory_order_acquire)) {
      free_msg(m, true);
      return;
    }
    if ((s->pending_msgs > 0 && s->held_msgs >= static_cast<std::size_t>(s->pending_msgs)) ||
        (s->pending_bytes > 0 && s->held_bytes + static_cast<std::size_t>(len) > static_cast<std::size_t>(s->pending_bytes))) {
      s->direct_dropped.fetch_add(1, std::memory_order_relaxed);
      free_msg(m, true);
      return;
    }
    idle = s->backlog.empty() && !s->draining;
    s->backlog.push_back(m);
    ++s->held_msgs;
    s->held_bytes += static_cast<std::size_t>(len);
  }
  if (idle && !s->wake_noted) {
    s->wake_noted = true;
    cs->to_wake.push_back(s);
  }
}

// cnats's message filter, on the reader (inside its read events), for
// every message before cnats queues it: takes the replies to the mux and
// the messages of direct subscriptions, and notes the others' subjects
// for dispatch.
void conn_filter(natsConnection*, natsMsg** mp, void* closure) {
  auto* cs = static_cast<ConnState*>(closure);
  const char* subj = natsMsg_GetSubject(*mp);
  if (cs->mux_ready.load(std::memory_order_acquire)) {
    const std::string& prefix = cs->mux_prefix;
    if (std::strncmp(subj, prefix.data(), prefix.size()) == 0 && subj[prefix.size()] == '.') {
      natsMsg* m = std::exchange(*mp, nullptr);  // ours: cnats neither queues nor frees it
      InCallback in_callback;  // a connection's last handle may die here: not closed on the reader
      deliver_reply(cs, m);
      return;
    }
  }
  std::size_t len = std::strlen(subj);
  if (cs->ndirect.load(std::memory_order_acquire) != 0) {
    std::lock_guard<std::mutex> lk(cs->subs_mu);
    std::string_view sv(subj, len);
    if (cs->last_gen != cs->subs_gen || cs->last_subject != sv) {
      cs->last_target = direct_target(cs, sv);
      cs->last_subject.assign(sv);
      cs->last_gen = cs->subs_gen;
    }
    if (SubState* s = cs->last_target) {
      take_direct(cs, s, std::exchange(*mp, nullptr));  // ours: cnats neither queues nor frees it
      return;
    }
  }
  if (cs->seen_overflow) return;
  // Consecutive messages usually share a subject: compare with the last.
  std::string& seen = cs->seen;
  std::size_t n = seen.size();  // ends with a NUL unless empty
  if (n >= len + 1 && (n == len + 1 || seen[n - len - 2] == '\0') &&
      std::memcmp(seen.data() + n - len - 1, subj, len) == 0) {
    return;
  }
  if (cs->nseen == kSeenMax) {
    cs->seen_overflow = true;
    return;
  }
  seen.append(subj, len + 1);  // with its NUL
  ++cs->nseen;
}

void on_reply(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  InCallback in_callback;
  deliver_reply(static_cast<ConnState*>(closure), m);
}

// Whether replies take the fallback (the asynchronous mux subscription):
// where libnats lacks the filter, or under GORO_DEBUG=natsasyncmux=1 (read
// once), which exists so that tests cover the fallback with a libnats that
// has the filter. The debug setting says so on stderr, once per process.
bool mux_is_async() {
  static const bool forced = [] {
    if (rt::diag::debug_option("natsasyncmux") != 1) return false;
    std::fputs("goro::nats: GORO_DEBUG=natsasyncmux=1: replies through an asynchronous subscription\n", stderr);
    return true;
  }();
  return forced || natsConn_setFilterWithClosure == nullptr;
}

// ---- cnats's external event loop (natsOptions_SetEventLoop): called by
// cnats with the connection's lock held, from whichever thread changed the
// state (a goroutine's publish inside off_worker, the reader or writer
// goroutine, cnats's reconnect or timer thread). They only record the
// state and wake the I/O goroutines: never a wait, never a cnats call.
natsStatus ev_attach(void** user, void* loop, natsConnection* nc, natsSock fd) {
  auto* cs = static_cast<ConnState*>(loop);
  *user = cs;
  std::error_code ec;
  auto a = std::make_shared<Attachment>();
  a->nc = nc;
  a->rc = goro::net::raw_conn(fd, ec);
  if (ec) return NATS_SYS_ERROR;
  std::shared_ptr<Attachment> old;
  {
    std::lock_guard<std::mutex> lk(cs->io_mu);
    old = std::exchange(cs->att, std::move(a));
  }
  if (old) old->interrupt();
  poke(cs->reader_wake);
  return NATS_OK;
}

void ev_drop(ConnState* cs) {
  std::shared_ptr<Attachment> old;
  {
    std::lock_guard<std::mutex> lk(cs->io_mu);
    old = std::exchange(cs->att, nullptr);
  }
  if (old) old->interrupt();  // the goroutines drop it; the last handle closes the duplicate
}

natsStatus ev_read(void* user, bool add) {
  if (!add) ev_drop(static_cast<ConnState*>(user));  // cnats asks for reads only by attaching
  return NATS_OK;
}

natsStatus ev_write(void* user, bool add) {
  auto* cs = static_cast<ConnState*>(user);
  cs->want_write.store(add, std::memory_order_release);
  if (add) poke(cs->writer_wake);
  return NATS_OK;
}

natsStatus ev_detach(void* user) {
  ev_drop(static_cast<ConnState*>(user));
  return NATS_OK;
}

std::shared_ptr<Attachment> current(ConnState* cs) {
  std::lock_guard<std::mutex> lk(cs->io_mu);
  return cs->att;
}

// Publishes on a goroutine as a plain call: in event-loop mode cnats only
// appends to its buffer (and asks for a write event), so the call takes the
// connection's lock and nothing else; the lock's holders (the read and
// write events, other publishers) hold it briefly. The writer goroutine,
// readied into this P's runnext by the write event, runs when this
// goroutine parks: a request's bytes leave as its goroutine waits for the
// reply, on the same core. A goroutine that publishes without parking
// writes itself once 64 KiB are waiting (publish_raw), so the buffer stays
// bounded.
// Lets cnats write what it buffered, parking while the socket is full,
// until all is out or the socket is dropped. The writer goroutine's work;
// a publisher far ahead of it does it too (RawConn serializes them).
void write_out(ConnState* cs, const std::shared_ptr<Attachment>& a) {
  std::error_code ec;
  a->rc.write(
      [&](int fd) {
        // Only while cnats has data: want_write (its write ADD .. REMOVE,
        // both under its lock) implies a non-empty buffer, and a write event
        // over an empty one would send 0 bytes, which cnats takes for a
        // closed connection. Another write_out may have emptied it while
        // this one waited for RawConn's write lock.
        auto done = [&] {
          return !cs->want_write.load(std::memory_order_acquire) || a->stale.load(std::memory_order_acquire);
        };
        for (;;) {
          if (done()) return true;
          cs->unflushed.store(0, std::memory_order_relaxed);
          off_worker([&] { natsConnection_ProcessWriteEvent(a->nc); });
          if (done()) return true;
          // Some is left: a partial write, or EAGAIN (cnats does not say
          // which). Readiness is edge-triggered, so park only once the
          // socket is full: poll reports it not writable (and arms the
          // kernel's wake-up for when it is).
          pollfd p{fd, POLLOUT, 0};
          if (::poll(&p, 1, 0) == 0) return false;
        }
      },
      ec);
}

// Publishing appends to cnats's buffer under its lock; the writer
// goroutine, readied into runnext by cnats's write ADD, sends it when the
// publisher parks. A publisher that keeps going writes itself once 64 KiB
// are unflushed, parking while the socket is full, as a Go publisher's
// buffered writer flushes inline when full. That bounds cnats's buffer
// (which it compacts by copying after each partial write) and keeps the
// socket to one writer while the publisher runs: yielding to the writer
// instead let another P take it, and the two then contended for cnats's
// lock (bench/nats/compare publish: 7.3 M msgs/s median against 8.3 M).
// subj_len is strlen(subj), which the callers know: it only sizes the
// unflushed estimate.
natsStatus publish_raw(ConnState* cs, const char* subj, std::size_t subj_len, const char* reply,
                       std::string_view data) {
  natsStatus st = cn([&] {
    return reply != nullptr
               ? natsConnection_PublishRequest(cs->nc, subj, reply, data.data(), static_cast<int>(data.size()))
               : natsConnection_Publish(cs->nc, subj, data.data(), static_cast<int>(data.size()));
  });
  constexpr std::size_t kWriteBytes = 64 * 1024;
  if (st != NATS_OK) return st;
  // An estimate, so a load and a store rather than a locked add: two
  // publishers racing here may lose one's share, which only delays the
  // self-write by a message.
  std::size_t total = cs->unflushed.load(std::memory_order_relaxed) + data.size() + subj_len + 16;
  cs->unflushed.store(total, std::memory_order_relaxed);
  if (total < kWriteBytes || !cs->want_write.load(std::memory_order_acquire)) return st;
  if (std::shared_ptr<Attachment> a = current(cs)) write_out(cs, a);
  return st;
}

// Waits for a wake or the end; false at the end.
bool wait_wake(const Chan<std::monostate>& wake, const Chan<std::monostate>& stop) {
  bool woken = false;
  goro::select(goro::recv(wake, [&](auto) { woken = true; }), goro::recv(stop));
  return woken;
}

// Whether a NATS subject matches a subscription's: `*` matches one token,
// a final `>` one or more.
bool subject_matches(std::string_view pattern, std::string_view subj) {
  for (;;) {
    std::size_t pd = pattern.find('.'), sd = subj.find('.');
    std::string_view pt = pattern.substr(0, pd), st = subj.substr(0, sd);
    if (pt == ">") return !st.empty();
    if (pt != "*" && pt != st) return false;
    if (pd == std::string_view::npos || sd == std::string_view::npos) return pd == sd;
    pattern.remove_prefix(pd + 1);
    subj.remove_prefix(sd + 1);
  }
}

bool has_wildcard(std::string_view subject) {
  for (;;) {
    std::size_t d = subject.find('.');
    std::string_view t = subject.substr(0, d);
    if (t == "*" || t == ">") return true;
    if (d == std::string_view::npos) return false;
    subject.remove_prefix(d + 1);
  }
}

// Wakes s's pump if cnats has messages queued for it (or tells it that it
// ended: a closed subscription fails GetPending).
void wake_if_pending(SubState* s) {
  int n = 0;
  if (cn([&] { return natsSubscription_GetPending(s->sub, &n, nullptr); }) != NATS_OK || n > 0) poke(s->wake);
}

// After a read, on the reader goroutine: wakes the pumps of the
// subscriptions with messages queued. With the filter on since before the
// read (`filtered`, read by the reader before it), only those whose
// subject matches one the read noted are looked at: a hash look-up per
// subject plus the wildcard subscriptions, not a look at each of
// thousands of idle subscriptions per read (10,000 of them cost a request
// round trip 300 us). Otherwise, or after a read of many subjects, all.
void dispatch(ConnState* cs, bool filtered) {
  std::lock_guard<std::mutex> lk(cs->subs_mu);
  for (SubState* s : cs->to_wake) {
    s->wake_noted = false;
    poke(s->wake);
  }
  cs->to_wake.clear();
  if (!filtered || cs->seen_overflow) {
    for (auto& [subject, v] : cs->literal_subs)
      for (SubState* s : v) wake_if_pending(s);
    for (SubState* s : cs->wild_subs) wake_if_pending(s);
  } else {
    for (std::size_t at = 0; at < cs->seen.size();) {
      std::string_view subj(cs->seen.data() + at);
      at += subj.size() + 1;
      if (auto it = cs->literal_subs.find(subj); it != cs->literal_subs.end())
        for (SubState* s : it->second) wake_if_pending(s);
      for (SubState* s : cs->wild_subs)
        if (subject_matches(s->subject, subj)) wake_if_pending(s);
    }
  }
  cs->seen.clear();
  cs->nseen = 0;
  cs->seen_overflow = false;
}

// Whether some subject matches both patterns (`*` one token, a final `>`
// one or more).
bool patterns_overlap(std::string_view a, std::string_view b) {
  for (;;) {
    std::size_t ad = a.find('.'), bd = b.find('.');
    std::string_view at = a.substr(0, ad), bt = b.substr(0, bd);
    if (at == ">" || bt == ">") return true;
    if (at != "*" && bt != "*" && at != bt) return false;
    if (ad == std::string_view::npos || bd == std::string_view::npos) return ad == bd;
    a.remove_prefix(ad + 1);
    b.remove_prefix(bd + 1);
  }
}

// Whether the filter may take a subscription's messages by their subject
// alone: its first token is literal and not cnats's inbox prefix, so no
// subscription that cnats makes for itself (JetStream's inboxes, its
// request mux) can carry a subject it matches.
bool may_be_direct(std::string_view subject) {
  std::string_view first = subject.substr(0, subject.find('.'));
  return first != "*" && first != ">" && first != "_INBOX";
}

// Registers s, before its SUB is sent, so that the filter sees every
// message of it. It delivers directly if the filter is on and no other
// subscription of the connection could match a subject it matches; one
// that could loses direct delivery for good (s does not get it either):
// the filter knows a message's subject, not which subscription the server
// sent it for.
void add_sub(ConnState* cs, SubState* s) {
  std::lock_guard<std::mutex> lk(cs->subs_mu);
  bool alone = true;
  auto meet = [&](SubState* o) {
    if (!patterns_overlap(o->subject, s->subject)) return;
    alone = false;
    if (o->direct.load(std::memory_order_relaxed)) {
      // Release: the pump that reads false sees every message the filter
      // put in the backlog before (those were put under subs_mu too).
      o->direct.store(false, std::memory_order_release);
      cs->ndirect.fetch_sub(1, std::memory_order_relaxed);
    }
  };
  if (s->wild) {
    for (auto& [subject, v] : cs->literal_subs)
      for (SubState* o : v) meet(o);
  } else if (auto it = cs->literal_subs.find(s->subject); it != cs->literal_subs.end()) {
    for (SubState* o : it->second) meet(o);
  }
  for (SubState* o : cs->wild_subs) meet(o);
  if (alone && cs->filtered.load(std::memory_order_acquire) && may_be_direct(s->subject)) {
    s->direct.store(true, std::memory_order_relaxed);
    cs->ndirect.fetch_add(1, std::memory_order_relaxed);
  }
  if (s->wild) {
    cs->wild_subs.push_back(s);
  } else {
    cs->literal_subs[s->subject].push_back(s);
  }
  ++cs->subs_gen;
}

void remove_sub(ConnState* cs, SubState* s) {
  std::lock_guard<std::mutex> lk(cs->subs_mu);
  if (s->wild) {
    cs->wild_subs.erase(std::find(cs->wild_subs.begin(), cs->wild_subs.end(), s));
  } else {
    auto it = cs->literal_subs.find(s->subject);
    it->second.erase(std::find(it->second.begin(), it->second.end(), s));
    if (it->second.empty()) cs->literal_subs.erase(it);
  }
  if (s->direct.load(std::memory_order_relaxed)) {
    s->direct.store(false, std::memory_order_release);
    cs->ndirect.fetch_sub(1, std::memory_order_relaxed);
  }
  if (s->wake_noted) cs->to_wake.erase(std::find(cs->to_wake.begin(), cs->to_wake.end(), s));
  ++cs->subs_gen;
}

// Hands one message to s's sink, if the subscription and its connection
// are still there; frees it otherwise.
void hand_over(SubState* s, natsMsg* m) {
  std::shared_ptr<ConnState> owner = s->conn.lock();
  if (owner == nullptr || s->stopping.load(std::memory_order_acquire)) {
    free_msg(m, true);
    return;
  }
  s->sink->deliver(MsgState::make(m, std::move(owner)), s->done);
}

// A plain subscription's pump goroutine: hands what waits for the
// subscription to its channel, in order, parking while the channel is
// full: first its backlog (what the filter took, see take_direct), a
// batch at a time; then, once the subscription is not direct, what cnats
// queued (cnats keeps queueing meanwhile, up to
// the pending limits, then drops and counts: the slow-consumer report).
// Ends at unsubscribe, at the connection's close, or when cnats closed the
// subscription; then closes the channel.
void pump(std::shared_ptr<SubState> s, std::shared_ptr<ConnState> core) {
  ConnState* cs = core.get();
  std::vector<natsMsg*> batch;  // swapped with the backlog: neither allocates once grown
  std::size_t batch_bytes = 0;
  for (;;) {
    if (s->stopping.load(std::memory_order_acquire)) break;
    // Read before the backlog: once false, the backlog holds everything
    // the filter took (see "Order" above take_direct).
    const bool direct = s->direct.load(std::memory_order_acquire);
    {
      std::lock_guard<std::mutex> lk(s->dmu);
      s->held_msgs -= batch.size();
      s->held_bytes -= batch_bytes;
      batch.clear();
      batch_bytes = 0;
      batch.swap(s->backlog);
      s->draining = !batch.empty();
    }
    if (!batch.empty()) {
      for (natsMsg* m : batch) {
        batch_bytes += static_cast<std::size_t>(natsMsg_GetDataLength(m));
        hand_over(s.get(), m);
      }
      continue;
    }
    int n = 0;
    if (cn([&] { return natsSubscription_GetPending(s->sub, &n, nullptr); }) != NATS_OK) break;
    // Queued by cnats though `direct` read true: the subscription lost
    // direct delivery since (the filter had stopped taking its messages
    // first), and the backlog goes first. (Were it still direct, these
    // could only be messages the filter never saw: they go now, rather
    // than wait for ever.)
    if (n > 0 && direct && !s->direct.load(std::memory_order_acquire)) continue;
    if (n == 0) {
      int why = 0;
      goro::select(goro::recv(s->wake, [&](auto) { why = 1; }), goro::recv(s->done, [&](auto) { why = 2; }),
                   goro::recv(cs->io_stop, [&](auto) { why = 3; }));
      if (why != 1) break;
      continue;
    }
    for (; n > 0; --n) {
      natsMsg* m = nullptr;
      natsStatus st = cn([&] { return natsSubscription_NextMsg(&m, s->sub, 0); });
      if (st == NATS_SLOW_CONSUMER) continue;  // said once; dropped() counts
      if (st != NATS_OK) break;
      hand_over(s.get(), m);
    }
  }
  remove_sub(cs, s.get());
  // Unregistered: the filter takes no more for s. (batch holds only
  // messages handed over already.)
  batch.clear();
  {
    std::lock_guard<std::mutex> lk(s->dmu);
    batch.swap(s->backlog);
  }
  for (natsMsg* m : batch) free_msg(m, true);
  s->complete();
}

// The reader goroutine: parks in the netpoller until the socket is
// readable, lets cnats read and parse (ProcessReadEvent reads once, up to
// its buffer's size: while the kernel holds more, again, as readiness is
// edge-triggered), then hands replies to their waiters itself and wakes the
// pumps of the subscriptions that have messages queued.
void reader_loop(std::shared_ptr<ConnState> core) {
  ConnState* cs = core.get();
  std::vector<natsMsg*> spent;  // free_spent's
  for (;;) {
    std::shared_ptr<Attachment> a = current(cs);
    if (a == nullptr || a->stale.load(std::memory_order_acquire)) {
      if (!wait_wake(cs->reader_wake, cs->io_stop)) break;
      continue;
    }
    std::error_code ec;
    a->rc.read(
        [&](int fd) {
          for (;;) {
            // Whether every message of this read passes the filter.
            const bool filtered = cs->filtered.load(std::memory_order_acquire);
            if (natsMsg_free != nullptr) free_spent(cs, spent);
            off_worker([&] { natsConnection_ProcessReadEvent(a->nc); });
            int avail = 0;
            if (a->stale.load(std::memory_order_acquire) || ::ioctl(fd, FIONREAD, &avail) != 0 || avail == 0) {
              dispatch(cs, filtered);
              break;
            }
            // More is waiting. Before reading it, let the pumps move what
            // this read queued: a reader that read all the kernel had
            // first grew cnats's queues by hundreds of thousands of
            // messages whenever the consumers fell behind (their memory
            // then cost more than the messages: page faults, sysmalloc).
            dispatch(cs, filtered);
            goro::yield();
          }
          return a->stale.load(std::memory_order_acquire);
        },
        ec);
    // Stale (cnats stopped polling it), or interrupted: look again.
  }
  cs->io_wg.done();
}

// The writer goroutine: when cnats has data to write (its write ADD), lets
// it write (ProcessWriteEvent; cnats's write REMOVE once all is out); if
// the socket's buffer is full, parks until it is writable.
void writer_loop(std::shared_ptr<ConnState> core) {
  ConnState* cs = core.get();
  while (wait_wake(cs->writer_wake, cs->io_stop)) {
    if (!cs->want_write.load(std::memory_order_acquire)) continue;
    std::shared_ptr<Attachment> a = current(cs);
    if (a == nullptr) continue;  // disconnected: cnats asks again once attached
    write_out(cs, a);
  }
  cs->io_wg.done();
}

// JetStream's publish-ack handler (cnats's thread for the JetStream reply
// subscription): completes the waiter of this message (ConnState::js_pending).
void on_pub_ack(jsCtx*, natsMsg* m, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  InCallback in_callback;
  auto* cs = static_cast<ConnState*>(closure);
  ConnState::JsResult r;
  if (pa != nullptr) {
    r.first.stream = pa->Stream != nullptr ? pa->Stream : "";
    r.first.seq = pa->Sequence;
    r.first.duplicate = pa->Duplicate;
  } else {
    r.second = to_ec(pae != nullptr ? pae->Err : NATS_ERR);
  }
  Chan<ConnState::JsResult> ch;
  {
    std::lock_guard<std::mutex> lk(cs->js_mu);
    auto it = cs->js_pending.find(m);
    if (it == cs->js_pending.end()) {
      cs->js_pending[m].early = std::move(r);  // the publisher frees it
      return;
    }
    ch = it->second.ch;  // nil if abandoned
    cs->js_pending.erase(it);
  }
  natsMsg_Destroy(m);
  if (ch) ch.try_send(r);
}

}  // namespace

// Where the filter exists. Any goroutine; the reader's read events that
// begin after `filtered` reads true run with the filter (cnats reads it
// under its subscriptions' lock, which the install takes).
void ConnState::install_filter() {
  if (mux_is_async() || filtered.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lk(filter_mu);
  if (filtered.load(std::memory_order_relaxed)) return;
  cn([&] { natsConn_setFilterWithClosure(nc, conn_filter, this); });
  filtered.store(true, std::memory_order_release);
}

std::error_code ConnState::ensure_mux() {
  std::lock_guard<std::mutex> lk(mux_mu);
  if (mux_sub.load(std::memory_order_relaxed) != nullptr) return {};
  if (!mux_ready.load(std::memory_order_relaxed)) {  // (a retry after a failed SUB keeps it)
    natsInbox* inbox = nullptr;
    natsStatus st = cn([&] { return natsInbox_Create(&inbox); });
    if (st != NATS_OK) return to_ec(st);
    mux_prefix = inbox;
    natsInbox_Destroy(inbox);
    mux_ready.store(true, std::memory_order_release);
  }
  std::string wildcard = mux_prefix + ".*";
  natsSubscription* sub = nullptr;
  install_filter();  // (unless the mux is async) before the SUB: no reply can precede it
  natsStatus st = off_worker([&] {
    if (mux_is_async()) {
      natsStatus r = natsConnection_Subscribe(&sub, nc, wildcard.c_str(), on_reply, this);
      if (r == NATS_OK) r = natsSubscription_SetPendingLimits(sub, -1, -1);
      return r;
    }
    return natsConnection_SubscribeSync(&sub, nc, wildcard.c_str());
  });
  if (st != NATS_OK) {
    natsSubscription_Destroy(sub);
    return to_ec(st);
  }
  mux_sub.store(sub, std::memory_order_release);
  return {};
}

std::error_code ConnState::ensure_js() {
  std::lock_guard<std::mutex> lk(js_mu);
  if (js != nullptr) return {};
  jsOptions o;
  jsOptions_Init(&o);
  o.PublishAsync.AckHandler = on_pub_ack;
  o.PublishAsync.AckHandlerClosure = this;
  o.PublishAsync.MaxPending = 1 << 16;
  return to_ec(natsConnection_JetStream(&js, nc, &o));
}

void ConnState::stop_io() {
  if (!io_stopping.exchange(true, std::memory_order_acq_rel)) io_stop.close();
  ev_drop(this);  // a reader or writer waiting on the socket returns
}

void ConnState::shutdown() {
  if (!closed.exchange(true, std::memory_order_acq_rel) && nc != nullptr) {
    off_worker([&] {
      natsConnection_FlushTimeout(nc, 5000);  // the I/O goroutines still run: the PONG comes back
      natsConnection_Close(nc);
    });
  }
  stop_io();
}

void ConnState::finish() {
  shutdown();
  io_wg.wait();  // nothing calls into nc after this
  off_worker([&] {
    natsSubscription_Destroy(mux_sub.load(std::memory_order_acquire));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
  });
}

}  // namespace detail

using detail::ConnState;
using detail::MsgState;
using detail::SubState;
using detail::InCallback;

// ---------------------------------------------------------------- Msg
std::string_view Msg::subject() const { return s_ ? natsMsg_GetSubject(s_->m) : std::string_view(); }
std::string_view Msg::reply() const {
  const char* r = s_ ? natsMsg_GetReply(s_->m) : nullptr;
  return r != nullptr ? std::string_view(r) : std::string_view();
}
std::string_view Msg::data() const {
  if (!s_) return {};
  const char* d = natsMsg_GetData(s_->m);
  return d != nullptr ? std::string_view(d, static_cast<std::size_t>(natsMsg_GetDataLength(s_->m))) : std::string_view();
}
std::string_view Msg::header(std::string_view key) const {
  if (!s_) return {};
  std::string k(key);
  const char* v = nullptr;
  if (cn([&] { return natsMsgHeader_Get(s_->m, k.c_str(), &v); }) != NATS_OK || v == nullptr) return {};
  return v;
}
void Msg::respond(std::string_view data, std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_ || reply().empty()) {
    ec = errc::invalid_subject;
    return;
  }
  std::string_view rv = reply();
  CStr r(rv);
  ConnState* cs = s_->conn.get();
  ec = to_ec(detail::publish_raw(cs, r.c_str(), rv.size(), nullptr, data));
}
void Msg::respond(std::string_view data) const {
  std::error_code ec;
  respond(data, ec);
  if (ec) raise(ec, "goro::nats::Msg::respond");
}
namespace {
template <class F>
void js_reply(const std::shared_ptr<MsgState>& s, std::error_code& ec, F f) {
  ec.clear();
  if (!s) {
    ec = errc::invalid_argument;
    return;
  }
  natsMsg* m = s->m;
  ec = to_ec(off_worker([&] { return f(m); }));
}
}  // namespace
void Msg::ack(std::error_code& ec) const noexcept {
  js_reply(s_, ec, [](natsMsg* m) { return natsMsg_Ack(m, nullptr); });
}
void Msg::ack() const {
  std::error_code ec;
  ack(ec);
  if (ec) raise(ec, "goro::nats::Msg::ack");
}
void Msg::nak(std::error_code& ec) const noexcept {
  js_reply(s_, ec, [](natsMsg* m) { return natsMsg_Nak(m, nullptr); });
}
void Msg::in_progress(std::error_code& ec) const noexcept {
  js_reply(s_, ec, [](natsMsg* m) { return natsMsg_InProgress(m, nullptr); });
}
void Msg::term(std::error_code& ec) const noexcept {
  js_reply(s_, ec, [](natsMsg* m) { return natsMsg_Term(m, nullptr); });
}
namespace {
std::pair<std::uint64_t, std::uint64_t> meta(const std::shared_ptr<MsgState>& s) {
  if (!s) return {0, 0};
  jsMsgMetaData* md = nullptr;
  if (cn([&] { return natsMsg_GetMetaData(&md, s->m); }) != NATS_OK || md == nullptr) return {0, 0};
  std::pair<std::uint64_t, std::uint64_t> r{md->Sequence.Stream, md->NumDelivered};
  jsMsgMetaData_Destroy(md);
  return r;
}
}  // namespace
std::uint64_t Msg::stream_seq() const { return meta(s_).first; }
std::uint64_t Msg::num_delivered() const { return meta(s_).second; }

// ---------------------------------------------------------------- Subscription
Chan<Msg> Subscription::messages() const { return s_ ? s_->ch : Chan<Msg>(); }

void Subscription::unsubscribe() const {
  if (!s_) return;
  SubState* s = s_.get();
  s->stopping.store(true, std::memory_order_release);
  s->stop_delivery();
  if (s->fetcher.joinable()) {
    // The fetcher's Fetch returns within its expiry; it closes the channel.
    off_worker([s] { s->fetcher.join(); });
    return;
  }
  if (s->sub != nullptr && !s->completed.load(std::memory_order_acquire)) {
    off_worker([s] { natsSubscription_Unsubscribe(s->sub); });
  }
}

std::uint64_t Subscription::dropped() const {
  if (!s_) return 0;
  int64_t d = 0;
  if (s_->sub != nullptr && !s_->fetcher.joinable()) natsSubscription_GetDropped(s_->sub, &d);
  // cnats's count (what it queued for the pump) and the filter's (what it
  // took for a direct subscription). A pull subscription drops nothing: it
  // fetches what fits.
  return static_cast<std::uint64_t>(d < 0 ? 0 : d) + s_->direct_dropped.load(std::memory_order_relaxed);
}

std::error_code Subscription::error() const {
  return dropped() > 0 ? std::error_code(errc::slow_consumer) : std::error_code();
}

// ---------------------------------------------------------------- Conn
Conn connect(std::string_view urls, const Options& o, std::error_code& ec) noexcept {
  ec.clear();
  detail::Reaper::get();  // exists before any connection: joined at exit after they are gone
  // The core, and the handle the program holds (counting on an Owner whose
  // end closes the connection; see ConnState).
  auto core = std::make_shared<ConnState>();
  auto owner = std::make_shared<detail::Owner>();
  owner->core = core;
  std::shared_ptr<ConnState> handle(owner, core.get());
  core->owner_ref = handle;
  core->core_ref = core;
  ConnState* cs = core.get();
  natsStatus st = natsOptions_Create(&cs->opts);
  std::string u(urls);
  // A comma-separated list is a cluster: each server, in order.
  std::vector<std::string> parts;
  for (std::size_t i = 0; i <= u.size();) {
    std::size_t j = u.find(',', i);
    if (j == std::string::npos) j = u.size();
    std::string p = u.substr(i, j - i);
    while (!p.empty() && p.front() == ' ') p.erase(p.begin());
    while (!p.empty() && p.back() == ' ') p.pop_back();
    if (!p.empty()) parts.push_back(p);
    i = j + 1;
  }
  if (parts.empty()) {
    ec = errc::invalid_argument;
    return {};
  }
  std::vector<const char*> servers;
  for (auto& p : parts) servers.push_back(p.c_str());
  if (st == NATS_OK) st = natsOptions_SetServers(cs->opts, servers.data(), static_cast<int>(servers.size()));
  if (st == NATS_OK && !o.name.empty()) st = natsOptions_SetName(cs->opts, o.name.c_str());
  if (st == NATS_OK) st = natsOptions_SetMaxReconnect(cs->opts, o.max_reconnect);
  if (st == NATS_OK) st = natsOptions_SetReconnectWait(cs->opts, o.reconnect_wait.count());
  if (st == NATS_OK) st = natsOptions_SetTimeout(cs->opts, o.connect_timeout.count());
  if (st == NATS_OK) st = natsOptions_SetReconnectBufSize(cs->opts, o.reconnect_buffer);
  if (st == NATS_OK) st = natsOptions_SetReconnectedCB(cs->opts, detail::on_reconnected, cs);
  if (st == NATS_OK && o.retry_on_failed_connect)
    st = natsOptions_SetRetryOnFailedConnect(cs->opts, true, nullptr, nullptr);
  // The socket is served by two goroutines of ours (reader, writer) over
  // cnats's external event-loop API: no reader or flusher thread. With
  // "send as soon as possible" a publish asks for a write event instead of
  // waking cnats's flusher (which waits 1 ms for more): what is published
  // before the writer runs goes out in one write.
  if (st == NATS_OK)
    st = natsOptions_SetEventLoop(cs->opts, cs, detail::ev_attach, detail::ev_read, detail::ev_write,
                                  detail::ev_detach);
  if (st == NATS_OK) st = natsOptions_SetSendAsap(cs->opts, true);
  if (st == NATS_OK) {
    cs->io_wg.add(2);
    goro::go(detail::reader_loop, core);
    goro::go(detail::writer_loop, core);
    st = off_worker([&] { return natsConnection_Connect(&cs->nc, cs->opts); });
    if (st == NATS_NOT_YET_CONNECTED) st = NATS_OK;  // retry_on_failed_connect
  }
  if (st != NATS_OK) {
    ec = to_ec(st);
    cs->closed.store(true);
    return {};  // handle's end stops the goroutines and frees what there is
  }
  Conn c;
  c.s_ = std::move(handle);
  return c;
}

Conn connect(std::string_view urls, const Options& opts) {
  std::error_code ec;
  Conn c = connect(urls, opts, ec);
  if (ec) raise(ec, "goro::nats::connect");
  return c;
}

void Conn::publish(std::string_view subject, std::string_view data, std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return;
  }
  CStr subj(subject);
  ec = to_ec(detail::publish_raw(s_.get(), subj.c_str(), subject.size(), nullptr, data));
}

void Conn::publish(std::string_view subject, std::string_view data) const {
  std::error_code ec;
  publish(subject, data, ec);
  if (ec) raise(ec, "goro::nats::Conn::publish");
}

void Conn::publish_request(std::string_view subject, std::string_view reply, std::string_view data,
                           std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return;
  }
  CStr subj(subject), rep(reply);
  ec = to_ec(detail::publish_raw(s_.get(), subj.c_str(), subject.size(), rep.c_str(), data));
}

Subscription Conn::subscribe_into(std::string_view subject, const SubOptions& opts, std::unique_ptr<detail::Sink> sink,
                                  std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return {};
  }
  auto ss = std::make_shared<SubState>();
  ss->conn = s_;
  ss->sink = std::move(sink);
  if (auto* raw_sink = dynamic_cast<detail::RawSink*>(ss->sink.get())) ss->ch = raw_sink->ch;
  ss->subject = subject;
  ss->wild = detail::has_wildcard(subject);
  ss->pending_msgs = opts.pending_msgs;
  ss->pending_bytes = opts.pending_bytes;
  std::string queue(opts.queue);
  const char* subj = ss->subject.c_str();
  natsConnection* nc = s_->nc;
  SubState* raw = ss.get();
  std::shared_ptr<ConnState> core = s_->core_ref.lock();
  // The filter is on, and the subscription registered, before its SUB
  // leaves: the filter then sees every message of it.
  core->install_filter();
  detail::add_sub(core.get(), raw);
  // Synchronous in cnats's terms (no delivery thread): the filter or our
  // pump goroutine takes the messages.
  natsStatus st = off_worker([&] {
    natsStatus r = queue.empty() ? natsConnection_SubscribeSync(&raw->sub, nc, subj)
                                 : natsConnection_QueueSubscribeSync(&raw->sub, nc, subj, queue.c_str());
    if (r == NATS_OK) r = natsSubscription_SetPendingLimits(raw->sub, opts.pending_msgs, opts.pending_bytes);
    return r;
  });
  if (st != NATS_OK) {
    detail::remove_sub(core.get(), raw);
    if (ss->sub != nullptr) off_worker([raw] { natsSubscription_Unsubscribe(raw->sub); });
    ec = to_ec(st);
    return {};
  }
  goro::go(detail::pump, ss, core);
  Subscription s;
  s.s_ = std::move(ss);
  return s;
}

Subscription Conn::subscribe(std::string_view subject, SubOptions opts, std::error_code& ec) const noexcept {
  auto sink = std::make_unique<detail::RawSink>();
  Chan<Msg> ch(opts.capacity);
  sink->ch = ch;
  return subscribe_into(subject, opts, std::move(sink), ec);
}

Subscription Conn::subscribe(std::string_view subject, SubOptions opts) const {
  std::error_code ec;
  Subscription s = subscribe(subject, std::move(opts), ec);
  if (ec) raise(ec, "goro::nats::Conn::subscribe");
  return s;
}

namespace {

// Publishes to subject with a reply subject of this connection's mux and
// parks until the reply or the context's end.
Msg round_trip(const std::shared_ptr<ConnState>& cs, const char* subject, std::string_view data, const Context& ctx,
               std::error_code& ec) {
  ec.clear();
  if (auto e = cs->ensure_mux()) {
    ec = e;
    return {};
  }
  Chan<Msg> ch(1);
  std::uint64_t token;
  std::string reply;
  {
    std::lock_guard<std::mutex> lk(cs->mux_mu);
    token = ++cs->mux_next;
    cs->waiters.emplace(token, ch);
    reply = cs->mux_prefix;
  }
  reply += '.';
  reply += std::to_string(token);
  const char* subj = subject != nullptr ? subject : reply.c_str();
  natsStatus st = detail::publish_raw(cs.get(), subj, std::strlen(subj), reply.c_str(), data);
  auto forget = [&] {
    std::lock_guard<std::mutex> lk(cs->mux_mu);
    cs->waiters.erase(token);
  };
  if (st != NATS_OK) {
    forget();
    ec = to_ec(st);
    return {};
  }
  std::optional<Msg> got;
  bool ended = false;
  goro::select(goro::recv(ch, [&](std::optional<Msg> m) { got = std::move(m); }),
               goro::recv(ctx.done(), [&](auto) { ended = true; }));
  if (ended) {
    forget();
    if (auto m = ch.try_recv()) {  // the reply won the race after all
      got = std::move(m);
    } else {
      ec = ctx.err();
      return {};
    }
  }
  if (!got || !*got) {
    ec = errc::connection_closed;
    return {};
  }
  if (natsMsg_IsNoResponders(MsgState::raw(*got))) {
    ec = errc::no_responders;
    return {};
  }
  return std::move(*got);
}

}  // namespace

Msg Conn::request(std::string_view subject, std::string_view data, const Context& ctx,
                  std::error_code& ec) const noexcept {
  if (!s_) {
    ec = errc::connection_closed;
    return {};
  }
  std::string subj(subject);
  return round_trip(s_, subj.c_str(), data, ctx, ec);
}

Msg Conn::request(std::string_view subject, std::string_view data, const Context& ctx) const {
  std::error_code ec;
  Msg m = request(subject, data, ctx, ec);
  if (ec) raise(ec, "goro::nats::Conn::request");
  return m;
}

// A message to our own mux subject comes back after everything published
// before it on this connection has reached the server: the server handles
// a connection's messages in order. So it waits as a PING/PONG flush does,
// but parks the goroutine instead of blocking the thread.
void Conn::flush(const Context& ctx, std::error_code& ec) const noexcept {
  if (!s_) {
    ec = errc::connection_closed;
    return;
  }
  round_trip(s_, nullptr, {}, ctx, ec);
}

void Conn::flush(std::error_code& ec) const noexcept {
  auto [ctx, cancel] = with_timeout(Context(), std::chrono::seconds(10));
  flush(ctx, ec);
  cancel();
  if (ec == goro::errc::deadline_exceeded) ec = errc::timeout;
}

void Conn::flush() const {
  std::error_code ec;
  flush(ec);
  if (ec) raise(ec, "goro::nats::Conn::flush");
}

void Conn::close() const {
  if (s_) s_->shutdown();
}

std::string Conn::new_inbox() const {
  natsInbox* inbox = nullptr;
  if (cn([&] { return natsInbox_Create(&inbox); }) != NATS_OK) return {};
  std::string r = inbox;
  natsInbox_Destroy(inbox);
  return r;
}

bool Conn::connected() const {
  return s_ && off_worker([nc = s_->nc] { return natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED; });
}

std::string Conn::connected_url() const {
  if (!s_) return {};
  char buf[256] = {};
  off_worker([&] { natsConnection_GetConnectedUrl(s_->nc, buf, sizeof buf); });
  return buf;
}

std::uint64_t Conn::reconnects() const { return s_ ? s_->reconnects.load(std::memory_order_relaxed) : 0; }

JetStream Conn::jetstream() const {
  JetStream js;
  if (!s_) return js;
  js.s_ = std::make_shared<detail::JsState>();
  js.s_->conn = s_;
  return js;
}

// ---------------------------------------------------------------- JetStream
void JetStream::add_stream(const StreamConfig& cfg, std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return;
  }
  if (auto e = s_->conn->ensure_js()) {
    ec = e;
    return;
  }
  std::vector<const char*> subjects;
  for (auto& s : cfg.subjects) subjects.push_back(s.c_str());
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = cfg.name.c_str();
  sc.Subjects = subjects.data();
  sc.SubjectsLen = static_cast<int>(subjects.size());
  sc.Replicas = cfg.replicas;
  sc.Storage = cfg.memory ? js_MemoryStorage : js_FileStorage;
  jsCtx* js = s_->conn->js;
  natsStatus st = off_worker([&] {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus r = js_AddStream(nullptr, js, &sc, nullptr, &jerr);
    if (r != NATS_OK && jerr == JSStreamNameExistErr) r = NATS_OK;
    return r;
  });
  ec = to_ec(st);
}

void JetStream::add_stream(const StreamConfig& cfg) const {
  std::error_code ec;
  add_stream(cfg, ec);
  if (ec) raise(ec, "goro::nats::JetStream::add_stream");
}

void JetStream::delete_stream(std::string_view name, std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_ || (ec = s_->conn->ensure_js())) {
    if (!s_) ec = errc::connection_closed;
    return;
  }
  std::string n(name);
  jsCtx* js = s_->conn->js;
  ec = to_ec(off_worker([&] { return js_DeleteStream(js, n.c_str(), nullptr, nullptr); }));
}

PubAck JetStream::publish(std::string_view subject, std::string_view data, const Context& ctx,
                          std::string_view msg_id, std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return {};
  }
  ConnState* cs = s_->conn.get();
  if (auto e = cs->ensure_js()) {
    ec = e;
    return {};
  }
  std::string subj(subject), id(msg_id);
  // No responders: the stream has no leader yet (a cluster electing one
  // after a node's loss); try again until the context ends.
  for (auto backoff = std::chrono::milliseconds(20);; backoff = std::min(backoff * 2, std::chrono::milliseconds(500))) {
    Chan<ConnState::JsResult> ch(1);
    natsMsg* m = nullptr;
    natsStatus st = cn([&] {
      natsStatus r = natsMsg_Create(&m, subj.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
      if (r == NATS_OK && !id.empty()) r = natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
      return r;
    });
    if (st != NATS_OK) {
      natsMsg_Destroy(m);
      ec = to_ec(st);
      return {};
    }
    natsMsg* key = m;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = ms_left(ctx, 5000);
    st = off_worker([&] { return js_PublishMsgAsync(cs->js, &m, &po); });
    if (st != NATS_OK) {
      natsMsg_Destroy(m);  // null if cnats took it
      ec = to_ec(st);
      return {};
    }
    std::optional<ConnState::JsResult> r;
    {
      std::unique_lock<std::mutex> lk(cs->js_mu);
      auto& e = cs->js_pending[key];
      if (e.early) {  // acked already: the message is ours to free
        r = std::move(e.early);
        cs->js_pending.erase(key);
        lk.unlock();
        natsMsg_Destroy(key);
      } else {
        e.ch = ch;
      }
    }
    if (!r) {
      bool ended = false;
      goro::select(goro::recv(ch, [&](auto v) { r = std::move(v); }),
                   goro::recv(ctx.done(), [&](auto) { ended = true; }));
      if (ended) {
        {
          std::lock_guard<std::mutex> lk(cs->js_mu);
          auto it = cs->js_pending.find(key);
          if (it != cs->js_pending.end()) it->second.ch = {};  // abandoned: the handler frees
        }
        if (auto v = ch.try_recv()) {  // the ack won the race after all
          r = std::move(v);
        } else {
          ec = ctx.err();
          return {};
        }
      }
    }
    if (!r->second) return std::move(r->first);
    if (r->second != errc::no_responders && r->second != errc::timeout) {
      ec = r->second;
      return {};
    }
    if (ctx.err()) {
      ec = ctx.err();
      return {};
    }
    if (r->second == errc::timeout && !ctx.deadline()) {
      ec = r->second;
      return {};
    }
    goro::select(goro::recv(goro::after(backoff)), goro::recv(ctx.done()));
  }
}

PubAck JetStream::publish(std::string_view subject, std::string_view data, const Context& ctx,
                          std::string_view msg_id) const {
  std::error_code ec;
  PubAck a = publish(subject, data, ctx, msg_id, ec);
  if (ec) raise(ec, "goro::nats::JetStream::publish");
  return a;
}

namespace {

// The fetcher thread of a pull subscription: asks for up to a batch (never
// more than the channel has room for), hands each message over, until
// unsubscribed; then closes the channel.
void fetch_loop(std::shared_ptr<SubState> s, std::shared_ptr<ConnState> cs, int batch) {
  InCallback in_callback;
  auto* sink = static_cast<detail::RawSink*>(s->sink.get());
  while (!s->stopping.load(std::memory_order_acquire) && !natsConnection_IsClosed(cs->nc)) {
    int room = static_cast<int>(sink->ch.capacity() - sink->ch.size());
    int want = std::min(batch, room);
    if (want <= 0) {
      // Full: wait for room (or the end) without holding anything.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    natsMsgList list{};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus st = natsSubscription_Fetch(&list, s->sub, want, 500, &jerr);
    if (st == NATS_OK) {
      for (int i = 0; i < list.Count; ++i) {
        natsMsg* m = list.Msgs[i];
        list.Msgs[i] = nullptr;
        if (s->stopping.load(std::memory_order_acquire)) {
          natsMsg_Destroy(m);  // not acked: redelivered to another member
          continue;
        }
        s->sink->deliver(MsgState::make(m, cs, s->owner), s->done);
      }
      natsMsgList_Destroy(&list);
    } else if (st != NATS_TIMEOUT) {
      // Disconnected, the consumer's leader moving, ...: try again shortly.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  s->complete();
  s->self.reset();
}

}  // namespace

Subscription JetStream::pull_subscribe(std::string_view stream, std::string_view durable, PullOptions opts,
                                       std::error_code& ec) const noexcept {
  ec.clear();
  if (!s_) {
    ec = errc::connection_closed;
    return {};
  }
  std::shared_ptr<ConnState> cs = s_->conn;
  if (auto e = cs->ensure_js()) {
    ec = e;
    return {};
  }
  if (stream.empty() || durable.empty() || opts.batch < 1 || opts.capacity < 1) {
    ec = errc::invalid_argument;
    return {};
  }
  std::string st_name(stream), dur(durable), filter(opts.filter_subject);
  auto ss = std::make_shared<SubState>();
  ss->conn = cs;
  auto sink = std::make_unique<detail::RawSink>();
  sink->ch = Chan<Msg>(opts.capacity);
  ss->ch = sink->ch;
  ss->sink = std::move(sink);
  natsStatus st = off_worker([&] {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = dur.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = static_cast<int64_t>(opts.ack_wait.count()) * 1'000'000;
    cc.MaxDeliver = opts.max_deliver;
    if (!filter.empty()) cc.FilterSubject = filter.c_str();
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus r = js_AddConsumer(nullptr, cs->js, st_name.c_str(), &cc, nullptr, &jerr);
    if (r != NATS_OK) {
      // Another member created it first (or with other settings): join it
      // as it is, if it exists.
      jsConsumerInfo* ci = nullptr;
      if (js_GetConsumerInfo(&ci, cs->js, st_name.c_str(), dur.c_str(), nullptr, nullptr) != NATS_OK) return r;
      jsConsumerInfo_Destroy(ci);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = st_name.c_str();
    so.Consumer = dur.c_str();  // bind: the library neither creates nor deletes it
    return js_PullSubscribe(&ss->sub, cs->js, filter.empty() ? nullptr : filter.c_str(), dur.c_str(), nullptr, &so,
                            &jerr);
  });
  if (st != NATS_OK) {
    ec = to_ec(st);
    return {};
  }
  ss->owner = std::shared_ptr<natsSubscription>(ss->sub, natsSubscription_Destroy);
  ss->self = ss;
  ss->fetcher = std::thread(fetch_loop, ss, cs, opts.batch);
  Subscription s;
  s.s_ = std::move(ss);
  return s;
}

Subscription JetStream::pull_subscribe(std::string_view stream, std::string_view durable, PullOptions opts) const {
  std::error_code ec;
  Subscription s = pull_subscribe(stream, durable, std::move(opts), ec);
  if (ec) raise(ec, "goro::nats::JetStream::pull_subscribe");
  return s;
}

}  // namespace goro::nats
