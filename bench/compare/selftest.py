#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests the comparison harness: its arithmetic on made-up runs, then one small real run.

    python3 bench/compare/selftest.py BUILD_DIR

BUILD_DIR holds tools/serve/reactor-serve, bench/load/reactor-load and
bench/peers/peer-epoll. Exits non-zero on the first failed check."""

import csv
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

from bench.compare import measure, output, plots, scenarios, servers, summary  # noqa: E402

failures = 0


def check(what, ok, detail=""):
    global failures
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""))
    failures += 0 if ok else 1


def fake(server, scenario, rnd, cpu_us, messages=1000, status="ok"):
    return {"server": server, "kind": "x", "scenario": scenario, "round": rnd,
            "status": status, "mode": "pingpong", "messages": messages,
            "messages_per_s": messages / 0.5, "server_cpu_us": cpu_us, "errors": 0,
            "latency_us": {"p50": 10, "p90": 20, "p99": 30, "p999": 40, "max": 50},
            "problem": "" if status == "ok" else "boom"}


def arithmetic():
    runs = [fake("ref-epoll", "b", 0, 1000), fake("ref-epoll", "b", 1, 2000),
            fake("ref-epoll", "b", 2, 1000),
            fake("ours-epoll", "b", 0, 1100), fake("ours-epoll", "b", 1, 2000),
            fake("ours-epoll", "b", 2, 5000, status="failed"),
            fake("ours-epoll", "d", 0, 1300), fake("ours-epoll", "d", 1, 2100),
            fake("ref-epoll", "d", 0, 1000), fake("ref-epoll", "d", 1, 2000)]
    rows = {(r["server"], r["scenario"]): r for r in summary.summarise(runs)}
    ours_b = rows[("ours-epoll", "b")]
    # Ratios pair rounds: 1.1 (round 0) and 1.0 (round 1); round 2 failed and is left out.
    check("ratio pairs rounds", abs(ours_b["ratio_to_ref_epoll"]["median"] - 1.05) < 1e-9,
          ours_b["ratio_to_ref_epoll"])
    check("failed round counted", ours_b["failed_rounds"] == 1 and ours_b["problem"] == "boom")
    check("cpu median over usable rounds",
          abs(ours_b["cpu_us_per_op"]["median"] - 1.55) < 1e-9, ours_b["cpu_us_per_op"])
    check("reference ratio is 1", rows[("ref-epoll", "b")]["ratio_to_ref_epoll"]["median"] == 1)
    epoll = servers.Server("ours-epoll", "ours", ("x",), 0, "ref-epoll", 1.05)
    got = {t["what"]: t for t in summary.targets(runs, [epoll], ["b", "d"])}
    check("target (b) met", got["ours-epoll / ref-epoll, (b) CPU per message"]["met"])
    d = got["ours-epoll / ref-epoll, (d) CPU per message"]
    check("target (d) missed", not d["met"] and abs(d["ratio"]["median"] - 1.175) < 1e-9, d)
    idle = got["ours-epoll (d) / ours-epoll (b), CPU per message"]
    # (d) over (b) for ours-epoll, rounds 0 and 1: 1300/1100 and 2100/2000.
    check("idle overhead ratio", abs(idle["ratio"]["median"] - (1300 / 1100 + 1.05) / 2) < 1e-9,
          idle)
    check("connect mode counts connects",
          summary.cpu_per_op({"mode": "connect", "connects": 4, "server_cpu_us": 10}) == 2.5)


def _svg_colour(hex_colour):
    """How gnuplot's SVG terminal writes a colour: rgb(%3d, %3d, %3d)."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r:3d}, {g:3d}, {b:3d})"


def _drawn_series(svg_path, names, keyed=True):
    """The names whose colour shows in the SVG in at least one bar, line or point: more
    than once when the plot has a key, since a series with no valid data leaves its key
    sample behind."""
    text = open(svg_path).read()
    c = plots.colours(names)
    return [n for n in names if text.count(_svg_colour(c[n])) >= (2 if keyed else 1)]


def fake_memory(names):
    """Memory rows for the servers `names` (kinds from their names), the other models at
    their counts, and two rows without a figure."""
    kind = lambda n: "ours" if n.startswith("ours-") else "ref" if n.startswith("ref-") \
        else "peer"
    rows = [{"server": n, "kind": kind(n), "model": "reactor" if kind(n) == "ours" else "",
             "backend": "", "status": "ok", "conns": 10000, "bytes_per_conn": 50.0 * i,
             "footprint": "rss", "before_kib": 1000, "peak_kib": 1000 + 50 * i}
            for i, n in enumerate(names, 1)]
    for model, probe in scenarios.memory_models(True):
        rows.append({"server": f"ours-{model}", "kind": "model", "model": model,
                     "backend": "epoll", "status": "ok", "conns": probe.conns,
                     "bytes_per_conn": 30.0 * probe.conns, "footprint": probe.footprint,
                     "held": probe.conns + 1, "before_kib": 4000, "peak_kib": 9000})
    rows.append({"server": "ours-sync", "kind": "model", "model": "sync", "backend": "epoll",
                 "status": "skipped", "conns": 0, "problem": servers.SYNC_UNMEASURED})
    rows.append({"server": "ref-select", "kind": "ref", "status": "skipped", "conns": 10000,
                 "problem": "holds at most 1,008 clients"})
    return rows


def _memory_undrawn(svg_path, rows):
    """The rows of the memory plot that have no bar of their colour or no name on the axis:
    every bar is a filled polygon, so a colour's polygons must be as many as its rows."""
    text = open(svg_path).read()
    fills = re.findall(r"<polygon fill = '(rgb\([^)]*\))'", text)
    missing = [plots.memory_label(m) for m in rows
               if f"<text>{plots.memory_label(m)}</text>" not in text]
    want = {}
    for colour in plots.memory_colours(rows):
        c = _svg_colour(colour)
        want[c] = want.get(c, 0) + 1
    missing += [f"{n} bars of {c}, {fills.count(c)} drawn" for c, n in want.items()
                if fills.count(c) < n]
    if len(fills) != len(rows):
        missing.append(f"{len(fills)} bars for {len(rows)} rows")
    return missing


def plots_draw(build):
    """Every plot draws every series from made-up figures, each in its own colour."""
    names = [n for n in plots.PALETTE if not n.startswith("ladder-")]
    models = ["sync", "threading", "forking", "reactor", "pool"]
    built = [s.name for s in servers.catalogue(build)]
    check("palette: a colour per server, none shared",
          len(set(plots.PALETTE.values())) == len(plots.PALETTE)
          and all(n in plots.PALETTE for n in built)
          and all(f"ladder-{m}" in plots.PALETTE for m in models), built)
    check("palette: a new server gets an unused colour",
          plots.colours(["new-one"])["new-one"] not in plots.PALETTE.values())
    scs = scenarios.scenarios(False)
    ladder = scenarios.ladder_scenarios(False)
    runs = []
    for rnd in range(2):
        for i, name in enumerate(names):
            for j, sc in enumerate(scs):
                r = fake(name, sc.key, rnd, 1000 + 50 * i + 10 * j + rnd, 1000 + 100 * j)
                r["mode"] = sc.mode
                r["connects"] = r["messages"]
                r["connects_per_s"] = r["messages_per_s"]
                runs.append(r)
            for k, sc in enumerate(ladder):
                if i < len(models):
                    runs.append(fake(f"ladder-{models[i]}", sc.key, rnd, 1000, 1000 * (k + 1)))
    data = {
        "order": names + [f"ladder-{m}" for m in models],
        "scenarios": [dict(key=sc.key, title=sc.title, mode=sc.mode) for sc in scs],
        "ladder": [dict(key=sc.key, conns=sc.conns) for sc in ladder],
        "ladder_models": models,
        "memory": fake_memory(names),
        "summary": summary.summarise(runs),
    }
    with tempfile.TemporaryDirectory() as out:
        drawn, failed = plots.draw_all(out, data)
        got = sorted(os.path.basename(p) for p in drawn)
        want = sorted(f"{p}.svg" for p in ("throughput", "cpu_per_message", "cpu_ratio",
                                           "latency", "ladder", "memory"))
        check("plots: all six drawn", got == want and not failed, (got, failed))
        series = {"throughput": names, "cpu_per_message": names,
                  "cpu_ratio": [n for n in names if n != summary.REFERENCE],
                  "latency": names, "ladder": [f"ladder-{m}" for m in models]}
        for plot, want_names in series.items():
            path = os.path.join(out, f"{plot}.svg")
            if os.path.exists(path):
                shown = _drawn_series(path, want_names)
                check(f"plot {plot}: every series drawn in its colour", shown == want_names,
                      sorted(set(want_names) - set(shown)))
        path = os.path.join(out, "memory.svg")
        if os.path.exists(path):
            ok = [m for m in data["memory"] if m["status"] == "ok"]
            missing = _memory_undrawn(path, ok)
            check("plot memory: every measured row drawn, in its colour, under its name",
                  not missing, missing)
            check("plot memory: log scale when the bars span over 20x",
                  "set logscale y" in open(os.path.join(out, "memory.gp")).read())
        # Bars within a small spread keep a linear axis, and one row alone still draws.
        for rows, log in ((data["memory"][:3], False), (data["memory"][:1], False)):
            with tempfile.TemporaryDirectory() as small:
                path = plots._memory(small, {"memory": rows})
                script = open(os.path.join(small, "memory.gp")).read()
                check(f"plot memory: {'one row' if len(rows) == 1 else 'close rows'} drawn "
                      "on a linear axis",
                      not _memory_undrawn(path, rows) and ("set logscale y" in script) == log)
        # A plot gnuplot draws nothing in (a numeric column written as text) is reported.
        with open(os.path.join(out, "bad.dat"), "w") as f:
            f.write('x "y"\n"1" "a"\n"10" "b"\n')
        try:
            plots._draw(out, "bad", "set terminal svg\nset output 'bad.svg'\nset logscale x\n"
                        "plot 'bad.dat' using 1:2 with lines\n")
            caught = False
        except RuntimeError:
            caught = True
        check("plots: a plot with no valid points counts as failed", caught)


def memory_report():
    """The memory targets, and the one memory table with every row, measured or not."""
    ours = lambda b: servers.Server(f"ours-{b}", "ours", ("serve", "--model", "reactor",
                                                         "--backend", b))
    cat = [ours("epoll"), ours("poll"), ours("uv"), servers.Server("libuv", "peer", ("x",))]
    rows = fake_memory(["ours-epoll", "ours-poll", "ours-uv", "libuv", "ours-uring"])
    figures = {"ours-epoll": 256.0, "ours-poll": 300.0, "ours-uv": 360.0, "libuv": 300.0,
               "ours-uring": 100.0}
    for m in rows:
        m["bytes_per_conn"] = figures.get(m["server"], m.get("bytes_per_conn"))
    got = {t["what"]: t for t in summary.memory_targets(rows, cat)}
    check("memory target: ours-epoll at 256 bytes meets <= 256",
          got["ours-epoll, bytes per idle connection"]["met"], got)
    check("memory target: ours-poll at 300 misses it",
          not got["ours-poll, bytes per idle connection"]["met"])
    uv = got["ours-uv / libuv, bytes per idle connection"]
    check("memory target: ours-uv over libuv, 1.2 <= 1.25",
          uv["met"] and abs(uv["ratio"]["median"] - 1.2) < 1e-9, uv)
    check("memory target: no ours-uring row while the catalogue has no such server",
          len(got) == 3 and not any("uring" in w for w in got), sorted(got))
    cat.append(ours("uring"))
    got = {t["what"]: t for t in summary.memory_targets(rows, cat)}
    check("memory target: ours-uring <= 128 once it is in the catalogue",
          got.get("ours-uring, bytes per idle connection", {}).get("limit") == 128
          and got["ours-uring, bytes per idle connection"]["met"], sorted(got))
    new = [{"server": "ours-uring", "kind": "ours"}, {"server": "new-peer", "kind": "peer"},
           {"server": "ours-epoll", "kind": "ours"}]
    c = plots.memory_colours(new)
    check("memory plot: servers without a palette colour each get their own",
          len(set(c)) == 3 and not set(c[:2]) & set(plots.PALETTE.values()), c)
    failed = [dict(m, status="failed", problem="boom") if m["server"] == "libuv" else m
              for m in rows]
    check("memory target: no ratio without the reference's figure",
          not any("libuv" in t["what"] for t in summary.memory_targets(failed, cat)))
    report = output.markdown({
        "started": "now", "machine_line": "m", "notes": [], "summary": [], "scenarios": [],
        "ladder": [], "memory": rows, "targets": summary.memory_targets(rows, cat)})
    table = report.split("## Memory per idle connection")[1].split("##")[0]
    body = [l for l in table.splitlines() if l.startswith("| ") and "---" not in l][1:]
    check("memory table: a line per row, measured or not", len(body) == len(rows),
          (len(body), len(rows)))
    kinds = [summary.memory_rows(rows)[i]["kind"] for i in range(len(rows))]
    check("memory table: grouped ours, models, peers, references",
          kinds == sorted(kinds, key=["ours", "model", "peer", "ref"].index), kinds)
    check("memory table: each row says model, backend and clients",
          "| ours-threading | threading | epoll | 5,000 | 150,000 | VmRSS, 5,001 more threads |"
          in table and "| ours-forking | forking | epoll | 1,000 | 30,000 | PSS, server + "
          "1,001 children |" in table and "| ours-epoll | reactor |" in table, table)
    leftover = [dict(m, leftover=3) if m["server"] == "ours-forking" else m for m in rows]
    check("memory table: children that outlived the server are counted",
          "1,001 children; 3 outlived the server and were killed |" in output.markdown({
              "started": "now", "machine_line": "m", "notes": [], "summary": [],
              "scenarios": [], "ladder": [], "memory": leftover, "targets": []}))
    check("memory table: sync says why it has no figure",
          f"| ours-sync | sync | epoll | – | – | | {servers.SYNC_UNMEASURED} |" in table, table)
    check("targets table: bytes against a byte limit, ratios against a ratio",
          "| ours-epoll, bytes per idle connection | 256 | ≤ 256 | yes |" in report
          and "| ours-poll, bytes per idle connection | 300 | ≤ 256 | **no** |" in report
          and "| ours-uv / libuv, bytes per idle connection | 1.200 | ≤ 1.25 | yes |" in report,
          report.split("## Targets")[-1])


def memory_probe(build):
    """The probe, on a few clients: a thread or a child per client is counted, and none is
    left behind."""
    with tempfile.TemporaryDirectory() as logs:
        for model, how in (("threading", "rss"), ("forking", "pss"), ("pool", "rss")):
            server = next(s for s in servers.memory_models(build, 20)
                          if s.name == f"ours-{model}")
            probe = scenarios.MemoryProbe(20, how, 0.5, 0.3)
            m = measure.idle_memory(build, server, probe, measure.Cpus(), logs)
            check(f"memory probe {model}: ok", m["status"] == "ok", m)
            if model != "pool":
                check(f"memory probe {model}: a {'thread' if model == 'threading' else 'child'}"
                      " per client counted", m.get("held", 0) >= 20, m)
            check(f"memory probe {model}: says its model and backend",
                  (m["model"], m["backend"], m["conns"]) == (model, "epoll", 20), m)
            check(f"memory probe {model}: no child left behind, the server gone",
                  m.get("leftover") == 0 and m.get("pid")
                  and not os.path.exists(f"/proc/{m['pid']}"), m)
    with subprocess.Popen(["sleep", "30"]) as child:
        try:
            kib, kids = measure.footprint(os.getpid(), "pss")
            check("footprint pss: this process and its child",
                  child.pid in measure.children(os.getpid()) and kids >= 1 and kib > 0,
                  (kib, kids))
        finally:
            child.kill()


def ladder_starts(build):
    """Every model starts at the ladder's and the memory probe's largest count: their
    limits are lifted within what reactor-serve takes."""
    with tempfile.TemporaryDirectory() as logs:
        for s in servers.ladder(build, 5000) + servers.memory_models(build, 10000):
            try:
                with servers.Running(s, None, os.path.join(logs, "log"), timeout=5):
                    started = True
            except RuntimeError as e:
                started = str(e)
            check(f"{s.name} starts with {' '.join(s.argv[6:])}", started is True, started)


def retry_rule():
    """Which runs are retried: starved ones only, judged within their cell."""
    def run(server, util_s, util_c, status="ok"):
        r = fake(server, "b", 0, 1000, status=status)
        r.update(server_cpu_util=util_s, client_cpu_util=util_c)
        return r
    runs = [run("x", 0.50, 0.50), run("x", 0.30, 0.30), run("x", 0.45, 0.45),
            run("y", 0.95, 0.20), run("y", 0.90, 0.10),   # y's server kept its CPU busy
            run("z", 0.20, 0.20), run("z", 0.19, 0.19),   # z loaded evenly: nothing to gain
            run("w", 0.60, 0.60), run("w", 0.10, 0.10, status="failed")]
    check("retry: a run busy under 3/4 of its cell's best is retried, only it",
          summary.starved(runs) == [1], summary.starved(runs))
    runs.append(run("x", 0.10, 0.10))
    check("retry: the most starved first", summary.starved(runs) == [9, 1],
          summary.starved(runs))
    check("retry: busy adds both processes' shares", summary.busy(runs[0]) == 1.0)
    check("retry: no client figure, no verdict", summary.busy({"status": "ok"}) is None)


def real_run(build):
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "bench.compare", "--build", build, "--out", out,
                "--rounds", "2", "--seconds", "0.2", "--warmup", "0.05", "--only", "b,d,f",
                "--servers", "ours-epoll,ref-epoll,ours-select"]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
        check("harness exits 0", done.returncode == 0, done.stderr[-800:])
        report = open(os.path.join(out, "report.md")).read()
        check("report printed", done.stdout == report)
        for heading in ("## (b) 100 conns, 64 B", "## (d) 50 active + 5,000 idle",
                        "## (f) connects/s", "## Targets"):
            check(f"report has {heading!r}", heading in report)
        d = report.split("## (d)")[1].split("##")[0]
        check("our select backend measured in (d), past FD_SETSIZE",
              "| ours-select |" in d and "| ours-select | n/a |" not in d, d)
        data = json.load(open(os.path.join(out, "results.json")))
        # (b), (d) and (f): 3 servers, 2 rounds each.
        check("every run recorded", len(data["runs"]) == 2 * (3 + 3 + 3), len(data["runs"]))
        check("every run ok", all(r["status"] == "ok" for r in data["runs"]),
              [r.get("problem") for r in data["runs"] if r["status"] != "ok"])
        check("every run verified bytes", all(r.get("messages", 0) > 0 or r.get("connects", 0) > 0
                                              for r in data["runs"]))
        check("machine recorded", data["machine"]["kernel"] and data["machine"]["packages"])
        retried = data.get("retried", {})
        check("retries counted in results.json",
              retried.get("of") == len(data["runs"])
              and retried.get("budget", -1) >= retried.get("attempts", -1)
              >= retried.get("runs", 0) == sum(1 for r in data["runs"] if r.get("retries")),
              retried)
        check("and in the report", f"{retried.get('runs')} of {retried.get('of')} runs retried"
              in report)
        rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
        check("csv rows", len(rows) == 9, len(rows))
        check("csv ratio of the reference is 1",
              all(float(r["ratio_to_ref_epoll"]) == 1 for r in rows if r["server"] == "ref-epoll"))
        if subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode == 0:
            for svg in ("cpu_ratio.svg", "throughput.svg", "cpu_per_message.svg",
                        "latency.svg"):
                path = os.path.join(out, svg)
                ok = os.path.exists(path) and "<svg" in open(path).read(4096)
                check(f"plot {svg}", ok)
            check("the report names the plots drawn, and none failed",
                  "- plots: cpu_ratio.svg, throughput.svg, cpu_per_message.svg, latency.svg\n"
                  in report and not data.get("plots_failed"), data.get("plots_failed"))


def select_at_scale(build):
    """Only the select reference, with its plain fd_set, sits out the large scenarios."""
    by_name = {s.name: s for s in servers.catalogue(build)}
    big = [sc for sc in scenarios.scenarios(True) if sc.descriptors > servers.FD_SETSIZE]
    check("large scenarios: (d) and (e) at 5,000 and 10,000",
          [sc.key for sc in big] == ["d", "e5k", "e10k"], [sc.key for sc in big])
    check("the quick run has (e) at 5,000 but not 10,000",
          [sc.key for sc in scenarios.scenarios(False) if sc.part == "e"] == ["e5k"])
    check("--only e picks (e)'s larger counts too",
          [sc.key for sc in scenarios.scenarios(True) if sc.chosen_by(lambda p: p == "e")]
          == ["e", "e5k", "e10k"])
    if "ours-select" in by_name and "ref-select" in by_name:
        check("ours-select takes every scenario",
              all(by_name["ours-select"].fits(sc.descriptors) for sc in big)
              and by_name["ours-select"].fits(scenarios.IDLE_MEMORY_CONNS))
        check("ref-select takes none past FD_SETSIZE",
              not any(by_name["ref-select"].fits(sc.descriptors) for sc in big))


def wrong_server(build):
    """A server that does not echo (the upper-case service) must never pass as ok."""
    upper = servers.Server("upper", "ours", (os.path.join(build, "tools/serve/reactor-serve"),
                                             "upper", "--bind", "{bind}"))
    sc = scenarios.Scenario("b", "test", conns=4)
    settings = scenarios.Settings(rounds=1, warmup=0.05, seconds=0.3, full=False)
    with tempfile.TemporaryDirectory() as logs:
        r = measure.measure(build, upper, sc, settings, measure.Cpus(), logs)
    check("a server that does not echo is caught", r["status"] != "ok", r)
    check("and the report says why", bool(r.get("problem")), r)
    check("markdown shows a failed cell", "rounds:" in output._status(
        {"failed_rounds": 1, "rounds": 1, "problem": r.get("problem", "")}))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    arithmetic()
    plots_draw(build)
    retry_rule()
    memory_report()
    ladder_starts(build)
    memory_probe(build)
    select_at_scale(build)
    wrong_server(build)
    real_run(build)
    print(f"{'FAILED' if failures else 'passed'}: {failures} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
