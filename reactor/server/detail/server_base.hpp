// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// What StreamServerImpl and DatagramServerImpl share: the core, one source (a Listener, a
/// DatagramSocket) and one admission per loop, handle_request()'s one-shot state, the
/// release of slots, and close() down to the removal of the Unix path. Internal.
///
/// `Impl` derives from ServerBase<Impl, Item, Source> and provides:
///   bool start(std::size_t loop, Item&);       with a slot held; false: retry later
///   static void switch_source(Source&, bool);  source on or off
///   void close_loop(std::size_t loop);         close(): before the loop's admission is
///                                              cleared and its source goes
///   bool request_finished();                   handle_request(): the started one has ended
///   void request_ended();                      handle_request(): after, even on an exception
/// Source has fd().

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reactor/net/address.hpp"
#include "reactor/server/detail/admission.hpp"
#include "reactor/server/detail/server_core.hpp"

namespace reactor::detail {

template <typename Impl, typename Item, typename Source>
class ServerBase {
 public:
  explicit ServerBase(ServerOptions options) : core_(std::move(options)) {
    for (std::size_t w = 0; w < core_.loop_count(); ++w) {
      loops_.push_back(std::make_unique<PerLoop>(core_, w, admission_hooks(w)));
    }
  }

  const Address& address() const noexcept { return address_; }
  int fileno() const noexcept { return loops_[0]->source ? loops_[0]->source->fd() : -1; }

  bool handle_request() {
    one_shot_ = true;
    one_shot_target_ = started_ + 1;
    return core_.handle_request([this] { return started_ >= one_shot_target_; },
                                [this] { return impl().request_finished(); },
                                [this] {
                                  one_shot_ = false;
                                  impl().request_ended();
                                  loops_[0]->admission.rebalance();
                                });
  }

  /// Joins every worker, closes every loop's source and removes the Unix path. Idempotent.
  void close() noexcept {
    if (core_.closed()) return;
    core_.join_all();
    for (std::size_t w = 0; w < loops_.size(); ++w) {
      impl().close_loop(w);
      loops_[w]->admission.clear();
      loops_[w]->source.reset();
    }
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
    core_.mark_closed();
  }

  ServerCore core_;

 protected:
  // One per loop.
  struct PerLoop {
    PerLoop(ServerCore& core, std::size_t loop, typename Admission<Item>::Hooks hooks)
        : admission(core, loop, std::move(hooks)) {}
    std::unique_ptr<Source> source;
    Admission<Item> admission;  // clients waiting for a slot
  };

  /// The bound address, once loop 0's source is made.
  void set_address(const Address& address) {
    address_ = address;
    unix_path_ = address.unix_path();
  }

  /// Counts a started request; inside handle_request(), stops `loop`'s source after it.
  void started(std::size_t loop) {
    ++started_;
    if (one_shot_ && loops_[loop]->source) Impl::switch_source(*loops_[loop]->source, false);
  }

  /// Any thread.
  void release_slot() {
    core_.release_slot([this](std::size_t w) { loops_[w]->admission.rebalance(); });
  }

  std::vector<std::unique_ptr<PerLoop>> loops_;
  bool one_shot_ = false;  // inside handle_request(): stop after one request

 private:
  Impl& impl() noexcept { return static_cast<Impl&>(*this); }

  typename Admission<Item>::Hooks admission_hooks(std::size_t w) {
    return {[this, w](bool on) {
              if (Source* s = loops_[w]->source.get()) Impl::switch_source(*s, on);
            },
            [this, w](Item& item) { return impl().start(w, item); },
            [this] { return !(one_shot_ && started_ >= one_shot_target_); }};
  }

  Address address_;
  std::string unix_path_;                  // removed by close()
  std::atomic<std::uint64_t> started_{0};  // pool loops start requests concurrently
  std::uint64_t one_shot_target_ = 0;
};

}  // namespace reactor::detail
