#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the hand-made seeds of fuzz/corpus/<target>/seed-*: one small input per scenario of
tests-required.md that the fuzzers should start from (H1, H2, H3, R2, R3, R6, T1 ...), encoded
for each target's decoder (see the header comment of fuzz/fuzz_<target>.cpp). The rest of the
corpus is what fuzzing found, minimised with -merge=1 (scripts/fuzz --update-corpus).

    python3 fuzz/seeds.py          rewrites the seed-* files; other corpus files are left alone
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def u16(n):
    return struct.pack("<H", n)


# ---------------------------------------------------------------------------------------
# fuzz_buffer: byte 0 even = Buffer program, odd = LineReader program.

# Buffer program: two cap choices, then operations (op % 17 = kind, op >> 7 = buffer B).
# Sizes: a choice of edge (0 zero, 1 size, 2 capacity, 3 writable, 4 cap - size, 5 cap,
# 6 SIZE_MAX, 7 SIZE_MAX / 2, 8 PTRDIFF_MAX - size, 9 allocator limit, 10/11/12 literal u8,
# u16, u64) and a delta (0 none, 1 +1, 2 -1, 3 + u8).
APPEND, SOURCE, SLICE, VIEW, APPEND_BUF, CONSUME, PEEK, PREPARE, COMMIT = range(9)
CLEAR, SHRINK, SET_MAX, FIND, READ_FROM, FAIL_ALLOC, MOVE, FRESH = range(9, 17)


def size(edge, delta=0, literal=b"", add=b""):
    """A size argument: literal follows the edge byte (edges 10-12), add follows delta 3."""
    return bytes([edge]) + literal + bytes([delta]) + add


def on_b(kind):
    """The operation byte that applies `kind` to buffer B (op % 17 == kind, op >= 128)."""
    return next(op for op in range(128, 256) if op % 17 == kind)


def buffer_program(ops, caps=b"\x00\x00"):
    return b"\x00" + caps + b"".join(ops)


write("fuzz_buffer", "h1-huge-sizes", buffer_program([
    bytes([APPEND, 5]) + b"hello",
    bytes([SOURCE]) + size(6),         # SIZE_MAX
    bytes([SOURCE]) + size(7),         # SIZE_MAX / 2
    bytes([SOURCE]) + size(7, 1),      # SIZE_MAX / 2 + 1
    bytes([SOURCE]) + size(8, 1),      # PTRDIFF_MAX - size + 1
    bytes([SOURCE]) + size(9, 1),      # one past the allocator's limit
    bytes([CONSUME]) + size(6),
    bytes([CONSUME]) + size(1, 1),     # size + 1
    bytes([PEEK]) + size(1, 1),
    bytes([PREPARE]) + size(6),
    bytes([COMMIT]) + size(3, 1) + b"\x41",  # writable room + 1, filled with 'A'...
    bytes([CONSUME]) + size(1),
]))
write("fuzz_buffer", "h1-append-to-itself", buffer_program([
    bytes([APPEND, 10]) + b"0123456789",
    bytes([VIEW]), bytes([VIEW]),
    bytes([APPEND_BUF, 1]),            # itself, as a Buffer: EINVAL
    bytes([SLICE]) + size(10, 0, b"\x03") + size(10, 0, b"\x04"),  # bytes 3..7
    bytes([CONSUME]) + size(10, 0, b"\x05"),
    bytes([SLICE]) + size(1, 2) + size(1, 0),
    bytes([on_b(APPEND_BUF), 0]),      # B appends A
    bytes([SHRINK]), bytes([VIEW]),
]))
write("fuzz_buffer", "h1-cap-and-allocation-failure", buffer_program([
    bytes([SET_MAX, 1, 3]),            # cap 255 (from the table of caps)
    bytes([APPEND, 200]) + b"x" * 200,
    bytes([APPEND, 56]) + b"y" * 56,   # one past the cap
    bytes([FAIL_ALLOC, 1]),
    bytes([CONSUME]) + size(10, 0, b"\x64"),
    bytes([PREPARE]) + size(4),        # exactly the room left under the cap
    bytes([COMMIT]) + size(4, 1) + b"\x42",
    bytes([READ_FROM]) + u16(3000) + size(6),
    bytes([MOVE, 1]), bytes([MOVE, 2]), bytes([FRESH, 3]),
]))

# LineReader program: byte 1 < 200 picks a limit from (0, 1, 2, 3, 7, 64, 255, 256, 4096,
# 64 KiB, SIZE_MAX, PTRDIFF_MAX), byte 3 < 224 keeps the default cap; then operations:
# 0 (chunk: length, bytes), 3 (run: byte, u16 count, +64 KiB flag), 4 reset, 5 consume + reset.


def line_program(limit_index, ops):
    return b"\x01" + bytes([0, limit_index, 0]) + b"".join(ops)


def chunk(data):
    return bytes([0, len(data)]) + data


write("fuzz_buffer", "h2-crlf-lf-cr-nul", line_program(9, [
    chunk(b"one\r\ntwo\nthr\rree\n\x00nul\x00\r\n\r\n\n"),
    chunk(b"split crlf\r"), chunk(b"\nnext"), chunk(b"\n"),
]))
write("fuzz_buffer", "h2-over-the-limit", line_program(9, [
    bytes([3]) + b"x" + u16(0xffff) + b"\x01",   # 128 KiB without a newline
    chunk(b"\n"), bytes([4]), bytes([5]) + u16(0xffff), chunk(b"short\n"),
]))
write("fuzz_buffer", "h2-exact-limit", line_program(5, [      # limit 64
    chunk(b"a" * 64 + b"\r\n"), chunk(b"b" * 64 + b"\r"), chunk(b"\n"),
    chunk(b"c" * 65 + b"\n"),
]))
write("fuzz_buffer", "h2-zero-limit", line_program(0, [
    chunk(b"\n\r\n\n"), chunk(b"\r"), chunk(b"\n"), chunk(b"x"),
]))

# ---------------------------------------------------------------------------------------
# fuzz_address: byte 0 % 8 picks the entry point ('0' parse, '3' long parse, '4'
# unix_socket, '5' from_native, '7' numbers).

texts = {
    "v4": b"127.0.0.1:8080", "localhost": b"localhost:80", "v6": b"[::1]:80",
    "v6-scope-name": b"[fe80::1%lo]:80", "v6-scope-number": b"[fe80::1%1]:80",
    "v6-mapped": b"[::ffff:1.2.3.4]:0", "unix": b"unix:/run/x.sock",
    "abstract": b"unix:@name", "empty-host": b":80", "port-65536": b"127.0.0.1:65536",
    "port-minus-1": b"127.0.0.1:-1", "port-65535": b"127.0.0.1:65535",
    "nul": b"127.0.0.1\x00:80", "unix-empty": b"unix:", "abstract-empty": b"unix:@",
    "v6-no-brackets": b"::1:80", "v6-no-colon": b"[::1]80",
}
for name, text in texts.items():
    write("fuzz_address", "h3-" + name, b"0" + text)
write("fuzz_address", "h3-5000-byte-host", b"3" + u16(5000) + b"\x01a" + b":80")
write("fuzz_address", "unix-socket-107", b"4" + b"p" * 107)
write("fuzz_address", "unix-socket-108", b"4" + b"p" * 108)
write("fuzz_address", "unix-socket-abstract-106", b"4@" + b"n" * 106)

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
# from_native: a byte (< 192: the family is forced to AF_INET, AF_INET6, AF_UNIX by % 4),
# the length, then the sockaddr bytes.
sin = struct.pack("<H", AF_INET) + struct.pack(">H", 80) + bytes([127, 0, 0, 1]) + bytes(8)
sin6 = (struct.pack("<H", AF_INET6) + struct.pack(">H", 443) + bytes(4) + bytes(15) + b"\x01"
        + struct.pack("<I", 1))
write("fuzz_address", "native-v4", b"5" + bytes([0, len(sin)]) + sin)
write("fuzz_address", "native-v6-scope", b"5" + bytes([1, len(sin6)]) + sin6)
path = struct.pack("<H", AF_UNIX) + b"/tmp/s\x00"
write("fuzz_address", "native-unix-path", b"5" + bytes([2, len(path)]) + path)
full = struct.pack("<H", AF_UNIX) + b"q" * 108
write("fuzz_address", "native-unix-108", b"5" + bytes([2, len(full)]) + full)
abstract = struct.pack("<H", AF_UNIX) + b"\x00name"
write("fuzz_address", "native-abstract", b"5" + bytes([2, len(abstract)]) + abstract)
write("fuzz_address", "native-unnamed", b"5" + bytes([2, 2]) + struct.pack("<H", AF_UNIX))
write("fuzz_address", "numbers", b"7" + struct.pack("<IH", 0x7F000001, 8080))

# ---------------------------------------------------------------------------------------
# fuzz_api_sequence: each operation is a kind byte (index % 16 into the weighted table of
# decode()), a byte x, and for some kinds one more byte.
KIND = {"watch": 0, "modify": 2, "unwatch": 3, "close": 4, "close_behind": 5, "dup2": 6,
        "write": 7, "shutdown": 8, "pause": 9, "resume": 10, "timer": 11, "cancel": 12, "post": 13,
        "run_once": 14}
NONE, READ, WRITE, BOTH = range(4)
CHUNKS = [0, 1, 100, 4096, 65536]
WRITES = [1, 7, 100, 1000, 4096, 16384, 65536, 200000]


def x_for(test):
    return next(x for x in range(256) if test(x))


def op(kind, slot=0, interest=READ, chunk_size=4096, n=1, other=0, timeout=0, delay=0):
    k = bytes([KIND[kind]])
    if kind == "watch":
        x = x_for(lambda x: x % 6 == slot and (x >> 5) & 3 == interest)
        return k + bytes([x, CHUNKS.index(chunk_size)])
    if kind == "modify":
        return k + bytes([x_for(lambda x: x % 6 == slot and x >> 6 == interest)])
    if kind == "dup2":
        return k + bytes([x_for(lambda x: x % 6 == slot and (x >> 4) % 6 == other)])
    if kind == "write":
        return k + bytes([slot, WRITES.index(n)])
    if kind == "shutdown":  # other: 0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR
        return k + bytes([x_for(lambda x: x % 6 == slot and (x >> 4) % 3 == other)])
    if kind == "timer":
        return k + bytes([slot, delay // 100])
    if kind == "run_once":
        return k + bytes([{0: 0, 50: 5, 200: 6}[timeout]])
    return k + bytes([slot])


def sequence(*ops):
    return b"".join(ops)


write("fuzz_api_sequence", "r2-closed-behind-back-then-modified", sequence(
    op("watch", 0, READ), op("watch", 2, READ), op("write", 1, n=7), op("write", 3, n=7),
    op("run_once"), op("close_behind", 0), op("modify", 0, BOTH), op("run_once"),
    op("run_once", timeout=50), op("unwatch", 0), op("run_once")))
write("fuzz_api_sequence", "r2-closed-before-first-run", sequence(
    op("watch", 0, BOTH), op("watch", 2, READ), op("write", 3, n=100), op("close_behind", 0),
    op("run_once"), op("run_once")))
write("fuzz_api_sequence", "r3-close-and-reuse-number", sequence(
    op("watch", 0, READ), op("watch", 1, READ), op("write", 0, n=7), op("write", 1, n=7),
    op("run_once"), op("close_behind", 0), op("close_behind", 1), op("dup2", 2, other=0),
    op("dup2", 3, other=1), op("unwatch", 0), op("unwatch", 1), op("watch", 0, READ),
    op("watch", 1, READ), op("run_once"), op("write", 1, n=100), op("run_once"),
    op("write", 0, n=100), op("run_once")))
write("fuzz_api_sequence", "r6-duplicated-descriptor", sequence(
    op("dup2", 0, other=4), op("watch", 0, READ, chunk_size=1), op("write", 1, n=7),
    op("run_once"), op("unwatch", 0), op("close", 0), op("write", 1, n=7), op("run_once"),
    op("watch", 4, READ), op("watch", 5, BOTH), op("run_once")))
write("fuzz_api_sequence", "b4-pause-full-socket", sequence(
    op("watch", 2, WRITE), op("write", 2, n=200000), op("write", 2, n=200000), op("run_once"),
    op("watch", 3, READ, chunk_size=65536), op("pause", 3), op("run_once"), op("resume", 3),
    op("run_once"), op("run_once"), op("run_once")))
write("fuzz_api_sequence", "b7-peer-close", sequence(
    op("watch", 0, BOTH, chunk_size=100), op("write", 1, n=1000), op("close", 1),
    op("run_once"), op("pause", 0), op("run_once"), op("resume", 0), op("run_once"),
    op("run_once")))
write("fuzz_api_sequence", "t1-timers-and-posts", sequence(
    op("timer", 0, delay=0), op("timer", 1, delay=500), op("cancel", 1), op("post", 7),
    op("run_once"), op("timer", 2, delay=1000), op("post", 8), op("run_once", timeout=200),
    op("timer", 2, delay=100), op("run_once")))
write("fuzz_api_sequence", "b5-half-close", sequence(
    op("watch", 0, BOTH, chunk_size=100), op("watch", 1, READ, chunk_size=4096),
    op("write", 0, n=1000), op("shutdown", 0, other=1), op("run_once"), op("run_once"),
    op("write", 0, n=7), op("write", 1, n=100), op("run_once"), op("shutdown", 1, other=2),
    op("run_once")))
write("fuzz_api_sequence", "hang-up-with-full-send-buffer", sequence(
    op("watch", 2, WRITE), op("write", 2, n=200000), op("shutdown", 2, other=2),
    op("run_once"), op("watch", 3, BOTH), op("run_once"), op("modify", 2, BOTH),
    op("run_once")))
