// SPDX-License-Identifier: MIT
#include "reactor/server/handlers.hpp"

namespace reactor {

void StreamRequest::run(StreamRequestHandler& handler, BlockingStream& stream,
                        const Address& client) {
  handler.stream_ = &stream;
  handler.client_ = &client;
  handler.setup();
  // Python's BaseRequestHandler: finish() runs whether or not handle() threw.
  try {
    handler.handle();
  } catch (...) {
    handler.finish();
    throw;
  }
  handler.finish();
}

namespace {
using Function = std::function<void(BlockingStream&, const Address&)>;

class FunctionHandler final : public StreamRequestHandler {
 public:
  explicit FunctionHandler(std::shared_ptr<const Function> fn) : fn_(std::move(fn)) {}
  void handle() override { (*fn_)(stream(), client_address()); }

 private:
  std::shared_ptr<const Function> fn_;
};
}  // namespace

StreamHandlerFactory stream_handler(Function fn) {
  auto shared = std::make_shared<const Function>(std::move(fn));
  return [shared] { return std::make_unique<FunctionHandler>(shared); };
}

}  // namespace reactor
