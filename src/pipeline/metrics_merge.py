"""One ``/metrics`` page for the worker and its bulk process.

Both processes declare the same metric families (:mod:`pipeline.metrics`), and
Prometheus rejects a page that declares a family twice, so the pages are
parsed and merged family by family. A sample both pages carry with the same
labels (the process-wide gauges: up, build info, dependency health) is taken
from the first page, the worker's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_exposition(pages: Sequence[str]) -> bytes:
    """The text exposition of all ``pages`` as one page."""
    families: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for page in pages:
        for fam in text_string_to_metric_families(page):
            into = families.get(fam.name)
            if into is None:
                into = families[fam.name] = Metric(fam.name, fam.documentation, fam.type)
            for sample in fam.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    into.samples.append(sample)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)
