// goro/detail/chan_core.h: the type-erased channel the Chan<T> and select
// templates sit on. One implementation (src/chan/chan.cc) serves every
// element type through an ElemOps table, as Go's hchan serves every type
// through its element size; select then works across element types.
#pragma once

#include <goro/export.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace goro::detail {

// How the core moves elements it cannot name.
struct ElemOps {
  std::size_t size;
  std::size_t align;
  // Move-constructs a T at `dst` (raw storage) from the T at `src`; the
  // source stays alive (its owner destroys it).
  void (*move_construct)(void* dst, void* src);
  // Emplaces into the std::optional<T> at `opt` from the T at `src`.
  void (*move_to_optional)(void* opt, void* src);
  void (*destroy)(void* p);
};

template <class T>
inline constexpr ElemOps kElemOps = {
    sizeof(T),
    alignof(T),
    [](void* dst, void* src) { ::new (dst) T(std::move(*static_cast<T*>(src))); },
    [](void* opt, void* src) { static_cast<std::optional<T>*>(opt)->emplace(std::move(*static_cast<T*>(src))); },
    [](void* p) { static_cast<T*>(p)->~T(); },
};

struct ChanCore;  // opaque; src/chan/chan.cc

GORO_EXPORT ChanCore* chan_new(std::size_t cap, const ElemOps* ops);
GORO_EXPORT void chan_retain(ChanCore* c);
GORO_EXPORT void chan_release(ChanCore* c);
// Registers fn(arg) to run when the last handle is released, before the
// channel is destroyed. Call once, before the channel is shared.
GORO_EXPORT void chan_on_last_handle(ChanCore* c, void (*fn)(void*), void* arg);
// Sends the T at `src` (moved from only on success). Blocks if `block`;
// returns false only for a non-blocking send that could not proceed.
// Panics "send on closed channel". `c` null is the nil channel.
GORO_EXPORT bool chan_send(ChanCore* c, void* src, bool block);
enum class RecvResult : std::uint8_t { value, closed, would_block };
// Receives into the std::optional<T> at `opt` (left empty unless `value`).
GORO_EXPORT RecvResult chan_recv(ChanCore* c, void* opt, bool block);
GORO_EXPORT void chan_close(ChanCore* c);
GORO_EXPORT std::size_t chan_size(const ChanCore* c);
GORO_EXPORT std::size_t chan_cap(const ChanCore* c);

// One case of a select, type-erased. For a receive, `elem` is the
// std::optional<T> to fill; for a send, the T to move from.
struct SelectCase {
  ChanCore* chan;
  void* elem;
  bool is_send;
  bool received;  // out: a receive case got a value (false: closed)
};
// Runs Go's selectgo over `cases`: returns the index of the case that ran,
// or -1 if none was ready and `has_default`. Blocks otherwise.
GORO_EXPORT int select_impl(SelectCase* cases, int n, bool has_default);

}  // namespace goro::detail
