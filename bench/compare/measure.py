# SPDX-License-Identifier: MIT
"""One measurement: a fresh server on one CPU, reactor-load on the other, one JSON result."""

import json
import os
import resource
import signal
import subprocess
import time

from . import servers as srv


class Cpus:
    """The CPU the server runs on and the one the load generator runs on (None: unpinned)."""

    def __init__(self):
        allowed = sorted(os.sched_getaffinity(0))
        have_taskset = subprocess.run(["sh", "-c", "command -v taskset"],
                                      stdout=subprocess.DEVNULL).returncode == 0
        if have_taskset and len(allowed) >= 2:
            self.server, self.load = allowed[0], allowed[1]
            self.note = f"server on CPU {self.server}, reactor-load on CPU {self.load}"
        else:
            self.server = self.load = None
            self.note = "not pinned (needs taskset and two CPUs)"


def run_load(load_bin, address, scenario, settings, server_pid, cpu):
    """Runs reactor-load against `address`; returns its JSON (a dict) with "status" added:
    "ok", "errors" (the run finished but some exchanges failed) or "failed" (no result:
    a payload mismatch or a fatal error; "problem" says which)."""
    argv = [load_bin, "--connect", address, *scenario.load_args(),
            "--warmup", str(settings.warmup), "--seconds", str(settings.seconds),
            "--server-pid", str(server_pid), "--grace", "2", "--connect-timeout", "20"]
    limit = settings.warmup + settings.seconds + 60
    try:
        done = subprocess.run(srv.pinned(argv, cpu), capture_output=True, text=True,
                              timeout=limit, preexec_fn=srv.raise_fd_limit)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "problem": f"reactor-load took over {limit:.0f} s"}
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if not lines:
        problem = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "problem": problem}
    result = json.loads(lines[-1])
    result["status"] = "ok" if done.returncode == 0 else "errors"
    if done.returncode != 0:
        result["problem"] = (done.stderr.strip().splitlines() or [""])[-1]
    return result


def measure(build, server, scenario, settings, cpus, log_dir):
    """Starts `server`, drives it with `scenario`, stops it. Returns the result dict."""
    load_bin = os.path.join(build, "bench/load/reactor-load")
    log = os.path.join(log_dir, f"{server.name}.{scenario.key}.log")
    try:
        with srv.Running(server, cpus.server, log) as running:
            result = run_load(load_bin, running.address, scenario, settings, running.pid,
                              cpus.load)
            if running.proc.poll() is not None:
                result.update(status="failed",
                              problem=f"the server exited ({running.proc.returncode})")
    except RuntimeError as e:
        result = {"status": "failed", "problem": str(e)}
    result.update(server=server.name, kind=server.kind, scenario=scenario.key)
    return result


def _proc_field(path, field):
    """The first number after `field` (e.g. "VmRSS:") in a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def children(pid):
    """The pids of `pid`'s children (a forking server's: one per client)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def footprint(pid, how):
    """(KiB, units) of the server `pid`: with how == "rss" its VmRSS and its thread count;
    with "pss" its PSS plus its children's and its child count. (None, 0) if it is gone."""
    if how == "rss":
        return (_proc_field(f"/proc/{pid}/status", "VmRSS:"),
                _proc_field(f"/proc/{pid}/status", "Threads:") or 0)
    own = _proc_field(f"/proc/{pid}/smaps_rollup", "Pss:")
    if own is None:
        return None, 0
    kids = children(pid)
    # A child that exits between the listing and the read counts as nothing.
    return own + sum(_proc_field(f"/proc/{c}/smaps_rollup", "Pss:") or 0 for c in kids), \
        len(kids)


def _reap(pids, program, wait=5.0):
    """Waits for the server's children `pids` to end after the server did; kills those
    still there when `wait` runs out. Returns how many had to be killed. A pid counts only
    while it still runs `program` (the server's binary), so a reused pid is left alone."""
    name = os.path.basename(program).encode()

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                running = f.read().rsplit(")", 1)[1].split()[0] != "Z"
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return running and os.path.basename(f.read().split(b"\0")[0]) == name
        except (OSError, IndexError):
            return False
    deadline = time.monotonic() + wait
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return len(left)


def idle_memory(build, server, probe, cpus, log_dir):
    """Holds `probe.conns` idle connections to a fresh `server` and reports its memory per
    connection: (peak footprint while they are open - footprint before) / conns, in bytes,
    the footprint being probe.footprint ("rss" or "pss", see footprint()). The row fails
    when the server did not hold every client at once in a thread or child of its own (a
    blocking model; "held" is the most threads or children it had beyond its baseline)."""
    load_bin = os.path.join(build, "bench/load/reactor-load")
    conns = probe.conns
    log = os.path.join(log_dir, f"{server.name}.memory-{conns}.log")
    model, backend = srv.model_and_backend(server)
    out = {"server": server.name, "kind": server.kind, "model": model, "backend": backend,
           "conns": conns, "footprint": probe.footprint}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < conns + 64:
        out.update(status="failed", problem=f"descriptor hard limit {hard} < {conns + 64}")
        return out
    blocking = model in ("threading", "forking")
    with srv.Running(server, cpus.server, log) as running:
        out["pid"] = running.pid
        units_idle = footprint(running.pid, probe.footprint)[1]
        # One exchange first, so buffers every server allocates once are in the baseline.
        argv = [load_bin, "--connect", running.address, "--conns", "1", "--seconds", "0.2",
                "--warmup", "0"]
        subprocess.run(srv.pinned(argv, cpus.load), capture_output=True, timeout=30)
        # The exchange's thread or child must be gone from the baseline.
        settle = time.monotonic() + 5
        while footprint(running.pid, probe.footprint)[1] > units_idle \
                and time.monotonic() < settle:
            time.sleep(0.05)
        before, units_before = footprint(running.pid, probe.footprint)
        argv = [load_bin, "--connect", running.address, "--conns", "1", "--idle", str(conns),
                "--seconds", str(probe.hold), "--warmup", str(probe.warmup),
                "--connect-timeout", "30"]
        load = subprocess.Popen(srv.pinned(argv, cpus.load), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=srv.raise_fd_limit)
        peak, held, seen = before or 0, 0, set()
        deadline = time.monotonic() + 60 + probe.warmup + probe.hold
        while load.poll() is None and time.monotonic() < deadline:
            started = time.monotonic()
            kib, units = footprint(running.pid, probe.footprint)
            if probe.footprint == "pss":
                seen.update(children(running.pid))
            peak, held = max(peak, kib or 0), max(held, units - units_before)
            # Reading 5,000 children's smaps_rollup takes a while: sample no more than half
            # the time, so the probe leaves the server its CPU.
            time.sleep(max(0.05, time.monotonic() - started))
        if load.poll() is None:
            load.kill()
        stdout, stderr = load.communicate()
    out["leftover"] = _reap(seen, server.argv[0])
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if load.returncode != 0 or result.get("idle_open") != conns:
        out.update(status="failed", problem=(stderr.strip().splitlines() or ["no result"])[-1])
        return out
    if blocking:
        out["held"] = held
        if held < conns:
            out.update(status="failed", problem=f"at most {held:,} of {conns:,} clients "
                       f"were in a {'thread' if model == 'threading' else 'child'} of their own")
            return out
    out.update(status="ok", before_kib=before, peak_kib=peak,
               bytes_per_conn=(peak - before) * 1024 / conns)
    return out
