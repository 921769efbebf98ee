"""The benchmark report's figures, from a report directory written by bench/report.sh.

usage: results.py OUT_DIR  (prints REPORT.md)
Reads OUT_DIR/results.txt (the RESULT lines of every run) and OUT_DIR/machine.txt. `load`
gives one row per sink with every figure the report and bench/plot.py show; missing figures
are None (a run that failed or was not made).
"""
import os
import sys

# Per sink: the label, the throughput run's RESULT name and its keys for the change count,
# sluice's rate, pg_recvlogical's rate and their ratio; then the sink's own baseline, if any
# (its rate key, ratio key, and what it is).
SINKS = [
    ("memory", "PostgreSQL -> memory (null sink)", "pg_throughput",
     ("changes", "sluice_changes_per_s", "baseline_changes_per_s", "ratio"), None),
    ("kafka", "PostgreSQL -> Kafka (Avro, tansu)", "kafka",
     ("changes", "sluice_changes_per_s", "baseline_changes_per_s", "ratio"), None),
    ("search", "PostgreSQL -> search (osmem)", "search",
     ("documents", "sluice_docs_per_s", "recvlogical_changes_per_s", "recvlogical_ratio"),
     ("baseline_docs_per_s", "ratio", "direct _bulk of the same documents")),
    ("postgres", "PostgreSQL -> warehouse (PostgreSQL)", "warehouse-postgres",
     ("changes", "sluice_rows_per_s", "recvlogical_changes_per_s", "recvlogical_ratio"),
     ("baseline_rows_per_s", "ratio", "COPY of as many rows")),
]
STEPS = ["1000", "10000", "max"]


def parse(path):
    """Every RESULT line as a dict of its key=value fields."""
    results = []
    if not os.path.exists(path):
        return results
    with open(path) as f:
        for line in f:
            words = line.split()
            if not words or words[0] not in ("RESULT", "FAILED"):
                continue
            fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            fields["kind"] = words[0]
            results.append(fields)
    return results


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load(out_dir):
    """(machine lines, one dict per sink, the failed runs, extra RESULT lines)."""
    results = parse(os.path.join(out_dir, "results.txt"))
    machine_path = os.path.join(out_dir, "machine.txt")
    machine = open(machine_path).read().splitlines() if os.path.exists(machine_path) else []
    failed = [r.get("run") for r in results if r["kind"] == "FAILED"]
    by_name = {}
    for r in results:
        if r["kind"] == "RESULT":
            by_name.setdefault(r.get("name"), []).append(r)
    rows = []
    for sink, label, name, keys, own in SINKS:
        run = (by_name.get(name) or [{}])[0]
        changes, rate, base, ratio = (number(run.get(k)) for k in keys)
        if rate and base:
            ratio = rate / base
        cpu = number(run.get("cpu_s"))
        row = {
            "sink": sink, "label": label, "changes": changes, "rate": rate,
            "recvlogical": base, "ratio": ratio, "peak_rss_mib": number(run.get("peak_rss_mib")),
            "cpu_per_million": cpu / changes * 1e6 if cpu is not None and changes else None,
            "own_baseline": None, "latency": {}, "snapshot": None,
        }
        if own and run:
            row["own_baseline"] = (number(run.get(own[0])), number(run.get(own[1])), own[2])
        for r in by_name.get("latency", []):
            if r.get("sink") == sink:
                row["latency"][r.get("step")] = {
                    k: number(r.get(k)) for k in
                    ("target_per_s", "achieved_per_s", "p50_ms", "p99_ms", "batches",
                     "drain_s", "kept_up")
                }
        for r in by_name.get("snapshot", []):
            if r.get("sink", "memory") == sink:
                row["snapshot"] = {k: number(r.get(k)) for k in
                                   ("rows", "sluice_rows_per_s", "baseline_rows_per_s",
                                    "ratio", "peak_rss_mib")}
                snap = row["snapshot"]
                if snap["sluice_rows_per_s"] and snap["baseline_rows_per_s"]:
                    snap["ratio"] = snap["sluice_rows_per_s"] / snap["baseline_rows_per_s"]
        rows.append(row)
    extra = by_name.get("kafka_latency", [])
    return machine, rows, failed, extra


def fmt(value, digits=0, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value):
    """Two decimals, or two significant digits below 0.1 (a slow sink's snapshot ratio)."""
    if value is None:
        return "n/a"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def latency_cell(step):
    if not step or step.get("p50_ms") is None:
        return "n/a"
    cell = f"{fmt(step['p50_ms'], 1)} / {fmt(step['p99_ms'], 1)}"
    if step.get("kept_up") == 0:
        cell += " (behind)"
    return cell


def max_cell(step):
    if not step or step.get("achieved_per_s") is None:
        return "n/a"
    return f"{fmt(step['achieved_per_s'])}/s: {latency_cell(step)}"


def report(out_dir):
    machine, rows, failed, extra = load(out_dir)
    out = ["# sluice benchmark report", ""]
    out += ["## Machine", ""] + [f"- {line}" for line in machine] + [""]
    if failed:
        out += [f"**Failed runs** (see logs/): {', '.join(failed)}", ""]
    out += [
        "## Summary", "",
        "Throughput: changes per second drained from a replication slot holding the whole "
        "workload (inserts, updates, deletes), until the slot confirms the last one, i.e. "
        "every change durable in the sink. Ratio: to `pg_recvlogical` writing the same WAL to "
        "/dev/null in the same run. Latency: p50 / p99 in ms from the PostgreSQL commit to "
        "the sink's acknowledgement, from the daemon's `sluice_sink_commit_latency_seconds` "
        "(one observation per batch); \"max\" is the highest paced rate tried that the sink "
        "kept up with (see below). Snapshot: rows/s of an initial snapshot into the sink, "
        "ratio to `COPY ... TO STDOUT`. CPU: user + system seconds of the sluice process "
        "over the throughput run, per million changes.",
        "",
        "| sink | changes/s | pg_recvlogical/s | ratio | latency 1k/s | latency 10k/s "
        "| max: rate, latency | snapshot rows/s | snapshot / COPY | peak RSS MiB "
        "| CPU s per 1M changes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        snap = r["snapshot"] or {}
        out.append(
            f"| {r['sink']} | {fmt(r['rate'])} | {fmt(r['recvlogical'])} | {fmt_ratio(r['ratio'])} "
            f"| {latency_cell(r['latency'].get('1000'))} "
            f"| {latency_cell(r['latency'].get('10000'))} "
            f"| {max_cell(r['latency'].get('max'))} "
            f"| {fmt(snap.get('sluice_rows_per_s'))} | {fmt_ratio(snap.get('ratio'))} "
            f"| {fmt(r['peak_rss_mib'], 1)} | {fmt(r['cpu_per_million'], 2)} |"
        )
    out += ["", "![throughput and latency](report.svg)", ""]
    for r in rows:
        out += [f"## {r['label']}", "", "| figure | value |", "|---|---|"]
        out.append(f"| changes in the throughput run | {fmt(r['changes'])} |")
        out.append(f"| sluice changes/s | {fmt(r['rate'])} |")
        out.append(f"| pg_recvlogical changes/s (same WAL, same run) | {fmt(r['recvlogical'])} |")
        out.append(f"| ratio | {fmt_ratio(r['ratio'])} |")
        if r["own_baseline"]:
            rate, ratio, what = r["own_baseline"]
            out.append(f"| {what}: rows/s, ratio | {fmt(rate)}, {fmt_ratio(ratio)} |")
        out.append(f"| peak RSS (throughput run) | {fmt(r['peak_rss_mib'], 1)} MiB |")
        out.append(f"| CPU seconds per 1M changes | {fmt(r['cpu_per_million'], 2)} |")
        for step in STEPS:
            s = r["latency"].get(step)
            if not s:
                out.append(f"| latency at {step} | n/a |")
                continue
            name = f"{int(s['target_per_s']):,}/s" if s.get("target_per_s") else step
            if step == "max":
                name = f"max (target {name})"
            out.append(
                f"| latency at {name}: committed/s, p50 / p99 ms, batches, drained after "
                f"last commit | {fmt(s['achieved_per_s'])}, {latency_cell(s)}, "
                f"{fmt(s['batches'])}, {fmt(s['drain_s'], 2)} s |"
            )
        snap = r["snapshot"]
        if snap:
            out.append(
                f"| snapshot of {fmt(snap['rows'])} rows: sluice rows/s, COPY rows/s, ratio, "
                f"peak RSS | {fmt(snap['sluice_rows_per_s'])}, "
                f"{fmt(snap['baseline_rows_per_s'])}, {fmt_ratio(snap['ratio'])}, "
                f"{fmt(snap['peak_rss_mib'], 1)} MiB |"
            )
        else:
            out.append("| snapshot | n/a |")
        out.append("")
    for e in extra:
        out += [
            "Cross-check, Kafka only (bench/kafka.sh): commit-to-consumer latency measured "
            f"by a consumer at {e.get('rate_per_s')} changes/s: p50 {e.get('p50_ms')} ms, "
            f"p99 {e.get('p99_ms')} ms (the consumer's fetch included).", "",
        ]
    out += [
        "## How the figures are made", "",
        "- Latency steps: `bench/latency.sh` runs one daemon per sink with "
        "`max_batch_wait_ms = 5`; a paced procedure commits the rate for the step's "
        "seconds in about 100 transactions per second (synchronous commit); p50/p99 come "
        "from the difference of two `/metrics` scrapes, interpolated inside the histogram's "
        "buckets (ten per decade).",
        "- \"max\": paced at fractions of the sink's sustained throughput above (MAX_FRACTIONS: "
        "80%, 60%, then 40% by default, 50% with QUICK=1), "
        "stopping at the first rate the sink keeps up with (everything acknowledged within "
        "1 s of the last commit); \"(behind)\" marks a step it did not keep up with. The "
        "rate shown is what the inserter committed, which a small machine can hold below "
        "the target.",
        "- Every server runs on the same machine as sluice and competes with it for CPU.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(report(sys.argv[1]))
