# SPDX-License-Identifier: MIT
"""The servers under test: how to start each one, and how to find and stop it."""

import dataclasses
import os
import re
import resource
import signal
import subprocess
import time

# The hand-written select reference uses a plain fd_set, which cannot hold a descriptor
# >= FD_SETSIZE, so scenarios above ~1,000 descriptors do not apply to it. Our select
# backend sizes its own sets and takes any descriptor: it runs everywhere, which is how
# "select at scale" gets measured.
FD_SETSIZE = 1024

# reactor-serve's --max-children takes 1 to 4,096: a forking server serves at most this many
# clients at once, whatever count is asked for.
MAX_CHILDREN = 4096
# And --max-threads takes 1 to 16,384 handler threads (the threading model; 1,024 if not
# given, which the ladder keeps below that count so that its figures stay comparable).
MAX_THREADS = 16384


@dataclasses.dataclass(frozen=True)
class Server:
    name: str          # short, unique: "ours-epoll", "libuv", "ref-epoll", "ladder-sync"
    kind: str          # "ours", "peer" or "ref"
    argv: tuple        # the command, with {bind} where the address goes
    max_fds: int = 0   # 0: no limit of its own; otherwise the descriptors it can serve
    reference: str = ""  # for ours-*: the server its target ratio is taken against
    target: float = 0.0  # the ratio of CPU per message to `reference` it must stay under

    def fits(self, descriptors):
        """Whether this server can hold `descriptors` client connections at once."""
        return self.max_fds == 0 or descriptors + 16 <= self.max_fds


def catalogue(build):
    """Our echo server per backend, the peers, the references. `build` is the build dir."""
    serve = os.path.join(build, "tools/serve/reactor-serve")
    peer = lambda name: os.path.join(build, "bench/peers", name)
    ours = lambda backend, ref, target: Server(
        f"ours-{backend}", "ours",
        (serve, "echo", "--bind", "{bind}", "--model", "reactor", "--backend", backend),
        0, ref, target)
    servers = [
        ours("epoll", "ref-epoll", 1.05),
        ours("uv", "libuv", 1.05),
        ours("poll", "ref-poll", 1.10),
        ours("select", "ref-select", 1.10),
        Server("libuv", "peer", (peer("peer-uv"), "{bind}")),
        Server("libevent", "peer", (peer("peer-libevent"), "{bind}")),
        Server("libev", "peer", (peer("peer-libev"), "{bind}")),
        Server("asio", "peer", (peer("peer-asio"), "{bind}")),
        Server("ref-epoll", "ref", (peer("peer-epoll"), "{bind}")),
        Server("ref-poll", "ref", (peer("peer-poll"), "{bind}")),
        Server("ref-select", "ref", (peer("peer-select"), "{bind}"), FD_SETSIZE),
    ]
    return [s for s in servers if os.access(s.argv[0], os.X_OK)]


def ladder(build, connections):
    """reactor-serve's echo under each concurrency model, epoll where a loop is used.

    Limits are lifted to the connection count so that each model shows its own behaviour,
    not a cap (threading gets --max-threads, forking --max-children, up to what
    reactor-serve takes). The pool runs two loops, as many as this machine has cores; like
    every server here they share the one CPU the server is pinned to, so the pool shows
    what its extra loop costs, not what a second core would give."""
    serve = os.path.join(build, "tools/serve/reactor-serve")
    base = (serve, "echo", "--bind", "{bind}", "--backend", "epoll", "--model")
    return [
        Server("sync", "ours", base + ("sync",)),
        Server("threading", "ours", base + ("threading", "--max-threads",
                                            str(min(max(connections + 8, 1024), MAX_THREADS)))),
        Server("forking", "ours", base + ("forking", "--max-children",
                                          str(min(connections + 8, MAX_CHILDREN)))),
        Server("reactor", "ours", base + ("reactor",)),
        Server("pool", "ours", base + ("pool", "--threads", "2")),
    ]


# Why the memory table has no figure for the sync model.
SYNC_UNMEASURED = ("not measured: it serves one client at a time; the others wait in the "
                   "kernel's listen backlog and cost the server nothing")


def memory_models(build, connections):
    """The ladder's threading, forking and pool servers, as rows of the memory table: named
    ours-<model>, kind "model". sync is left out (SYNC_UNMEASURED); the reactor model is
    ours-<backend>."""
    return [dataclasses.replace(s, name=f"ours-{s.name}", kind="model")
            for s in ladder(build, connections) if s.name in ("threading", "forking", "pool")]


def model_and_backend(server):
    """(model, backend) of a server: ours read from its argv; the peers and references are
    single-threaded loops, the peers on their library's default backend (epoll on Linux),
    a reference on the one in its name."""
    argv = list(server.argv)
    if server.kind == "peer":
        return "reactor", "epoll"
    if server.kind == "ref":
        return "reactor", server.name.removeprefix("ref-")
    if server.kind not in ("ours", "model"):
        return "", ""
    flag = lambda name, default: argv[argv.index(name) + 1] if name in argv else default
    return flag("--model", "reactor"), flag("--backend", "auto")


def raise_fd_limit():
    """Lifts the soft descriptor limit to the hard one (called in each child before exec)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(argv, cpu):
    """argv run on one CPU through taskset, or unpinned when there is no CPU to spare."""
    return ("taskset", "-c", str(cpu)) + tuple(argv) if cpu is not None else tuple(argv)


class Running:
    """A started server: its pid and address. Stops it (SIGTERM, then SIGKILL) on exit."""

    LISTENING = re.compile(r"listening on (\S+)")

    def __init__(self, server, cpu, log_path, timeout=10.0):
        self.server = server
        argv = [a.replace("{bind}", "127.0.0.1:0") for a in server.argv]
        self._log = open(log_path, "w+")
        self.proc = subprocess.Popen(pinned(argv, cpu), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=raise_fd_limit)
        self.address = self._wait_for_address(timeout)

    def _wait_for_address(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._log.seek(0)
            found = self.LISTENING.search(self._log.read())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        self._log.seek(0)
        raise RuntimeError(f"{self.server.name} did not start: {self._log.read()[-500:]!r}")

    @property
    def pid(self):
        return self.proc.pid  # taskset execs the server in place: the same pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
