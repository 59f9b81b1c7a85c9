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
    mem_servers = [s for s in servers if s.fits(scenarios.IDLE_MEMORY_CONNS)] \
        if wanted("memory") else []

    print(f"bench: {len(plan)} runs ({settings.rounds} rounds of {settings.seconds:g} s after "
          f"{settings.warmup:g} s warm-up) and {len(mem_servers)} memory probes; {cpus.note}",
          file=sys.stderr, flush=True)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    progress = Progress(len(plan) + len(mem_servers))
    runs = []
    for rnd, sc, s in plan:
        r = measure.measure(args.build, s, sc, settings, cpus, logs)
        r["round"] = rnd
        runs.append(r)
        progress.step(f"round {rnd + 1} ({sc.key}) {sc.title:<24} {s.name:<16} {brief(r)}")
    memory = []
    for s in mem_servers:
        m = measure.idle_memory(args.build, s, scenarios.IDLE_MEMORY_CONNS, cpus, logs)
        memory.append(m)
        text = (f"{m['bytes_per_conn']:.0f} bytes/conn" if m["status"] == "ok"
                else f"FAILED: {m.get('problem')}")
        progress.step(f"memory {s.name:<16} {text}")

    rows = summary.summarise(runs)
    all_names = [s.name for s in servers]
    data = {
        "started": started,
        "machine": machine.describe(),
        "settings": dataclasses.asdict(settings),
        "notes": [cpus.note,
                  f"{settings.rounds} rounds, each visiting every server in a shuffled order; "
                  f"{settings.warmup:g} s warm-up then a {settings.seconds:g} s window per run; "
                  "a fresh server process per run"],
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
                                                  if wanted(k)]),
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
    bad += [m for m in memory if m["status"] != "ok"]
    for r in bad:
        print(f"bench: {r['server']} {r.get('scenario', 'memory')}: {r['status']}: "
              f"{r.get('problem', '')}", file=sys.stderr)
    print(f"bench: results in {args.out}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
