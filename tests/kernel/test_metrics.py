"""Each service's /metrics: Prometheus text with the series operators watch."""

import uuid

from prometheus_client.parser import text_string_to_metric_families

SERVICES = ["registry", "assessment", "incentives"]


async def scrape(system, name: str) -> dict[str, list]:
    r = await system.client.get(f"/{name}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def request_counts(series) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in series["frontline_http_request_duration_seconds"]
        if s.name.endswith("_count")
    }


async def test_request_latency_is_labelled_by_route_template_and_status(system):
    # Counters belong to the process: compare with what an earlier test left.
    before = request_counts(await scrape(system, "registry"))
    headers = system.headers()
    for _ in range(2):
        r = await system.client.get(f"/registry/v1/cadres/{uuid.uuid4()}", headers=headers)
        assert r.status_code == 404
    await system.client.get("/registry/v1/no-such-route")
    series = await scrape(system, "registry")
    counts = request_counts(series)
    cadre = ("GET", "/registry/v1/cadres/{cadre_id}", "404")
    assert counts[cadre] - before.get(cadre, 0) == 2
    unmatched = ("GET", "unmatched", "404")
    assert counts[unmatched] - before.get(unmatched, 0) == 1
    # Another service's requests are not in this service's view.
    assert {s.labels["service"] for s in series["frontline_http_request_duration_seconds"]} == {
        "registry"
    }


async def test_backlog_lag_and_pool_are_read_at_scrape_time(system):
    for name in SERVICES:
        series = await scrape(system, name)
        [unsent] = series["frontline_outbox_unsent"]
        assert unsent.labels == {"service": name} and unsent.value == 0
        assert series["frontline_outbox_oldest_age_seconds"][0].value == 0
        assert series["frontline_db_pool_in_use"][0].value >= 0
    lag = (await scrape(system, "assessment"))["frontline_consumer_lag"]
    assert {(s.labels["topic"], s.labels["partition"]) for s in lag} == {
        ("frontline.registry", "0")
    }
    assert all(s.value == 0 for s in lag)


async def test_batch_builds_are_timed(system):
    def builds(series) -> float:
        return sum(
            s.value for s in series["frontline_batch_build_seconds"] if s.name.endswith("_count")
        )

    before = builds(await scrape(system, "incentives"))
    r = await system.client.post(
        "/incentives/v1/stipend-batches",
        json={"month": "2026-11"},
        headers=system.headers("finance"),
    )
    assert r.status_code == 201, r.text
    assert builds(await scrape(system, "incentives")) - before == 1
