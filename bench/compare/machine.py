# SPDX-License-Identifier: MIT
"""What the numbers were measured on: CPU, kernel, compiler and package versions."""

import os
import platform
import subprocess

PACKAGES = ["libuv1-dev", "libevent-dev", "libev-dev", "libasio-dev", "g++", "cmake"]


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def describe():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    packages = {}
    for p in PACKAGES:
        version = _run(["dpkg-query", "-W", "-f=${Version}", p])
        packages[p] = version or "not installed"
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "compiler": _run(["c++", "--version"]).splitlines()[0:1] or [""],
        "packages": packages,
        "commit": _run(["git", "rev-parse", "--short", "HEAD"]),
    }


def one_line(m):
    return (f"{m['cpu']} ({m['cpus']} CPUs), Linux {m['kernel']}, {m['os']}, "
            f"{m['compiler'][0]}; libuv {m['packages']['libuv1-dev']}, "
            f"libevent {m['packages']['libevent-dev']}, libev {m['packages']['libev-dev']}, "
            f"asio {m['packages']['libasio-dev']}; commit {m['commit']}")
