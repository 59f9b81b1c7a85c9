"""reactor-serve's command line: bad options exit 2 and an address that cannot be had exits 1,
each with one clear line on stderr, nothing on stdout, and no stack trace.

    options.py --serve S --client C
"""

import os
import socket
import subprocess

from e2e_support import parse_args, run_cases, running, stream_client, temp_dir

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


def main():
    args = parse_args()
    tmp = temp_dir()

    def serve_fails(flags, status):
        done = subprocess.run([args.serve, *flags], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10)
        lines = done.stderr.decode(errors="replace").splitlines()
        assert done.returncode == status, \
            f"{flags}: exit status {done.returncode}, expected {status}; stderr {lines}"
        assert done.stdout == b"", f"{flags}: stdout {done.stdout!r}"
        assert len(lines) == 1 and lines[0].startswith("reactor-serve: "), \
            f"{flags}: expected one 'reactor-serve: ...' line on stderr, got {lines}"
        return lines[0]

    def bad_options():
        for flags in BAD_OPTIONS:
            serve_fails(flags, 2)

    def help_text():
        done = subprocess.run([args.serve, "--help"], capture_output=True, timeout=30)
        assert done.returncode == 0 and b"Usage" in done.stdout, done

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
        ("--help: exit 0", help_text),
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
