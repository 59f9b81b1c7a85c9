#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Drives one tutorial program (examples/*.cpp) the way the Python tutorials it comes from
would: start it on 127.0.0.1:0, read its `listening on ADDR` line, talk to it with a plain
socket client, check the exact replies, then SIGTERM it and expect exit status 0.

    example_test.py PROGRAM EXE [--server SERVER_EXE] [--readme README.md]

PROGRAM names the check (time_server, upper_client, ...). A client program is run against
its server, given by --server. Every program taking arguments is first given --help, -h and
bad arguments: usage on stdout and status 0 for help; for a mistake one `PROGRAM: reason` line
and the usage on stderr, status 2; never a signal. stdin_echo (README.md's first example,
compared with it when --readme is given) copies stdin from a pipe, a file and /dev/null. Every socket has a timeout and every process is killed in a
finally block, so a broken program fails the test instead of hanging it.
"""

import argparse
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

TIMEOUT = 5.0  # seconds, for any one wait
TIME_REPLY = re.compile(rb"^\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] hello\n?$")


class Program:
    """A program under test, its stdout read line by line on a thread of its own."""

    def __init__(self, exe, *args):
        self.proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def expect(self, pattern):
        """Waits for a stdout line matching `pattern` (a regex) and returns its match."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r} in stdout {self.seen!r}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def address(self):
        """The (host, port) of the `listening on` line (echo_server adds its backend)."""
        match = self.expect(r"^listening on (\d+\.\d+\.\d+\.\d+):(\d+)( \(\w+\))?$")
        return match.group(1), int(match.group(2))

    def terminate(self):
        """SIGTERM; the program must exit with status 0 within the timeout."""
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=TIMEOUT)
        assert status == 0, f"exit status {status} after SIGTERM"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def tcp_client(addr):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(addr)
    return sock


def recv_until(sock, end=None):
    """Receives until `end` is among the bytes received, or until end of stream."""
    data = b""
    while end is None or end not in data:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def check_equal(what, got, want):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


# ---- the command line -------------------------------------------------------------------

BAD_ARGUMENTS = [
    ["nonsense"],
    ["127.0.0.1:99999"],
    ["--bind"],
    ["127.0.0.1:0", "extra", "more"],  # echo_server takes two arguments, the others one
]


def command_line(name, exe):
    """--help, -h and bad arguments are answered, never with a signal."""
    for flag in ("--help", "-h"):
        done = subprocess.run([exe, flag], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT)
        check_equal(f"{flag}: exit status", done.returncode, 0)
        assert done.stdout.startswith(f"usage: {name} "), f"{flag}: stdout {done.stdout!r}"
        check_equal(f"{flag}: stderr", done.stderr, "")
    bad = BAD_ARGUMENTS + ([["127.0.0.1:0", "kqueue"]] if name == "echo_server" else [])
    for args in bad:
        done = subprocess.run([exe, *args], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=TIMEOUT)
        check_equal(f"{args}: exit status", done.returncode, 2)
        lines = done.stderr.splitlines()
        assert len(lines) == 2 and lines[0].startswith(f"{name}: ") and \
            lines[1].startswith(f"usage: {name} "), f"{args}: stderr {lines!r}"
        check_equal(f"{args}: stdout", done.stdout, "")


# ---- one check per program -------------------------------------------------------------


def echo_server(program, _):
    addr = program.address()
    with tcp_client(addr) as first, tcp_client(addr) as second:
        first.sendall(b"hello")
        second.sendall(b"world")
        check_equal("echo", recv_until(first, b"hello"), b"hello")
        check_equal("echo", recv_until(second, b"world"), b"world")


def readme_example(readme):
    """The first ```cpp block of the README, the text a reader copies."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"```cpp\n(.*?)```", text, re.S)
    assert match, f"no cpp block in {readme}"
    return match.group(1)


def stdin_echo(exe, readme):
    """Echoes stdin whatever it is: a pipe goes through the loop, a file or /dev/null (which
    the loop cannot watch) is copied directly; exit 0 at end of input in every case."""
    if readme:
        source = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "../../examples/stdin_echo.cpp")
        with open(source, encoding="utf-8") as f:
            program = f.read()
        # The file's license line is the project's, not part of the text a reader copies.
        program = re.sub(r"\A// SPDX-License-Identifier: .*\n", "", program)
        check_equal("README's first example", readme_example(readme), program)
    data = "".join(f"line {i}\n" for i in range(2000))  # several reads' worth
    done = subprocess.run([exe], input=data, capture_output=True, text=True, timeout=TIMEOUT)
    check_equal("pipe: exit status", done.returncode, 0)
    check_equal("pipe: output", done.stdout, data)
    with tempfile.TemporaryFile("w+") as file:
        file.write(data)
        file.seek(0)
        done = subprocess.run([exe], stdin=file, capture_output=True, text=True,
                              timeout=TIMEOUT)
    check_equal("file: exit status", done.returncode, 0)
    check_equal("file: output", done.stdout, data)
    with open(os.devnull, encoding="utf-8") as null:
        done = subprocess.run([exe], stdin=null, capture_output=True, text=True,
                              timeout=TIMEOUT)
    check_equal("/dev/null: exit status", done.returncode, 0)
    check_equal("/dev/null: output", done.stdout, "")


def time_server(program, _):
    addr = program.address()
    for _ in range(2):  # the sync model serves one client after the other
        with tcp_client(addr) as sock:
            sock.sendall(b"hello\n")
            reply = recv_until(sock, b"\n")
            assert TIME_REPLY.match(reply), f"time reply {reply!r}"
            sock.sendall(b"hello\n")
            assert TIME_REPLY.match(recv_until(sock, b"\n"))
    program.expect(r"^\.\.\.connected from: 127\.0\.0\.1:\d+$")
    # SIGTERM while the one sync handler is blocked on a connected, silent client.
    with tcp_client(addr) as idle:
        idle.sendall(b"hi\n")
        assert TIME_REPLY.match(recv_until(idle, b"\n").replace(b"hello", b"hi").replace(
            b"] hi", b"] hello"))
        program.terminate()


def upper_server(program, _):
    addr = program.address()
    # The threading model: a client that says nothing does not hold up another one.
    with tcp_client(addr) as idle, tcp_client(addr) as busy:
        busy.sendall(b"hello, world")
        check_equal("reply", recv_until(busy, b"WORLD"), b"HELLO, WORLD")
        idle.sendall(b"abc")
        check_equal("reply", recv_until(idle, b"C"), b"ABC")
        busy.close()
        # shutdown() must cancel the handler blocked on `idle`, still connected here.
        program.terminate()


def greet_server(program, _):
    addr = program.address()
    with tcp_client(addr) as sock:
        check_equal("greeting", recv_until(sock), b"Thank you for connecting\n")
        port = sock.getsockname()[1]
    program.expect(rf"^Got connection from 127\.0\.0\.1:{port}$")


def udp_upper_server(program, _):
    addr = program.address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        for data in (b"hello", b"Mixed Case 123", b""):
            sock.sendto(data, addr)
            reply, sender = sock.recvfrom(2048)
            check_equal("reply", reply, data.upper())
            check_equal("sender", sender, addr)


def multiplexing_server(program, _):
    """select_server and poll_server: two clients at once, each chunk printed."""
    addr = program.address()
    with tcp_client(addr) as first, tcp_client(addr) as second:
        ports = [s.getsockname()[1] for s in (first, second)]
        for port in ports:
            program.expect(rf"^Got connection from 127\.0\.0\.1:{port}$")
        second.sendall(b"hello")
        program.expect(r"^hello$")
        first.sendall(b"from the first")
        program.expect(r"^from the first$")
        second.close()
        program.expect(rf"^127\.0\.0\.1:{ports[1]} disconnected$")
        first.sendall(b"still here")
        program.expect(r"^still here$")
    program.expect(rf"^127\.0\.0\.1:{ports[0]} disconnected$")


def run_client(exe, addr, lines):
    """Pipes `lines` into a client program; returns (exit status, stdout)."""
    done = subprocess.run([exe, f"{addr[0]}:{addr[1]}"], input="".join(lines), text=True,
                          stdout=subprocess.PIPE, timeout=3 * TIMEOUT)
    return done.returncode, done.stdout


CLIENT_LINES = ["hello\n", "Hello, World!\n", "tcp and udp\n"]


def client_check(program_exe, server):
    addr = server.address()
    status, out = run_client(program_exe, addr, CLIENT_LINES)
    check_equal("client exit status", status, 0)
    check_equal("client output", out, "".join(line.upper() for line in CLIENT_LINES))


def udp_upper_client(exe, server):
    client_check(exe, server)
    # No server at all: the client must report it and stop, never hang.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        unused = probe.getsockname()
    status, out = run_client(exe, unused, ["anyone there?\n"])
    assert status != 0, "a client with no server exits with a failure"
    check_equal("output with no server", out, "")


CHECKS = {
    "echo_server": echo_server,
    "time_server": time_server,
    "upper_server": upper_server,
    "greet_server": greet_server,
    "udp_upper_server": udp_upper_server,
    "select_server": multiplexing_server,
    "poll_server": multiplexing_server,
    "upper_client": client_check,
    "udp_upper_client": udp_upper_client,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", choices=sorted([*CHECKS, "stdin_echo"]))
    parser.add_argument("exe")
    parser.add_argument("--server", help="the server a client program talks to")
    parser.add_argument("--readme", help="README.md, whose first example stdin_echo is")
    args = parser.parse_args()
    if args.program == "stdin_echo":
        stdin_echo(args.exe, args.readme)
        print(f"{args.program}: ok")
        return

    command_line(args.program, args.exe)

    # For a client, the process started here is its server; for a server, itself.
    server = Program(args.server or args.exe, "127.0.0.1:0")
    try:
        CHECKS[args.program](args.exe if args.server else server, server)
        if server.proc.poll() is None:  # upper_server's check has stopped it already
            server.terminate()
    finally:
        server.kill()
    print(f"{args.program}: ok")


if __name__ == "__main__":
    sys.exit(main())
