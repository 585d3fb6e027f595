"""``eriop status``: a running worker's state, from its ``/health`` and ``/metrics``.

Two scrapes of ``/metrics`` a moment apart give per-topic rates (records taken,
stored, duplicate, dead-lettered, skipped per second); the second one gives the
consumer lag, paused streams, partitions assigned and time since the last
rebalance per consumer group, the outbox backlog and the dead letters so far.
``/health`` gives the dependencies and the bulk processes.

Exit codes: 0 the worker answers and is healthy, 1 it answers and reports itself
unhealthy, 69 nothing answers at the address.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline.errors import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, TransientError
from pipeline.runtime.metrics_merge import metric_sum
from pipeline.settings import Settings

TIMEOUT_S = 5.0
OUTCOMES = ("stored", "duplicate", "dead_lettered", "skipped")


class Unreachable(TransientError):
    """Nothing usable answers at the address (exit 69)."""


@dataclass(frozen=True)
class Scrape:
    health: dict[str, Any] | None
    first: str
    second: str
    interval_s: float


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 - http(s) only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:  # 503 from /health still carries the report
        return int(exc.code), exc.read()


def _metrics(base: str) -> str:
    try:
        status, body = _get(f"{base}/metrics")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"nothing answers at {base} ({reason})") from exc
    if status != 200:
        raise Unreachable(f"{base}/metrics answered HTTP {status}")
    return body.decode("utf-8", "replace")


def scrape(base: str, interval_s: float) -> Scrape:
    """Two metrics pages ``interval_s`` apart and the health report in between."""
    first = _metrics(base)
    began = time.monotonic()
    try:
        status, body = _get(f"{base}/health")
        health = json.loads(body) if status in (200, 503) else None
    except (OSError, ValueError):
        health = None
    time.sleep(max(interval_s - (time.monotonic() - began), 0.0))
    second = _metrics(base)
    return Scrape(health, first, second, max(time.monotonic() - began, 1e-3))


#: the series read; everything else on the page (histogram buckets, ...) is dropped first
WANTED = (
    "eriop_records_consumed_total",
    "eriop_records_total",
    "eriop_consumer_lag_records",
    "eriop_consumer_partitions_assigned",
    "eriop_consumer_rebalancing",
    "eriop_consumer_rebalance_age_seconds",
    "eriop_consumer_paused",
    "eriop_outbox_pending",
    "eriop_dead_letters_total",
)


def _family(name: str) -> str:
    return name.removesuffix("_total")


def only_wanted(page: str) -> str:
    """The lines of ``page`` that belong to the series in :data:`WANTED`."""
    names = set(WANTED)
    families = {_family(n) for n in WANTED}
    kept = []
    for line in page.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[2] in families | names:
                kept.append(line)
        elif line.split("{", 1)[0].split(" ", 1)[0] in names:
            kept.append(line)
    return "\n".join(kept) + "\n"


def _label_values(page: str, name: str, label: str) -> list[str]:
    values = {
        s.labels[label]
        for fam in text_string_to_metric_families(page)
        for s in fam.samples
        if s.name == name and label in s.labels
    }
    return sorted(values)


def _present(page: str, name: str) -> bool:
    return any(s.name == name for fam in text_string_to_metric_families(page) for s in fam.samples)


def summarize(s: Scrape) -> dict[str, Any]:
    """The state shown, as a JSON-ready object."""
    a, b, dt = only_wanted(s.first), only_wanted(s.second), s.interval_s
    consumed = "eriop_records_consumed_total"
    lag = "eriop_consumer_lag_records"
    topics = sorted(
        set(_label_values(b, consumed, "topic"))
        | set(_label_values(b, "eriop_records_total", "topic"))
        | set(_label_values(b, lag, "topic"))
    )
    per_topic: dict[str, Any] = {}
    for t in topics:
        taken = metric_sum(b, consumed, topic=t) - metric_sum(a, consumed, topic=t)
        row: dict[str, Any] = {"consumed_per_s": round(max(taken, 0.0) / dt, 2)}
        for outcome in OUTCOMES:
            now = metric_sum(b, "eriop_records_total", topic=t, outcome=outcome)
            before = metric_sum(a, "eriop_records_total", topic=t, outcome=outcome)
            row[f"{outcome}_per_s"] = round(max(now - before, 0.0) / dt, 2)
        row["consumed_total"] = metric_sum(b, consumed, topic=t)
        row["lag_records"] = metric_sum(b, lag, topic=t) if _has(b, lag, t) else None
        per_topic[t] = row
    groups: dict[str, Any] = {}
    assigned = "eriop_consumer_partitions_assigned"
    for g in _label_values(b, assigned, "group"):
        groups[g] = {
            "partitions": int(metric_sum(b, assigned, group=g)),
            "rebalancing": bool(metric_sum(b, "eriop_consumer_rebalancing", group=g)),
            "since_rebalance_s": (
                round(metric_sum(b, "eriop_consumer_rebalance_age_seconds", group=g), 1)
                if _present(b, "eriop_consumer_rebalance_age_seconds")
                else None
            ),
        }
    paused = "eriop_consumer_paused"
    streams = _label_values(b, paused, "stream")
    dead = "eriop_dead_letters_total"
    dead_by: dict[str, float] = {}
    for code in _label_values(b, dead, "error_code"):
        dead_by[code] = metric_sum(b, dead, error_code=code)
    health = s.health or {}
    return {
        "health": {
            "answered": s.health is not None,
            "status": health.get("status"),
            "ok": health.get("ok"),
            "ready": health.get("ready"),
            "dependencies": _dependencies(health.get("dependencies") or {}),
        },
        "interval_s": round(dt, 2),
        "topics": per_topic,
        "groups": groups or _health_groups(health),
        "paused_streams": [st for st in streams if metric_sum(b, paused, stream=st) >= 1],
        "outbox_pending": (
            metric_sum(b, "eriop_outbox_pending") if _present(b, "eriop_outbox_pending") else None
        ),
        "dead_letters_total": sum(dead_by.values()),
        "dead_letters_per_s": round(max(metric_sum(b, dead) - metric_sum(a, dead), 0.0) / dt, 2),
        "dead_letters_by_code": {k: v for k, v in dead_by.items() if v},
    }


def _has(page: str, name: str, topic: str) -> bool:
    return topic in _label_values(page, name, "topic")


def _dependencies(deps: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rep in deps.items():
        if name == "bulk_processes" and isinstance(rep, dict):
            procs = rep.get("processes") or []
            out[name] = {"ok": rep.get("ok"), "processes": len(procs),
                         "healthy": sum(1 for p in procs if p.get("ok"))}  # fmt: skip
        elif isinstance(rep, dict):
            out[name] = {
                "ok": rep.get("ok"),
                **({"error": rep["error"]} if rep.get("error") else {}),
            }
    return out


def _health_groups(health: dict[str, Any]) -> dict[str, Any]:
    groups = health.get("groups") or {}
    return {
        g: {"partitions": v.get("partitions"), "rebalancing": v.get("rebalancing"),
            "since_rebalance_s": v.get("since_s")}
        for g, v in groups.items() if isinstance(v, dict)
    }  # fmt: skip


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _table(head: list[str], rows: Iterable[list[str]]) -> list[str]:
    rows = [head, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]  # fmt: skip


def render(base: str, st: dict[str, Any]) -> str:
    h = st["health"]
    if h["answered"]:
        state = f"{h['status']} ({'ready' if h['ready'] else 'not ready'})"
    else:
        state = "health page not answering"
    lines = [f"worker at {base}: {state}"]
    deps = h["dependencies"]
    if deps:
        parts = []
        for name, d in deps.items():
            word = "up" if d.get("ok") else "DOWN"
            if name == "bulk_processes":
                parts.append(f"bulk processes {d['healthy']}/{d['processes']} healthy")
            else:
                parts.append(f"{name} {word}" + (f" ({d['error']})" if d.get("error") else ""))
        lines.append("dependencies: " + ", ".join(parts))
    lines.append(f"\ntopics (records/s over {st['interval_s']:.1f} s):")
    head = ["topic", "consumed", "consumed/s", "stored/s", "duplicate/s", "dead/s", "skipped/s",
            "lag"]  # fmt: skip
    lines += _table(head, (
        [t, _fmt(r["consumed_total"]), _fmt(r["consumed_per_s"]), _fmt(r["stored_per_s"]),
         _fmt(r["duplicate_per_s"]), _fmt(r["dead_lettered_per_s"]), _fmt(r["skipped_per_s"]),
         _fmt(r["lag_records"])]
        for t, r in st["topics"].items()
    ))  # fmt: skip
    if st["groups"]:
        lines.append("\nconsumer groups:")
        lines += _table(["group", "partitions", "rebalancing", "since last rebalance"], (
            [g, _fmt(v["partitions"]), "yes" if v["rebalancing"] else "no",
             "-" if v["since_rebalance_s"] is None else f"{v['since_rebalance_s']:.0f} s"]
            for g, v in st["groups"].items()
        ))  # fmt: skip
    lines.append("")
    lines.append("paused streams: " + (", ".join(st["paused_streams"]) or "none"))
    lines.append(f"outbox backlog: {_fmt(st['outbox_pending'])} alerts not yet published")
    by_code = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(st["dead_letters_by_code"].items()))
    lines.append(
        f"dead letters: {_fmt(st['dead_letters_total'])} since start "
        f"({_fmt(st['dead_letters_per_s'])}/s now)" + (f": {by_code}" if by_code else "")
    )
    return "\n".join(lines)


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``eriop status``; returns the exit code."""
    base = (args.url or f"http://127.0.0.1:{settings.metrics_port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"eriop status: --url must start with http:// or https://: {base}", file=sys.stderr)
        return EXIT_USAGE
    if args.interval <= 0:
        print("eriop status: --interval must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        state = summarize(scrape(base, args.interval))
    except Unreachable as exc:
        print(f"eriop status: {exc}; is the worker running there?", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps({"url": base, **state}, indent=2))
    else:
        print(render(base, state))
    return EXIT_OK if state["health"]["ok"] else EXIT_FAILURE
