#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Self-test of reactor-load against small Python servers (standard library only).

    selftest.py PATH/TO/reactor-load

Starts a selectors-based server in a subprocess (this script, run with --serve KIND ADDR),
runs reactor-load against it and checks the outcome:

  echo        every mode over TCP, pingpong over a Unix socket and [::1]: exit 0, JSON sane
  corrupt     flips one echoed byte: exit 1, "MISMATCH" on stderr, nothing on stdout
  close       closes every connection at once: errors reported, exit 1, bounded time
  stall       reads but never echoes: stalled connections reported, exit 1, bounded time
  idleclose   echoes, but closes connections silent for 0.5 s: idle_closed reported

Exit status 0 if every check passed.
"""

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

# --------------------------------------------------------------------------- the servers


def serve(kind, where):
    """Runs server `kind` on `where` ("127.0.0.1", "::1" or a Unix path) until killed."""
    if where.startswith("/"):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(where)
        shown = "unix:" + where
    else:
        family = socket.AF_INET6 if ":" in where else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((where, 0))
        port = listener.getsockname()[1]
        shown = f"[{where}]:{port}" if family == socket.AF_INET6 else f"{where}:{port}"
    listener.listen(1024)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    print(f"listening on {shown}", flush=True)

    class Conn:
        def __init__(self, sock):
            self.sock = sock
            self.out = bytearray()
            self.seen = 0
            self.last = time.monotonic()
            self.writing = False

    def close(c):
        sel.unregister(c.sock)
        c.sock.close()

    def flush(c):
        try:
            if c.out:
                del c.out[: c.sock.send(c.out)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            close(c)
            return
        want = bool(c.out)
        if want != c.writing:
            c.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            sel.modify(c.sock, events, c)

    conns = set()
    while True:
        for key, events in sel.select(timeout=0.05):
            if key.data is None:
                while True:
                    try:
                        sock, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    if kind == "close":
                        sock.close()
                        continue
                    sock.setblocking(False)
                    c = Conn(sock)
                    sel.register(sock, selectors.EVENT_READ, c)
                    conns.add(c)
                continue
            c = key.data
            if events & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    close(c)
                    conns.discard(c)
                    continue
                if data:
                    c.last = time.monotonic()
                    if kind == "corrupt" and c.seen <= 100 < c.seen + len(data):
                        data = bytearray(data)
                        data[100 - c.seen] ^= 0x01
                    c.seen += len(data)
                    if kind != "stall":
                        c.out += data
            flush(c)
        if kind == "idleclose":
            now = time.monotonic()
            for c in [c for c in conns if now - c.last > 0.5]:
                close(c)
                conns.discard(c)


# --------------------------------------------------------------------------- the checks

failures = []


def check(name, condition, detail=""):
    print(f"  {'ok  ' if condition else 'FAIL'} {name}{': ' + detail if detail and not condition else ''}")
    if not condition:
        failures.append(name)


class Server:
    def __init__(self, kind, where):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, where],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"server {kind} did not start: {line!r}")
        self.address = line.split()[2]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def run_load(tool, server, *args):
    """Runs reactor-load; returns (exit code, parsed JSON or None, stderr, seconds taken)."""
    cmd = [tool, "--connect", server.address, "--server-pid", str(server.proc.pid), *args]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    print(f"$ {' '.join(cmd[1:])}\n  exit {done.returncode} after {took:.2f} s")
    report = None
    lines = done.stdout.strip().splitlines()
    if lines:
        print(f"  {lines[-1]}")
        try:
            report = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if done.stderr.strip():
        print(f"  stderr: {done.stderr.strip()[:300]}")
    return done.returncode, report, done.stderr, took


COMMON = ["--seconds", "1", "--warmup", "0.2", "--grace", "1"]


def check_sane(label, code, r, mode, idle=0):
    check(f"{label}: exit 0", code == 0, f"exit {code}")
    check(f"{label}: one JSON line", r is not None)
    if r is None:
        return
    lat = r["latency_us"]
    check(f"{label}: mode", r["mode"] == mode)
    check(f"{label}: messages > 0", r["messages"] > 0 and r["messages_per_s"] > 0)
    check(f"{label}: bytes > 0", r["bytes"] > 0 and r["mb_per_s"] > 0)
    check(f"{label}: seconds ~1", 0.95 <= r["seconds"] <= 1.5, str(r["seconds"]))
    check(f"{label}: 0 < p50 <= p90 <= p99 <= p999 <= max",
          0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"] * 1.01, str(lat))
    check(f"{label}: latency samples", r["latency_samples"] > 0)
    check(f"{label}: errors == 0", r["errors"] == 0, str(r["error_kinds"]))
    check(f"{label}: idle_open == idle", r["idle_open"] == idle == r["idle"])
    check(f"{label}: server cpu reported", r.get("server_cpu_us") is not None
          and r["server_cpu_us"] >= 0 and r["server_cpu_us_per_msg"] >= 0)
    check(f"{label}: client cpu per msg > 0", r["client_cpu_us_per_msg"] > 0)
    if mode == "connect":
        check(f"{label}: connects_per_s > 0", r.get("connects_per_s", 0) > 0)
        check(f"{label}: connects == messages", r["connects"] == r["messages"])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        serve(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tool = sys.argv[1]

    with Server("echo", "127.0.0.1") as s:
        code, r, _, _ = run_load(tool, s, "--mode", "pingpong", "--conns", "4", "--size", "64",
                                 "--pipeline", "2", "--idle", "20", *COMMON)
        check_sane("pingpong", code, r, "pingpong", idle=20)
        if r:
            check("pingpong: mb_per_s ~ messages * size", abs(
                r["bytes"] - r["messages"] * 64) <= 4 * 2 * 64)
        code, r, _, _ = run_load(tool, s, "--mode", "stream", "--conns", "2", "--size", "1000",
                                 *COMMON)
        check_sane("stream", code, r, "stream")
        code, r, _, _ = run_load(tool, s, "--mode", "connect", "--conns", "4", "--size", "32",
                                 *COMMON)
        check_sane("connect", code, r, "connect")

    with tempfile.TemporaryDirectory() as tmp:
        with Server("echo", os.path.join(tmp, "echo.sock")) as s:
            code, r, _, _ = run_load(tool, s, "--conns", "3", "--size", "100", "--idle", "5",
                                     *COMMON)
            check_sane("unix pingpong", code, r, "pingpong", idle=5)

    if socket.has_ipv6:
        try:
            server = Server("echo", "::1")
        except (RuntimeError, OSError):
            server = None
            print("(no ::1 here: IPv6 check skipped)")
        if server:
            with server as s:
                code, r, _, _ = run_load(tool, s, "--conns", "2", "--size", "10", *COMMON)
                check_sane("ipv6 pingpong", code, r, "pingpong")

    bound = 0.2 + 1 + 1 + 3  # warmup + seconds + grace + slack for start and teardown
    with Server("corrupt", "127.0.0.1") as s:
        for mode in ("pingpong", "stream"):
            code, r, err, took = run_load(tool, s, "--mode", mode, "--conns", "2", "--size", "64",
                                          *COMMON)
            check(f"corrupt {mode}: exit 1", code == 1, f"exit {code}")
            check(f"corrupt {mode}: MISMATCH on stderr", "MISMATCH" in err)
            check(f"corrupt {mode}: no JSON", r is None)
            check(f"corrupt {mode}: bounded", took < bound, f"{took:.1f} s")

    with Server("close", "127.0.0.1") as s:
        for mode in ("pingpong", "stream", "connect"):
            code, r, err, took = run_load(tool, s, "--mode", mode, "--conns", "3", *COMMON)
            check(f"close {mode}: exit 1", code == 1, f"exit {code}")
            check(f"close {mode}: errors reported", r is not None and r["errors"] > 0)
            check(f"close {mode}: message on stderr", "errors" in err)
            check(f"close {mode}: bounded", took < bound, f"{took:.1f} s")

    with Server("stall", "127.0.0.1") as s:
        code, r, err, took = run_load(tool, s, "--conns", "3", *COMMON)
        check("stall: exit 1", code == 1, f"exit {code}")
        check("stall: stalled == conns", r is not None and r["error_kinds"]["stalled"] == 3)
        check("stall: no messages", r is not None and r["messages"] == 0)
        check("stall: bounded", took < bound, f"{took:.1f} s")

    with Server("idleclose", "127.0.0.1") as s:
        code, r, err, took = run_load(tool, s, "--conns", "2", "--idle", "10", *COMMON)
        check("idleclose: exit 1", code == 1, f"exit {code}")
        check("idleclose: idle_closed == idle",
              r is not None and r["error_kinds"]["idle_closed"] == 10 and r["idle_open"] == 0)
        check("idleclose: active ones fine", r is not None and r["messages"] > 0)

    code = subprocess.run([tool, "--connect", "localhost:1", "--seconds", "1"],
                          capture_output=True, text=True, timeout=30).returncode
    check("bad address: exit non-zero", code != 0, f"exit {code}")

    print(f"\n{len(failures)} failed" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
