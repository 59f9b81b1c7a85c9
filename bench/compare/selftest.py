#!/usr/bin/env python3
"""Tests the comparison harness: its arithmetic on made-up runs, then one small real run.

    python3 bench/compare/selftest.py BUILD_DIR

BUILD_DIR holds tools/serve/reactor-serve, bench/load/reactor-load and
bench/peers/peer-epoll. Exits non-zero on the first failed check."""

import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

from bench.compare import measure, output, scenarios, servers, summary  # noqa: E402

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
        check("select marked n/a in (d)",
              "| ours-select | n/a |" in report.split("## (d)")[1].split("##")[0])
        data = json.load(open(os.path.join(out, "results.json")))
        # (b) and (f): 3 servers; (d): 2 (select cannot); 2 rounds each.
        check("every run recorded", len(data["runs"]) == 2 * (3 + 2 + 3), len(data["runs"]))
        check("every run ok", all(r["status"] == "ok" for r in data["runs"]),
              [r.get("problem") for r in data["runs"] if r["status"] != "ok"])
        check("every run verified bytes", all(r.get("messages", 0) > 0 or r.get("connects", 0) > 0
                                              for r in data["runs"]))
        check("machine recorded", data["machine"]["kernel"] and data["machine"]["packages"])
        rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
        check("csv rows", len(rows) == 8, len(rows))
        check("csv ratio of the reference is 1",
              all(float(r["ratio_to_ref_epoll"]) == 1 for r in rows if r["server"] == "ref-epoll"))
        if subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode == 0:
            for svg in ("throughput.svg", "cpu_per_message.svg", "latency.svg"):
                path = os.path.join(out, svg)
                ok = os.path.exists(path) and "<svg" in open(path).read(4096)
                check(f"plot {svg}", ok)


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
    wrong_server(build)
    real_run(build)
    print(f"{'FAILED' if failures else 'passed'}: {failures} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
