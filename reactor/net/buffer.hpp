// SPDX-License-Identifier: MIT
#pragma once
/// \file
/// A byte buffer for connections: one contiguous readable region, cheap consumption from the
/// front, room to grow at the back, a hard cap, and checked arithmetic everywhere.
///
///   +-------------------+--------------------+--------------------+
///   | consumed (reused) |   readable bytes   |   writable room    |
///   +-------------------+--------------------+--------------------+
///   0        <=     read_pos      <=      write_pos      <=    capacity
///
/// The three positions live in a header at the front of the heap block, just before byte 0,
/// so that a Buffer itself is one pointer and the cap (16 bytes), and a buffer with no memory
/// is a null pointer: an idle connection's empty buffers cost nothing beyond that.
///
///   Buffer: [ block* | max_size ]      block: [ capacity | read_pos | write_pos | bytes... ]
///
/// Consuming moves read_pos; when the buffer empties both positions return to 0. Growing
/// first slides the readable bytes to the front when that makes enough room, and only
/// otherwise reallocates. No operation ever wraps around: a size that does not fit is an
/// error (EINVAL for an impossible request, ENOBUFS past the cap, ENOMEM when allocation
/// fails) and leaves the buffer exactly as it was.
///
/// Thread rule: none; a Buffer is a value. Not copyable (copies are explicit: append()).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "reactor/export.hpp"

namespace reactor {

/// How buffers get memory. Replaceable (as libuv's uv_replace_allocator) so that tests can
/// inject failures and programs can count; both functions must be thread-safe.
struct REACTOR_API BufferAllocator {
  void* (*allocate)(std::size_t size) noexcept;  ///< nullptr on failure
  /// Frees a block allocate() returned; never called with nullptr.
  void (*release)(void* p) noexcept;
};
/// Installs `a` for every buffer allocation from now on; returns the previous one.
/// Call it before buffers exist or with an allocator compatible with the current one.
REACTOR_API BufferAllocator set_buffer_allocator(BufferAllocator a) noexcept;

/// A growable byte buffer with a hard cap on its readable bytes; the file comment draws its
/// layout. Movable, not copyable.
class REACTOR_API Buffer {
 public:
  /// Default hard cap on readable bytes: 64 MiB.
  static constexpr std::size_t kDefaultMaxSize = std::size_t{64} << 20;
  /// Bytes each heap block holds besides capacity() (the positions): a buffer asks its
  /// BufferAllocator for capacity() + kBlockOverhead bytes.
  static constexpr std::size_t kBlockOverhead = 3 * sizeof(std::size_t);

  /// An empty buffer holding at most `max_size` readable bytes. Allocates nothing yet.
  explicit Buffer(std::size_t max_size = kDefaultMaxSize) noexcept : max_size_(max_size) {}
  /// Takes `other`'s memory, bytes and cap; `other` is left empty, with no memory.
  Buffer(Buffer&& other) noexcept;
  /// Frees this buffer's memory, then takes `other`'s as the move constructor does.
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  /// Readable bytes.
  std::size_t size() const noexcept {
    return block_ == nullptr ? 0 : block_->write_pos - block_->read_pos;
  }
  /// No readable bytes (size() == 0).
  bool empty() const noexcept { return block_ == nullptr || block_->write_pos == block_->read_pos; }
  /// Bytes allocated for bytes (the block's header, kBlockOverhead, not counted); 0: none.
  std::size_t capacity() const noexcept { return block_ == nullptr ? 0 : block_->capacity; }
  /// The cap on readable bytes.
  std::size_t max_size() const noexcept { return max_size_; }
  /// Changes the cap; fails with ENOBUFS (and changes nothing) if size() is already above it.
  std::error_code set_max_size(std::size_t max_size) noexcept;

  /// The readable bytes, contiguous. Valid until the next non-const call.
  std::string_view view() const noexcept { return {data(), size()}; }
  /// The first readable byte, as view().data(); valid as long as view() is.
  const char* data() const noexcept {
    return block_ == nullptr ? nullptr : block_->bytes() + block_->read_pos;
  }
  /// The first n readable bytes; EINVAL (and an empty view) if n > size().
  std::string_view peek(std::size_t n, std::error_code& ec) const noexcept;

  /// Appends bytes. ENOBUFS past the cap, ENOMEM if memory runs out; unchanged on error.
  std::error_code append(std::string_view bytes) noexcept;
  /// Appends the `n` bytes at `p`, with the errors of append(std::string_view).
  std::error_code append(const void* p, std::size_t n) noexcept;
  /// Appends another buffer's readable bytes (it keeps them). EINVAL for itself.
  std::error_code append(const Buffer& other) noexcept;

  /// Drops n bytes from the front. EINVAL (and nothing dropped) if n > size().
  std::error_code consume(std::size_t n) noexcept;
  /// Drops everything; keeps the memory.
  void clear() noexcept {
    if (block_ != nullptr) block_->read_pos = block_->write_pos = 0;
  }
  /// Releases memory not needed for the readable bytes: an empty buffer frees its block
  /// (capacity() becomes 0).
  void shrink() noexcept;

  /// Makes room for at least n more bytes (ENOBUFS if size() + n would pass the cap) and
  /// returns the writable region, which may be larger than n. Fill it, then commit().
  std::span<char> prepare(std::size_t n, std::error_code& ec) noexcept;
  /// The current writable region, without growing.
  std::span<char> writable() noexcept {
    if (block_ == nullptr) return {};
    return {block_->bytes() + block_->write_pos, block_->capacity - block_->write_pos};
  }
  /// Makes n bytes of the writable region readable. EINVAL if n exceeds it, ENOBUFS if it
  /// would pass the cap (possible after set_max_size() lowered it).
  std::error_code commit(std::size_t n) noexcept;

  /// Reads once from a non-blocking fd with readv into the writable room plus a 64 KiB
  /// stack area, appending what arrived, never more than `limit` bytes nor past the cap.
  /// Returns bytes read; 0 with no error means end of file; EINTR is retried; EAGAIN is
  /// returned as an error. ENOBUFS when the cap leaves no room at all.
  std::size_t read_from(int fd, std::size_t limit, std::error_code& ec) noexcept;

  /// Position of the first occurrence of `needle` in the readable bytes at or after `from`,
  /// or npos.
  std::size_t find(std::string_view needle, std::size_t from = 0) const noexcept;
  /// What find() returns when `needle` is not there.
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  /// Checks read_pos <= write_pos <= capacity, size() <= max_size() and that a block holds
  /// room for at least one byte; for tests.
  bool valid() const noexcept;

 private:
  // The front of every heap block; the bytes follow it directly.
  struct Block {
    std::size_t capacity;
    std::size_t read_pos;
    std::size_t write_pos;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
  };
  static_assert(sizeof(Block) == kBlockOverhead);

  std::error_code reserve_back(std::size_t n) noexcept;
  std::error_code reallocate(std::size_t capacity, std::size_t fallback) noexcept;

  Block* block_ = nullptr;
  std::size_t max_size_;
};

/// Splits a byte stream into lines, with a cap on line length: the library's one line splitter
/// (BlockingStream::read_line() and reactor-serve's line services use it too). A line ends at
/// LF; a CR just before it belongs to the terminator (CRLF and LF both end lines; a lone
/// CR or a NUL is an ordinary byte). The cap counts a line's bytes without its terminator,
/// so a reader holds at most max_line + 2 bytes of one line before it knows.
///
///   while (auto line = reader.next(buffer, ec)) handle(*line);   // copies out each line
///
///   std::string_view line;                                       // no copy: a view of the
///   while (!(line = reader.peek(buffer, ec)).empty()) {          // line, terminator included
///     handle(line);
///     buffer.consume(line.size());
///   }
///   if (ec) close the connection: the peer sent a line longer than the limit.
///
/// At end of stream, the *_at_eof calls also return a last line that lacks its LF.
/// Thread rule: none; a LineReader is a value.
class REACTOR_API LineReader {
 public:
  /// Default cap on a line's length, terminator excluded: 64 KiB.
  static constexpr std::size_t kDefaultMaxLine = 64 * 1024;

  /// A reader that refuses lines longer than `max_line` bytes, terminator excluded.
  explicit LineReader(std::size_t max_line = kDefaultMaxLine) noexcept : max_line_(max_line) {}

  /// The next complete line at the front of `bytes`, as a view of it that includes the
  /// terminator; empty when no complete line is there yet. Nothing is consumed: drop
  /// line.size() bytes from the front before the next call, and let nothing else consume in
  /// between (or call reset()): the reader remembers how far it has scanned. EMSGSIZE (and an
  /// empty view) as soon as the line is certain to be longer than max_line: the reader then
  /// refuses further lines until reset().
  std::string_view peek(std::string_view bytes, std::error_code& ec) noexcept;
  /// peek() over the readable bytes of `in`.
  std::string_view peek(const Buffer& in, std::error_code& ec) noexcept {
    return peek(in.view(), ec);
  }
  /// As peek(), for when no more bytes will come: if `bytes` holds no complete line, all of it
  /// is the last line (no terminator; a CR at its end is an ordinary byte). Empty only when
  /// `bytes` is empty or on error.
  std::string_view peek_at_eof(std::string_view bytes, std::error_code& ec) noexcept;
  /// peek_at_eof() over the readable bytes of `in`.
  std::string_view peek_at_eof(const Buffer& in, std::error_code& ec) noexcept {
    return peek_at_eof(in.view(), ec);
  }

  /// The next complete line (without its terminator), copied out and consumed from `in`;
  /// nullopt when no complete line is buffered yet, and on error (as peek()).
  std::optional<std::string> next(Buffer& in, std::error_code& ec);
  /// As next(), with peek_at_eof()'s rule for the last line.
  std::optional<std::string> next_at_eof(Buffer& in, std::error_code& ec);

  /// `line` (as peek() returns it) without its terminator (LF or CRLF).
  static std::string_view strip(std::string_view line) noexcept;

  /// The cap on a line's length, terminator excluded.
  std::size_t max_line() const noexcept { return max_line_; }
  /// Forgets how far it has scanned and clears a past EMSGSIZE: call it when something else
  /// consumed from the bytes, or to read on after an over-long line.
  void reset() noexcept {
    failed_ = false;
    scanned_ = 0;
  }

 private:
  std::string_view fail(std::error_code& ec) noexcept;
  std::optional<std::string> take(Buffer& in, std::string_view line);

  std::size_t max_line_;
  std::size_t scanned_ = 0;  // bytes at the front already known to hold no '\n'
  bool failed_ = false;
};

}  // namespace reactor
