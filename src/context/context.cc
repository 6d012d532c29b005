// src/context/context.cc: the context tree, and goro's error category.
//
// A CtxNode is a cancellable node (with_cancel / with_deadline) or a value
// node (with_value). Value nodes only link to their parent; done/err come
// from the nearest cancellable ancestor. A cancellable node registers with
// its nearest cancellable ancestor (`attached_to`), which holds it in
// `children` until either ends: the ancestor's cancel cancels it, and its own
// cancel removes it (no leak when many short-lived children come and go).
// Lock order: an ancestor's m before its child's m, and only in attach().
// cancel never holds two: it collects the children under its own m,
// releases it, then cancels each child, and detaching from its ancestor
// takes only the ancestor's m.
#include "goro/context.h"

#include "arch/sanitizer.h"

#include <mutex>
#include <string>
#include <unordered_map>

#include "goro/detail/raw_mutex.h"
#include "goro/time.h"

namespace goro {

namespace {
class GoroCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "goro"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::canceled: return "context canceled";
      case errc::deadline_exceeded: return "context deadline exceeded";
      case errc::eof: return "EOF";
      case errc::closed: return "use of closed network connection";
      case errc::host_not_found: return "no such host";
      case errc::too_long: return "bufio.Scanner: token too long";
      case errc::unexpected_eof: return "unexpected EOF";
      case errc::exceeds_burst: return "rate: Wait(n) exceeds limiter's burst";
      case errc::would_exceed_deadline: return "rate: Wait(n) would exceed context deadline";
    }
    return "unknown goro error";
  }
};
}  // namespace

const std::error_category& goro_category() noexcept {
  static const GoroCategory cat;
  return cat;
}

namespace detail {

struct CtxNode : std::enable_shared_from_this<CtxNode> {
  std::shared_ptr<CtxNode> parent;
  // Value node.
  const void* key = nullptr;
  std::shared_ptr<const void> value;
  // Cancellable node.
  bool cancellable = false;
  Chan<std::monostate> done;              // closed on cancel
  std::optional<Clock::time_point> deadline;
  RawMutex m;                             // protects err, children, timer, attached_to
  std::error_code err;
  std::unordered_map<CtxNode*, std::shared_ptr<CtxNode>> children;
  std::optional<Timer> timer;
  CtxNode* attached_to = nullptr;         // kept alive by our parent chain

  CtxNode* cancel_ancestor() {
    CtxNode* a = parent.get();
    while (a != nullptr && !a->cancellable) a = a->parent.get();
    return a;
  }

  void cancel(std::error_code e, bool detach) {
    arch::SanRuntimeScope san;
    m.lock();
    if (err) {
      m.unlock();
      return;
    }
    err = e;
    // TSan: what the canceller did happens before a later err() that sees
    // it (Go: the context's mutex); done's close states its own edge.
    arch::san_release(this);
    auto kids = std::move(children);
    children.clear();
    std::optional<Timer> t = std::move(timer);
    timer.reset();
    CtxNode* a = attached_to;
    attached_to = nullptr;
    m.unlock();
    done.close();
    if (t) t->stop();
    for (auto& [raw, child] : kids) child->cancel(e, false);
    if (detach && a != nullptr) {
      std::lock_guard<RawMutex> lk(a->m);
      a->children.erase(this);
    }
  }

  // Registers with the nearest cancellable ancestor, or is cancelled at once
  // if that ancestor is already done.
  void attach() {
    CtxNode* a = cancel_ancestor();
    if (a == nullptr) return;
    std::error_code parent_err;
    {
      std::lock_guard<RawMutex> lk(a->m);
      if (a->err) {
        parent_err = a->err;
      } else {
        a->children.emplace(this, shared_from_this());
        std::lock_guard<RawMutex> lk2(m);  // parent, then child: the only nesting
        attached_to = a;
      }
    }
    if (parent_err) cancel(parent_err, false);
  }
};

}  // namespace detail

namespace {
const Chan<std::monostate> kNilDone;  // background()'s (constant-initialized)
}  // namespace

const Chan<std::monostate>& Context::done() const {
  detail::CtxNode* n = node_.get();
  if (n != nullptr && !n->cancellable) n = n->cancel_ancestor();
  return n != nullptr ? n->done : kNilDone;
}

std::error_code Context::err() const {
  arch::SanRuntimeScope san;
  detail::CtxNode* n = node_.get();
  if (n != nullptr && !n->cancellable) n = n->cancel_ancestor();
  if (n == nullptr) return {};
  std::error_code e;
  {
    std::lock_guard<detail::RawMutex> lk(n->m);
    e = n->err;
  }
  if (e) arch::san_acquire(n);
  return e;
}

std::optional<Clock::time_point> Context::deadline() const {
  for (detail::CtxNode* n = node_.get(); n != nullptr; n = n->parent.get())
    if (n->deadline) return n->deadline;
  return std::nullopt;
}

const void* Context::find_value(const void* key) const {
  for (detail::CtxNode* n = node_.get(); n != nullptr; n = n->parent.get())
    if (n->key == key) return n->value.get();
  return nullptr;
}

Context Context::make_value(const Context& parent, const void* key, std::shared_ptr<const void> v) {
  auto n = std::make_shared<detail::CtxNode>();
  n->parent = parent.node_;
  n->key = key;
  n->value = std::move(v);
  return Context(std::move(n));
}

void CancelFunc::operator()() const {
  if (node_ != nullptr) node_->cancel(errc::canceled, true);
}

namespace {
std::shared_ptr<detail::CtxNode> new_cancel_node(const Context& parent, std::shared_ptr<detail::CtxNode> pnode) {
  (void)parent;
  auto n = std::make_shared<detail::CtxNode>();
  n->parent = std::move(pnode);
  n->cancellable = true;
  n->done = Chan<std::monostate>(0);
  return n;
}
}  // namespace

std::pair<Context, CancelFunc> with_cancel(const Context& parent) {
  arch::SanRuntimeScope san;
  auto n = new_cancel_node(parent, parent.node_);
  n->attach();
  return {Context(n), CancelFunc(n)};
}

std::pair<Context, CancelFunc> with_deadline(const Context& parent, Clock::time_point tp) {
  arch::SanRuntimeScope san;
  if (auto pd = parent.deadline(); pd && *pd <= tp) return with_cancel(parent);  // the parent's is sooner
  auto n = new_cancel_node(parent, parent.node_);
  n->deadline = tp;
  n->attach();
  auto left = tp - Clock::now();
  if (left <= Clock::duration::zero()) {
    n->cancel(errc::deadline_exceeded, true);
  } else {
    std::lock_guard<detail::RawMutex> lk(n->m);
    if (!n->err) {
      std::weak_ptr<detail::CtxNode> w = n;
      n->timer.emplace(after_func(left, [w] {
        if (auto self = w.lock()) self->cancel(errc::deadline_exceeded, true);
      }));
    }
  }
  return {Context(n), CancelFunc(n)};
}

}  // namespace goro
