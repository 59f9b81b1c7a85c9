#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints Markdown tables from reactor_bench's Google Benchmark JSON files.

    bench/micro/report.py RESULTS_DIR [--note TEXT]...

RESULTS_DIR holds dispatch.json, post.json and timers.json (any may be missing). Each
figure is the median over repetitions of the benchmark's own per-unit counter
(ns_per_event, ns_per_task, ns_per_op); "spread" is (max - min) / median over those
repetitions, a rough noise gauge. Standard library only.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

TARGET = 0.10  # the epoll backend should be within 10% of raw epoll
# Rows in this order whatever the order in the file (random interleaving shuffles it).
BACKEND_ORDER = ["raw_epoll", "epoll", "uv", "poll", "select"]
TIMER_ORDER = ["reactor/after", "reactor/cancel", "reactor/fire", "timer_heap/add",
               "timer_heap/cancel", "timer_heap/pop_due"]


def ordered(names, preferred):
    """names sorted by their place in `preferred` (by prefix), the rest after, by name."""
    def key(name):
        for i, p in enumerate(preferred):
            if name == p or name.startswith(p + "/"):
                return (i, name)
        return (len(preferred), name)
    return sorted(names, key=key)


class Series:
    """All repetitions of one benchmark."""

    def __init__(self, name):
        self.name = name
        self.values = {}  # counter -> [value per repetition]
        self.medians = {}  # counter -> median reported by Google Benchmark
        self.errors = []
        self.label = ""

    def add(self, entry):
        if entry.get("error_occurred"):
            self.errors.append(entry.get("error_message", "error"))
            return
        if entry.get("label"):
            self.label = entry["label"]
        numbers = {k: v for k, v in entry.items() if isinstance(v, (int, float))}
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                self.medians.update(numbers)
            return
        for key, value in numbers.items():
            self.values.setdefault(key, []).append(value)

    def median(self, counter):
        if counter in self.values:
            return statistics.median(self.values[counter])
        return self.medians.get(counter)

    def spread(self, counter):
        vals = self.values.get(counter, [])
        if len(vals) < 2:
            return None
        mid = statistics.median(vals)
        return (max(vals) - min(vals)) / mid if mid else None

    def skipped(self):
        return self.median("real_time") is None and bool(self.errors)


def load(path):
    """run name (without /real_time) -> Series, in file order; plus the context."""
    series = {}
    if not path.is_file() or path.stat().st_size == 0:
        return series, {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        print(f"> {path.name}: unreadable JSON ({e})\n")
        return series, {}
    for entry in data.get("benchmarks", []):
        name = entry.get("run_name", entry.get("name", ""))
        name = re.sub(r"/real_time$", "", name)
        series.setdefault(name, Series(name)).add(entry)
    return series, data.get("context", {})


def ns(value):
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def pct(value):
    return "—" if value is None else f"{100 * value:.0f}%"


def ratio(value, reference):
    if value is None or not reference:
        return "—"
    r = value / reference
    change = round(100 * (r - 1)) or 0  # no "-0%"
    return f"{r:.2f}× ({change:+d}%)"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def dispatch_section(series):
    pattern = re.compile(r"BM_Dispatch/([^/]+)/P:(\d+)/A:(\d+)$")
    cases = {}  # (P, A) -> {backend: Series}
    backends = []
    for name, s in series.items():
        m = pattern.match(name)
        if not m:
            continue
        backend, p, a = m.group(1), int(m.group(2)), int(m.group(3))
        cases.setdefault((p, a), {})[backend] = s
        if backend not in backends:
            backends.append(backend)
    if not cases:
        return ""
    order = ordered(backends, BACKEND_ORDER)
    rows, notes, skips, verdicts = [], [], {}, []
    for (p, a) in sorted(cases):
        by = cases[(p, a)]
        raw = by.get("raw_epoll")
        raw_wall = raw.median("ns_per_event") if raw else None
        raw_cpu = raw.median("cpu_ns_per_event") if raw else None
        if all(s.skipped() for s in by.values()):  # one row, not one per backend
            skips.setdefault(next(iter(by.values())).errors[0], []).append(f"P={p} A={a}")
            rows.append([p, a, "all", "skipped", "", "", "", "", ""])
            continue
        for backend in order:
            s = by.get(backend)
            if s is None:
                continue
            shown = backend
            if s.label:
                shown += "*"
                notes.append(f"\\* {backend} at P={p}: {s.label}")
            if s.skipped():
                skips.setdefault(s.errors[0], []).append(f"{backend} P={p} A={a}")
                rows.append([p, a, shown, "skipped", "", "", "", "", ""])
                continue
            wall = s.median("ns_per_event")
            cpu = s.median("cpu_ns_per_event")
            rows.append([p, a, shown, ns(wall),
                         "1 (reference)" if backend == "raw_epoll" else ratio(wall, raw_wall),
                         ns(cpu),
                         "1 (reference)" if backend == "raw_epoll" else ratio(cpu, raw_cpu),
                         pct(s.spread("ns_per_event")), ns(s.median("events_per_poll"))])
            if backend == "epoll" and raw_wall and wall and raw_cpu and cpu:
                verdicts.append((p, a, wall / raw_wall - 1, cpu / raw_cpu - 1))
    out = ["## Dispatch: ns per event (socketpair ring, libevent test/bench.c workload)", "",
           "P = socketpairs, A = bytes in flight. Median over repetitions; lower is better. "
           "Wall = elapsed time; CPU = the loop thread's CPU time (the loop never sleeps, so "
           "CPU time is the same work minus what other processes took on a shared machine).",
           "",
           table(["P", "A", "backend", "wall ns/event", "vs raw_epoll", "CPU ns/event",
                  "vs raw_epoll (CPU)", "spread", "events/poll"], rows)]
    if notes:
        out += [""] + [f"- {n}" for n in dict.fromkeys(notes)]
    for message, which in skips.items():
        out.append(f"- skipped ({', '.join(which)}): {message}")
    if verdicts:
        worst_wall = max(verdicts, key=lambda v: v[2])
        worst_cpu = max(verdicts, key=lambda v: v[3])
        ok_wall = all(v[2] <= TARGET for v in verdicts)
        ok_cpu = all(v[3] <= TARGET for v in verdicts)
        out += ["", f"**Target: epoll within {100 * TARGET:.0f}% of raw_epoll at every measured "
                f"P/A** — wall: {'met' if ok_wall else 'NOT met'} (worst {100 * worst_wall[2]:+.1f}% "
                f"at P={worst_wall[0]} A={worst_wall[1]}); CPU: {'met' if ok_cpu else 'NOT met'} "
                f"(worst {100 * worst_cpu[3]:+.1f}% at P={worst_cpu[0]} A={worst_cpu[1]})."]
        missing = sorted(k for k in cases if "epoll" in cases[k]
                         and k not in {(v[0], v[1]) for v in verdicts})
        if missing:
            out.append("  Not measured: " + ", ".join(f"P={p} A={a}" for p, a in missing) + ".")
    return "\n".join(out)


def post_section(series):
    pattern = re.compile(r"BM_Post/([^/]+)/([^/]+)$")
    cells, kinds, backends = {}, [], []
    for name, s in series.items():
        m = pattern.match(name)
        if not m:
            continue
        kind, backend = m.groups()
        cells[(backend, kind)] = s
        kinds += [kind] if kind not in kinds else []
        backends += [backend] if backend not in backends else []
    if not cells:
        return ""
    rows = []
    for backend in ordered(backends, BACKEND_ORDER):
        row = [backend]
        for kind in kinds:
            s = cells.get((backend, kind))
            if s is None:
                row += ["—", ""]
            elif s.skipped():
                row += ["skipped: " + s.errors[0], ""]
            else:
                row += [ns(s.median("ns_per_task")), pct(s.spread("ns_per_task"))]
        rows.append(row)
    header = ["backend"]
    for kind in kinds:
        header += [f"{kind} ns/task", "spread"]
    return "\n".join([
        "## Post: ns per task (Reactor::post to the task having run on the loop thread)", "",
        "cross_thread: a producer thread posts 10,000 tasks while the loop runs them; "
        "loop_thread: the loop posts 10,000 to itself, then runs them. Median; wall time.", "",
        table(header, rows)])


def timers_section(series):
    rows = []
    names = [n[len("BM_Timers/"):] for n in series if n.startswith("BM_Timers/")]
    for shown in ordered(names, TIMER_ORDER):
        s = series["BM_Timers/" + shown]
        if s.skipped():
            rows.append([shown, "skipped: " + s.errors[0], ""])
        else:
            rows.append([shown, ns(s.median("ns_per_op")), pct(s.spread("ns_per_op"))])
    if not rows:
        return ""
    return "\n".join([
        "## Timers: ns per operation, 10^6 timers", "",
        "reactor/*: Reactor::after (deadlines 1-2 h away), Timer::cancel (random order), firing "
        "(deadlines 0-1 ms, all due) in run_once, on the epoll loop. timer_heap/*: the bare "
        "reactor::detail::TimerHeap. Median; wall time of the timed phase only.", "",
        table(["benchmark", "ns/op", "spread"], rows)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()

    sections, context = [], {}
    for file, render in (("dispatch.json", dispatch_section), ("post.json", post_section),
                         ("timers.json", timers_section)):
        series, ctx = load(args.results / file)
        context = context or ctx
        text = render(series)
        if text:
            sections.append(text)

    print(f"# reactor benchmarks: {args.results.name}\n")
    facts = []
    if context:
        facts.append(f"{context.get('num_cpus', '?')} CPUs at "
                     f"{context.get('mhz_per_cpu', '?')} MHz, load average "
                     f"{', '.join(f'{x:.2f}' for x in context.get('load_avg', []))} at start, "
                     f"RLIMIT_NOFILE {context.get('rlimit_nofile', '?')}")
        if context.get("rlimit_note"):
            facts.append(context["rlimit_note"])
    facts += args.note
    for fact in facts:
        print(f"- {fact}")
    print()
    if not sections:
        print("No results found in", args.results)
        return 1
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
