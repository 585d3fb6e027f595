"""One ``/metrics`` page for the worker and its bulk processes, and reading one.

Every process declares the same metric families (:mod:`pipeline.metrics`), and
Prometheus rejects a page that declares a family twice, so the pages are
parsed and merged family by family:

- counters, histograms and summaries are summed over the processes (the
  worker's records consumed are every process's records consumed);
- a gauge is the worker's own value where it has one (up, build info,
  dependency health), else the highest any process reports (lag, paused),
  except the gauges of :data:`SUMMED_GAUGES`, whose processes' shares add up
  (partitions assigned to a group).

A restarted process starts its counters from zero; :func:`counters_only` keeps
the last page of a process that ended so that the worker can go on adding it,
and merged counters never go down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

_SUMMED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
#: gauges that are each process's share of a whole
SUMMED_GAUGES = frozenset({"eriop_consumer_partitions_assigned"})

Key = tuple[str, tuple[tuple[str, str], ...]]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _combine(kind: str, name: str, old: float, new: float, own: bool) -> float:
    if kind in _SUMMED_TYPES or name in SUMMED_GAUGES:
        # a series' creation time is its earliest one; every other sample adds up
        return min(old, new) if name.endswith("_created") else old + new
    return old if own else max(old, new)


def merge_exposition(pages: Sequence[str]) -> bytes:
    """The text exposition of all ``pages`` as one page; ``pages[0]`` is the worker's own."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[Key, Sample]] = {}
    owned: set[Key] = set()
    for index, page in enumerate(pages):
        for fam in text_string_to_metric_families(page):
            if fam.name not in families:
                families[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                values[fam.name] = {}
            into = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                prev = into.get(key)
                if prev is None:
                    into[key] = s
                else:
                    own = key in owned
                    value = _combine(fam.type, s.name, prev.value, s.value, own)
                    into[key] = prev._replace(value=value)
                if index == 0:
                    owned.add(key)
    for name, fam in families.items():
        fam.samples = list(values[name].values())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


def counters_only(page: str) -> str:
    """The families of ``page`` that add up over processes (counters, histograms, ...)."""
    if not page:
        return ""
    kept = [fam for fam in text_string_to_metric_families(page) if fam.type in _SUMMED_TYPES]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(kept))
    return generate_latest(registry).decode()


def metric_sum(page: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` on an exposition page whose labels include ``labels``."""
    total = 0.0
    for fam in text_string_to_metric_families(page):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
