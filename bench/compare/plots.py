"""SVG plots drawn by gnuplot from the summary: one data file and one script per plot, both
kept next to the SVG so a plot can be redrawn or restyled by hand."""

import os
import shutil
import subprocess

HEADER = """set terminal svg size 960,540 dynamic font 'sans,11' background '#ffffff'
set output '{svg}'
set title '{title}'
set grid ytics
set key outside right top
set datafile missing '?'
"""


def _value(sp):
    return "?" if sp is None else f"{sp['median']:.6g}"


def _table(path, first, columns, rows):
    """Writes a whitespace-separated table: a header line, then one line per row."""
    with open(path, "w") as f:
        f.write(" ".join([first] + [f'"{c}"' for c in columns]) + "\n")
        for label, values in rows:
            f.write(" ".join([f'"{label}"'] + values) + "\n")


def _draw(out, name, script):
    path = os.path.join(out, f"{name}.gp")
    with open(path, "w") as f:
        f.write(script)
    done = subprocess.run(["gnuplot", f"{name}.gp"], capture_output=True, text=True, cwd=out)
    if done.returncode != 0:
        raise RuntimeError(f"gnuplot {name}: {done.stderr.strip()[:300]}")
    return os.path.join(out, f"{name}.svg")


def _bars(out, name, title, ylabel, data, rows, logscale):
    servers = [s for s in data["order"] if any(r["server"] == s for r in data["summary"])]
    cells = {(r["server"], r["scenario"]): r for r in data["summary"]}
    table = []
    for sc in data["scenarios"]:
        if sc["mode"] == "connect":
            continue
        table.append((f"({sc['key']}) {sc['title']}",
                      [_value(cells[(s, sc["key"])][rows]) if (s, sc["key"]) in cells else "?"
                       for s in servers]))
    _table(os.path.join(out, f"{name}.dat"), "scenario", servers, table)
    script = HEADER.format(svg=f"{name}.svg", title=title) + f"""set ylabel '{ylabel}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -20 noenhanced
{'set logscale y' if logscale else 'set yrange [0:*]'}
plot for [i=2:{len(servers) + 1}] '{name}.dat' using i:xtic(1) title columnheader(i)
"""
    return _draw(out, name, script)


def _ladder(out, data):
    models = data["ladder_models"]
    cells = {(r["server"], r["scenario"]): r for r in data["summary"]}
    table = [(str(sc["conns"]), [_value(cells[(f"ladder-{m}", sc["key"])]["rate"])
                                 if (f"ladder-{m}", sc["key"]) in cells else "?"
                                 for m in models]) for sc in data["ladder"]]
    _table(os.path.join(out, "ladder.dat"), "conns", models, table)
    script = HEADER.format(svg="ladder.svg", title="Models ladder: throughput against "
                           "connections (epoll, 64 B ping-pong)") + f"""set xlabel 'connections'
set ylabel 'messages/s'
set logscale x
set logscale y
plot for [i=2:{len(models) + 1}] 'ladder.dat' using 1:i with linespoints lw 2 title columnheader(i)
"""
    return _draw(out, "ladder", script)


def _latency(out, data, scenario="b"):
    rows = [r for r in data["summary"] if r["scenario"] == scenario]
    rows.sort(key=lambda r: data["order"].index(r["server"]))
    servers = [r["server"] for r in rows]
    table = [(p, [_value(r[key]) for r in rows])
             for p, key in (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"),
                            ("p99.9", "p999_us"))]
    _table(os.path.join(out, "latency.dat"), "percentile", servers, table)
    title = next(f"({s['key']}) {s['title']}" for s in data["scenarios"] if s["key"] == scenario)
    script = HEADER.format(svg="latency.svg", title=f"Round-trip latency percentiles, {title}") + \
        f"""set ylabel 'microseconds'
set logscale y
set xtics noenhanced
plot for [i=2:{len(servers) + 1}] 'latency.dat' using 0:i:xtic(1) with linespoints lw 2 title columnheader(i)
"""
    return _draw(out, "latency", script)


def _memory(out, data):
    ok = [m for m in data["memory"] if m["status"] == "ok"]
    if not ok:
        return None
    _table(os.path.join(out, "memory.dat"), "server", ["bytes"],
           [(m["server"], [f"{m['bytes_per_conn']:.1f}"]) for m in ok])
    script = HEADER.format(svg="memory.svg", title=f"Resident memory per idle connection "
                           f"({ok[0]['conns']:,} idle)") + """set ylabel 'bytes'
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.8
set yrange [0:*]
set xtics noenhanced
unset key
plot 'memory.dat' using 2:xtic(1)
"""
    return _draw(out, "memory", script)


def draw_all(out, data):
    """Draws every plot that has data; returns the SVG paths, or [] without gnuplot."""
    if shutil.which("gnuplot") is None:
        return []
    drawn = []
    if any(sc["mode"] != "connect" for sc in data["scenarios"]):
        drawn.append(_bars(out, "throughput", "Throughput by server and scenario",
                           "messages/s", data, "rate", True))
        drawn.append(_bars(out, "cpu_per_message", "Server CPU per message by server and "
                           "scenario", "server CPU µs per message", data, "cpu_us_per_op",
                           False))
    if any(sc["key"] == "b" for sc in data["scenarios"]):
        drawn.append(_latency(out, data))
    if data["ladder"]:
        drawn.append(_ladder(out, data))
    drawn.append(_memory(out, data))
    return [p for p in drawn if p]
