# SPDX-License-Identifier: MIT
"""The command lines of reactor-serve, reactor-client and reactor-load: bad options exit 2
and an address that cannot be had exits 1, each with one clear line on stderr that starts
with the program's name and says why, nothing on stdout, and no stack trace; --help and
--version exit 0.

    options.py --serve S --client C [--load L]
"""

import os
import re
import socket
import subprocess
import time

from e2e_support import parse_args, run_cases, running, stream_client, temp_dir

VERSION = re.compile(r"^(reactor-serve|reactor-client|reactor-load) \d+\.\d+\.\d+\n$")

BAD_OPTIONS = [
    [],                                                  # no SERVICE
    ["nope"],                                            # unknown service
    ["echo", "extra"],                                   # a second positional
    ["echo", "--model", "fibers"],
    ["echo", "--backend", "kqueue"],
    ["echo", "--transport", "sctp"],
    ["echo", "--bind", "nonsense"],
    ["echo", "--bind", "127.0.0.1"],                     # no port
    ["echo", "--bind", "127.0.0.1:99999"],               # port out of range
    ["echo", "--bind", "unix:"],                         # empty path
    ["echo", "--transport", "unix-stream"],              # the default bind is TCP
    ["echo", "--transport", "unix-dgram", "--bind", "127.0.0.1:0"],
    ["echo", "--transport", "tcp", "--bind", "unix:@reactor-e2e"],
    ["echo", "--transport", "udp", "--bind", "unix:/tmp/reactor-e2e.sock"],
    ["echo", "--threads", "many"],
    ["echo", "--idle-timeout", "-1"],
    ["echo", "--unknown-flag"],
]

# Options refused with the reason in the line: (flags, words the line must hold).
SERVE_REASONS = [
    (["echo", "--max-children", "-5"], "not a whole number"),   # not wrapped to 2**64 - 5
    (["echo", "--max-children", "0"], "out of range 1..4096"),
    (["echo", "--max-threads", "16385"], "out of range 1..16384"),
    (["echo", "--max-connections", "-1"], "not a whole number"),
    (["echo", "--max-connections", "1000001"], "out of range 0..1000000"),
    (["echo", "--threads", "100000"], "out of range 0..256"),   # not gigabytes of stacks
    (["echo", "--threads", "0x10"], "not a whole number"),
    (["echo", "--threads", "99999999999999999999999"], "out of range"),
    (["echo", "--idle-timeout", "inf"], "not a number of seconds"),
    (["echo", "--idle-timeout", "nan"], "not a number of seconds"),
    (["echo", "--idle-timeout", "1e300"], "not a number of seconds"),
    (["echo", "--bind", "127.0.0.1:99999"], "port out of range"),
    (["echo", "--bind", "127.0.0.1:http"], "not a decimal number"),
    (["echo", "--bind", "example.com:80"], "names are not resolved"),
    (["echo", "--bind", "unix:/" + "p" * 200], "longer than 107 bytes"),
    (["echo", "--bind", "unix:@" + "n" * 200], "longer than 106 bytes"),
    (["echo", "--transport", "tcp", "--bind", "unix:@x"], "does not suit --transport tcp"),
]

CLIENT_REASONS = [
    (["example.com:80"], "names are not resolved"),
    (["127.0.0.1:99999"], "port out of range"),
    (["unix:/" + "p" * 200], "longer than 107 bytes"),
    (["127.0.0.1:7", "--timeout", "inf"], "not a number of seconds"),
    (["127.0.0.1:7", "--timeout", "nan"], "not a number of seconds"),
    (["127.0.0.1:7", "--timeout", "0"], "not a number of seconds"),
    (["127.0.0.1:7", "--transport", "sctp"], "--transport"),
    (["unix:@x", "--transport", "udp"], "does not suit --transport udp"),
    (["127.0.0.1:7", "--transport", "unix-dgram"], "does not suit --transport unix-dgram"),
    ([], "ADDR"),
]

LOAD_REASONS = [
    ([], "--connect"),
    (["--connect", "example.com:80"], "names are not resolved"),
    (["--connect", "127.0.0.1:99999"], "port out of range"),
    (["--connect", "127.0.0.1"], "no port"),
    (["--connect", "127.0.0.1:7", "--conns", "-5"], "not a whole number"),
    (["--connect", "127.0.0.1:7", "--conns", "0"], "out of range"),
    (["--connect", "127.0.0.1:7", "--server-pid", "-1"], "not a whole number"),
    (["--connect", "127.0.0.1:7", "--seconds", "inf"], "not a number of seconds"),
    (["--connect", "127.0.0.1:7", "--warmup", "nan"], "not a number of seconds"),
    (["--connect", "127.0.0.1:7", "--mode", "bounce"], "--mode"),
    (["--connect", "127.0.0.1:7", "--unknown-flag"], "--unknown-flag"),
]


def fails(argv, status, env=None):
    """Runs a program expected to fail; returns its one stderr line, `PROGRAM: reason`."""
    name = os.path.basename(argv[0])
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                          env=env)
    lines = done.stderr.decode(errors="replace").splitlines()
    assert done.returncode == status, \
        f"{argv[1:]}: exit status {done.returncode}, expected {status}; stderr {lines}"
    assert done.stdout == b"", f"{argv[1:]}: stdout {done.stdout!r}"
    assert len(lines) == 1 and lines[0].startswith(f"{name}: "), \
        f"{argv[1:]}: expected one '{name}: ...' line on stderr, got {lines}"
    return lines[0]


def refused_with_reason(program, cases):
    for flags, reason in cases:
        line = fails([program, *flags], 2)
        assert reason in line, f"{flags}: {reason!r} not in {line!r}"


def version(program):
    done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0 and done.stderr == "", done
    assert VERSION.match(done.stdout), f"--version printed {done.stdout!r}"
    assert done.stdout.startswith(os.path.basename(program) + " "), done.stdout


def tasks(pid, at_least):
    """How many threads the process has, once it has `at_least` of them (a pool starts its
    loops' threads after announcing the address) or after two seconds."""
    deadline = time.monotonic() + 2
    while True:
        count = len(os.listdir(f"/proc/{pid}/task"))
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def main():
    args = parse_args()
    tmp = temp_dir()

    def serve_fails(flags, status):
        return fails([args.serve, *flags], status)

    def bad_options():
        for flags in BAD_OPTIONS:
            serve_fails(flags, 2)

    def help_text():
        done = subprocess.run([args.serve, "--help"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "Usage" in done.stdout, done
        # The bounds are said where the options are.
        for bound in ("at most 256", "1 to 4096", "at most 1000000", "at most 86400"):
            assert bound in done.stdout, f"{bound!r} not in --help"

    def threads_decimal():
        # "010" is ten loops, as "10" is, not eight: the same number of threads either way.
        counts = []
        for text in ("10", "010", "8"):
            with running(args.serve, "echo", "--model", "pool", "--threads", text,
                         "--bind", "127.0.0.1:0") as server:
                counts.append(tasks(server.process.pid, int(text, 10)))
                server.stop()
        assert counts[0] == counts[1] > counts[2], f"threads for 10, 010, 8: {counts}"

    def transport_from_address(program_args):
        # A unix: address needs no --transport: it means unix-stream, for both programs.
        bind = "unix:" + os.path.join(tmp.name, "inferred.sock")
        with running(args.serve, "echo", "--bind", bind) as server:
            with stream_client(server.address) as sock:
                sock.sendall(b"no transport given\n")
                assert sock.recv(100) == b"no transport given\n"
            done = subprocess.run([args.client, bind, *program_args], input=b"hello\n",
                                  capture_output=True, timeout=30)
            assert done.returncode == 0 and done.stdout == b"hello\n", done
            server.stop()

    def bad_backend_env():
        env = dict(os.environ, REACTOR_BACKEND="kqueue")
        for argv in ([args.serve, "echo", "--bind", "127.0.0.1:0"], [args.client, "127.0.0.1:7"]):
            line = fails(argv, 2, env)
            assert "$REACTOR_BACKEND" in line and "kqueue" in line, line
        # --backend names the backend itself: the variable is not consulted.
        saved = os.environ.get("REACTOR_BACKEND")
        os.environ["REACTOR_BACKEND"] = "kqueue"
        try:
            with running(args.serve, "echo", "--backend", "poll", "--bind", "127.0.0.1:0") as s:
                s.stop()
        finally:
            if saved is None:
                del os.environ["REACTOR_BACKEND"]
            else:
                os.environ["REACTOR_BACKEND"] = saved

    def load_runs(connect_text):
        # Its own printed default --server-pid 0 is accepted, and so is localhost.
        with running(args.serve, "echo", "--bind", "127.0.0.1:0") as server:
            target = connect_text.replace("PORT", str(server.address[1]))
            done = subprocess.run([args.load, "--connect", target, "--conns", "2", "--size", "8",
                                   "--seconds", "0.2", "--warmup", "0", "--grace", "2",
                                   "--server-pid", "0"], capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, done
            assert done.stdout.count("\n") == 1 and done.stdout.startswith("{"), done.stdout
            server.stop()

    def load_cases():
        if not args.load:
            return []
        return [
            ("reactor-load: bad options, one line, exit 2",
             lambda: refused_with_reason(args.load, LOAD_REASONS)),
            ("reactor-load: --server-pid 0 (its default)", lambda: load_runs("127.0.0.1:PORT")),
            ("reactor-load: localhost", lambda: load_runs("localhost:PORT")),
            ("reactor-load --version", lambda: version(args.load)),
        ]

    def taken(kind, transport):
        with socket.socket(socket.AF_INET, kind) as holder:
            holder.bind(("127.0.0.1", 0))
            if kind == socket.SOCK_STREAM:
                holder.listen()
            port = holder.getsockname()[1]
            line = serve_fails(["echo", "--transport", transport, "--bind", f"127.0.0.1:{port}"],
                               1)
            assert "in use" in line, line

    def twice(transport, bind):
        # A second server on the address of a running one fails and leaves the first alone.
        with running(args.serve, "echo", "--transport", transport, "--bind", bind) as first:
            serve_fails(["echo", "--transport", transport, "--bind", first.address_text], 1)
            if transport in ("tcp", "unix-stream"):
                with stream_client(first.address) as sock:
                    sock.sendall(b"still here\n")
                    assert sock.recv(100) == b"still here\n"
            first.stop()

    run_cases([
        ("bad options: exit 2", bad_options),
        ("bad options: the reason is said", lambda: refused_with_reason(args.serve,
                                                                        SERVE_REASONS)),
        ("--help: exit 0, with the bounds", help_text),
        ("--threads is decimal", threads_decimal),
        ("a unix: address implies unix-stream", lambda: transport_from_address([])),
        ("a bad $REACTOR_BACKEND is named", bad_backend_env),
        ("reactor-serve --version", lambda: version(args.serve)),
        ("reactor-client: bad options, one line, exit 2",
         lambda: refused_with_reason(args.client, CLIENT_REASONS)),
        ("reactor-client --version", lambda: version(args.client)),
        *load_cases(),
        ("TCP port in use: exit 1", lambda: taken(socket.SOCK_STREAM, "tcp")),
        ("UDP port in use: exit 1", lambda: taken(socket.SOCK_DGRAM, "udp")),
        ("a second TCP server on the port: exit 1", lambda: twice("tcp", "127.0.0.1:0")),
        ("a second UDP server on the port: exit 1", lambda: twice("udp", "127.0.0.1:0")),
        ("a second server on the socket file: exit 1",
         lambda: twice("unix-stream", "unix:" + os.path.join(tmp.name, "twice.sock"))),
        ("a second server on the abstract name: exit 1",
         lambda: twice("unix-dgram", f"unix:@reactor-e2e-twice-{os.getpid()}")),
    ])


if __name__ == "__main__":
    main()
