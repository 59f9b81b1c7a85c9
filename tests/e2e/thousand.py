# SPDX-License-Identifier: MIT
"""The issue's "done when": reactor-serve serves 1,000 concurrent clients correctly.

One process, one selector, 1,000 non-blocking sockets over loopback: all connect first, then
each sends a unique line, and each must get exactly its own reply; no socket closes until
every reply is in, so the server holds all 1,000 at once. Then each half-closes and must see
the server close; the summary must count 1,000 requests.

    thousand.py --serve S --client C SERVICE --model M [--backend B]
"""

import errno
import resource
import selectors
import socket
import time

from e2e_support import parse_args, run_cases, running

CLIENTS = 1000
DEADLINE = 60.0  # seconds for the whole exchange


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        assert hard == resource.RLIM_INFINITY or hard >= needed, \
            f"RLIMIT_NOFILE hard limit {hard} is below the {needed} fds this test needs"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Clients:
    """The 1,000 sockets and the one selector that drives them."""

    def __init__(self, address, transform):
        self.address = address
        self.selector = selectors.DefaultSelector()
        self.socks = []
        self.sent = [f"client {i:04d} sends a line of its own\n".encode() for i in range(CLIENTS)]
        self.expected = [transform(line) for line in self.sent]
        self.got = [b""] * CLIENTS
        self.deadline = time.monotonic() + DEADLINE

    def close(self):
        for sock in self.socks:
            sock.close()
        self.selector.close()

    def wait(self, events, pending, handle, what):
        """Runs the selector until `pending` (a set of client numbers) is empty."""
        for i in pending:
            self.selector.register(self.socks[i], events, i)
        while pending:
            left = self.deadline - time.monotonic()
            assert left > 0, f"{len(pending)} clients still {what} after {DEADLINE} s"
            for key, _ in self.selector.select(timeout=min(left, 1.0)):
                if handle(key.data, key.fileobj):
                    self.selector.unregister(key.fileobj)
                    pending.discard(key.data)

    def connect_all(self):
        for _ in range(CLIENTS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(self.address)
            assert code in (0, errno.EINPROGRESS), f"connect: {errno.errorcode.get(code, code)}"
            self.socks.append(sock)

        def connected(i, sock):
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert code == 0, f"client {i}: connect failed: {errno.errorcode.get(code, code)}"
            return True

        self.wait(selectors.EVENT_WRITE, set(range(CLIENTS)), connected, "connecting")

    def exchange(self):
        for i, sock in enumerate(self.socks):
            assert sock.send(self.sent[i]) == len(self.sent[i]), f"client {i}: short send"

        def reply(i, sock):
            chunk = sock.recv(4096)
            assert chunk, f"client {i}: the server closed after {self.got[i]!r}"
            self.got[i] += chunk
            assert self.expected[i].startswith(self.got[i]), \
                f"client {i}: got {self.got[i]!r}, expected {self.expected[i]!r}"
            return self.got[i] == self.expected[i]

        self.wait(selectors.EVENT_READ, set(range(CLIENTS)), reply, "waiting for a reply")

    def hang_up(self):
        for sock in self.socks:
            sock.shutdown(socket.SHUT_WR)

        def closed(i, sock):
            chunk = sock.recv(4096)
            assert not chunk, f"client {i}: data after the reply: {chunk!r}"
            return True

        self.wait(selectors.EVENT_READ, set(range(CLIENTS)), closed, "waiting for the close")


def main():
    def extra(p):
        p.add_argument("service", choices=["echo", "upper"])
        p.add_argument("--model", required=True)
        p.add_argument("--backend")

    args = parse_args(extra)
    raise_fd_limit(CLIENTS + 256)
    flags = ["--bind", "127.0.0.1:0", "--model", args.model]
    if args.backend:
        flags += ["--backend", args.backend]
    transform = bytes.upper if args.service == "upper" else (lambda b: b)

    def thousand():
        with running(args.serve, args.service, *flags) as server:
            clients = Clients(server.address, transform)
            try:
                for phase in (clients.connect_all, clients.exchange, clients.hang_up):
                    start = time.monotonic()
                    phase()
                    print(f"  {phase.__name__}: {time.monotonic() - start:.2f} s", flush=True)
            finally:
                clients.close()
            server.stop(expect_served=CLIENTS)

    name = f"{CLIENTS} concurrent clients, {args.service}, model {args.model}"
    run_cases([(name + (f", backend {args.backend}" if args.backend else ""), thousand)])


if __name__ == "__main__":
    main()
