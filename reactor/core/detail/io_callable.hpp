// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// The loop's own small callable for I/O handlers. Internal (namespace detail), but declared
/// in a header because Reactor::watch() builds one from the caller's lambda inline.

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "reactor/core/backend.hpp"

namespace reactor::detail {

/// A move-only `void(IoEvents)` callable in 24 bytes: 16 bytes of inline room (enough for a
/// lambda holding a std::shared_ptr or two pointers) and a pointer to its operations. A
/// bigger callable, or one whose move may throw, lives on the heap. Moving relocates (the
/// source is left empty). Calling an empty one is undefined.
class IoCallable {
 public:
  static constexpr std::size_t kInlineSize = 16;

  IoCallable() noexcept = default;
  /// Takes `f` (a callable class object). May throw what moving/copying `f` throws, and
  /// std::bad_alloc when it needs the heap.
  template <class F, class D = std::remove_cvref_t<F>>
  requires(!std::is_same_v<D, IoCallable> &&
           std::is_invocable_v<D&, IoEvents>) explicit IoCallable(F&& f) {
    if constexpr (fits_inline<D>()) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &kInlineOps<D>;
    } else {
      *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
      ops_ = &kHeapOps<D>;
    }
  }
  IoCallable(IoCallable&& other) noexcept { take(other); }
  IoCallable& operator=(IoCallable&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  IoCallable(const IoCallable&) = delete;
  IoCallable& operator=(const IoCallable&) = delete;
  ~IoCallable() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  void operator()(IoEvents events) { ops_->call(storage_, events); }

  /// Destroys the callable now (if any), leaving this empty.
  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }
  /// Forgets the callable without destroying it (its memory and what it holds leak): for a
  /// callable whose call can never return, because its thread is gone (a fork).
  void abandon() noexcept { ops_ = nullptr; }

 private:
  struct Ops {
    void (*call)(void* self, IoEvents events);
    void (*relocate)(void* to, void* from) noexcept;  // move-constructs, destroys the source
    void (*destroy)(void* self) noexcept;
  };

  template <class D>
  static constexpr bool fits_inline() noexcept {
    return sizeof(D) <= kInlineSize && alignof(D) <= alignof(void*) &&
           std::is_nothrow_move_constructible_v<D>;
  }

  template <class D>
  static constexpr Ops kInlineOps{
      [](void* self, IoEvents events) { (*std::launder(static_cast<D*>(self)))(events); },
      [](void* to, void* from) noexcept {
        D* source = std::launder(static_cast<D*>(from));
        ::new (to) D(std::move(*source));
        source->~D();
      },
      [](void* self) noexcept { std::launder(static_cast<D*>(self))->~D(); }};

  template <class D>
  static constexpr Ops kHeapOps{
      [](void* self, IoEvents events) { (**static_cast<D**>(self))(events); },
      [](void* to, void* from) noexcept { *static_cast<D**>(to) = *static_cast<D**>(from); },
      [](void* self) noexcept { delete *static_cast<D**>(self); }};

  void take(IoCallable& other) noexcept {
    if (other.ops_ == nullptr) return;
    other.ops_->relocate(storage_, other.storage_);
    ops_ = std::exchange(other.ops_, nullptr);
  }

  alignas(void*) unsigned char storage_[kInlineSize];
  const Ops* ops_ = nullptr;
};

static_assert(sizeof(IoCallable) == 24);

}  // namespace reactor::detail
