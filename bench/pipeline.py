"""The distributed pipeline on Apache Kafka: three service processes on PostgreSQL, sign-ins
and findings at a steady rate, and how long until incentives has changed the eligibility.

Starts PostgreSQL (or uses the local one), one Kafka broker and the three services with
production polling settings (fetch.max.wait 500 ms, relay idle 5 s: the relay is woken by
each commit in its own process). Builds a county with `frontline simulate`'s code, then
sends RATE events/s for SECONDS: sign-ins of the county's phones, and one finding in
twenty (each finding opens an entry and an accountability action, so it changes its
cadre's eligibility). A Kafka consumer on incentives' topic notes when each
`incentives.eligibility.changed` arrives; a finding's latency is from its 201 to the first
change of its cadre after it (so it includes incentives' relay and the broker, an upper
bound). Then: how long until every outbox and consumer lag is back to 0, each service's
idle CPU, and each service's peak RSS (sampled every second through the load).

  .venv/bin/python bench/pipeline.py [SECONDS] [RATE]      (default 60 200)
"""

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Table  # noqa: E402
from idle_cpu_kafka import TICK, group_ticks  # noqa: E402

from services.simulate import build_county, live_stream, token_minter  # noqa: E402
from shared.clock import LOCAL_TZ  # noqa: E402
from shared.devstack.kafka import kafka_cluster  # noqa: E402
from shared.devstack.postgres import postgres_server  # noqa: E402
from shared.devstack.stack import SERVICES, Stack  # noqa: E402

CADRES = 60
FINDING_EVERY = 20  # one event in twenty is a finding
IN_FLIGHT = 64


def group_rss_mb(pgid: int) -> float:
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            with open(f"/proc/{pid}/status") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lag_and_unsent(clients: dict[str, httpx.AsyncClient]) -> int:
    total = 0
    for s, c in clients.items():
        body = (await c.get(f"/{s}/health")).json()
        total += body.get("outbox", {}).get("unsent") or 0
        total += sum(v or 0 for v in (body.get("consumer_lag") or {}).values())
    return total


async def settle(clients, timeout: float) -> float:
    """Seconds until every outbox is published and every lag is 0, twice in a row."""
    start, calm = time.monotonic(), 0
    while calm < 2:
        calm = calm + 1 if await lag_and_unsent(clients) == 0 else 0
        if time.monotonic() - start > timeout:
            return float("inf")
        await asyncio.sleep(0.2)
    return time.monotonic() - start


async def inspector_headers(registry: httpx.AsyncClient, admin: dict) -> dict:
    username, password = f"insp{uuid.uuid4().hex[:8]}", "pass-" + uuid.uuid4().hex
    r = await registry.post(
        "/registry/v1/users",
        json={"username": username, "password": password, "roles": ["inspector"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await registry.post(
        "/registry/v1/auth/token", data={"username": username, "password": password}
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def watch(bootstrap: str, topic: str, seen: dict, ready: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        while not consumer.assignment():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.1)
        await consumer.seek_to_end()
        ready.set()
        async for msg in consumer:
            env = orjson.loads(msg.value)
            if env["type"] == "incentives.eligibility.changed":
                seen.setdefault(env["payload"]["cadre_id"], []).append(time.monotonic())
    finally:
        await consumer.stop()


async def load(stack: Stack, bootstrap: str, seconds: float, rate: float) -> dict:
    clients = {s: httpx.AsyncClient(base_url=stack.url(s), timeout=30) for s in SERVICES}
    admin_login = await clients["registry"].post(
        "/registry/v1/auth/token",
        data={"username": stack.admin[0], "password": stack.admin[1]},
    )
    admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
    county = await build_county(
        stack.url("registry"),
        cadres=CADRES,
        admin=stack.admin,
        mint_token=token_minter(stack.private_key),
        outside_share=0.0,
    )
    inspector = await inspector_headers(clients["registry"], admin)
    await settle(clients, 120)

    seen: dict[str, list[float]] = {}
    ready = asyncio.Event()
    topic = f"s{stack.run_id}.frontline.incentives"
    watcher = asyncio.create_task(watch(bootstrap, topic, seen, ready))
    await asyncio.wait_for(ready.wait(), 60)

    n = int(seconds * rate)
    now = datetime.now(LOCAL_TZ)
    stream = live_stream(county.phones, n, now)
    findings: list[tuple[str, float]] = []
    statuses: dict[int, int] = {}
    rss = {s: 0.0 for s in SERVICES}
    gate = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    assessment = httpx.AsyncClient(base_url=stack.url("assessment"), timeout=30, limits=limits)

    async def one(i: int, phone, body: dict) -> None:
        async with gate:
            if i % FINDING_EVERY == FINDING_EVERY - 1:
                observed = (now - timedelta(hours=1)).isoformat()
                finding = {
                    "subject_type": "cadre", "subject_id": phone.cadre_id,
                    "kind": "absent_from_post", "severity": "major", "observed_at": observed,
                    "description": "not in the village on an unannounced visit",
                    "evidence_urls": [],
                }  # fmt: skip
                r = await assessment.post(
                    "/assessment/v1/findings", json=finding, headers=inspector
                )
                if r.status_code == 201:
                    findings.append((phone.cadre_id, time.monotonic()))
            else:
                r = await assessment.post(
                    "/assessment/v1/sign-ins", json=body, headers=phone.headers
                )
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    async def sample_rss() -> None:
        while True:
            for s in SERVICES:
                rss[s] = max(rss[s], group_rss_mb(stack.procs[s].pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample_rss())
    start = time.monotonic()
    tasks = []
    for i, (phone, body) in enumerate(stream):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, phone, body)))
    await asyncio.gather(*tasks)
    sent_for = time.monotonic() - start
    back_to_zero = await settle(clients, 60)
    await asyncio.sleep(1)  # the last changes reach the watcher
    sampler.cancel()
    watcher.cancel()
    latencies = []
    for cadre_id, at in findings:
        after = [t for t in seen.get(str(cadre_id), []) if t >= at]
        latencies.append(min(after) - at if after else float("inf"))
    for c in clients.values():
        await c.aclose()
    await assessment.aclose()
    return {
        "sent": n, "achieved_rate": n / sent_for, "statuses": statuses, "findings": len(findings),
        "latencies": latencies, "back_to_zero": back_to_zero, "rss": rss,
    }  # fmt: skip


def main(seconds: float, rate: float) -> int:
    env = {"FRONTLINE_KAFKA_FETCH_MAX_WAIT_MS": "500", "FRONTLINE_RELAY_IDLE_SECONDS": "5.0"}
    with postgres_server() as pg, kafka_cluster(1) as kafka:
        stack = Stack(pg, kafka.bootstrap, Path(tempfile.mkdtemp(prefix="fl-pipe-")), extra_env=env)
        try:
            stack.up()
            out = asyncio.run(load(stack, kafka.bootstrap, seconds, rate))
            time.sleep(5)
            pgids = {s: stack.procs[s].pid for s in SERVICES}
            before, t0 = {s: group_ticks(p) for s, p in pgids.items()}, time.monotonic()
            time.sleep(20)
            elapsed = time.monotonic() - t0
            idle = {
                s: (group_ticks(p) - before[s]) / TICK / elapsed * 100 for s, p in pgids.items()
            }
        finally:
            stack.down()
            stack.drop_databases()
    lat = out["latencies"]
    missing = sum(1 for v in lat if v == float("inf"))
    print(f"sent {out['sent']} at {out['achieved_rate']:.0f}/s, statuses {out['statuses']},"
          f" findings {out['findings']}, no change seen for {missing}", flush=True)  # fmt: skip
    table = Table(f"Distributed pipeline on Apache Kafka, {rate:g} events/s for {seconds:g} s")
    table.info("events sent / achieved rate", f"{out['sent']:,} / {out['achieved_rate']:.0f}/s")
    table.info("finding -> eligibility changed, p50", f"{percentile(lat, 0.5) * 1000:,.0f} ms")
    table.limit("finding -> eligibility changed, p99", percentile(lat, 0.99) * 1000, 1000, "ms",
                f"{len(lat)} findings, {missing} unseen")  # fmt: skip
    table.limit("outbox and consumer lag back to 0 after", out["back_to_zero"], 5, "s")
    for s in SERVICES:
        table.limit(f"{s} idle CPU after", idle[s], 2, "%")
    for s in SERVICES:
        table.limit(f"{s} peak RSS", out["rss"][s], 300, "MB")
    table.print()
    return 0


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    sys.exit(main(*(args + [60.0, 200.0][len(args) :])))
