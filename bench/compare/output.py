# SPDX-License-Identifier: MIT
"""The results as a Markdown report (stdout and report.md), JSON and CSV."""

import csv
import json

from . import summary


def _fmt(x, digits=1):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _cell(sp, digits=1, ranged=True):
    """"median (min–max)" of a spread."""
    if sp is None:
        return "–"
    if not ranged or sp["n"] < 2:
        return _fmt(sp["median"], digits)
    return f"{_fmt(sp['median'], digits)} ({_fmt(sp['min'], digits)}–{_fmt(sp['max'], digits)})"


def _status(row):
    notes = []
    if row.get("retried"):
        notes.append(f"{row['retried']} retried")
    if row["failed_rounds"]:
        notes.append(f"{row['failed_rounds']}/{row['rounds']} rounds: {row['problem'][:60]}")
    return "; ".join(notes)


MEMORY_NOTE = (
    "Each figure is (the server's memory with the idle clients connected, at its peak, - "
    "its memory before) / clients. reactor and pool: VmRSS, the connection's objects and "
    "its share of the loop's tables. threading: VmRSS, which also counts each client's "
    "thread: the resident pages of its stack and the blocking handler's state. forking: "
    "the proportional set size (PSS) of the server and all its children added, so a child "
    "pays for the pages it wrote and a share of those it still shares with the parent. "
    "Peers and references: VmRSS, like ours; each is one thread running one loop.")


def _footprint(m):
    """How a memory row was measured, with the threads or children the server held."""
    if m.get("footprint") == "pss":
        text = f"PSS, server + {m.get('held', 0):,} children"
        if m.get("leftover"):
            text += f"; {m['leftover']:,} outlived the server and were killed"
        return text
    if m.get("model") == "threading":
        return f"VmRSS, {m.get('held', 0):,} more threads"
    return "VmRSS"


def markdown(data):
    rows, lines = data["summary"], []
    add = lines.append
    add(f"# reactor: echo servers compared ({data['started']})")
    add("")
    add(f"- machine: {data['machine_line']}")
    for note in data["notes"]:
        add(f"- {note}")
    add("")
    add("Medians over rounds, (min–max) in brackets. CPU is the server's (user + system) per "
        "message; × epoll is that CPU over the raw epoll reference's in the same round.")
    for sc in data["scenarios"]:
        unit = "conn/s" if sc["mode"] == "connect" else "msg/s"
        per = "conn" if sc["mode"] == "connect" else "msg"
        add("")
        add(f"## ({sc['key']}) {sc['title']}")
        add("")
        add(f"| server | {unit} | p50 µs | p99 µs | CPU µs/{per} | × epoll | notes |")
        add("|---|---:|---:|---:|---:|---:|---|")
        for r in sorted((r for r in rows if r["scenario"] == sc["key"]),
                        key=lambda r: data["order"].index(r["server"])):
            add(f"| {r['server']} | {_cell(r['rate'], 0)} | {_cell(r['p50_us'], 0, False)} | "
                f"{_cell(r['p99_us'], 0, False)} | {_cell(r['cpu_us_per_op'], 2)} | "
                f"{_cell(r['ratio_to_ref_epoll'], 3, False)} | {_status(r)} |")
        for name in sc.get("skipped", []):
            add(f"| {name} | n/a | | | | | more descriptors than select's FD_SETSIZE |")
    if data["ladder"]:
        add("")
        add("## Models ladder (reactor-serve echo, epoll; 64 B ping-pong)")
        add("")
        counts = [sc["conns"] for sc in data["ladder"]]
        add("| model | " + " | ".join(f"{n:,} conns msg/s" for n in counts) + " |")
        add("|---|" + "---:|" * len(counts))
        for model in data["ladder_models"]:
            cells = []
            for sc in data["ladder"]:
                r = next((r for r in rows if r["server"] == f"ladder-{model}"
                          and r["scenario"] == sc["key"]), None)
                if r is None:
                    cells.append("–")
                    continue
                text = _cell(r["rate"], 0, False)
                if r["errors"]:
                    text += f" ({r['errors']:,} errors)"
                elif r["failed_rounds"]:
                    text += " (failed)"
                cells.append(text)
            add(f"| {model} | " + " | ".join(cells) + " |")
        add("")
        add("Errors are connections whose exchanges never completed in the run: the sync "
            "model serves one client at a time and the others wait; a forking server on one "
            "CPU falls behind the clients' connect timeout at a thousand children.")
    if data["memory"]:
        add("")
        add("## Memory per idle connection")
        add("")
        add("| server | model | backend | idle clients | bytes/conn | measured | "
            "before → with them (KiB) |")
        add("|---|---|---|---:|---:|---|---|")
        for m in summary.memory_rows(data["memory"]):
            conns = f"{m['conns']:,}" if m.get("conns") else "–"
            what = (f"| {m['server']} | {m.get('model') or '–'} | {m.get('backend') or '–'} "
                    f"| {conns} |")
            if m["status"] == "ok":
                add(f"{what} {m['bytes_per_conn']:,.0f} | {_footprint(m)} | "
                    f"{m['before_kib']:,} → {m['peak_kib']:,} |")
            else:
                add(f"{what} – | | {m.get('problem', 'failed')} |")
        add("")
        add(MEMORY_NOTE)
    if data["targets"]:
        add("")
        add("## Targets")
        add("")
        add("| target | measured, median (min–max) | limit | met |")
        add("|---|---:|---:|---|")
        for t in data["targets"]:
            digits, limit = (0, f"{t['limit']:,}") if t.get("unit") == "bytes" \
                else (3, f"{t['limit']:.2f}")
            add(f"| {t['what']} | {_cell(t['ratio'], digits)} | ≤ {limit} | "
                f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["server", "kind", "scenario", "rounds", "failed_rounds", "retried", "errors",
              "rate_median", "rate_min", "rate_max", "p50_us", "p99_us",
              "cpu_us_per_op_median", "cpu_us_per_op_min", "cpu_us_per_op_max",
              "ratio_to_ref_epoll", "problem"]


def write_csv(path, rows):
    def med(sp, key="median"):
        return "" if sp is None else f"{sp[key]:.4f}"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            w.writerow([r["server"], r["kind"], r["scenario"], r["rounds"], r["failed_rounds"],
                        r.get("retried", 0), r["errors"], med(r["rate"]), med(r["rate"], "min"),
                        med(r["rate"], "max"), med(r["p50_us"]), med(r["p99_us"]),
                        med(r["cpu_us_per_op"]), med(r["cpu_us_per_op"], "min"),
                        med(r["cpu_us_per_op"], "max"), med(r["ratio_to_ref_epoll"]),
                        r["problem"]])


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.write("\n")
