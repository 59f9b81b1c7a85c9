// SPDX-License-Identifier: MIT
// ServerOptions: the idle timeout is one knob for every model; the per-connection options of
// the reactor and pool models carry everything else of Connection::Options, with its defaults.
#include "reactor/server/options.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "reactor/net/connection.hpp"

namespace {

using namespace std::chrono_literals;
using reactor::Connection;
using reactor::ServerConnectionOptions;

TEST(ServerOptionsTest, ConnectionDefaultsAreTheConnectionsOwn) {
  const Connection::Options want;
  const Connection::Options got = ServerConnectionOptions{}.with_idle_timeout(0ns);
  EXPECT_EQ(got.max_input, want.max_input);
  EXPECT_EQ(got.max_output, want.max_output);
  EXPECT_EQ(got.high_watermark, want.high_watermark);
  EXPECT_EQ(got.low_watermark, want.low_watermark);
  EXPECT_EQ(got.read_size, want.read_size);
  EXPECT_EQ(got.reads_per_iteration, want.reads_per_iteration);
  EXPECT_EQ(got.idle_timeout, want.idle_timeout);
  EXPECT_EQ(got.deadline, want.deadline);
  EXPECT_EQ(got.no_delay, want.no_delay);
}

TEST(ServerOptionsTest, EveryConnectionOptionAndTheIdleTimeoutReachTheConnection) {
  ServerConnectionOptions o;
  o.max_input = 11;
  o.max_output = 12;
  o.high_watermark = 13;
  o.low_watermark = 14;
  o.read_size = 15;
  o.reads_per_iteration = 16;
  o.deadline = 17s;
  o.no_delay = false;
  const Connection::Options got = o.with_idle_timeout(250ms);
  EXPECT_EQ(got.max_input, 11u);
  EXPECT_EQ(got.max_output, 12u);
  EXPECT_EQ(got.high_watermark, 13u);
  EXPECT_EQ(got.low_watermark, 14u);
  EXPECT_EQ(got.read_size, 15u);
  EXPECT_EQ(got.reads_per_iteration, 16u);
  EXPECT_EQ(got.deadline, 17s);
  EXPECT_FALSE(got.no_delay);
  EXPECT_EQ(got.idle_timeout, 250ms);
}

}  // namespace
