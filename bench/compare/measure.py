# SPDX-License-Identifier: MIT
"""One measurement: a fresh server on one CPU, reactor-load on the other, one JSON result."""

import json
import os
import resource
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


def idle_memory(build, server, conns, cpus, log_dir):
    """Holds `conns` idle connections to a fresh `server` and reports its resident memory
    per connection: (peak VmRSS while they are open - VmRSS before) / conns, in bytes."""
    load_bin = os.path.join(build, "bench/load/reactor-load")
    log = os.path.join(log_dir, f"{server.name}.memory.log")
    out = {"server": server.name, "kind": server.kind, "conns": conns}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < conns + 64:
        out.update(status="failed", problem=f"descriptor hard limit {hard} < {conns + 64}")
        return out
    with srv.Running(server, cpus.server, log) as running:
        # One exchange first, so buffers every server allocates once are in the baseline.
        argv = [load_bin, "--connect", running.address, "--conns", "1", "--seconds", "0.2",
                "--warmup", "0"]
        subprocess.run(srv.pinned(argv, cpus.load), capture_output=True, timeout=30)
        before = running.rss_kib()
        argv = [load_bin, "--connect", running.address, "--conns", "1", "--idle", str(conns),
                "--seconds", "1", "--warmup", "0.5", "--connect-timeout", "30"]
        load = subprocess.Popen(srv.pinned(argv, cpus.load), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=srv.raise_fd_limit)
        peak = before or 0
        deadline = time.monotonic() + 60
        while load.poll() is None and time.monotonic() < deadline:
            peak = max(peak, running.rss_kib() or 0)
            time.sleep(0.05)
        if load.poll() is None:
            load.kill()
        stdout, stderr = load.communicate()
        lines = [l for l in stdout.splitlines() if l.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        if load.returncode != 0 or result.get("idle_open") != conns:
            out.update(status="failed",
                       problem=(stderr.strip().splitlines() or ["no result"])[-1])
            return out
    out.update(status="ok", rss_before_kib=before, rss_peak_kib=peak,
               bytes_per_conn=(peak - before) * 1024 / conns)
    return out
