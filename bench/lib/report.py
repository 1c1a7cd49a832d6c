#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into report.md (printed to stdout).

usage: report.py RESULTS.jsonl [ENV.json]

Ratios are ours/nginx, paired inside each repetition: for every repetition and cell,
mean(ours' two runs) / mean(nginx's two runs) of the ABBA block, which cancels a linear
drift of the machine during the block. The table shows the median of these per-repetition
ratios with [min–max]. Absolute numbers are medians over all runs of a system in a cell.
"""

import json
import statistics
import sys
from collections import defaultdict

SCEN_ORDER = {"tiny": 0, "64k": 1, "10m": 2, "post1m": 3}
BACKEND_ORDER = {"responder": 0, "php": 1, "fleet": 2}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def sig(x):
    """A number with about three significant digits, thousands separated."""
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 0.1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def ratio_cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} [{min(values):.2f}–{max(values):.2f}]"


def cells_of(rows):
    cells = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        key = (r["backend"], r["scenario"], r["conns"])
        cells[key][r["rep"]][r["system"]].append(r)
    order = sorted(
        cells,
        key=lambda k: (BACKEND_ORDER.get(k[0], 9), SCEN_ORDER.get(k[1], 9), k[2]),
    )
    return order, cells


def per_rep_ratio(reps, metric):
    out = []
    for systems in reps.values():
        ours = mean([r.get(metric) for r in systems.get("ours", [])])
        nginx = mean([r.get(metric) for r in systems.get("nginx", [])])
        if ours is not None and nginx:
            out.append(ours / nginx)
    return out


def all_runs(reps, system):
    return [r for systems in reps.values() for r in systems.get(system, [])]


def main():
    rows = load(sys.argv[1])
    env = {}
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            env = json.load(f)
    order, cells = cells_of(rows)
    nreps = len({r["rep"] for r in rows})
    out = []
    w = out.append

    w("# tower-fastcgi gateway vs nginx")
    w("")
    if env:
        w(f"- date: {env.get('date', '?')}; git: {env.get('git', '?')}")
        w(f"- machine: {env.get('machine', '?')}")
        w(f"- versions: {env.get('versions', '?')}")
        w(f"- settings: {env.get('settings', '?')}")
    w(f"- repetitions: {nreps}; cells: {len(order)}; runs: {len(rows)}")
    w("")
    w("## Ratios ours / nginx")
    w("")
    w(
        "Median over repetitions of the per-repetition ABBA ratio, [min–max]. "
        "rps: higher is better for us; CPU/req, p99 and peak RSS: lower is better. "
        "Errors: total over all runs (nginx / ours / direct)."
    )
    w("")
    w("| backend | scenario | c | rps | CPU/req | p99 | peak RSS | errors n/o/d |")
    w("|---|---|---:|---|---|---|---|---|")
    for key in order:
        reps = cells[key]
        backend, scenario, c = key
        errs = "/".join(
            str(sum(r["errors"] for r in all_runs(reps, s))) for s in ("nginx", "ours", "direct")
        )
        w(
            f"| {backend} | {scenario} | {c} | {ratio_cell(per_rep_ratio(reps, 'rps'))} | "
            f"{ratio_cell(per_rep_ratio(reps, 'gw_cpu_us_per_req'))} | "
            f"{ratio_cell(per_rep_ratio(reps, 'p99_ms'))} | "
            f"{ratio_cell(per_rep_ratio(reps, 'gw_hwm_kib'))} | {errs} |"
        )
    w("")
    w("## Absolute numbers")
    w("")
    w(
        "Medians over all runs of a system in the cell (nginx and ours: 2 per repetition; "
        "direct: 1). *direct* is fcgi_load driving the same FastCGI backend with no HTTP "
        "(the ceiling). CPU µs/req is the gateway's user+system CPU over the measured run "
        "divided by the requests completed; cores = the same CPU time over wall time. "
        "Peak RSS is VmHWM reset before the measured run (nginx: master + worker summed)."
    )
    w("")
    w(
        "| backend | scenario | c | rps nginx | rps ours | rps direct | p50 ms n / o / d | "
        "p99 ms n / o / d | CPU µs/req n / o | gw cores n / o | peak RSS MiB n / o | "
        "backend CPU µs/req n / o / d |"
    )
    w("|---|---|---:|---:|---:|---:|---|---|---|---|---|---|")
    for key in order:
        reps = cells[key]
        backend, scenario, c = key
        n, o, d = (all_runs(reps, s) for s in ("nginx", "ours", "direct"))

        def m(runs, metric):
            return median([r.get(metric) for r in runs])

        def mib(runs):
            v = m(runs, "gw_hwm_kib")
            return None if v is None else v / 1024

        w(
            f"| {backend} | {scenario} | {c} | {sig(m(n, 'rps'))} | {sig(m(o, 'rps'))} | "
            f"{sig(m(d, 'rps'))} | "
            f"{sig(m(n, 'p50_ms'))} / {sig(m(o, 'p50_ms'))} / {sig(m(d, 'p50_ms'))} | "
            f"{sig(m(n, 'p99_ms'))} / {sig(m(o, 'p99_ms'))} / {sig(m(d, 'p99_ms'))} | "
            f"{sig(m(n, 'gw_cpu_us_per_req'))} / {sig(m(o, 'gw_cpu_us_per_req'))} | "
            f"{m(n, 'gw_cores') or 0:.2f} / {m(o, 'gw_cores') or 0:.2f} | "
            f"{sig(mib(n))} / {sig(mib(o))} | "
            f"{sig(m(n, 'backend_cpu_us_per_req'))} / {sig(m(o, 'backend_cpu_us_per_req'))} / "
            f"{sig(m(d, 'backend_cpu_us_per_req'))} |"
        )
    w("")

    # Memory over the whole run: does the gateway give memory back?
    w("## Gateway memory over the run")
    w("")
    for system in ("nginx", "ours"):
        runs = [r for r in rows if r["system"] == system]
        if not runs:
            continue
        first, last = runs[0], runs[-1]
        peak = max(runs, key=lambda r: r["gw_hwm_kib"])
        w(
            f"- {system}: RSS {first['gw_rss_before_kib'] / 1024:.1f} MiB before the first run, "
            f"{last['gw_rss_after_kib'] / 1024:.1f} MiB after the last; highest peak "
            f"{peak['gw_hwm_kib'] / 1024:.1f} MiB ({peak['backend']} {peak['scenario']} "
            f"c={peak['conns']}, rep {peak['rep']})."
        )
    w("")

    anomalies = []
    for r in rows:
        why = []
        if r["errors"]:
            why.append(f"errors {r['errors']} {r.get('error_detail')}")
        if r["max_ms"] > 1000:
            why.append(f"max latency {r['max_ms']:.0f} ms")
        if why:
            anomalies.append(
                f"- rep {r['rep']} {r['backend']} {r['scenario']} c={r['conns']} "
                f"{r['system']} (run {r['order']}): " + "; ".join(why)
            )
    w("## Anomalies (errors, stalls over 1 s)")
    w("")
    out.extend(anomalies or ["- none"])
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
