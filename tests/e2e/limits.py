# SPDX-License-Identifier: MIT
"""reactor-serve's run-time behaviour: signals stop it at once even with clients connected,
--idle-timeout and --max-connections hold, print's lines stay whole from many threads and
children, and IPv6 works.

    limits.py --serve S --client C
"""

import re
import signal
import socket
import threading
import time

from e2e_support import (datagram_client, parse_args, recv_all, recv_exactly, run_cases,
                         running, stream_client)


def main():
    args = parse_args()

    def serving(service, *flags):
        return running(args.serve, service, "--bind", "127.0.0.1:0", *flags)

    def sigint():
        with serving("echo") as server:
            with stream_client(server.address) as sock:
                sock.sendall(b"hello\n")
                assert recv_exactly(sock, 6) == b"hello\n"
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b""
            server.stop(signal.SIGINT, expect_served=1)

    def stop_with_client_connected(model):
        # shutdown() cancels the waits of blocking handlers, in children too: a connected,
        # silent client does not hold the server up.
        with serving("echo", "--model", model) as server:
            with stream_client(server.address) as sock:
                sock.sendall(b"hello\n")
                assert recv_exactly(sock, 6) == b"hello\n"
                start = time.monotonic()
                server.stop()
                assert time.monotonic() - start < 5, "the server took too long to stop"

    def idle_timeout(model):
        with serving("echo", "--model", model, "--idle-timeout", "0.3") as server:
            with stream_client(server.address) as sock:
                start = time.monotonic()
                closed = recv_all(sock)  # the server closes the silent client
                took = time.monotonic() - start
                assert closed == b"" and 0.25 <= took < 4, f"closed after {took:.2f} s"
            server.stop()

    def max_connections(model):
        with serving("echo", "--model", model, "--max-connections", "1") as server:
            first = stream_client(server.address)
            second = stream_client(server.address)  # waits in the backlog
            try:
                first.sendall(b"first\n")
                assert recv_exactly(first, 6) == b"first\n"
                second.sendall(b"second\n")
                second.settimeout(0.5)
                try:
                    early = second.recv(100)
                except socket.timeout:
                    early = None
                assert early is None, f"a second client was served at once: {early!r}"
                second.settimeout(5)
                first.close()
                assert recv_exactly(second, 7) == b"second\n"
                second.shutdown(socket.SHUT_WR)
                assert recv_all(second) == b""
            finally:
                first.close()
                second.close()
            server.stop(expect_served=2)

    def print_lines_stay_whole(model):
        clients, lines = 16, 25
        with serving("print", "--model", model) as server:
            def talk(i):
                with stream_client(server.address) as sock:
                    for j in range(lines):
                        sock.sendall(f"client {i} line {j} ".encode() + b"x" * 200 + b"\n")
                    sock.shutdown(socket.SHUT_WR)
                    recv_all(sock)
            threads = [threading.Thread(target=talk, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            shape = re.compile(r"127\.0\.0\.1:\d+ wrote: client \d+ line \d+ x{200}")
            got = [server.next_line() for _ in range(clients * lines)]
            bad = [line for line in got if line is None or not shape.fullmatch(line)]
            assert not bad, f"{len(bad)} lines mangled or missing, first: {bad[0]!r}"
            assert len(set(got)) == clients * lines, "duplicate lines"
            server.stop(expect_served=clients)

    def ipv6(transport):
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                probe.bind(("::1", 0))
        except OSError:
            print("  (no IPv6 loopback here: skipped)")
            return
        with running(args.serve, "upper", "--transport", transport, "--bind", "[::1]:0") as server:
            assert server.address_text.startswith("[::1]:"), server.address_text
            if transport == "tcp":
                with stream_client(server.address) as sock:
                    sock.sendall(b"hello\n")
                    assert recv_exactly(sock, 6) == b"HELLO\n"
                    sock.shutdown(socket.SHUT_WR)
                    assert recv_all(sock) == b""
            else:
                with datagram_client(server.address) as sock:
                    sock.sendto(b"hello\n", server.address)
                    assert sock.recvfrom(100)[0] == b"HELLO\n"
            server.stop(expect_served=1)

    cases = [("SIGINT stops cleanly", sigint)]
    for model in ("sync", "threading", "forking", "reactor", "pool"):
        cases.append((f"SIGTERM with a client connected, {model}",
                      lambda m=model: stop_with_client_connected(m)))
    for model in ("sync", "threading", "forking", "reactor", "pool"):
        cases.append((f"--idle-timeout, {model}", lambda m=model: idle_timeout(m)))
    for model in ("threading", "forking", "reactor", "pool"):
        cases.append((f"--max-connections 1, {model}", lambda m=model: max_connections(m)))
    for model in ("threading", "forking", "pool"):
        cases.append((f"print from many clients at once, {model}",
                      lambda m=model: print_lines_stay_whole(m)))
    cases += [("IPv6 over TCP", lambda: ipv6("tcp")), ("IPv6 over UDP", lambda: ipv6("udp"))]
    run_cases(cases)


if __name__ == "__main__":
    main()
