# SPDX-License-Identifier: MIT
"""python3 -m bench.compare: runs the comparison and writes the report. See scripts/bench."""

import argparse
import dataclasses
import datetime
import os
import random
import sys
import time

from . import machine, measure, output, plots, scenarios, servers as srv, summary


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench.compare", description=__doc__)
    p.add_argument("--build", default="build/release", help="the build directory")
    p.add_argument("--out", required=True, help="where results go (created)")
    p.add_argument("--full", action="store_true",
                   help="5 rounds of 3 s after 1 s of warm-up, and 5,000 in the ladder")
    p.add_argument("--rounds", type=int, help="rounds (default 3, --full 5)")
    p.add_argument("--seconds", type=float, help="measured window per run")
    p.add_argument("--warmup", type=float, help="unmeasured traffic before each window")
    p.add_argument("--only", default="",
                   help="comma-separated parts: scenario keys a-f (e includes e5k), ladder, "
                        "memory")
    p.add_argument("--servers", default="",
                   help="comma-separated server names (default: all that were built)")
    return p.parse_args(argv)


class Progress:
    """One line per measurement on stderr, with an estimate of the time left."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def step(self, text):
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        print(f"bench: [{self.done:3}/{self.total}] {text}  (~{left / 60:.1f} min left)",
              file=sys.stderr, flush=True)


def brief(r):
    if r["status"] == "failed":
        return f"FAILED: {r.get('problem', '')}"
    text = (f"{summary.rate(r) or 0:>9,.0f}/s  cpu {summary.cpu_per_op(r) or 0:6.2f} µs"
            f"  p99 {r.get('latency_us', {}).get('p99', 0):7.0f} µs")
    if r["status"] == "errors":
        text += f"  {r.get('errors', 0)} errors"
    return text


def _attempt(r):
    """What is kept of an attempt that a retry replaced."""
    return {k: r.get(k) for k in ("status", "server_cpu_util", "client_cpu_util",
                                  "messages_per_s", "connects_per_s", "server_cpu_us_per_msg")
            if r.get(k) is not None}


def retry_starved(build, plan, runs, settings, cpus, logs, progress):
    """Measures again, after all rounds, the runs whose CPUs the machine took (see
    summary.starved), at most summary.MAX_RETRIES times each and summary.RETRY_SHARE of
    the runs in all, the most starved first; a run keeps its busiest attempt. runs[i] is
    plan[i]'s result. Returns the counts for the report."""
    attempts = 0
    budget = int(len(runs) * summary.RETRY_SHARE)
    for n in range(1, summary.MAX_RETRIES + 1):
        todo = [i for i in summary.starved(runs) if runs[i].get("retries", 0) == n - 1]
        todo = todo[:budget - attempts]
        if not todo:
            break
        progress.total += len(todo)
        for i in todo:
            rnd, sc, s = plan[i]
            old = runs[i]
            new = measure.measure(build, s, sc, settings, cpus, logs)
            new["round"] = rnd
            attempts += 1
            keep, drop = (new, old) if (summary.usable(new) and (summary.busy(new) or 0)
                                        > (summary.busy(old) or 0)) else (old, new)
            keep = dict(keep, retries=n,
                        discarded=old.get("discarded", []) + [_attempt(drop)])
            runs[i] = keep
            progress.step(f"retry {n} round {rnd + 1} ({sc.key}) {s.name:<16} busy "
                          f"{summary.busy(old) or 0:.2f} -> {summary.busy(new) or 0:.2f}  "
                          f"{brief(new)}")
    return {"runs": sum(1 for r in runs if r.get("retries")), "attempts": attempts,
            "still_starved": len(summary.starved(runs)), "of": len(runs),
            "max_retries": summary.MAX_RETRIES, "budget": budget,
            "criterion": f"each process used under {summary.BUSY_ENOUGH:g} of a CPU and both, "
                         f"added, under {summary.STARVED_SHARE:g} of what the busiest run of "
                         "the same server and scenario used"}


def memory_plan(build, servers, full):
    """([(server, MemoryProbe)], [row of the memory table that is not measured]): ours per
    backend (the reactor model), the other models at their counts, then the peers and
    references; the rows not measured say why (sync, and servers that cannot hold 10,000)."""
    conns = scenarios.IDLE_MEMORY_CONNS
    plan = [(s, scenarios.MemoryProbe()) for s in servers if s.kind == "ours" and s.fits(conns)]
    for model, probe in scenarios.memory_models(full):
        plan += [(s, probe) for s in srv.memory_models(build, probe.conns)
                 if s.name == f"ours-{model}"]
    plan += [(s, scenarios.MemoryProbe()) for s in servers if s.kind != "ours" and s.fits(conns)]
    skipped = [{"server": "ours-sync", "kind": "model", "model": "sync", "backend": "epoll",
                "conns": 0, "status": "skipped", "problem": srv.SYNC_UNMEASURED}]
    for s in servers:
        if not s.fits(conns):
            model, backend = srv.model_and_backend(s)
            skipped.append({"server": s.name, "kind": s.kind, "model": model,
                            "backend": backend, "conns": conns, "status": "skipped",
                            "problem": f"holds at most {s.max_fds - 16:,} clients (a plain "
                                       "fd_set: FD_SETSIZE)"})
    return plan, skipped


def main(argv):
    args = parse_args(argv)
    settings = scenarios.Settings.complete() if args.full else scenarios.Settings.quick()
    settings = dataclasses.replace(
        settings, **{k: v for k, v in (("rounds", args.rounds), ("seconds", args.seconds),
                                       ("warmup", args.warmup)) if v is not None})
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    wanted = lambda part: not only or part in only

    servers = srv.catalogue(args.build)
    if args.servers:
        names = {x.strip() for x in args.servers.split(",")}
        servers = [s for s in servers if s.name in names]
    chosen = [sc for sc in scenarios.scenarios(settings.full) if sc.chosen_by(wanted)]
    ladder_sc = scenarios.ladder_scenarios(settings.full) if wanted("ladder") else []
    ladder_servers = {sc.key: [dataclasses.replace(s, name=f"ladder-{s.name}")
                               for s in srv.ladder(args.build, sc.conns)] for sc in ladder_sc}

    cpus = measure.Cpus()
    os.makedirs(args.out, exist_ok=True)
    logs = os.path.join(args.out, "logs")
    os.makedirs(logs, exist_ok=True)

    plan = []  # (round, scenario, server): every round visits every cell, in a fresh order
    for rnd in range(settings.rounds):
        for i, sc in enumerate(chosen + ladder_sc):
            group = ladder_servers.get(sc.key) or [s for s in servers if s.fits(sc.descriptors)]
            group = list(group)
            random.Random(rnd * 1000 + i).shuffle(group)
            plan += [(rnd, sc, s) for s in group]
    mem_plan, mem_skipped = memory_plan(args.build, servers, settings.full) \
        if wanted("memory") else ([], [])
    if args.servers:
        mem_plan = [(s, p) for s, p in mem_plan if s.name in names]
        mem_skipped = [m for m in mem_skipped if m["server"] in names]

    print(f"bench: {len(plan)} runs ({settings.rounds} rounds of {settings.seconds:g} s after "
          f"{settings.warmup:g} s warm-up) and {len(mem_plan)} memory probes; {cpus.note}",
          file=sys.stderr, flush=True)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    progress = Progress(len(plan) + len(mem_plan))
    runs = []
    for rnd, sc, s in plan:
        r = measure.measure(args.build, s, sc, settings, cpus, logs)
        r["round"] = rnd
        runs.append(r)
        progress.step(f"round {rnd + 1} ({sc.key}) {sc.title:<24} {s.name:<16} {brief(r)}")
    retried = retry_starved(args.build, plan, runs, settings, cpus, logs, progress)
    memory = []
    for s, probe in mem_plan:
        m = measure.idle_memory(args.build, s, probe, cpus, logs)
        memory.append(m)
        text = (f"{m['bytes_per_conn']:,.0f} bytes/conn" if m["status"] == "ok"
                else f"FAILED: {m.get('problem')}")
        progress.step(f"memory {s.name:<16} {probe.conns:>6,} {text}")

    memory += mem_skipped
    rows = summary.summarise(runs)
    all_names = [s.name for s in servers]
    data = {
        "started": started,
        "machine": machine.describe(),
        "settings": dataclasses.asdict(settings),
        "notes": [cpus.note,
                  f"{settings.rounds} rounds, each visiting every server in a shuffled order; "
                  f"{settings.warmup:g} s warm-up then a {settings.seconds:g} s window per run; "
                  "a fresh server process per run",
                  f"{retried['runs']} of {retried['of']} runs retried ({retried['attempts']} "
                  f"attempts, at most {retried['max_retries']} per run and "
                  f"{retried['budget']} in all; "
                  f"{retried['still_starved']} still starved): a run is retried when "
                  f"{retried['criterion']}"],
        "retried": retried,
        "order": all_names + [f"ladder-{m}" for m in ("sync", "threading", "forking",
                                                      "reactor", "pool")],
        "scenarios": [dict(dataclasses.asdict(sc), skipped=[s.name for s in servers
                                                           if not s.fits(sc.descriptors)])
                      for sc in chosen],
        "ladder": [dataclasses.asdict(sc) for sc in ladder_sc],
        "ladder_models": ["sync", "threading", "forking", "reactor", "pool"],
        "memory": memory,
        "summary": rows,
        "targets": summary.targets(runs, servers, [k for k in scenarios.TARGET_SCENARIOS
                                                  if wanted(k)])
        + summary.memory_targets(memory, servers),
        "runs": runs,
    }
    data["machine_line"] = machine.one_line(data["machine"])
    # Written before the plots too, so the figures survive whatever gnuplot does.
    output.write_json(os.path.join(args.out, "results.json"), data)
    output.write_csv(os.path.join(args.out, "results.csv"), rows)
    svgs, unplotted = plots.draw_all(args.out, data)
    data["plots"] = [os.path.basename(p) for p in svgs]
    data["plots_failed"] = [{"plot": name, "problem": why} for name, why in unplotted]
    data["notes"].append("plots: " + (", ".join(data["plots"]) or "none") + "".join(
        f"; {name} not drawn: {why}" for name, why in unplotted))
    for name, why in unplotted:
        print(f"bench: plot {name} not drawn: {why}", file=sys.stderr)
    output.write_json(os.path.join(args.out, "results.json"), data)
    report = output.markdown(data)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    sys.stdout.write(report)

    bad = [r for r in runs if r["status"] != "ok" and not r["server"].startswith("ladder-")]
    bad += [r for r in runs if r["status"] == "failed" and r["server"].startswith("ladder-")]
    bad += [m for m in memory if m["status"] == "failed"]
    for r in bad:
        print(f"bench: {r['server']} {r.get('scenario', 'memory')}: {r['status']}: "
              f"{r.get('problem', '')}", file=sys.stderr)
    print(f"bench: results in {args.out}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
