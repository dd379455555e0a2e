"""Prometheus metrics, scraped per service at `/<service>/metrics`.

Counters and histograms live in this module, one set per process, each with a `service`
label; a service's scrape shows its own series, the process's, and gauges read at scrape
time (outbox backlog, consumer lag, database pool). With several workers per service set
PROMETHEUS_MULTIPROC_DIR (an empty directory): prometheus-client then keeps counters and
histograms in files the workers share, and any worker's scrape adds them up; the
scrape-time gauges are that worker's view (the backlog is the database's, so the same).
"""

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from shared import logs
from shared.audit_http import template_of

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Histogram(
    "frontline_http_request_duration_seconds",
    "HTTP requests by route template and status, in seconds",
    ["service", "method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
SIGN_INS = Counter(
    "frontline_sign_ins_total",
    "Sign-ins stored, by status and reason (a flagged sign-in counts once per reason)",
    ["service", "status", "reason"],
)
EVENTS = Counter(
    "frontline_events_total",
    "Events taken by consumers: applied, duplicate, ignored, retried, failed, dead_lettered",
    ["service", "type", "outcome"],
)
WEEK_CLOSE = Histogram(
    "frontline_week_close_seconds",
    "Closing one ISO week for every cadre, in seconds",
    ["service"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
BATCH_BUILD = Histogram(
    "frontline_batch_build_seconds",
    "Building or refreshing one stipend batch, in seconds",
    ["service"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def observe_request(
    scope: dict[str, Any], state: dict[str, Any], route: str, status: int, seconds: float
) -> None:
    """A request's latency by route template, and its access line (shared/logs.py)."""
    path = scope.get("path", "")
    service = path.split("/", 2)[1] if path.count("/") >= 2 else ""
    REQUESTS.labels(service, scope["method"], route, str(status)).observe(seconds)
    principal = state.get("principal")
    logs.log_request(
        sample=scope["app"].state.kernel.access_log_sample,
        service=service,
        method=scope["method"],
        route=route,
        status=status,
        seconds=seconds,
        user=principal.username if principal else None,
    )


def route_label(scope: dict[str, Any]) -> str:
    """`/registry/v1/cadres/{cadre_id}` for `/registry/v1/cadres/3f…`; never a raw path,
    whatever a client puts in it (an unmatched path is `unmatched`)."""
    return template_of(scope) or "unmatched"


class _ServiceView(Collector):
    """The process's series narrowed to one service (embedded mode runs three)."""

    def __init__(self, source: CollectorRegistry, name: str):
        self.source, self.name = source, name

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            family.samples = [
                s for s in family.samples if s.labels.get("service", self.name) == self.name
            ]
            yield family


def _gauges(name: str, state: dict[str, Any]) -> list[Metric]:
    backlog = GaugeMetricFamily(
        "frontline_outbox_unsent", "Outbox rows not yet published", labels=["service"]
    )
    age = GaugeMetricFamily(
        "frontline_outbox_oldest_age_seconds",
        "Age of the oldest unpublished outbox row",
        labels=["service"],
    )
    if state.get("outbox") is not None:
        backlog.add_metric([name], state["outbox"]["unsent"])
        age.add_metric([name], state["outbox"]["oldest_age_seconds"])
    lag = GaugeMetricFamily(
        "frontline_consumer_lag",
        "Events behind, per topic and partition, as this consumer sees them",
        labels=["service", "topic", "partition"],
    )
    for (topic, partition), behind in state.get("lag", {}).items():
        if behind is not None:
            lag.add_metric([name, topic, str(partition)], behind)
    pool = GaugeMetricFamily(
        "frontline_db_pool_in_use", "Database connections checked out", labels=["service"]
    )
    pool.add_metric([name], state.get("pool_in_use", 0))
    return [backlog, age, lag, pool]


class _Static(Collector):
    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


async def render(runtime: "ServiceRuntime") -> bytes:
    """One service's exposition: its counters and histograms, then its live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)
    else:
        source = REGISTRY
    view = CollectorRegistry(auto_describe=False)
    view.register(_ServiceView(source, runtime.name))
    view.register(_Static(_gauges(runtime.name, await runtime.metrics_state())))
    return generate_latest(view)
