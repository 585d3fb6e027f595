"""How ``eriop bench`` reports: the machine, a table, targets, a Markdown block,
and the sanity checks of the smoke mode (never thresholds)."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

import psutil

from pipeline import compiled

Result = dict[str, Any]

#: the targets of the 2-core development machine (docs/benchmarks.md)
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("telemetry e2e / raw COPY", "telemetry.ratio", ">=", 0.9),
    ("GPS e2e / raw COPY", "gps.ratio", ">=", 0.7),
    ("telemetry worker / PostgreSQL CPU per row", "telemetry.worker_over_postgres", "<=", 1.0),
    ("GPS worker / PostgreSQL CPU per row", "gps.worker_over_postgres", "<=", 1.0),
    ("alert p99 alone (ms)", "alerts.alone.p99_ms", "<=", 50.0),
    # "flood" is the run with the highest p99, so this holds for every run
    ("alert p99 under telemetry flood, every run (ms)", "alerts.flood.p99_ms", "<=", 100.0),
    ("worker RSS under overload (MB)", "overload.worker_peak_rss_mb", "<=", 500.0),
)


def machine() -> Result:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "build": compiled.describe(),
    }


def lookup(results: Mapping[str, Any], path: str) -> Any:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def targets(results: Mapping[str, Any]) -> list[Result]:
    out = []
    for name, path, op, bound in TARGETS:
        value = lookup(results, path)
        met = None
        if isinstance(value, int | float):
            met = value >= bound if op == ">=" else value <= bound
        out.append({"name": name, "target": f"{op} {bound:g}", "measured": value, "met": met})
    return out


def sanity(results: Mapping[str, Any]) -> list[str]:
    """What is wrong with the numbers, if anything: rates positive, ratios in
    (0, 2), percentiles ordered, every alert received. Not thresholds."""
    problems = []
    for key in ("telemetry", "gps"):
        for field in ("e2e_rows_per_s", "copy_rows_per_s"):
            if not (lookup(results, f"{key}.{field}") or 0) > 0:
                problems.append(f"{key}.{field} is not positive")
        ratio = lookup(results, f"{key}.ratio")
        if not isinstance(ratio, int | float) or not 0 < ratio < 2:
            problems.append(f"{key}.ratio {ratio!r} is outside (0, 2)")
    runs = lookup(results, "alerts.flood_runs") or []
    phases = [("alone", lookup(results, "alerts.alone"))]
    phases += [(f"flood_runs[{i}]", run) for i, run in enumerate(runs)] or [
        ("flood", lookup(results, "alerts.flood"))
    ]
    for phase, found in phases:
        lat = found or {}
        seq = [lat.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        nums = [float(v) for v in seq if isinstance(v, int | float)]
        if len(nums) != len(seq) or not 0 < nums[0] <= nums[1] <= nums[2] <= nums[3]:
            problems.append(f"alerts.{phase} percentiles not ordered: {seq}")
        if lat.get("received") != lat.get("sent"):
            problems.append(f"alerts.{phase}: {lat.get('received')} of {lat.get('sent')} arrived")
    if not (lookup(results, "overload.worker_peak_rss_mb") or 0) > 0:
        problems.append("overload RSS not measured")
    if not (lookup(results, "scaling.e2e_rows_per_s") or 0) > 0:
        problems.append("scaling rate is not positive")
    return problems


def _lat(d: Mapping[str, Any]) -> str:
    return (
        f"{d['p50_ms']:.1f} / {d['p95_ms']:.1f} / {d['p99_ms']:.1f} / {d['max_ms']:.1f}"
        f"  ({d['received']}/{d['sent']} at {d['rate_per_s']:g}/s)"
    )


def _ratio(d: Mapping[str, Any]) -> str:
    spread = d.get("ratio_range")
    if not spread:
        return f"{d['ratio']:.2f}"
    return f"{d['ratio']:.2f}  ({d['ratio_of']}; {spread[0]:.2f} to {spread[1]:.2f})"


def _cpu(d: Mapping[str, Any]) -> str:
    c = d.get("cpu_cores")
    if not c:
        return "not measured"
    return " / ".join(f"{c[k]:.2f}" for k in ("worker", "broker", "postgres", "other"))


def _per_row(d: Mapping[str, Any]) -> str:
    c = d.get("cpu_us_per_row")
    if not c:
        return "not measured"
    parts = " / ".join(f"{c[k]:.1f}" for k in ("worker", "broker", "postgres", "other"))
    bare = d.get("copy_postgres_us_per_row")
    copy = "" if bare is None else f"; PostgreSQL in the raw COPY {bare:.1f}"
    return f"{parts}  (worker / PostgreSQL {d.get('worker_over_postgres')}{copy})"


def _flood_rows(a: Mapping[str, Any]) -> list[tuple[str, str]]:
    runs = a.get("flood_runs") or [a["flood"]]
    out = []
    for i, run in enumerate(runs, 1):
        out += [
            (f"alert ms p50/p95/p99/max, flood run {i}", _lat(run)),
            (
                "  flood: CPU cores worker/broker/postgres/other; telemetry produced/committed; "
                "telemetry held back for alerts",
                f"{_cpu(run)}; {run['telemetry_offered_msgs_per_s']:,} / "
                f"{run['telemetry_committed_msgs_per_s']:,} msgs/s "
                f"(x{run['telemetry_points_per_message']} points); "
                f"{run.get('bulk_yield_share', 0):.2f} s/s",
            ),
        ]
    return out


def rows(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    t, g, a, o, s = (r[k] for k in ("telemetry", "gps", "alerts", "overload", "scaling"))
    return [
        ("telemetry e2e (points/s)", f"{t['e2e_rows_per_s']:,}"),
        ("telemetry raw COPY (rows/s)", f"{t['copy_rows_per_s']:,}"),
        ("telemetry e2e / COPY", _ratio(t)),
        ("telemetry CPU cores, worker/broker/postgres/other", _cpu(t)),
        ("telemetry CPU us per point, worker/broker/postgres/other", _per_row(t)),
        ("GPS e2e (fixes/s)", f"{g['e2e_rows_per_s']:,}"),
        ("GPS raw COPY (rows/s)", f"{g['copy_rows_per_s']:,}"),
        ("GPS e2e / COPY", _ratio(g)),
        ("GPS CPU cores, worker/broker/postgres/other", _cpu(g)),
        ("GPS CPU us per fix, worker/broker/postgres/other", _per_row(g)),
        ("alert ms p50/p95/p99/max, alone", _lat(a["alone"])),
        *_flood_rows(a),
        ("worker peak RSS alone (MB)", f"{a['worker_peak_rss_mb_alone']:.0f}"),
        ("worker peak RSS at capacity (MB)", f"{t['worker_peak_rss_mb']:.0f}"),
        (
            "worker peak RSS overload (MB)",
            f"{o['worker_peak_rss_mb']:.0f}  (backlog x{o['offered_over_taken']} "
            f"what it took in {o['window_s']:g}s)",
        ),
        ("telemetry, 1 worker (points/s)", f"{t['e2e_rows_per_s']:,}"),
        (
            "telemetry, 2 workers (points/s)",
            f"{s['e2e_rows_per_s']:,}  (records per worker {s['records_per_worker']})",
        ),
    ]


def table(r: Mapping[str, Any]) -> str:
    body = rows(r)
    width = max(len(k) for k, _ in body)
    lines = [f"{k:<{width}}  {v}" for k, v in body]
    lines.append("")
    for tg in r.get("targets", []):
        mark = {True: "met", False: "NOT met", None: "n/a"}[tg["met"]]
        lines.append(f"target {tg['name']} {tg['target']}: {tg['measured']} -> {mark}")
    return "\n".join(lines)


def markdown(r: Mapping[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
        f"{m['platform']}, Python {m['python']}, PostgreSQL {r.get('postgres', '?')}  ",
        f"Volume path: {m.get('build', '?')}  ",
        f"Run time: {r['duration_s']:.0f} s; 1-minute load average "
        f"{r.get('loadavg_1m_at_start')} at start, {r.get('loadavg_1m_at_end')} at end",
        "",
        "| measurement | result |",
        "|---|---|",
    ]
    out += [f"| {k.strip()} | {v} |" for k, v in rows(r)]
    out += ["", "| target | measured | met |", "|---|---|---|"]
    for tg in r.get("targets", []):
        mark = {True: "yes", False: "**no**", None: "n/a"}[tg["met"]]
        out.append(f"| {tg['name']} {tg['target']} | {tg['measured']} | {mark} |")
    return "\n".join(out) + "\n"


def broker_table(r: Mapping[str, Any]) -> str:
    """``eriop bench --broker`` as Markdown: the broker's delivery, window by window."""
    b = r["broker"]
    m = r["machine"]
    lines = [
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM  ",
        f"Alerts at {b['alert_rate_per_s']:g}/s timed at a bare Kafka consumer; telemetry "
        f"produced at {b['flood_msgs_per_s']:g} msgs/s ({b['flood_produced_msgs_per_s']:,} "
        "reached) with no worker consuming it",
        "",
        "| window | received | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    windows = [("alone", b["alone"])] + [
        (f"{(i + 1) * b['window_s']:g} s of flood", w) for i, w in enumerate(b["windows"])
    ]
    for name, w in windows:
        lines.append(
            f"| {name} | {w['received']}/{w['sent']} | {w['p50_ms']:.1f} | "
            f"{w['p99_ms']:.1f} | {w['max_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"
