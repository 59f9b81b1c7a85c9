# SPDX-License-Identifier: MIT
"""From raw measurements to medians, ranges and ratios (no I/O here)."""

import statistics

REFERENCE = "ref-epoll"


def rate(result):
    """Messages per second, or connections per second in connect mode."""
    if result.get("mode") == "connect":
        return result.get("connects_per_s")
    return result.get("messages_per_s")


def cpu_per_op(result):
    """Server CPU microseconds per message (per connection in connect mode)."""
    cpu = result.get("server_cpu_us")
    ops = result.get("connects") if result.get("mode") == "connect" else result.get("messages")
    if cpu is None or not ops:
        return None
    return cpu / ops


def spread(values):
    """{"median", "min", "max", "n"} of the values that exist, or None if none do."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def usable(result):
    """A run that produced figures: "ok", or "errors" (some exchanges failed, which the
    row reports; in the ladder that is how the sync and forking models behave)."""
    return result.get("status") in ("ok", "errors")


# A run is retried when the machine took its CPUs (see starved()). The figures behind these,
# from quick runs on a 2-CPU machine shared with compilers: each process got 0.1-0.5 of a
# CPU; within one cell the busy share (both added) of the rounds differed by up to 2.5x,
# and in the cells where it fell under 3/4 of the best, that run was also the slow one
# (1.3-4x fewer messages/s). A process that keeps its CPU busy shows near 1.
BUSY_ENOUGH = 0.8    # a process at least this busy kept its CPU: the run is never retried
STARVED_SHARE = 0.75  # busy under this fraction of the cell's busiest run: the CPU was taken
MAX_RETRIES = 2       # attempts after the first, per run
# Retries in all, as a share of the runs: the most starved go first. When the load lasts
# longer than the rounds (a neighbour compiling for minutes), retries meet the same load
# and gain little; a quick run on such a machine retried a third of its runs twice, took
# 65% longer and left most of them as starved as before.
RETRY_SHARE = 0.2


def busy(result):
    """The server's and the load generator's CPU time over the window, added (2.0: both
    CPUs fully used), or None without the load generator's figure."""
    client = result.get("client_cpu_util")
    if client is None:
        return None
    return client + (result.get("server_cpu_util") or 0)


def starved(runs):
    """Indexes of the usable runs whose CPUs something else took, the most starved (the
    lowest share of their cell's best) first: neither process kept its
    CPU busy (both under BUSY_ENOUGH), and together they were busy less than STARVED_SHARE
    of the busiest run of the same (server, scenario). The same workload keeps the same
    share, so a lower one is the machine's doing; comparing within the cell keeps a
    workload that waits by nature (one connection in ping-pong) from counting, and a
    machine loaded evenly throughout from retrying every run."""
    best = {}
    for r in runs:
        b = busy(r) if usable(r) else None
        if b is not None:
            key = (r["server"], r["scenario"])
            best[key] = max(best.get(key, 0.0), b)
    out = []
    for i, r in enumerate(runs):
        b = busy(r) if usable(r) else None
        if b is None:
            continue
        if max(r.get("server_cpu_util") or 0, r["client_cpu_util"]) >= BUSY_ENOUGH:
            continue
        share = b / best[(r["server"], r["scenario"])]
        if share < STARVED_SHARE:
            out.append((share, i))
    return [i for _, i in sorted(out)]


def by_cell(runs):
    """{(server, scenario): [result per round]} in round order."""
    cells = {}
    for r in runs:
        cells.setdefault((r["server"], r["scenario"]), []).append(r)
    return cells


def ratio_per_round(cells, server, scenario, reference, other_scenario=None):
    """CPU per op of `server` over that of `reference` (same scenario, or `other_scenario`
    for the reference when given), paired round by round; the spread of those ratios."""
    mine = {r["round"]: r for r in cells.get((server, scenario), []) if usable(r)}
    theirs = {r["round"]: r for r in cells.get((reference, other_scenario or scenario), [])
              if usable(r)}
    ratios = []
    for rnd in sorted(mine.keys() & theirs.keys()):
        a, b = cpu_per_op(mine[rnd]), cpu_per_op(theirs[rnd])
        if a is not None and b:
            ratios.append(a / b)
    return spread(ratios)


def summarise(runs):
    """One row per (server, scenario): spreads of rate, latency, CPU and the ratio to the
    raw epoll reference, plus how many rounds failed and why."""
    cells = by_cell(runs)
    rows = []
    for (server, scenario), results in cells.items():
        ok = [r for r in results if usable(r)]
        bad = [r for r in results if r.get("status") != "ok"]
        rows.append({
            "server": server,
            "kind": results[0].get("kind"),
            "scenario": scenario,
            "rounds": len(results),
            "failed_rounds": len(bad),
            "problem": bad[0].get("problem", "") if bad else "",
            "errors": sum(r.get("errors", 0) for r in results),
            "rate": spread(rate(r) for r in ok),
            "p50_us": spread(r["latency_us"]["p50"] for r in ok if "latency_us" in r),
            "p90_us": spread(r["latency_us"]["p90"] for r in ok if "latency_us" in r),
            "p99_us": spread(r["latency_us"]["p99"] for r in ok if "latency_us" in r),
            "p999_us": spread(r["latency_us"]["p999"] for r in ok if "latency_us" in r),
            "cpu_us_per_op": spread(cpu_per_op(r) for r in ok),
            "server_cpu_util": spread(r.get("server_cpu_util") for r in ok),
            "ratio_to_ref_epoll": ratio_per_round(cells, server, scenario, REFERENCE),
            "retried": sum(1 for r in results if r.get("retries")),
        })
    return rows


def targets(runs, servers, target_scenarios):
    """Each target of issue 5 with its measured ratio spread and whether the median meets it."""
    cells = by_cell(runs)
    out = []
    for s in servers:
        if not s.reference:
            continue
        for sc in target_scenarios:
            got = ratio_per_round(cells, s.name, sc, s.reference)
            if got is None:
                continue
            out.append({"what": f"{s.name} / {s.reference}, ({sc}) CPU per message",
                        "limit": s.target, "ratio": got, "met": got["median"] <= s.target})
    idle = ratio_per_round(cells, "ours-epoll", "d", "ours-epoll", other_scenario="b")
    if idle is not None:
        out.append({"what": "ours-epoll (d) / ours-epoll (b), CPU per message",
                    "limit": 1.05, "ratio": idle, "met": idle["median"] <= 1.05})
    return out


# Issue 12's memory targets: (server, limit in bytes per idle connection) and (server,
# reference, limit on the ratio of their figures). A row is there when its servers are in
# the catalogue and were measured: ours-uring's once that backend exists.
MEMORY_LIMITS = (("ours-epoll", 256), ("ours-poll", 256), ("ours-uring", 128))
MEMORY_RATIOS = (("ours-uv", "libuv", 1.25),)


def memory_targets(memory, servers):
    """The memory targets, as rows like targets()'s: "value" is a spread of the one figure
    (bytes per connection, or a ratio when "unit" is "ratio")."""
    names = {s.name for s in servers}
    got = {m["server"]: m["bytes_per_conn"] for m in memory
           if m.get("status") == "ok" and m.get("kind") != "model"}
    one = lambda x: spread([x])
    out = []
    for name, limit in MEMORY_LIMITS:
        if name in names and name in got:
            out.append({"what": f"{name}, bytes per idle connection", "unit": "bytes",
                        "limit": limit, "ratio": one(got[name]), "met": got[name] <= limit})
    for name, ref, limit in MEMORY_RATIOS:
        if name in names and ref in names and name in got and got.get(ref):
            r = got[name] / got[ref]
            out.append({"what": f"{name} / {ref}, bytes per idle connection", "unit": "ratio",
                        "limit": limit, "ratio": one(r), "met": r <= limit})
    return out


# The memory table's and plot's groups, in order: ours per backend (the reactor model), our
# other concurrency models, the peer libraries, the hand-written references.
MEMORY_GROUPS = (("ours", "ours, reactor model"), ("model", "ours, other models"),
                 ("peer", "peer libraries"), ("ref", "references"))


def memory_rows(memory):
    """The memory rows grouped by kind (MEMORY_GROUPS' order), in probe order within one."""
    order = [k for k, _ in MEMORY_GROUPS]
    rank = lambda m: order.index(m["kind"]) if m.get("kind") in order else len(order)
    return sorted(memory, key=rank)
