// SPDX-License-Identifier: MIT
// Pure unit tests of reactor::LineReader (no loop, no backend), including line limits.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "reactor/net/buffer.hpp"

namespace {

using reactor::Buffer;
using reactor::LineReader;

/// Every complete line currently in `in`; fails the test on an error.
std::vector<std::string> drain_lines(LineReader& reader, Buffer& in) {
  std::vector<std::string> lines;
  std::error_code ec;
  while (auto line = reader.next(in, ec)) lines.push_back(std::move(*line));
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(in.valid());
  return lines;
}

using Lines = std::vector<std::string>;

TEST(LineReaderTest, DefaultLimit) {
  EXPECT_EQ(LineReader().max_line(), 64u * 1024);
  EXPECT_EQ(LineReader(10).max_line(), 10u);
}

TEST(LineReaderTest, NothingBuffered) {
  LineReader reader;
  Buffer in;
  std::error_code ec = std::make_error_code(std::errc::io_error);
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_FALSE(ec) << "no line yet is not an error, and clears a stale one";
}

TEST(LineReaderTest, SplitsOnLf) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("one\ntwo\nthr"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"one", "two"}));
  EXPECT_EQ(in.view(), "thr") << "the partial line stays buffered";
  ASSERT_FALSE(in.append("ee\n"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"three"}));
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, CrlfDropsTheCr) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("abc\r\ndef\n\r\n"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"abc", "def", ""}));
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, LoneCrIsAnOrdinaryByte) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("a\rb\n\r\r\n\rx\n"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"a\rb", "\r", "\rx"}));
  ASSERT_FALSE(in.append("tail\r"));
  EXPECT_EQ(drain_lines(reader, in), Lines{});
  EXPECT_EQ(in.view(), "tail\r");
}

TEST(LineReaderTest, NulInsideLines) {
  LineReader reader;
  Buffer in;
  using namespace std::string_literals;
  ASSERT_FALSE(in.append("a\0b\n\0\n\0\r\n"s));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"a\0b"s, "\0"s, "\0"s}));
}

TEST(LineReaderTest, EmptyLines) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("\n\n\r\n"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"", "", ""}));
}

TEST(LineReaderTest, DelimiterSplitAcrossAppends) {
  LineReader reader;
  Buffer in;
  std::error_code ec;
  ASSERT_FALSE(in.append("abc\r"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_FALSE(ec);
  ASSERT_FALSE(in.append("\n"));
  auto line = reader.next(in, ec);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(*line, "abc");
  EXPECT_TRUE(in.empty());

  ASSERT_FALSE(in.append("de"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  ASSERT_FALSE(in.append("f"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  ASSERT_FALSE(in.append("\nrest"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"def"}));
  EXPECT_EQ(in.view(), "rest");
}

TEST(LineReaderTest, ManyLinesInOneAppend) {
  LineReader reader;
  Buffer in;
  std::string text;
  Lines expected;
  for (int i = 0; i < 10000; ++i) {
    expected.push_back("line " + std::to_string(i));
    text += expected.back() + (i % 2 ? "\r\n" : "\n");
  }
  ASSERT_FALSE(in.append(text));
  EXPECT_EQ(drain_lines(reader, in), expected);
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, RandomSplitsMatchReference) {
  // Random lines of bytes including CR and NUL, fed in random pieces (often one byte, so
  // every CRLF gets split sometimes): the lines come out exactly.
  std::mt19937 rng(7);
  const std::string alphabet("ab\r\0\xff", 5);
  Lines expected;
  std::string text;
  for (int i = 0; i < 2000; ++i) {
    std::string line;
    const std::size_t n = rng() % 40;
    for (std::size_t k = 0; k < n; ++k) line += alphabet[rng() % alphabet.size()];
    const bool crlf = rng() % 2;
    text += line + (crlf ? "\r\n" : "\n");
    // With LF only, a line's own trailing CR reads as a CRLF terminator.
    if (!crlf && !line.empty() && line.back() == '\r') line.pop_back();
    expected.push_back(line);
  }
  LineReader reader(64);
  Buffer in;
  Lines got;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t n =
        std::min<std::size_t>(text.size() - pos, 1 + rng() % (rng() % 2 ? 3 : 200));
    ASSERT_FALSE(in.append(std::string_view(text).substr(pos, n)));
    pos += n;
    for (auto& line : drain_lines(reader, in)) got.push_back(std::move(line));
  }
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, ExactLimitLineIsAccepted) {
  const std::string exact(16, 'x');
  for (const char* terminator : {"\n", "\r\n"}) {
    LineReader reader(16);
    Buffer in;
    ASSERT_FALSE(in.append(exact + terminator));
    EXPECT_EQ(drain_lines(reader, in), Lines{exact}) << terminator;
  }
  // Byte by byte, so that the reader sees max_line bytes, then the CR alone, then the LF.
  LineReader reader(16);
  Buffer in;
  for (char c : exact + "\r\n") {
    ASSERT_FALSE(in.append(std::string_view(&c, 1)));
    std::error_code ec;
    auto line = reader.next(in, ec);
    ASSERT_FALSE(ec) << "after " << in.size() << " bytes";
    if (line) {
      EXPECT_EQ(*line, exact);
    }
  }
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, LineOneOverTheLimitFails) {
  for (const char* terminator : {"\n", "\r\n"}) {
    LineReader reader(16);
    Buffer in;
    ASSERT_FALSE(in.append(std::string(17, 'x') + terminator));
    std::error_code ec;
    EXPECT_FALSE(reader.next(in, ec).has_value());
    EXPECT_EQ(ec, std::errc::message_size) << terminator;
  }
}

TEST(LineReaderTest, FailsAsSoonAsTheLimitPasses) {
  // Fed one byte at a time without a newline: the error comes with byte max_line + 1, not
  // later. A trailing CR might still be half of a CRLF, so it is not counted yet.
  LineReader reader(16);
  Buffer in;
  std::error_code ec;
  for (int i = 0; i < 16; ++i) {
    ASSERT_FALSE(in.append("x"));
    EXPECT_FALSE(reader.next(in, ec).has_value());
    ASSERT_FALSE(ec) << i;
  }
  ASSERT_FALSE(in.append("\r"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_FALSE(ec) << "16 bytes and a CR may still be an exact-limit line";
  ASSERT_FALSE(in.append("y"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_EQ(ec, std::errc::message_size);

  LineReader plain(16);
  Buffer in2;
  ASSERT_FALSE(in2.append(std::string(17, 'x')));
  EXPECT_FALSE(plain.next(in2, ec).has_value());
  EXPECT_EQ(ec, std::errc::message_size);
}

TEST(LineReaderTest, StaysFailedUntilReset) {
  LineReader reader(4);
  Buffer in;
  std::error_code ec;
  ASSERT_FALSE(in.append("toolong\nok\n"));
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_EQ(ec, std::errc::message_size);
  EXPECT_EQ(in.view(), "toolong\nok\n") << "nothing consumed on error";
  ec.clear();
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_EQ(ec, std::errc::message_size) << "refuses further lines";
  reader.reset();
  in.clear();
  ASSERT_FALSE(in.append("ok\n"));
  EXPECT_EQ(drain_lines(reader, in), Lines{"ok"});
}

TEST(LineReaderTest, ZeroLimitAcceptsOnlyEmptyLines) {
  LineReader reader(0);
  Buffer in;
  ASSERT_FALSE(in.append("\n\r\n"));
  EXPECT_EQ(drain_lines(reader, in), (Lines{"", ""}));
  ASSERT_FALSE(in.append("\r"));
  EXPECT_EQ(drain_lines(reader, in), Lines{});
  ASSERT_FALSE(in.append("x"));
  std::error_code ec;
  EXPECT_FALSE(reader.next(in, ec).has_value());
  EXPECT_EQ(ec, std::errc::message_size);
}

TEST(LineReaderTest, BufferConsumedBehindItsBack) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("partial"));
  std::error_code ec;
  EXPECT_FALSE(reader.next(in, ec).has_value());
  in.clear();
  ASSERT_FALSE(in.append("x\n"));
  EXPECT_EQ(drain_lines(reader, in), Lines{"x"});
}

TEST(LineReaderTest, TenMebibytesWithoutNewline) {
  // A peer sends 10 MiB with no newline in 4 KiB pieces. The 64 KiB limit fails the reader
  // with the first piece past it, and memory stays within the input buffer's 1 MiB cap even
  // if the caller kept reading after the error.
  constexpr std::size_t kLimit = 64 * 1024;
  constexpr std::size_t kCap = 1024 * 1024;
  constexpr std::size_t kPiece = 4 * 1024;
  LineReader reader(kLimit);
  Buffer in(kCap);
  const std::string piece(kPiece, 'a');
  std::size_t fed = 0;
  std::size_t failed_at = 0;
  std::size_t refused_at = 0;
  std::error_code ec;
  while (fed < 10 * kCap) {
    const std::error_code append_ec = in.append(piece);
    if (append_ec) {
      EXPECT_EQ(append_ec, std::errc::no_buffer_space);
      refused_at = fed;
      break;
    }
    fed += kPiece;
    EXPECT_FALSE(reader.next(in, ec).has_value());
    if (ec) {
      EXPECT_EQ(ec, std::errc::message_size);
      if (failed_at == 0) failed_at = fed;
    } else {
      EXPECT_EQ(failed_at, 0u) << "the error is sticky";
    }
    ASSERT_LE(in.capacity(), kCap);
    ASSERT_TRUE(in.valid());
  }
  EXPECT_EQ(failed_at, kLimit + kPiece) << "fails with the first piece past the limit";
  EXPECT_EQ(refused_at, kCap) << "the buffer cap stops the growth";
  EXPECT_LE(in.capacity(), kCap);
}

TEST(LineReaderTest, LongLineInSmallPiecesIsScannedOnce) {
  // A 4 MiB line arriving one byte at a time. Rescanning from the start on every call would
  // read about 8 * 10^12 bytes (minutes); remembering the scanned prefix reads each byte once.
  constexpr std::size_t kLength = 4 * 1024 * 1024;
  LineReader reader(kLength);
  Buffer in(kLength + 2);
  std::error_code ec;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < kLength; ++i) {
    const char c = static_cast<char>('a' + i % 26);
    ASSERT_FALSE(in.append(&c, 1));
    if (reader.next(in, ec).has_value() || ec) FAIL() << "at byte " << i << ": " << ec.message();
    // Linear work takes well under a second even under sanitizers; quadratic work would take
    // minutes, so give up early rather than hang.
    if (i % 65536 == 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(30))
      FAIL() << "rescanning: only " << i << " bytes after 30 s";
  }
  ASSERT_FALSE(in.append("\r\n"));
  auto line = reader.next(in, ec);
  ASSERT_TRUE(line.has_value()) << ec.message();
  EXPECT_EQ(line->size(), kLength);
  EXPECT_EQ((*line)[kLength - 1], static_cast<char>('a' + (kLength - 1) % 26));
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, PeekViewsTheLineWithItsTerminatorAndConsumesNothing) {
  LineReader reader;
  Buffer in;
  ASSERT_FALSE(in.append("one\r\ntwo\nthr"));
  std::error_code ec = std::make_error_code(std::errc::io_error);
  std::string_view line = reader.peek(in, ec);
  EXPECT_FALSE(ec) << "a line found clears a stale error";
  EXPECT_EQ(line, "one\r\n");
  EXPECT_EQ(line.data(), in.data()) << "a view of the buffer, not a copy";
  EXPECT_EQ(in.size(), 12u) << "peek consumes nothing";
  EXPECT_EQ(reader.peek(in, ec), "one\r\n") << "the same line until the caller consumes it";
  ASSERT_FALSE(in.consume(line.size()));
  EXPECT_EQ(reader.peek(in, ec), "two\n");
  ASSERT_FALSE(in.consume(4));
  EXPECT_TRUE(reader.peek(in, ec).empty()) << "a partial line is not a line";
  EXPECT_FALSE(ec);
  EXPECT_EQ(in.view(), "thr");
}

TEST(LineReaderTest, PeekFailsOverTheLimitAsNextDoes) {
  LineReader reader(4);
  std::error_code ec;
  EXPECT_EQ(reader.peek(std::string_view("1234\r\n"), ec), "1234\r\n");
  EXPECT_FALSE(ec);
  EXPECT_TRUE(reader.peek(std::string_view("12345\n"), ec).empty());
  EXPECT_EQ(ec, std::errc::message_size);
  EXPECT_TRUE(reader.peek(std::string_view("ok\n"), ec).empty());
  EXPECT_EQ(ec, std::errc::message_size) << "sticky until reset()";
  reader.reset();
  EXPECT_EQ(reader.peek(std::string_view("ok\n"), ec), "ok\n");
  EXPECT_FALSE(ec);
}

TEST(LineReaderTest, SplitsAStringViewWithoutABuffer) {
  // A datagram: every line, and a last one without its newline.
  LineReader reader;
  std::string_view data = "a\nb\r\n\nlast";
  std::vector<std::string> got;
  std::error_code ec;
  for (std::string_view line; !(line = reader.peek_at_eof(data, ec)).empty();) {
    got.emplace_back(line);
    data.remove_prefix(line.size());
  }
  EXPECT_FALSE(ec);
  EXPECT_EQ(got, (Lines{"a\n", "b\r\n", "\n", "last"}));
}

TEST(LineReaderTest, AtEofTheRestIsTheLastLine) {
  LineReader reader;
  Buffer in;
  std::error_code ec;
  ASSERT_FALSE(in.append("full\nend\r"));
  EXPECT_EQ(reader.peek_at_eof(in, ec), "full\n") << "complete lines come first";
  ASSERT_FALSE(in.consume(5));
  EXPECT_EQ(reader.peek_at_eof(in, ec), "end\r") << "a lone CR at the end is an ordinary byte";
  EXPECT_FALSE(ec);
  ASSERT_FALSE(in.consume(4));
  EXPECT_TRUE(reader.peek_at_eof(in, ec).empty()) << "nothing left: no line";
  EXPECT_FALSE(ec);
}

TEST(LineReaderTest, NextAtEofCopiesTheLastLine) {
  LineReader reader;
  Buffer in;
  std::error_code ec;
  ASSERT_FALSE(in.append("a\r\nb"));
  EXPECT_EQ(reader.next_at_eof(in, ec), std::optional<std::string>("a"));
  EXPECT_EQ(reader.next_at_eof(in, ec), std::optional<std::string>("b"));
  EXPECT_EQ(reader.next_at_eof(in, ec), std::nullopt);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(in.empty());
}

TEST(LineReaderTest, AtEofTheLastLineIsCappedToo) {
  // Four bytes and a CR fit the cap of 4 while the CR may still be half of a CRLF; at the end
  // of the stream it is an ordinary byte, and the line is one byte too long.
  LineReader reader(4);
  Buffer in;
  std::error_code ec;
  ASSERT_FALSE(in.append("1234\r"));
  EXPECT_TRUE(reader.peek(in, ec).empty());
  EXPECT_FALSE(ec);
  EXPECT_TRUE(reader.peek_at_eof(in, ec).empty());
  EXPECT_EQ(ec, std::errc::message_size);
  EXPECT_EQ(in.size(), 5u) << "nothing consumed on error";

  LineReader exact(4);
  EXPECT_EQ(exact.peek_at_eof(std::string_view("1234"), ec), "1234") << "at the cap";
  EXPECT_FALSE(ec);
}

TEST(LineReaderTest, StripDropsTheTerminatorOnly) {
  EXPECT_EQ(LineReader::strip("a\n"), "a");
  EXPECT_EQ(LineReader::strip("a\r\n"), "a");
  EXPECT_EQ(LineReader::strip("\r\n"), "");
  EXPECT_EQ(LineReader::strip("a\r"), "a\r") << "no newline: a last line, kept whole";
  EXPECT_EQ(LineReader::strip("a\r\r\n"), "a\r");
  EXPECT_EQ(LineReader::strip(""), "");
}

}  // namespace
