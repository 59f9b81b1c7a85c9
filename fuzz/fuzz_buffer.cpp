// SPDX-License-Identifier: MIT
// fuzz_buffer: reactor::Buffer and reactor::LineReader against a std::string model
// (tests-required H1 and H2, contract in reactor/net/buffer.hpp).
//
// The first byte picks one of two programs; the rest of the input is decoded into it.
//
// Buffer program: up to 256 operations on two Buffers A and B: append bytes, append a slice
// of itself (a pointer into its own storage), append its whole view, append a Buffer (the
// other one, or itself), consume, peek, prepare + commit, commit without prepare, clear,
// shrink, set_max_size, find, read_from a pipe, moves (self-move included), a fresh buffer,
// and allocation failures injected through set_buffer_allocator. Sizes are drawn from 0,
// size(), capacity(), the writable room, the cap, SIZE_MAX, SIZE_MAX / 2, PTRDIFF_MAX - size()
// and the allocator's limit, each with an off-by-one either side. After every operation:
//   - the error is exactly the documented one: EINVAL for an impossible request (past
//     PTRDIFF_MAX, past size(), past the writable room, a buffer appended to itself),
//     ENOBUFS past the cap, ENOMEM only when the allocator refused; a failed call changes
//     nothing (contents, size, capacity, data pointer);
//   - view() equals the model byte for byte, size() agrees and valid() holds;
//   - memory is bounded: capacity() <= max(256, twice the largest size ever requested) and
//     the allocator's live bytes equal the two buffers' capacities (nothing leaked or lost).
// LineReader program: a line limit (0, 1, ..., 64 KiB, SIZE_MAX), a cap for the input buffer,
// then chunks (literal bytes, or runs of one byte up to 128 KiB; about 512 KiB in all) appended
// to the input buffer, resets, and consumption behind the reader's back followed by reset()
// (which the header allows). After each chunk next() is called until it returns nothing, and
// each call is checked against the model: lines end at '\n', one '\r' before it is dropped,
// a lone '\r' and NUL are ordinary bytes; EMSGSIZE comes exactly when more than max_line bytes
// of one line are certain (a trailing '\r' is not yet certain), after which the reader
// refuses until reset(); "no line yet" clears ec; and while there is no error at most
// max_line + 1 bytes stay buffered.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "fuzz/fuzz_input.hpp"
#include "reactor/net/buffer.hpp"

namespace {

using reactor::Buffer;
using reactor::LineReader;
using reactor::fuzz::Input;

constexpr std::size_t kPtrdiffMax = static_cast<std::size_t>(PTRDIFF_MAX);
constexpr std::size_t kMinCapacity = 256;  // the smallest allocation buffer.cpp makes
constexpr std::size_t kSpill = 64 * 1024;  // read_from's stack area (buffer.hpp)

// ---------------------------------------------------------------------------------------
// The allocator: counts live bytes, refuses anything above a limit (so that a huge request
// that passes every check ends in ENOMEM, not in an out-of-memory report; the Buffer program
// uses a small one to keep each run fast), and fails on demand.

constexpr std::size_t kAllocLimit = std::size_t{1} << 20;  // the largest limit
constexpr std::size_t kBufferProgramLimit = 128 * 1024;
constexpr std::size_t kHeader = 16;  // keeps malloc's alignment

struct AllocState {
  std::size_t limit = kAllocLimit;
  std::size_t live = 0;       // bytes handed out and not released
  std::size_t fail_next = 0;  // refuse this many more requests
  std::size_t refused = 0;    // requests refused so far
} g_alloc;

// Counts and limits what a buffer's capacity() shows: each block also holds the buffer's
// header (Buffer::kBlockOverhead), which is left out of both.
void* counting_allocate(std::size_t request) noexcept {
  const std::size_t n = request - Buffer::kBlockOverhead;
  if (g_alloc.fail_next > 0 || n > g_alloc.limit) {
    if (g_alloc.fail_next > 0) --g_alloc.fail_next;
    ++g_alloc.refused;
    return nullptr;
  }
  auto* p = static_cast<char*>(std::malloc(request + kHeader));
  if (p == nullptr) {
    ++g_alloc.refused;
    return nullptr;
  }
  std::memcpy(p, &n, sizeof n);
  g_alloc.live += n;
  return p + kHeader;
}

void counting_release(void* q) noexcept {
  char* p = static_cast<char*>(q) - kHeader;
  std::size_t n;
  std::memcpy(&n, p, sizeof n);
  FUZZ_CHECK(n <= g_alloc.live);
  g_alloc.live -= n;
  std::free(p);
}

// Source bytes for appends of any size a buffer can hold (every request above the limit
// that passes the checks needs more memory than the allocator gives, so it never reads).
char g_source[kAllocLimit];

// A non-blocking pipe for read_from, and what it holds.
int g_pipe[2] = {-1, -1};

// ---------------------------------------------------------------------------------------
// Buffer program

struct Subject {
  Buffer buf;
  std::string model;
};

// A snapshot to prove that a failed call changed nothing. The contents are not copied: the
// model is left alone on failure, and every operation ends by comparing it with view().
struct Before {
  std::size_t size;
  std::size_t capacity;
  std::size_t max_size;
  const char* data;
  explicit Before(const Buffer& b)
      : size(b.size()), capacity(b.capacity()), max_size(b.max_size()), data(b.data()) {}
  void check_unchanged(const Buffer& b) const {
    FUZZ_CHECK(b.size() == size);
    FUZZ_CHECK(b.capacity() == capacity);
    FUZZ_CHECK(b.max_size() == max_size);
    FUZZ_CHECK(b.data() == data);
  }
};

bool is(const std::error_code& ec, std::errc e) { return ec == std::make_error_code(e); }

// The size arguments that find bugs: the edges of every quantity the buffer has, or a
// literal, then an off-by-one either side (wrapping at 0 and SIZE_MAX on purpose).
std::size_t pick_size(Input& in, Buffer& b) {
  const std::size_t size = b.size();
  const std::uint8_t which = in.u8() % 13;
  std::size_t base;
  if (which == 10) {
    base = in.u8();
  } else if (which == 11) {
    base = in.u16();
  } else if (which == 12) {
    base = in.u64();
  } else {
    const std::size_t edges[] = {0,
                                 size,
                                 b.capacity(),
                                 b.writable().size(),
                                 b.max_size() - size,
                                 b.max_size(),
                                 SIZE_MAX,
                                 SIZE_MAX / 2,
                                 kPtrdiffMax - size,
                                 g_alloc.limit};
    base = edges[which];
  }
  const std::uint8_t delta = in.u8() % 4;
  return delta == 0 ? base : delta == 1 ? base + 1 : delta == 2 ? base - 1 : base + in.u8();
}

// The documented answer to "make room for n more bytes" (append, prepare), apart from
// ENOMEM, which depends on the allocator.
std::optional<std::errc> growth_error(const Buffer& b, std::size_t n) {
  if (n > kPtrdiffMax - b.size()) return std::errc::invalid_argument;
  if (n > b.max_size() - b.size()) return std::errc::no_buffer_space;
  return std::nullopt;
}

class BufferProgram {
 public:
  void run(Input& in) {
    subjects_[0].buf = Buffer(pick_max(in));
    subjects_[1].buf = Buffer(pick_max(in));
    for (int step = 0; step < 256 && !in.empty(); ++step) {
      const std::uint8_t op = in.u8();
      Subject& s = subjects_[op >> 7];
      Subject& other = subjects_[1 - (op >> 7)];
      switch (op % 17) {
        case 0:
          append_bytes(s, in.bytes(255));
          break;
        case 1:
          append_source(in, s);
          break;
        case 2:
          append_slice(in, s);
          break;
        case 3:
          append_view(s);
          break;
        case 4:
          append_buffer(s, (in.u8() & 1) != 0 ? s : other);
          break;
        case 5:
          consume(in, s);
          break;
        case 6:
          peek(in, s);
          break;
        case 7:
          prepare_commit(in, s);
          break;
        case 8:
          commit(in, s);
          break;
        case 9:
          s.buf.clear();
          s.model.clear();
          break;
        case 10:
          shrink(s);
          break;
        case 11:
          set_max(in, s);
          break;
        case 12:
          find(in, s);
          break;
        case 13:
          read_from(in, s);
          break;
        case 14:
          g_alloc.fail_next = in.u8() % 4;
          break;
        case 15:
          move(in, s, other);
          break;
        default:
          s.buf = Buffer(pick_max(in));
          s.model.clear();
          break;
      }
      check(subjects_[0]);
      check(subjects_[1]);
      FUZZ_CHECK(g_alloc.live == subjects_[0].buf.capacity() + subjects_[1].buf.capacity());
    }
    g_alloc.fail_next = 0;
  }

 private:
  std::size_t pick_max(Input& in) {
    static constexpr std::array<std::size_t, 12> kMax = {
        Buffer::kDefaultMaxSize, 0,        1,          255, 256, 257, 4096, 65536, 65537,
        kBufferProgramLimit + 1, SIZE_MAX, kPtrdiffMax};
    return in.pick(std::span<const std::size_t>(kMax));
  }

  void check(Subject& s) {
    const Buffer& b = s.buf;
    FUZZ_CHECK(b.valid());
    FUZZ_CHECK(b.size() == s.model.size());
    FUZZ_CHECK(b.empty() == s.model.empty());
    FUZZ_CHECK(b.view() == s.model);
    FUZZ_CHECK(b.size() <= b.max_size());
    FUZZ_CHECK(b.capacity() <= g_alloc.limit);
    FUZZ_CHECK(b.capacity() <= std::max(kMinCapacity, 2 * peak_));
  }

  // After a successful call that needed `total` readable bytes of room.
  void grew_to(std::size_t total) { peak_ = std::max(peak_, total); }

  // Checks the result of a call that asked for n more bytes, given what growth_error() said
  // before the call; returns true on success.
  bool growth_result(const Subject& s, const Before& before, std::size_t n,
                     std::optional<std::errc> expected, std::error_code ec,
                     std::size_t refused_before) {
    if (expected) FUZZ_CHECK(is(ec, *expected));
    if (!ec) {
      grew_to(before.size + n);
      return true;
    }
    if (!expected) {
      // Allowed by the checks: only the allocator can have refused, and only a real growth
      // (more than the free space, consumed bytes included) allocates.
      FUZZ_CHECK(is(ec, std::errc::not_enough_memory));
      FUZZ_CHECK(g_alloc.refused > refused_before);
      FUZZ_CHECK(n > before.capacity - before.size);
    }
    before.check_unchanged(s.buf);
    return false;
  }

  void append_bytes(Subject& s, std::string_view bytes) {
    const Before before(s.buf);
    const auto expected = growth_error(s.buf, bytes.size());
    const std::size_t refused = g_alloc.refused;
    const std::error_code ec = s.buf.append(bytes);
    if (growth_result(s, before, bytes.size(), expected, ec, refused)) s.model.append(bytes);
  }

  // Any length, from a static area big enough for every length that can succeed.
  void append_source(Input& in, Subject& s) {
    const std::size_t n = pick_size(in, s.buf);
    const Before before(s.buf);
    const auto expected = growth_error(s.buf, n);
    const std::size_t refused = g_alloc.refused;
    if (n > sizeof g_source && !expected) {
      // Passes the checks, so it must fail at the allocator before reading the source.
      FUZZ_CHECK(n > s.buf.capacity());
    }
    const std::error_code ec = s.buf.append(g_source, n);
    if (growth_result(s, before, n, expected, ec, refused)) {
      FUZZ_CHECK(n <= sizeof g_source);
      s.model.append(g_source, n);
    }
  }

  // A pointer into the buffer's own readable bytes, which move when it grows.
  void append_slice(Input& in, Subject& s) {
    const std::size_t size = s.buf.size();
    const std::size_t off = size == 0 ? 0 : pick_size(in, s.buf) % (size + 1);
    const std::size_t n = size - off == 0 ? 0 : pick_size(in, s.buf) % (size - off + 1);
    const std::string slice = s.model.substr(off, n);
    const Before before(s.buf);
    const auto expected = growth_error(s.buf, n);
    const std::size_t refused = g_alloc.refused;
    const std::error_code ec = s.buf.append(s.buf.data() + off, n);
    if (growth_result(s, before, n, expected, ec, refused)) s.model += slice;
  }

  void append_view(Subject& s) {
    const Before before(s.buf);
    const auto expected = growth_error(s.buf, before.size);
    const std::size_t refused = g_alloc.refused;
    const std::error_code ec = s.buf.append(s.buf.view());
    if (growth_result(s, before, before.size, expected, ec, refused)) s.model += s.model;
  }

  void append_buffer(Subject& s, Subject& from) {
    const Before before(s.buf);
    const Before source(from.buf);
    const std::string appended = from.model;
    const auto expected = growth_error(s.buf, source.size);
    const std::size_t refused = g_alloc.refused;
    const std::error_code ec = s.buf.append(from.buf);
    if (&s == &from) {
      FUZZ_CHECK(is(ec, std::errc::invalid_argument));  // "EINVAL for itself"
      before.check_unchanged(s.buf);
      return;
    }
    source.check_unchanged(from.buf);  // "it keeps them"
    if (growth_result(s, before, source.size, expected, ec, refused)) s.model += appended;
  }

  void consume(Input& in, Subject& s) {
    const std::size_t n = pick_size(in, s.buf);
    const Before before(s.buf);
    const std::error_code ec = s.buf.consume(n);
    if (n > before.size) {
      FUZZ_CHECK(is(ec, std::errc::invalid_argument));
      before.check_unchanged(s.buf);
      return;
    }
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(s.buf.capacity() == before.capacity);  // consuming never reallocates
    s.model.erase(0, n);
  }

  void peek(Input& in, Subject& s) {
    const std::size_t n = pick_size(in, s.buf);
    std::error_code ec = std::make_error_code(std::errc::io_error);
    const std::string_view v = s.buf.peek(n, ec);
    if (n > s.buf.size()) {
      FUZZ_CHECK(is(ec, std::errc::invalid_argument));
      FUZZ_CHECK(v.empty());
      return;
    }
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(v == std::string_view(s.model).substr(0, n));
    FUZZ_CHECK(v.data() == s.buf.data());
  }

  // Writes recognisable bytes into the first k bytes of the writable region (at most all of
  // it), then commits k; returns what should now be readable.
  void fill_and_commit(Input& in, Subject& s) {
    const std::span<char> room = s.buf.writable();
    const std::size_t k = pick_size(in, s.buf);
    const std::size_t filled = std::min(k, room.size());
    const char tag = static_cast<char>(in.u8());
    for (std::size_t i = 0; i < filled; ++i) room[i] = static_cast<char>(tag + i);
    const Before before(s.buf);
    const std::error_code ec = s.buf.commit(k);
    if (k > room.size()) {
      FUZZ_CHECK(is(ec, std::errc::invalid_argument));
      before.check_unchanged(s.buf);
      return;
    }
    if (k > before.max_size - before.size) {
      FUZZ_CHECK(is(ec, std::errc::no_buffer_space));
      before.check_unchanged(s.buf);
      return;
    }
    FUZZ_CHECK(!ec);
    s.model.append(room.data(), k);
    grew_to(s.model.size());
  }

  void prepare_commit(Input& in, Subject& s) {
    const std::size_t n = pick_size(in, s.buf);
    const Before before(s.buf);
    const auto expected = growth_error(s.buf, n);
    const std::size_t refused = g_alloc.refused;
    std::error_code ec = std::make_error_code(std::errc::io_error);
    const std::span<char> room = s.buf.prepare(n, ec);
    if (!growth_result(s, before, n, expected, ec, refused)) {
      FUZZ_CHECK(room.empty());
      return;
    }
    FUZZ_CHECK(room.size() >= n);
    FUZZ_CHECK(room.data() == s.buf.data() + s.buf.size());
    FUZZ_CHECK(s.buf.view() == s.model);  // preparing keeps the readable bytes
    fill_and_commit(in, s);
  }

  void commit(Input& in, Subject& s) { fill_and_commit(in, s); }

  void shrink(Subject& s) {
    const std::size_t refused = g_alloc.refused;
    const std::size_t capacity = s.buf.capacity();
    s.buf.shrink();
    if (s.model.empty()) {
      FUZZ_CHECK(s.buf.capacity() == 0);
    } else if (g_alloc.refused == refused) {
      FUZZ_CHECK(s.buf.capacity() == s.model.size());
    } else {
      FUZZ_CHECK(s.buf.capacity() == capacity);  // could not give memory back
    }
  }

  void set_max(Input& in, Subject& s) {
    const std::size_t m = in.flag() ? pick_max(in) : pick_size(in, s.buf);
    const Before before(s.buf);
    const std::error_code ec = s.buf.set_max_size(m);
    if (before.size > m) {
      FUZZ_CHECK(is(ec, std::errc::no_buffer_space));
      before.check_unchanged(s.buf);
      return;
    }
    FUZZ_CHECK(!ec);
    FUZZ_CHECK(s.buf.max_size() == m);
  }

  void find(Input& in, Subject& s) {
    const std::string_view needle = in.bytes(8);
    const std::size_t from = pick_size(in, s.buf);
    FUZZ_CHECK(s.buf.find(needle, from) == s.model.find(needle, from));
  }

  void read_from(Input& in, Subject& s) {
    // Put up to 96 KiB into the pipe (it holds 64 KiB), then read once with some limit.
    std::size_t put = in.u16() % (96 * 1024);
    while (put > 0) {
      const std::size_t chunk = std::min(put, sizeof g_source);
      const ssize_t w = ::write(g_pipe[1], g_source + pipe_written_ % 251, chunk);
      if (w <= 0) break;
      pipe_.append(g_source + pipe_written_ % 251, static_cast<std::size_t>(w));
      pipe_written_ += static_cast<std::size_t>(w);
      put -= static_cast<std::size_t>(w);
    }
    const std::size_t limit = pick_size(in, s.buf);
    const Before before(s.buf);
    const std::size_t room = std::min(limit, s.buf.max_size() - s.buf.size());
    const std::size_t direct = std::min(s.buf.writable().size(), room);
    const std::size_t offered = direct + std::min(kSpill, room - direct);
    std::error_code ec;
    const std::size_t n = s.buf.read_from(g_pipe[0], limit, ec);
    if (room == 0) {
      FUZZ_CHECK(is(ec, std::errc::no_buffer_space) && n == 0);
      before.check_unchanged(s.buf);
      return;
    }
    if (pipe_.empty()) {
      FUZZ_CHECK(ec.value() == EAGAIN && n == 0);
      before.check_unchanged(s.buf);
      return;
    }
    const std::size_t taken = std::min(pipe_.size(), offered);  // what readv takes
    if (is(ec, std::errc::not_enough_memory)) {
      // The spill could not be kept: the stream lost bytes, which the caller must treat as
      // fatal; what fitted in the writable room is kept and counted.
      FUZZ_CHECK(taken > direct && n == direct);
      s.model.append(pipe_, 0, direct);
    } else {
      FUZZ_CHECK(!ec);
      FUZZ_CHECK(n == taken && n <= limit);
      s.model.append(pipe_, 0, n);
      grew_to(s.model.size());
    }
    pipe_.erase(0, taken);
  }

  void move(Input& in, Subject& s, Subject& other) {
    switch (in.u8() % 3) {
      case 0: {  // out and back
        Buffer tmp(std::move(s.buf));
        FUZZ_CHECK(s.buf.valid() && s.buf.empty() && s.buf.capacity() == 0);
        FUZZ_CHECK(tmp.view() == s.model);
        s.buf = std::move(tmp);
        FUZZ_CHECK(tmp.valid() && tmp.empty() && tmp.capacity() == 0);
        break;
      }
      case 1: {  // swap through a temporary
        Buffer tmp(std::move(s.buf));
        s.buf = std::move(other.buf);
        other.buf = std::move(tmp);
        std::swap(s.model, other.model);
        break;
      }
      default: {  // self move-assignment leaves it as it was
        Buffer* self = &s.buf;
        s.buf = std::move(*self);
        break;
      }
    }
  }

  Subject subjects_[2];
  std::size_t peak_ = 0;  // the largest size any successful request asked room for
  std::string pipe_;      // bytes in the pipe, oldest first
  std::size_t pipe_written_ = 0;
};

// ---------------------------------------------------------------------------------------
// LineReader program

class LineProgram {
 public:
  void run(Input& in) {
    static constexpr std::array<std::size_t, 12> kLimits = {
        0, 1, 2, 3, 7, 64, 255, 256, 4096, 64 * 1024, SIZE_MAX, kPtrdiffMax};
    const std::uint8_t how = in.u8();
    max_line_ = how < 200 ? in.pick(std::span<const std::size_t>(kLimits)) : in.u16();
    reader_ = LineReader(max_line_);
    FUZZ_CHECK(reader_.max_line() == max_line_);
    // Mostly the default cap; sometimes one small enough to refuse chunks.
    if (in.u8() >= 224) FUZZ_CHECK(!buf_.set_max_size(in.u16()));

    // At most 512 KiB of input plus one last chunk: under the allocator's limit even when
    // nothing is ever a complete line.
    std::size_t total = 0;
    while (!in.empty() && total <= kMaxInput) {
      switch (in.u8() % 6) {
        case 0:
        case 1:
        case 2: {
          const std::string_view chunk = in.bytes(255);
          total += chunk.size();
          feed(chunk);
          break;
        }
        case 3: {
          const char c = static_cast<char>(in.u8());
          const std::size_t n = in.u16() + (in.flag() ? 65536 : 0);
          total += n;
          feed(std::string(n, c));
          break;
        }
        case 4:
          reader_.reset();
          failed_ = false;
          drain();
          break;
        default: {
          // Consuming behind the reader's back is allowed when reset() follows.
          const std::size_t n = in.u16() % (buf_.size() + 1);
          FUZZ_CHECK(!buf_.consume(n));
          head_ += n;
          reader_.reset();
          failed_ = false;
          drain();
          break;
        }
      }
    }
  }

 private:
  static constexpr std::size_t kMaxInput = 512 * 1024;

  std::string_view model() const { return std::string_view(model_).substr(head_); }

  void feed(std::string_view chunk) {
    const std::error_code ec = buf_.append(chunk);
    if (ec) {
      // Only the cap can refuse: the allocator's limit is above what this program buffers.
      FUZZ_CHECK(is(ec, std::errc::no_buffer_space));
      FUZZ_CHECK(chunk.size() > buf_.max_size() - buf_.size());
      return;
    }
    if (head_ > model_.size() / 2) {  // keep the model's dead prefix from growing
      model_.erase(0, head_);
      head_ = 0;
    }
    model_.append(chunk);
    drain();
  }

  // next() until it returns nothing, each call against the model. The whole buffer is
  // compared once at the end (per call it would be quadratic in the number of lines).
  void drain() {
    for (;;) {
      std::error_code ec = std::make_error_code(std::errc::io_error);
      const std::optional<std::string> line = reader_.next(buf_, ec);
      const std::optional<std::string_view> expected = model_next();
      FUZZ_CHECK(line.has_value() == expected.has_value());
      if (line) FUZZ_CHECK(*line == *expected);
      FUZZ_CHECK(failed_ ? is(ec, std::errc::message_size) : !ec);
      FUZZ_CHECK(buf_.size() == model_.size() - head_);
      if (!line) break;
    }
    FUZZ_CHECK(buf_.valid());
    FUZZ_CHECK(buf_.view() == model());
    if (!failed_ && max_line_ < SIZE_MAX) FUZZ_CHECK(buf_.size() <= max_line_ + 1);
  }

  // What next() must return for the model's contents; consumes the line from the model.
  std::optional<std::string_view> model_next() {
    if (failed_) return std::nullopt;
    const std::string_view m = model();
    const std::size_t nl = m.find('\n');
    if (nl == std::string_view::npos) {
      std::size_t certain = m.size();
      if (certain != 0 && m.back() == '\r') --certain;
      if (certain > max_line_) failed_ = true;
      return std::nullopt;
    }
    std::size_t length = nl;
    if (length != 0 && m[length - 1] == '\r') --length;
    if (length > max_line_) {
      failed_ = true;
      return std::nullopt;
    }
    head_ += nl + 1;
    return m.substr(0, length);
  }

  std::size_t max_line_ = 0;
  LineReader reader_;
  Buffer buf_;
  std::string model_;     // everything fed since the last compaction
  std::size_t head_ = 0;  // model_[head_..] is what the buffer must hold
  bool failed_ = false;
};

void drain_pipe() {
  char sink[4096];
  while (::read(g_pipe[0], sink, sizeof sink) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  reactor::set_buffer_allocator({counting_allocate, counting_release});
  for (std::size_t i = 0; i < sizeof g_source; ++i) {
    g_source[i] = static_cast<char>((i * 131) ^ (i >> 9));
  }
  if (::pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
    std::perror("fuzz_buffer: pipe2");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  g_alloc.fail_next = 0;
  drain_pipe();
  if ((in.u8() & 1) == 0) {
    g_alloc.limit = kBufferProgramLimit;
    BufferProgram().run(in);
  } else {
    g_alloc.limit = kAllocLimit;
    LineProgram().run(in);
  }
  g_alloc.fail_next = 0;
  FUZZ_CHECK(g_alloc.live == 0);  // every buffer of this input is gone
  return 0;
}
