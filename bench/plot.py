"""The benchmark report's figure as plain SVG text (no third-party packages).

usage: plot.py OUT_DIR  (prints the SVG)
Left: streaming throughput per sink as bars, pg_recvlogical's rate in the same run as a dark
line across each bar, the ratio above it. Right: commit-to-sink latency per sink at 1k/s,
10k/s and "max", p99 as a light bar with p50 as a dark bar inside it, on a log scale.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import STEPS, load  # noqa: E402

WIDTH, HEIGHT = 1000, 440
TOP, BOTTOM = 60, 360  # the plot area's vertical extent in both panels
COLORS = {"memory": "#4e79a7", "kafka": "#f28e2b", "search": "#59a14f", "postgres": "#b07aa1"}
LIGHT = {"memory": "#b7cde3", "kafka": "#f9cc9f", "search": "#bcdcb5", "postgres": "#dcc5d6"}
STEP_LABELS = {"1000": "1k/s", "10000": "10k/s", "max": "max"}


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(x, y, content, size=12, anchor="middle", weight="normal", color="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{color}">{esc(content)}</text>')


def rect(x, y, w, h, color):
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0):.1f}" fill="{color}"/>'


def line(x1, y1, x2, y2, color="#ccc", width=1):
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{color}" stroke-width="{width}"/>')


def nice_ceiling(value):
    """The smallest 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten at or above value."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def short(value):
    """Three significant digits at most: 114186 -> 114k, 1500 -> 1.5k."""
    for scale, suffix in ((1e6, "M"), (1e3, "k"), (1, "")):
        if value >= scale:
            return f"{float(f'{value / scale:.3g}'):g}{suffix}"
    return f"{value:g}"


def ms_label(ms):
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def throughput_panel(rows, left, right):
    out = [text((left + right) / 2, 30, "Streaming throughput, changes/s", 15, weight="bold"),
           text((left + right) / 2, 47, "bars: sluice into the sink; dark line: pg_recvlogical, same run",
                11, color="#555")]
    peak = max([r["rate"] or 0 for r in rows] + [r["recvlogical"] or 0 for r in rows])
    top = nice_ceiling(peak * 1.1)
    scale = (BOTTOM - TOP) / top
    for i in range(6):
        value = top * i / 5
        y = BOTTOM - value * scale
        out += [line(left, y, right, y), text(left - 6, y + 4, short(value), 11, "end", color="#555")]
    slot = (right - left) / len(rows)
    for i, r in enumerate(rows):
        x = left + i * slot
        bar = slot * 0.5
        bx = x + (slot - bar) / 2
        if r["rate"] is not None:
            h = r["rate"] * scale
            out.append(rect(bx, BOTTOM - h, bar, h, COLORS[r["sink"]]))
            label = short(r["rate"])
            if r["ratio"] is not None:
                label += f"  ({r['ratio']:.2f}x)"
            top_y = min(BOTTOM - h, BOTTOM - (r["recvlogical"] or 0) * scale)
            out.append(text(x + slot / 2, top_y - 8, label, 11))
        else:
            out.append(text(x + slot / 2, BOTTOM - 10, "n/a", 11, color="#555"))
        if r["recvlogical"] is not None:
            y = BOTTOM - r["recvlogical"] * scale
            out.append(line(bx - 8, y, bx + bar + 8, y, "#222", 3))
        out.append(text(x + slot / 2, BOTTOM + 18, r["sink"], 12, weight="bold"))
    out.append(line(left, BOTTOM, right, BOTTOM, "#888"))
    return out


def latency_panel(rows, left, right):
    out = [text((left + right) / 2, 30, "Commit-to-sink latency, ms (log scale)", 15, weight="bold"),
           text((left + right) / 2, 47, "light bar: p99; dark bar: p50; at 1k/s, 10k/s and max",
                11, color="#555")]
    values = [s[k] for r in rows for s in r["latency"].values() for k in ("p50_ms", "p99_ms")
              if s.get(k)]
    low = 10 ** math.floor(math.log10(min(values))) if values else 1
    high = 10 ** math.ceil(math.log10(max(values) * 1.05)) if values else 1000
    if high <= low:
        high = low * 10
    span = math.log10(high) - math.log10(low)

    def y_of(ms):
        return BOTTOM - (math.log10(max(ms, low)) - math.log10(low)) / span * (BOTTOM - TOP)

    decade = low
    while decade <= high * 1.0001:
        y = y_of(decade)
        out += [line(left, y, right, y), text(left - 6, y + 4, f"{decade:g}", 11, "end", color="#555")]
        decade *= 10
    group = (right - left) / len(rows)
    for i, r in enumerate(rows):
        gx = left + i * group
        bar = group * 0.8 / len(STEPS)
        for j, step in enumerate(STEPS):
            bx = gx + group * 0.1 + j * bar
            s = r["latency"].get(step) or {}
            p50, p99 = s.get("p50_ms"), s.get("p99_ms")
            cx = bx + bar / 2
            if p99:
                out.append(rect(bx + 2, y_of(p99), bar - 4, BOTTOM - y_of(p99), LIGHT[r["sink"]]))
                out.append(text(cx, y_of(p99) - 4, ms_label(p99), 10))
            if p50:
                out.append(rect(bx + bar * 0.2, y_of(p50), bar * 0.6, BOTTOM - y_of(p50),
                                COLORS[r["sink"]]))
                if y_of(p50) < BOTTOM - 14:
                    out.append(text(cx, y_of(p50) + 12, ms_label(p50), 9, color="#fff"))
            if not p50 and not p99:
                out.append(text(cx, BOTTOM - 6, "n/a", 10, color="#555"))
            if s.get("kept_up") == 0:
                out.append(text(cx, BOTTOM - 6 if not p99 else y_of(p99) - 16, "behind", 9,
                                color="#c00"))
            out.append(text(cx, BOTTOM + 14, STEP_LABELS[step], 10, color="#555"))
        out.append(text(gx + group / 2, BOTTOM + 32, r["sink"], 12, weight="bold"))
    out.append(line(left, BOTTOM, right, BOTTOM, "#888"))
    return out


def svg(out_dir):
    machine, rows, failed, _ = load(out_dir)
    body = ['<rect width="100%" height="100%" fill="#fff"/>']
    body += throughput_panel(rows, 70, 460)
    body += latency_panel(rows, 560, 980)
    about = [m for m in machine if m.split(":")[0] in ("date", "cpus", "cpu model", "postgresql",
                                                       "load average at start")]
    body.append(text(20, HEIGHT - 22, "; ".join(about), 10, "start", color="#555"))
    if failed:
        body.append(text(20, HEIGHT - 8, "failed runs: " + ", ".join(failed), 10, "start",
                         color="#c00"))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">\n'
            + "\n".join(body) + "\n</svg>\n")


if __name__ == "__main__":
    sys.stdout.write(svg(sys.argv[1]))
