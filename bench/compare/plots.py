# SPDX-License-Identifier: MIT
"""SVG plots drawn by gnuplot from the summary: one data file and one script per plot, both
kept next to the SVG so a plot can be redrawn or restyled by hand.

Every series has its own colour, keyed by server name in PALETTE, so a server looks the
same in every plot and in every run."""

import os
import re
import shutil
import subprocess

from . import scenarios, summary

# One colour per server, never shared. Ours are blues, cyan, green and purple; the peers
# orange, brown, pink and olive; the references red, grey and black. The ladder's models
# never share a plot with the others; they take darker shades.
PALETTE = {
    "ours-epoll": "#1f77b4",
    "ours-uv": "#17becf",
    "ours-poll": "#2ca02c",
    "ours-select": "#9467bd",
    "libuv": "#ff7f0e",
    "libevent": "#8c564b",
    "libev": "#e377c2",
    "asio": "#bcbd22",
    "ref-epoll": "#d62728",
    "ref-poll": "#7f7f7f",
    "ref-select": "#000000",
    "ladder-sync": "#e6550d",
    "ladder-threading": "#006d2c",
    "ladder-forking": "#54278f",
    "ladder-reactor": "#08519c",
    "ladder-pool": "#a50f15",
}
# For a server not in PALETTE (a new one, or a test's): still distinct from the above.
SPARE = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e7ba52"]

REFERENCE = "ref-epoll"

HEADER = """set terminal svg size {width},{height} dynamic font 'sans,11' background '#ffffff'
set output '{svg}'
set title {title} noenhanced
set grid ytics
set key outside right top noenhanced
set datafile missing '?'
"""

# gnuplot exits 0 when it draws nothing (a column it reads as text, no valid points), but
# says so on stderr: those plots count as failed.
EMPTY = re.compile(r"no valid points|all points . value undefined|undefined value|"
                   r"range is invalid|empty . range", re.I)


def _q(text):
    """`text` as a gnuplot single-quoted string (a quote inside is doubled)."""
    return "'" + text.replace("'", "''") + "'"


def colours(names):
    """{name: "#rrggbb"} for `names`: PALETTE's colour, or a spare one no other name uses."""
    spare = iter(c for c in SPARE if c not in PALETTE.values())
    return {n: PALETTE[n] if n in PALETTE else next(spare, "#444444") for n in names}


def _value(sp, key="median"):
    return "?" if sp is None else f"{sp[key]:.6g}"


def _table(path, first, columns, rows, quote=True):
    """Writes a whitespace-separated table: a header line (none if `first` is None), then
    one line per row. Row labels are quoted (they hold spaces) unless `quote` is False:
    gnuplot reads a quoted number as text, so a numeric x column must go bare."""
    with open(path, "w") as f:
        if first is not None:
            f.write(" ".join([first] + [f'"{c}"' for c in columns]) + "\n")
        for label, values in rows:
            f.write(" ".join([f'"{label}"' if quote else str(label)] + values) + "\n")


def _palette_words(names):
    """The colours as one gnuplot string, to be picked with word(..., i)."""
    c = colours(names)
    return '"' + " ".join(c[n] for n in names) + '"'


def _draw(out, name, script):
    path = os.path.join(out, f"{name}.gp")
    with open(path, "w") as f:
        f.write(script)
    done = subprocess.run(["gnuplot", f"{name}.gp"], capture_output=True, text=True, cwd=out)
    if done.returncode != 0:
        raise RuntimeError(f"gnuplot {name}: {done.stderr.strip()[:300]}")
    if EMPTY.search(done.stderr):
        raise RuntimeError(f"gnuplot {name} drew nothing: {done.stderr.strip()[:300]}")
    return os.path.join(out, f"{name}.svg")


# Ratios on a log axis: 0.8 is as far below 1 as 1.25 is above, and one server at 8x does
# not flatten the others' 1.05 and 1.2. The dashed line at 1 is ref-epoll.
RATIO_AXIS = """set logscale y 2
set yrange [*:*]
set ytics ('0.5' 0.5, '0.67' 0.667, '0.8' 0.8, '0.9' 0.9, '1' 1, '1.1' 1.1, '1.25' 1.25, \\
           '1.5' 1.5, '2' 2, '3' 3, '4' 4, '6' 6, '8' 8, '12' 12, '16' 16, '32' 32)
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb '#d62728' front
"""


def _servers(data, present):
    """The servers in `data["order"]` for which present(server) holds, in that order."""
    return [s for s in data["order"] if present(s)]


def _bar_scenarios(data, connect):
    return [sc for sc in data["scenarios"] if connect or sc["mode"] != "connect"]


def _bars(out, name, title, ylabel, data, field, logscale, connect=False, skip=(), one=False):
    """Clustered bars: one cluster per scenario, one bar per server. `field` is a summary
    row's key; `connect` keeps the connects/s scenario; `one` draws a dashed line at 1."""
    cells = {(r["server"], r["scenario"]): r for r in data["summary"]}
    scs = _bar_scenarios(data, connect)
    servers = _servers(data, lambda s: s not in skip and any(
        cells.get((s, sc["key"]), {}).get(field) for sc in scs))
    if not servers or not scs:
        return None
    table = [(f"({sc['key']}) {sc['title']}",
              [_value(cells.get((s, sc["key"]), {}).get(field)) for s in servers])
             for sc in scs]
    _table(os.path.join(out, f"{name}.dat"), "scenario", servers, table)
    script = HEADER.format(svg=f"{name}.svg", title=_q(title), width=1200, height=560) + \
        f"""set ylabel {_q(ylabel)} noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border rgb '#333333'
set boxwidth 0.9
set xtics rotate by -20 noenhanced
{'set logscale y' if logscale else 'set yrange [0:*]'}
{RATIO_AXIS if one else ''}
colours = {_palette_words(servers)}
plot for [i=2:{len(servers) + 1}] '{name}.dat' using i:xtic(1) title columnheader(i) \\
     lc rgb word(colours, i - 1)
"""
    return _draw(out, name, script)


def _ladder(out, data):
    models = data["ladder_models"]
    cells = {(r["server"], r["scenario"]): r for r in data["summary"]}
    table = [(sc["conns"], [_value(cells[(f"ladder-{m}", sc["key"])]["rate"])
                            if (f"ladder-{m}", sc["key"]) in cells else "?"
                            for m in models]) for sc in data["ladder"]]
    _table(os.path.join(out, "ladder.dat"), "conns", models, table, quote=False)
    script = HEADER.format(svg="ladder.svg", title=_q("Models ladder: throughput against "
                                                       "connections (epoll, 64 B ping-pong)"), width=960, height=540) + \
        f"""set xlabel 'connections'
set ylabel 'messages/s'
set logscale x
set logscale y
set xtics ({", ".join(f"'{sc['conns']:,}' {sc['conns']}" for sc in data["ladder"])})
set xrange [{data["ladder"][0]["conns"] / 1.5:g}:{data["ladder"][-1]["conns"] * 1.5:g}]
colours = {_palette_words([f"ladder-{m}" for m in models])}
plot for [i=2:{len(models) + 1}] 'ladder.dat' using 1:i with linespoints lw 2 pt (i + 4) ps 1.2 \\
     lc rgb word(colours, i - 1) title columnheader(i)
"""
    return _draw(out, "ladder", script)


def _latency(out, data, scenario="b"):
    rows = [r for r in data["summary"] if r["scenario"] == scenario and r["p50_us"]]
    if not rows:
        return None
    rows.sort(key=lambda r: data["order"].index(r["server"]))
    servers = [r["server"] for r in rows]
    table = [(p, [_value(r[key]) for r in rows])
             for p, key in (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"),
                            ("p99.9", "p999_us"))]
    _table(os.path.join(out, "latency.dat"), "percentile", servers, table)
    title = next(f"({s['key']}) {s['title']}" for s in data["scenarios"] if s["key"] == scenario)
    script = HEADER.format(svg="latency.svg", title=_q(f"Round-trip latency percentiles, {title}"),
                           width=960, height=540) + f"""set ylabel 'microseconds'
set logscale y
set xtics noenhanced
set xrange [-0.2:3.2]
colours = {_palette_words(servers)}
plot for [i=2:{len(servers) + 1}] 'latency.dat' using 0:i:xtic(1) with linespoints lw 2 \\
     pt (i % 13 + 1) lc rgb word(colours, i - 1) title columnheader(i)
"""
    return _draw(out, "latency", script)


def memory_label(m):
    """A memory row's name on the plot's axis: the server, with the client count for the
    models measured at other counts than the rest."""
    return f"{m['server']} ({m['conns']:,})" if m.get("kind") == "model" else m["server"]


def memory_colours(rows):
    """Each memory row's bar colour, in order: the server's, or for a model row the model's
    in the ladder."""
    keys = [f"ladder-{m['model']}" if m.get("kind") == "model" else m["server"] for m in rows]
    c = colours(list(dict.fromkeys(keys)))
    return [c[k] for k in keys]


# The memory bars span more than this factor (threads and children against the references'
# few dozen bytes): the axis goes logarithmic.
MEMORY_LOG_SPREAD = 20


def _memory(out, data):
    ok = [m for m in summary.memory_rows(data["memory"]) if m["status"] == "ok"]
    if not ok:
        return None
    # One cluster per group of summary.MEMORY_GROUPS, a bar's width apart, each named at the
    # top of the plot, where the y range leaves room.
    names = dict(summary.MEMORY_GROUPS)
    xs, groups, x, last = [], [], 0, None
    for m in ok:
        if m.get("kind") != last:
            x += 1 if groups else 0
            groups.append([names.get(m.get("kind"), m.get("kind") or "other"), x, x])
            last = m.get("kind")
        groups[-1][2] = x
        xs.append(x)
        x += 1
    # Columns: x, label, bytes, the bar's colour as a number (for `lc rgb variable`). No
    # header line: nothing takes titles from it, and it would count as row 0.
    with open(os.path.join(out, "memory.dat"), "w") as f:
        for x, m, colour in zip(xs, ok, memory_colours(ok)):
            f.write(f'{x} "{memory_label(m)}" {m["bytes_per_conn"]:.1f} {int(colour[1:], 16)}\n')
    values = [m["bytes_per_conn"] for m in ok]
    log = min(values) > 0 and max(values) / min(values) > MEMORY_LOG_SPREAD
    marks = "".join(
        f"set label {_q(name)} at {(a + b) / 2:g}, graph 0.96 center noenhanced\n"
        for name, a, b in groups) + "".join(
        f"set arrow from {a - 1:g}, graph 0 to {a - 1:g}, graph 1 nohead dt 3 lc rgb '#999999'\n"
        for _, a, _ in groups[1:])
    conns = scenarios.IDLE_MEMORY_CONNS
    script = HEADER.format(svg="memory.svg", title=_q(
        f"Memory per idle connection ({conns:,} idle clients, the models at the count in "
        f"brackets){'; log scale' if log else ''}"), width=1200, height=600) + \
        f"""set ylabel 'bytes per connection'
set style fill solid 0.9 border rgb '#333333'
set boxwidth 0.7
{'set logscale y' if log else 'set yrange [0:*]'}
set yrange [{min(values) / 2 if log else 0:g}:{max(values) * (4 if log else 1.2):g}]
set xrange [-0.6:{xs[-1] + 0.6:g}]
set xtics noenhanced rotate by -30
unset key
{marks}plot 'memory.dat' using 1:3:4:xtic(2) with boxes lc rgb variable, \\
     '' using 1:3:(sprintf('%.0f', $3)) with labels offset 0,0.7 notitle
"""
    return _draw(out, "memory", script)


def draw_all(out, data):
    """Draws every plot that has data, each on its own: returns (SVG paths drawn,
    [(plot, problem)] for those that failed). Without gnuplot: ([], [("all", ...)])."""
    if shutil.which("gnuplot") is None:
        return [], [("all", "gnuplot is not installed")]
    wanted = []
    if any(sc["mode"] != "connect" for sc in data["scenarios"]):
        wanted += [
            ("cpu_ratio", lambda: _bars(
                out, "cpu_ratio", "Server CPU per message relative to raw epoll "
                "(ref-epoll = 1, the dashed line; lower is cheaper; log scale)", "CPU per message over ref-epoll's in the same "
                "round (median)", data, "ratio_to_ref_epoll", False, connect=True,
                skip=(REFERENCE,), one=True)),
            ("throughput", lambda: _bars(
                out, "throughput", "Throughput by server and scenario", "messages/s", data,
                "rate", True)),
            ("cpu_per_message", lambda: _bars(
                out, "cpu_per_message", "Server CPU per message by server and scenario",
                "server CPU µs per message", data, "cpu_us_per_op", False)),
        ]
    if any(sc["key"] == "b" for sc in data["scenarios"]):
        wanted.append(("latency", lambda: _latency(out, data)))
    if data["ladder"]:
        wanted.append(("ladder", lambda: _ladder(out, data)))
    if data["memory"]:
        wanted.append(("memory", lambda: _memory(out, data)))
    drawn, failed = [], []
    for name, draw in wanted:
        try:
            path = draw()
        except (RuntimeError, OSError) as e:
            failed.append((name, str(e)))
            continue
        if path:
            drawn.append(path)
        else:
            failed.append((name, "no data"))
    return drawn, failed
