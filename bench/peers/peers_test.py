#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the peer echo servers: peers_test.py PEER_EXECUTABLE...

Each peer is started as `PEER 127.0.0.1:0` and must print exactly one line,
`listening on 127.0.0.1:PORT`. Then, one peer at a time:

  pingpong    64-byte messages, 1,000 round trips on one connection
  concurrent  200 connections in one process (selectors), 5 rounds each
  many        1,500 connections, 2 rounds each: the peer's fds pass FD_SETSIZE
  stream      16 MiB written while the echo is read, checked byte for byte
  slow-reader 8 MiB written without reading for 1 s: the peer's VmRSS stays < 64 MiB
              (PEER_RSS_LIMIT_MIB: larger for sanitizer builds);
              then everything is read back, in order (reading must resume)
  flood       the same, writing as much as the client can for 1 s: VmRSS < 64 MiB, and
              the peer must hold the client back (its socket full for >= 0.3 s)
  emfile      RLIMIT_NOFILE 64 and 100 connections: the peer does not spin
              (< 0.3 s CPU in 1 s), and serves a new connection once they close
  sigterm     SIGTERM with a connection open: exit status 0 within 2 s

Prints a ping-pong rate and a stream rate per peer, as a sanity figure only.
Python 3 standard library only. Exit status 1 if any check failed.
"""

import os
import random
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time

MiB = 1 << 20
# Sanitizer builds keep freed memory in quarantine: their CMake sets a larger bound.
RSS_LIMIT = int(os.environ.get("PEER_RSS_LIMIT_MIB", "64")) * MiB
BLOCK = random.Random(20240601).randbytes(MiB)
DOUBLE = memoryview(BLOCK + BLOCK)
MANY = 1500  # connections in test_many
LISTENING = re.compile(rb"^listening on 127\.0\.0\.1:(\d+)\n$")


class Failure(Exception):
    pass


def pattern(offset, n):
    """n (<= 1 MiB) bytes of the endless test stream, from `offset` on."""
    start = offset % MiB
    return DOUBLE[start : start + n]


def check(condition, message):
    if not condition:
        raise Failure(message)


class Peer:
    """One running peer process."""

    def __init__(self, path, nofile=None):
        def limit_fds():  # hard limit too: peers raise their soft limit to the hard one
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [path, "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            bufsize=0,
            preexec_fn=limit_fds if nofile else None,
        )
        line = b""
        deadline = time.monotonic() + 5
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise Failure(f"no listening line within 5 s (got {line!r})")
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    self.kill()
                    raise Failure(f"stdout closed before the listening line ({line!r})")
                line += chunk
        match = LISTENING.match(line)
        if not match:
            self.kill()
            raise Failure(f"bad listening line {line!r}")
        self.port = int(match.group(1))
        check(self.port != 0, "listening line shows port 0")

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise Failure("no VmRSS in /proc/PID/status")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def terminate(self):
        """SIGTERM; returns (exit status, seconds to exit) or raises after 2 s."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("still running 2 s after SIGTERM")
        elapsed = time.monotonic() - started
        rest = self.proc.stdout.read()
        check(rest == b"", f"more than one line on stdout: {rest[:80]!r}")
        return status, elapsed

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def recv_exactly(s, n):
    data = bytearray()
    while len(data) < n:
        chunk = s.recv(n - len(data))
        check(chunk, "connection closed early")
        data += chunk
    return bytes(data)


def test_pingpong(peer, stats):
    with peer.connect() as s:
        started = time.monotonic()
        for i in range(1000):
            msg = pattern(i * 64, 64)
            s.sendall(msg)
            check(recv_exactly(s, 64) == msg, f"round trip {i}: wrong bytes")
        elapsed = time.monotonic() - started
    stats.append(f"{1000 / elapsed:,.0f} round trips/s")


def test_concurrent(peer, stats):
    echo_many(peer, conns=200, rounds=5, max_size=4000)


def test_many(peer, stats):
    # Enough connections that the peer's fds pass FD_SETSIZE (1024).
    echo_many(peer, conns=MANY, rounds=2, max_size=64)


def echo_many(peer, conns, rounds, max_size):
    """`conns` connections at once, each `rounds` round trips of its own message size."""
    sel = selectors.DefaultSelector()
    state = {}
    try:
        for i in range(conns):
            s = peer.connect()
            s.setblocking(False)
            # Connection i sends messages of its own size, from its own place in the stream.
            state[s] = {"i": i, "size": 1 + (i * 37) % max_size, "round": 0, "got": bytearray()}
            sel.register(s, selectors.EVENT_READ)
        for s, st in state.items():
            s.sendall(pattern(st["i"] * 7919, st["size"]))
        done = 0
        deadline = time.monotonic() + 30
        while done < conns:
            check(time.monotonic() < deadline, f"only {done}/{conns} connections done in 30 s")
            for key, _ in sel.select(1):
                s, st = key.fileobj, state[key.fileobj]
                chunk = s.recv(65536)
                check(chunk, f"connection {st['i']} closed early")
                st["got"] += chunk
                if len(st["got"]) < st["size"]:
                    continue
                offset = st["i"] * 7919 + st["round"] * st["size"]
                ok = st["got"] == pattern(offset, st["size"])
                check(ok, f"connection {st['i']}: wrong bytes")
                st["got"].clear()
                st["round"] += 1
                if st["round"] == rounds:
                    sel.unregister(s)
                    done += 1
                else:
                    s.sendall(pattern(offset + st["size"], st["size"]))
    finally:
        for s in state:
            s.close()
        sel.close()


def pump(s, total, sent, received, deadline, what):
    """Writes the stream up to `total` while reading and checking the echo, until all is back."""
    chunk = 256 * 1024
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if sent < total else 0))
        while received < total:
            check(time.monotonic() < deadline, f"{what}: {received}/{total} bytes echoed in time")
            for _, mask in sel.select(1):
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += s.send(pattern(sent, min(chunk, total - sent)))
                    except BlockingIOError:
                        pass
                    if sent == total:
                        sel.modify(s, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        data = s.recv(MiB)
                    except BlockingIOError:
                        continue
                    check(data, f"{what}: closed after {received} bytes")
                    ok = data == pattern(received, len(data))
                    check(ok, f"{what}: wrong bytes at {received}")
                    received += len(data)
                    check(received <= sent, f"{what}: more bytes back than sent")


def test_stream(peer, stats):
    total = 16 * MiB
    with peer.connect() as s:
        s.setblocking(False)
        started = time.monotonic()
        pump(s, total, 0, 0, started + 60, "stream")
        elapsed = time.monotonic() - started
    stats.append(f"{total / MiB / elapsed:,.0f} MiB/s stream")


def test_slow_reader(peer, stats):
    # The client's small receive buffer leaves the kernel less room to absorb the echo, so
    # more of it waits in the peer. (On loopback the kernel still takes most of 8 MiB;
    # test_flood is the one that makes every peer stop reading.)
    total = 8 * MiB
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    with s:
        s.settimeout(10)
        s.connect(("127.0.0.1", peer.port))
        s.setblocking(False)
        sent, peak, _ = write_unread(peer, s, total, 1)
        check(peak < RSS_LIMIT, f"VmRSS reached {peak / MiB:.1f} MiB while the client did not read")
        stats.append(f"slow reader: {sent / MiB:.1f} MiB taken, peak RSS {peak / MiB:.1f} MiB")
        pump(s, total, sent, 0, time.monotonic() + 60, "slow reader")


def test_flood(peer, stats):
    # As much as the client can write in 1 s, unread: only a peer that stops reading keeps
    # its memory bounded, and the client must find itself blocked.
    cap = 1 << 40
    with peer.connect() as s:
        s.setblocking(False)
        sent, peak, stall = write_unread(peer, s, cap, 1)
        check(peak < RSS_LIMIT, f"VmRSS reached {peak / MiB:.1f} MiB under a flood")
        check(stall >= 0.3, f"the client was never held back ({sent / MiB:.0f} MiB taken in 1 s)")
        stats.append(f"flood: {sent / MiB:.1f} MiB taken, peak RSS {peak / MiB:.1f} MiB")
        pump(s, sent, sent, 0, time.monotonic() + 60, "flood")


def write_unread(peer, s, total, seconds):
    """Writes up to `total` bytes for `seconds` without reading.

    Returns (bytes sent, peak VmRSS, longest time the socket took nothing)."""
    sent, peak, longest_stall = 0, peer.rss_bytes(), 0.0
    now = time.monotonic()
    stop, last_progress = now + seconds, now
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_WRITE)
        while now < stop and sent < total:
            if sel.select(0.02):
                try:
                    sent += s.send(pattern(sent, min(256 * 1024, total - sent)))
                    last_progress = time.monotonic()
                except BlockingIOError:
                    pass
            peak = max(peak, peer.rss_bytes())
            now = time.monotonic()
            longest_stall = max(longest_stall, now - last_progress)
    if sent == total:
        time.sleep(max(0.0, stop - time.monotonic()))
    return sent, max(peak, peer.rss_bytes()), longest_stall


def test_emfile(path, stats):
    peer = Peer(path, nofile=64)
    conns = []
    try:
        for _ in range(100):
            conns.append(peer.connect())
        time.sleep(0.3)
        cpu = peer.cpu_seconds()
        time.sleep(1)
        cpu = peer.cpu_seconds() - cpu
        check(cpu < 0.3, f"at the fd limit the peer used {cpu:.2f} s CPU in 1 s (spinning?)")
        stats.append(f"{cpu * 1000:.0f} ms CPU/s at the fd limit")
        for s in conns:
            s.close()
        conns.clear()
        time.sleep(0.2)
        with peer.connect() as s:
            s.settimeout(3)
            msg = pattern(12345, 100)
            s.sendall(msg)
            check(recv_exactly(s, 100) == msg, "after the fd limit: wrong bytes")
        status, _ = peer.terminate()
        check(status == 0, f"exit status {status} after SIGTERM")
    except socket.timeout:
        raise Failure("after the fd limit: no echo within 3 s")
    finally:
        for s in conns:
            s.close()
        peer.kill()


def test_sigterm(peer, stats):
    with peer.connect():
        status, elapsed = peer.terminate()
    check(status == 0, f"exit status {status} after SIGTERM")
    stats.append(f"exit in {elapsed * 1000:.0f} ms")


def run_peer(path):
    name = os.path.basename(path)
    stats, failures = [], []
    try:
        peer = Peer(path)
    except Failure as e:
        print(f"FAIL {name}: start: {e}")
        return False
    try:
        tests = (test_pingpong, test_concurrent, test_many, test_stream, test_slow_reader,
                 test_flood, test_sigterm)
        for test in tests:
            try:
                test(peer, stats)
            except (Failure, OSError) as e:
                failures.append(f"{test.__name__[5:]}: {e}")
                if peer.proc.poll() is not None:
                    failures.append(f"peer exited with status {peer.proc.returncode}")
                    break
    finally:
        peer.kill()
    try:
        test_emfile(path, stats)
    except (Failure, OSError) as e:
        failures.append(f"emfile: {e}")
    for f in failures:
        print(f"FAIL {name}: {f}")
    if not failures:
        print(f"ok   {name}: " + "; ".join(stats))
    sys.stdout.flush()
    return not failures


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    # Room for test_many's connections here (the peers raise their own limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * MANY + 100
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            print(f"RLIMIT_NOFILE hard limit {hard} < {want}: cannot run", file=sys.stderr)
            return 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    results = [run_peer(path) for path in argv[1:]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
