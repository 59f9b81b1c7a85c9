// SPDX-License-Identifier: MIT
#include "reactor/net/buffer.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace reactor {

namespace {

void* default_allocate(std::size_t size) noexcept { return std::malloc(size); }
void default_release(void* p) noexcept { std::free(p); }

// Two atomics rather than one atomic pair: a 16-byte std::atomic may need libatomic. A reader
// can see a mixed pair only while set_buffer_allocator runs, and the header requires the new
// allocator to be compatible with the old one in that case.
std::atomic<void* (*)(std::size_t) noexcept> g_allocate{default_allocate};
std::atomic<void (*)(void*) noexcept> g_release{default_release};

void* allocate(std::size_t size) noexcept {
  return g_allocate.load(std::memory_order_acquire)(size);
}
void release(void* p) noexcept {
  if (p != nullptr) g_release.load(std::memory_order_acquire)(p);
}

// No object may be larger than PTRDIFF_MAX (pointer differences must fit), so a request that
// would take the readable bytes past it is impossible rather than merely over the cap.
constexpr std::size_t kMaxBytes = static_cast<std::size_t>(PTRDIFF_MAX);
constexpr std::size_t kMinCapacity = 256;
constexpr std::size_t kStackSpill = 64 * 1024;

}  // namespace

BufferAllocator set_buffer_allocator(BufferAllocator a) noexcept {
  if (a.allocate == nullptr) a.allocate = default_allocate;
  if (a.release == nullptr) a.release = default_release;
  BufferAllocator old;
  old.allocate = g_allocate.exchange(a.allocate, std::memory_order_acq_rel);
  old.release = g_release.exchange(a.release, std::memory_order_acq_rel);
  return old;
}

Buffer::Buffer(Buffer&& other) noexcept : block_(other.block_), max_size_(other.max_size_) {
  other.block_ = nullptr;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release(block_);
    block_ = other.block_;
    max_size_ = other.max_size_;
    other.block_ = nullptr;
  }
  return *this;
}

Buffer::~Buffer() { release(block_); }

std::error_code Buffer::set_max_size(std::size_t max_size) noexcept {
  if (size() > max_size) return std::make_error_code(std::errc::no_buffer_space);
  max_size_ = max_size;
  return {};
}

std::string_view Buffer::peek(std::size_t n, std::error_code& ec) const noexcept {
  if (n > size()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  ec.clear();
  return {data(), n};
}

std::error_code Buffer::append(std::string_view bytes) noexcept {
  return append(bytes.data(), bytes.size());
}

std::error_code Buffer::append(const Buffer& other) noexcept {
  if (&other == this) return std::make_error_code(std::errc::invalid_argument);
  return append(other.data(), other.size());
}

std::error_code Buffer::append(const void* p, std::size_t n) noexcept {
  if (n == 0) return {};
  if (p == nullptr) return std::make_error_code(std::errc::invalid_argument);

  // A source inside our own storage moves when reserve_back slides or reallocates, so remember
  // it as an offset into the readable bytes, which reserve_back preserves. Bytes outside the
  // readable region (consumed or not yet committed) hold nothing meaningful: refuse them.
  // Compare as integers: relational operators on unrelated pointers are unspecified.
  const auto src = reinterpret_cast<std::uintptr_t>(p);
  bool aliased = false;
  std::size_t offset = 0;
  if (block_ != nullptr) {
    const auto base = reinterpret_cast<std::uintptr_t>(block_->bytes());
    aliased = src >= base && src - base < block_->capacity;
    if (aliased) {
      const std::size_t at = src - base;
      if (at < block_->read_pos || at > block_->write_pos || n > block_->write_pos - at)
        return std::make_error_code(std::errc::invalid_argument);
      offset = at - block_->read_pos;
    }
  }

  if (auto ec = reserve_back(n)) return ec;
  char* bytes = block_->bytes();
  const char* from = aliased ? bytes + block_->read_pos + offset : static_cast<const char*>(p);
  // The source is readable bytes or foreign memory; the destination is writable room.
  std::memcpy(bytes + block_->write_pos, from, n);
  block_->write_pos += n;
  return {};
}

std::error_code Buffer::consume(std::size_t n) noexcept {
  if (n > size()) return std::make_error_code(std::errc::invalid_argument);
  if (n == 0) return {};  // size() may be 0 with no block
  block_->read_pos += n;
  if (block_->read_pos == block_->write_pos) block_->read_pos = block_->write_pos = 0;
  return {};
}

void Buffer::shrink() noexcept {
  const std::size_t n = size();
  if (n == 0) {
    release(block_);
    block_ = nullptr;
    return;
  }
  if (block_->capacity == n) return;
  if (reallocate(n, n)) {
    // Cannot give memory back; at least leave all free space at the back.
    std::memmove(block_->bytes(), data(), n);
    block_->read_pos = 0;
    block_->write_pos = n;
  }
}

std::span<char> Buffer::prepare(std::size_t n, std::error_code& ec) noexcept {
  ec = reserve_back(n);
  if (ec) return {};
  return writable();
}

std::error_code Buffer::commit(std::size_t n) noexcept {
  if (n > writable().size()) return std::make_error_code(std::errc::invalid_argument);
  // The writable region may be larger than what the cap allows (prepare rounds up, and
  // consumed space counts as capacity), so the cap is checked here too.
  if (n > max_size_ - size()) return std::make_error_code(std::errc::no_buffer_space);
  if (n != 0) block_->write_pos += n;
  return {};
}

std::error_code Buffer::reserve_back(std::size_t n) noexcept {
  const std::size_t used = size();
  // Invariant: used <= max_size_ and used <= kMaxBytes, so neither subtraction wraps.
  if (n > kMaxBytes - used) return std::make_error_code(std::errc::invalid_argument);
  if (n > max_size_ - used) return std::make_error_code(std::errc::no_buffer_space);
  const std::size_t capacity = this->capacity();
  if (n <= writable().size()) return {};

  const std::size_t needed = used + n;
  if (needed <= capacity) {
    std::memmove(block_->bytes(), data(), used);
    block_->read_pos = 0;
    block_->write_pos = used;
    return {};
  }

  // Double, but never beyond what the cap can use; `needed` always fits under both limits.
  std::size_t grown = capacity <= kMaxBytes / 2 ? std::max(capacity * 2, kMinCapacity) : kMaxBytes;
  grown = std::min({grown, max_size_, kMaxBytes});
  return reallocate(std::max(grown, needed), needed);
}

// Moves the readable bytes to the front of a new block of `capacity` bytes, or of `fallback`
// bytes if that cannot be had; ENOMEM (and nothing changed) if neither can. Both are at least
// size() and at most kMaxBytes, so adding the header cannot wrap.
std::error_code Buffer::reallocate(std::size_t capacity, std::size_t fallback) noexcept {
  void* p = allocate(kBlockOverhead + capacity);
  if (p == nullptr && fallback < capacity) {
    capacity = fallback;
    p = allocate(kBlockOverhead + capacity);
  }
  if (p == nullptr) return std::make_error_code(std::errc::not_enough_memory);
  const std::size_t used = size();
  auto* block = new (p) Block{capacity, 0, used};
  if (used != 0) std::memcpy(block->bytes(), data(), used);
  release(block_);
  block_ = block;
  return {};
}

// ENOMEM from read_from means bytes were taken from the socket and then dropped (the spill
// could not be appended): the stream is no longer intact, so callers must treat ENOMEM here
// as fatal for the connection. The bytes that fit in the writable room are kept and counted.
std::size_t Buffer::read_from(int fd, std::size_t limit, std::error_code& ec) noexcept {
  const std::size_t room = std::min(limit, max_size_ - size());
  if (room == 0) {
    ec = std::make_error_code(std::errc::no_buffer_space);
    return 0;
  }
  const std::span<char> writable = this->writable();
  const std::size_t direct = std::min(writable.size(), room);
  const std::size_t spill = std::min(kStackSpill, room - direct);

  char stack[kStackSpill];
  iovec iov[2];
  int count = 0;
  if (direct != 0) iov[count++] = {writable.data(), direct};
  if (spill != 0) iov[count++] = {stack, spill};

  ssize_t got;
  do {
    got = ::readv(fd, iov, count);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    ec = std::error_code(errno, std::generic_category());
    return 0;
  }
  ec.clear();

  const auto n = static_cast<std::size_t>(got);
  if (direct != 0) block_->write_pos += std::min(n, direct);
  if (n <= direct) return n;
  if (append(stack, n - direct)) {
    // Within the cap by construction, so the only possible failure is memory.
    ec = std::make_error_code(std::errc::not_enough_memory);
    return direct;
  }
  return n;
}

std::size_t Buffer::find(std::string_view needle, std::size_t from) const noexcept {
  return view().find(needle, from);
}

bool Buffer::valid() const noexcept {
  if (block_ == nullptr) return true;
  const Block& b = *block_;
  return b.read_pos <= b.write_pos && b.write_pos <= b.capacity && size() <= max_size_ &&
         b.capacity != 0 && (b.read_pos != b.write_pos || b.read_pos == 0);
}

std::string_view LineReader::fail(std::error_code& ec) noexcept {
  failed_ = true;
  ec = std::make_error_code(std::errc::message_size);
  return {};
}

std::string_view LineReader::peek(std::string_view v, std::error_code& ec) noexcept {
  ec.clear();
  if (failed_) return fail(ec);
  // Someone consumed behind our back: what we scanned is gone, start again.
  if (scanned_ > v.size()) scanned_ = 0;

  const void* hit =
      v.size() == scanned_ ? nullptr : std::memchr(v.data() + scanned_, '\n', v.size() - scanned_);
  if (hit == nullptr) {
    scanned_ = v.size();
    // A trailing '\r' may still be half of a CRLF, so it does not count until the next byte;
    // every other buffered byte is certainly part of the line.
    std::size_t certain = v.size();
    if (certain != 0 && v.back() == '\r') --certain;
    if (certain > max_line_) return fail(ec);
    return {};
  }

  const auto end = static_cast<std::size_t>(static_cast<const char*>(hit) - v.data());
  std::size_t length = end;
  if (length != 0 && v[length - 1] == '\r') --length;
  if (length > max_line_) return fail(ec);
  scanned_ = 0;  // the caller consumes this line; the next scan starts after it
  return v.substr(0, end + 1);
}

std::string_view LineReader::peek_at_eof(std::string_view v, std::error_code& ec) noexcept {
  const std::string_view line = peek(v, ec);
  if (ec || !line.empty() || v.empty()) return line;
  if (v.size() > max_line_) return fail(ec);
  scanned_ = 0;
  return v;
}

std::string_view LineReader::strip(std::string_view line) noexcept {
  if (line.ends_with('\n')) {
    line.remove_suffix(1);
    if (line.ends_with('\r')) line.remove_suffix(1);
  }
  return line;
}

std::optional<std::string> LineReader::take(Buffer& in, std::string_view line) {
  if (line.empty()) return std::nullopt;
  std::optional<std::string> out(std::in_place, strip(line));
  (void)in.consume(line.size());
  return out;
}

std::optional<std::string> LineReader::next(Buffer& in, std::error_code& ec) {
  return take(in, peek(in, ec));
}

std::optional<std::string> LineReader::next_at_eof(Buffer& in, std::error_code& ec) {
  return take(in, peek_at_eof(in, ec));
}

}  // namespace reactor
