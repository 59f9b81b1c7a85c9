# SPDX-License-Identifier: MIT
"""What every end-to-end test shares: the command line, a running reactor-serve, the
tutorial-style clients for each transport, and a tiny runner that names each case.

A test script is run by CTest as
    python3 SCRIPT.py --serve PATH/reactor-serve --client PATH/reactor-client
                      [--load PATH/reactor-load] [OPTIONS]
Every subprocess is killed in a finally block, every socket has a timeout, and this process
becomes a child subreaper, so that a child left behind by a forking server is re-parented
here, where check_no_children() finds it.
"""

import argparse
import ctypes
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TIMEOUT = 5.0  # seconds any single socket operation may take
SUMMARY = re.compile(r"^served (\d+) of (\d+) accepted \((\d+) cut at shutdown, (\d+) timed out, "
                     r"(\d+) errors, (\d+) rejected\) in [\d.]+ s$")
TIME_REPLY = re.compile(rb"^\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] hello\n$")
GREETING = b"Thank you for connecting\n"
TRANSPORTS = ["tcp", "udp", "unix-stream", "unix-dgram"]
MODELS = ["sync", "threading", "forking", "reactor", "pool"]
SERVICES = ["echo", "upper", "time", "greet", "print"]


def parse_args(extra=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", required=True, help="path of reactor-serve")
    parser.add_argument("--client", required=True, help="path of reactor-client")
    parser.add_argument("--load", help="path of reactor-load (bench/load), when it is built")
    if extra:
        extra(parser)
    return parser.parse_args()


def become_subreaper():
    PR_SET_CHILD_SUBREAPER = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children_of(pid):
    """Processes whose parent is `pid` (zombies included), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def check_no_children():
    left = children_of(os.getpid())
    for pid, _ in left:  # reap what was re-parented to us, so that one failure is one report
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    assert not left, f"processes left behind (pid, state): {left}"


def unique_name(tag):
    unique_name.counter += 1
    return f"reactor-e2e-{os.getpid()}-{unique_name.counter}-{tag}"


unique_name.counter = 0


def default_bind(transport, tmpdir):
    """Where a test asks the server to listen: a free loopback port, or a Unix socket file."""
    if transport in ("tcp", "udp"):
        return "127.0.0.1:0"
    return "unix:" + os.path.join(tmpdir, unique_name(transport) + ".sock")


def socket_address(text):
    """The Python form of a reactor address: (host, port), a path, or "\\0name"."""
    if text.startswith("unix:@"):
        return "\0" + text[len("unix:@"):]
    if text.startswith("unix:"):
        return text[len("unix:"):]
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


class Server:
    """One reactor-serve process: started, announced, and stopped with a signal."""

    def __init__(self, serve, service, *args):
        self.argv = [serve, service, *args]
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.stderr = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr.append)),
        ]
        for t in self._readers:
            t.daemon = True
            t.start()
        try:
            first = self.next_line(10)
            match = re.fullmatch(r"listening on (.+)", first or "")
            if not match:
                try:
                    status = self.process.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    status = "still running"
                raise AssertionError(f"{self.argv}: expected 'listening on ADDR', got {first!r};"
                                     f" exit status {status}, stderr {self.stderr_text()!r}")
        except BaseException:
            self.kill()
            raise
        self.address_text = match.group(1)
        self.address = socket_address(self.address_text)

    @staticmethod
    def _read(stream, put):
        for line in iter(stream.readline, b""):
            put(line.decode(errors="replace").rstrip("\n"))

    def next_line(self, timeout=TIMEOUT):
        """The next line the server printed on stdout, or None after `timeout`."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stderr_text(self):
        return "\n".join(self.stderr)

    def stop(self, signo=signal.SIGTERM, expect_served=None):
        """Signals the server and checks the clean exit: status 0, the summary line, no
        handler errors, nothing left behind. Returns the number of requests served."""
        self.process.send_signal(signo)
        try:
            status = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv}: still running 15 s after {signo!r}")
        for t in self._readers:
            t.join(5)
        err = self.stderr_text()
        assert status == 0, f"{self.argv}: exit status {status}, stderr: {err!r}"
        summary = [SUMMARY.match(line) for line in self.stderr]
        summary = [m for m in summary if m]
        assert len(summary) == 1 and len(self.stderr) == 1, \
            f"{self.argv}: expected only the summary line on stderr, got {err!r}"
        served, _accepted, _cut, _timed_out, errors, rejected = (
            int(g) for g in summary[0].groups())
        assert errors == 0 and rejected == 0, f"{self.argv}: {err}"
        if expect_served is not None:
            assert served == expect_served, \
                f"{self.argv}: served {served} requests, expected {expect_served}"
        check_no_children()
        path = self.address if isinstance(self.address, str) else ""
        if path and not path.startswith("\0"):
            assert not os.path.exists(path), f"{self.argv}: socket file {path} left behind"
        return served

    def kill(self):
        """Kills the server (if still running) and its children. The reader threads end when
        the pipes do; they are daemons, never waited for here."""
        if self.process.poll() is None:
            orphans = [pid for pid, _ in children_of(self.process.pid)]
            for pid in orphans:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.kill()
            self.process.wait()
            for pid in orphans:  # re-parented to this subreaper when the server died
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass


class running:
    """with running(serve, service, args...) as server: ... -- killed on the way out if the
    body did not stop it."""

    def __init__(self, serve, service, *args):
        self.serve, self.service, self.args = serve, service, args

    def __enter__(self):
        self.server = Server(self.serve, self.service, *self.args)
        return self.server

    def __exit__(self, *exc):
        self.server.kill()
        return False


# ---- Tutorial-style clients ------------------------------------------------------------------

def family_of(address):
    if isinstance(address, str):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


def stream_client(address):
    sock = socket.socket(family_of(address), socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(address)
    return sock


def datagram_client(address):
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    if isinstance(address, str):
        sock.bind("\0" + unique_name("client"))  # a Unix client needs a name to get replies
    return sock


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_all(sock):
    """Everything until the server closes."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def run_client(client, address_text, transport, stdin, timeout=1.0):
    """reactor-client in a pipe: stdin bytes in, (status, stdout, stderr) out."""
    argv = [client, address_text, "--transport", transport, "--timeout", str(timeout)]
    done = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
    return done.returncode, done.stdout, done.stderr


# ---- Runner ----------------------------------------------------------------------------------

def run_cases(cases):
    """Runs (name, function) pairs, reports each, exits 1 if any failed."""
    become_subreaper()
    failed = []
    for name, case in cases:
        start = time.monotonic()
        try:
            case()
        except Exception:  # noqa: BLE001 -- every failure is reported, then the next case runs
            failed.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok   {name} ({time.monotonic() - start:.2f} s)", flush=True)
    print(f"{len(cases) - len(failed)} of {len(cases)} passed", flush=True)
    if failed:
        print("failed: " + ", ".join(failed), flush=True)
    sys.exit(1 if failed else 0)


def temp_dir():
    return tempfile.TemporaryDirectory(prefix="reactor-e2e-")
