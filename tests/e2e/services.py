# SPDX-License-Identifier: MIT
"""Every service of reactor-serve over the given transports with one model (and backend):
each reply checked byte for byte by a tutorial-style client, then SIGTERM, a clean exit,
the summary line counting exactly the requests made, and nothing left behind.

    services.py --serve S --client C --model M [--backend B] [--transport T ...]
"""

import socket

from e2e_support import (GREETING, SERVICES, TIME_REPLY, TRANSPORTS, datagram_client,
                         default_bind, parse_args, recv_all, recv_exactly, run_cases, running,
                         stream_client, temp_dir)


def recv_lines(sock, n):
    """Reads until `n` lines have arrived; returns them (each with its '\\n')."""
    data = b""
    while data.count(b"\n") < n:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed after {data!r}, expected {n} lines"
        data += chunk
    return data.splitlines(keepends=True)


def connect(server):
    return stream_client(server.address)


def printed_name(sock):
    """How the server prints this client's address."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        return f"127.0.0.1:{name[1]}"
    if isinstance(name, bytes):
        name = name.decode()
    return "unix:" + (("@" + name[1:]) if name.startswith("\0") else name)


# ---- Stream conversations; each returns the number of connections it made ---------------------

def stream_transform(server, transform, concurrent):
    with connect(server) as sock:
        for data in (b"hello\n", b"no newline", b"\x00\xff\xe9 bytes\r\n"):
            sock.sendall(data)
            got = recv_exactly(sock, len(data))
            assert got == transform(data), f"sent {data!r}, got {got!r}"
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"", "data after the replies"
    if not concurrent:
        return 1
    # Three clients at once, answered in the reverse order of connecting: no one waits.
    socks = [connect(server) for _ in range(3)]
    try:
        for i, sock in reversed(list(enumerate(socks))):
            line = f"client {i}\n".encode()
            sock.sendall(line)
            got = recv_exactly(sock, len(line))
            assert got == transform(line), f"client {i}: got {got!r}"
        for sock in socks:  # the server has closed each before it is stopped
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"", "data after the replies"
    finally:
        for sock in socks:
            sock.close()
    return 4


def stream_time(server, _concurrent):
    with connect(server) as sock:
        sock.sendall(b"hello\n")
        [reply] = recv_lines(sock, 1)
        assert TIME_REPLY.match(reply), f"got {reply!r}"
        sock.sendall(b"hello\nhello\n")
        for reply in recv_lines(sock, 2):
            assert TIME_REPLY.match(reply), f"got {reply!r}"
        sock.sendall(b"hello")  # a last line without its newline is a line too
        sock.shutdown(socket.SHUT_WR)
        reply = recv_all(sock)
        assert TIME_REPLY.match(reply + b"\n"), f"last line: got {reply!r}"
    return 1


def stream_greet(server, _concurrent):
    with connect(server) as sock:
        got = recv_all(sock)
        assert got == GREETING, f"got {got!r}"
    return 1


def stream_print(server, _concurrent):
    with connect(server) as sock:
        sock.sendall(b"hello\n")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b"", "print replied"
        expected = f"{printed_name(sock)} wrote: hello"
    line = server.next_line()
    assert line == expected, f"server printed {line!r}, expected {expected!r}"
    return 1


# ---- Datagram conversations; each returns the number of datagrams it sent ---------------------

def ask(sock, server, data):
    sock.sendto(data, server.address)
    reply, _ = sock.recvfrom(65536)
    return reply


def datagram_transform(server, transform):
    with datagram_client(server.address) as sock:
        for data in (b"hello\n", b"\x00\xff\xe9 no newline", b""):
            got = ask(sock, server, data)
            assert got == transform(data), f"sent {data!r}, got {got!r}"
    return 3


def datagram_time(server):
    with datagram_client(server.address) as sock:
        reply = ask(sock, server, b"hello\n")
        assert TIME_REPLY.match(reply), f"got {reply!r}"
        lines = ask(sock, server, b"hello\nhello\n").splitlines(keepends=True)
        assert len(lines) == 2 and all(TIME_REPLY.match(x) for x in lines), f"got {lines!r}"
    return 2


def datagram_greet(server):
    with datagram_client(server.address) as sock:
        got = ask(sock, server, b"hi")
        assert got == GREETING, f"got {got!r}"
    return 1


def datagram_print(server):
    with datagram_client(server.address) as sock:
        sock.sendto(b"hello\n", server.address)  # a UDP socket gets its name here
        expected = f"{printed_name(sock)} wrote: hello"
        line = server.next_line()
        assert line == expected, f"server printed {line!r}, expected {expected!r}"
        sock.settimeout(0.2)
        try:
            reply = sock.recv(65536)
        except (socket.timeout, ConnectionRefusedError):
            reply = None
        assert reply is None, f"print replied {reply!r}"
    return 1


def converse(server, service, transport, model):
    if transport in ("tcp", "unix-stream"):
        concurrent = model != "sync"  # sync serves one client at a time, by design
        if service == "echo":
            return stream_transform(server, lambda b: b, concurrent)
        if service == "upper":
            return stream_transform(server, bytes.upper, concurrent)
        return {"time": stream_time, "greet": stream_greet,
                "print": stream_print}[service](server, concurrent)
    if service == "echo":
        return datagram_transform(server, lambda b: b)
    if service == "upper":
        return datagram_transform(server, bytes.upper)
    return {"time": datagram_time, "greet": datagram_greet, "print": datagram_print}[service](server)


def main():
    def extra(p):
        p.add_argument("--model", required=True)
        p.add_argument("--backend")
        p.add_argument("--transport", action="append", choices=TRANSPORTS)

    args = parse_args(extra)
    tmp = temp_dir()
    cases = []
    for transport in args.transport or TRANSPORTS:
        for service in SERVICES:
            def case(service=service, transport=transport):
                flags = ["--transport", transport, "--bind", default_bind(transport, tmp.name),
                         "--model", args.model]
                if args.backend:
                    flags += ["--backend", args.backend]
                with running(args.serve, service, *flags) as server:
                    made = converse(server, service, transport, args.model)
                    server.stop(expect_served=made)
            name = f"{service} over {transport}, model {args.model}"
            cases.append((name + (f", backend {args.backend}" if args.backend else ""), case))
    run_cases(cases)


if __name__ == "__main__":
    main()
