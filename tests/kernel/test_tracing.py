"""One sign-in followed to the incentives handler it ends up in: by its trace, by its
request id in the logs, and in the event counters."""

from datetime import date

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from tests.assessment.factories import close, full_week, local, posted_cadre, sign_in, tree
from tests.kernel.test_metrics import scrape


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


async def late_sign_in_reaching_incentives(system):
    """A cadre posted for 2026-W47 misses a night; the week is closed; the phone's queued
    night sign-in arrives late, re-judges the week, and incentives hears the new verdict."""
    t = await tree(system)
    cadre = await posted_cadre(system, t.village)
    for at in full_week(date(2026, 11, 16), nights=3):
        assert (await sign_in(system, cadre, at)).status_code == 201
    await close(system, "2026-W47")
    await system.settle()
    r = await sign_in(system, cadre, local(2026, 11, 19, 21), key="late-night")
    assert r.status_code == 201
    await system.settle()
    return r


def stored(series, status: str) -> float:
    return sum(
        s.value
        for s in series.get("frontline_sign_ins", [])
        if s.name == "frontline_sign_ins_total" and s.labels["status"] == status
    )


def closes(series) -> float:
    return sum(s.value for s in series["frontline_week_close_seconds"] if s.name.endswith("_count"))


def applied_judgements(series) -> float:
    return sum(
        s.value
        for s in series.get("frontline_events", [])
        if s.name == "frontline_events_total"
        and s.labels["type"] == "assessment.presence.judged"
        and s.labels["outcome"] == "applied"
    )


async def test_a_late_sign_in_is_followed_to_the_incentives_handler(system, spans, lines):
    system.kernel.access_log_sample = 1.0  # the sign-in's access line (by default 1 in 100)
    counted = applied_judgements(await scrape(system, "incentives"))
    before = await scrape(system, "assessment")
    r = await late_sign_in_reaching_incentives(system)
    # The counters: the verdict at closing, then the re-judged one; 9 sign-ins; one close.
    assert applied_judgements(await scrape(system, "incentives")) - counted >= 2
    after = await scrape(system, "assessment")
    assert stored(after, "accepted") - stored(before, "accepted") == 9
    assert closes(after) - closes(before) == 1
    # The logs: the sign-in's access line and the incentives consumer's, one request id.
    request_id = r.headers["x-request-id"]
    mine = [x for x in lines() if x.get("request_id") == request_id]
    [access] = [x for x in mine if x["logger"] == "frontline.access"]
    assert access["route"] == "/assessment/v1/sign-ins" and access["status"] == 201
    handled = {
        (x["service"], x["event_type"], x["outcome"])
        for x in mine
        if x["logger"] == "frontline.events"
    }
    assert ("incentives", "assessment.presence.judged", "applied") in handled, handled
    # The trace: from the late sign-in's server span to the incentives consumer's span.
    done = spans.get_finished_spans()
    sign_ins = [s for s in done if s.name == "POST /assessment/v1/sign-ins"]
    server = max(sign_ins, key=lambda s: s.start_time)  # the late one
    assert server.kind == SpanKind.SERVER and r.status_code == 201
    trace_id = server.context.trace_id
    consumers = [s for s in done if s.kind == SpanKind.CONSUMER and s.context.trace_id == trace_id]
    groups = {s.attributes["messaging.consumer.group"].rsplit("-", 1)[-1] for s in consumers}
    assert "incentives" in groups, groups
    judged = [s for s in consumers if s.name == "consume assessment.presence.judged"]
    assert judged and all(s.parent is not None for s in judged)


async def test_an_incoming_traceparent_is_continued(system, spans):
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = await system.client.get(
        "/registry/v1/org-units", headers={**system.headers(), "traceparent": parent}
    )
    assert r.status_code == 200
    [server] = [s for s in spans.get_finished_spans() if s.name == "GET /registry/v1/org-units"]
    assert f"{server.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
