"""The distributed pipeline on Apache Kafka: three service processes on PostgreSQL, sign-ins
and findings at a steady rate, and how long until incentives has changed the eligibility.

Starts PostgreSQL (or uses the local one), one Kafka broker and the three services with
production polling settings (fetch.max.wait 500 ms, relay idle 5 s: the relay is woken by
each commit in its own process). Builds a county with `frontline simulate`'s code, then
sends RATE events/s for SECONDS: sign-ins of the county's phones, and one finding in
twenty (each finding opens an entry and an accountability action, so it changes its
cadre's eligibility), 64 requests in flight at most.

A watcher in a process of its own (the load generator's busy loop would delay it) reads
assessment's and incentives' topics: a finding's latency runs from the earlier of its 201
(as noted by the load generator) and its time in assessment (the entry event's
occurred_at) to the arrival of the first `incentives.eligibility.changed` carrying the
finding's request id (every event on the way carries it on). The stages between come from
the records' CreateTime and the change's occurred_at. Then: how long until every outbox
and consumer lag is back to 0, each service's idle CPU over 20 s, and each service's peak
RSS (sampled every second through the load). The load average is printed with the table:
on a shared machine read the figures with it. The accepted rate is a figure with a
target: a p99 measured below the offered rate does not meet the target.

BENCH_PROFILE=1 also records py-spy (raw stacks) of each service through the load.

  .venv/bin/python bench/pipeline.py [SECONDS] [RATE]      (default 60 200)
"""

import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Table  # noqa: E402
from idle_cpu_kafka import TICK, group_ticks  # noqa: E402

from services.simulate import build_county, live_stream, load_client, token_minter  # noqa: E402
from shared.clock import LOCAL_TZ  # noqa: E402
from shared.devstack.kafka import kafka_cluster  # noqa: E402
from shared.devstack.postgres import postgres_server  # noqa: E402
from shared.devstack.stack import SERVICES, Stack  # noqa: E402

CADRES = 60
JSON = {"Content-Type": "application/json"}
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


async def watch(bootstrap: str, topics: list[str], seen: dict, ready, stop) -> None:
    """Every eligibility change on incentives' topic, by the request id it carries (the
    finding's, passed on by each event on the way): when assessment's relay handed the
    finding's negative entry to its producer (that record's CreateTime), when incentives
    computed the change (its occurred_at), when incentives' relay handed it to the producer
    (CreateTime) and when it arrived here; all are this machine's wall clock."""
    from aiokafka import AIOKafkaConsumer

    entries: dict[str, tuple[float, float]] = {}
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        while not consumer.assignment():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.1)
        await consumer.seek_to_end()
        ready.set()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for msg in (m for ms in batches.values() for m in ms):
                kind = dict(msg.headers).get("type", b"").decode()
                if kind not in (ENTRY, CHANGED):
                    continue
                env = orjson.loads(msg.value)
                rid = env.get("request_id")
                at = datetime.fromisoformat(env["occurred_at"]).timestamp()
                if kind == ENTRY:
                    entries.setdefault(rid, (msg.timestamp / 1000, at))
                elif rid and rid not in seen:
                    entry, accepted = entries.get(rid, (float("inf"), float("inf")))
                    seen[rid] = (arrived, at, msg.timestamp / 1000, entry, accepted)
    finally:
        await consumer.stop()


ENTRY, CHANGED = "assessment.negative_entry.recorded", "incentives.eligibility.changed"


def watcher_process(bootstrap: str, topics: list[str], ready, stop, out) -> None:
    """The watcher runs in a process of its own, so that the load generator's busy event
    loop cannot delay when a change is seen."""
    seen: dict = {}
    asyncio.run(watch(bootstrap, topics, seen, ready, stop))
    out.send(seen)


def profile(stack: Stack, seconds: float) -> list[subprocess.Popen]:
    """BENCH_PROFILE=1: py-spy on each service through the load (raw stacks in the log dir)."""
    spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [spy, "record", "-p", str(stack.procs[s].pid), "-d", str(int(seconds)), "-f", "raw",
             "-o", str(stack.log_dir / f"{s}.pyspy.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for s in SERVICES
    ]  # fmt: skip


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

    topics = [f"s{stack.run_id}.frontline.{s}" for s in ("assessment", "incentives")]
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    results, sink = ctx.Pipe(duplex=False)
    watcher = ctx.Process(target=watcher_process, args=(bootstrap, topics, ready, stop, sink))
    watcher.start()
    if not await asyncio.to_thread(ready.wait, 60):
        raise RuntimeError("the watcher did not join incentives' topic")

    n = int(seconds * rate)
    now = datetime.now(LOCAL_TZ)
    stream = live_stream(county.phones, n, now)
    findings: list[tuple[str, float]] = []  # (request id, wall time of its 201)
    signin_ms: list[float] = []
    statuses: dict[int | str, int] = {}
    loads = [os.getloadavg()[0]]
    rss = {s: 0.0 for s in SERVICES}
    gate = asyncio.Semaphore(IN_FLIGHT)
    # aiohttp, as `frontline simulate`'s load: httpx cost 4 ms of CPU per request here.
    assessment = load_client(stack.url("assessment"), IN_FLIGHT)

    async def one(i: int, phone, body: dict) -> None:
        async with gate:
            t0 = time.monotonic()
            try:
                if i % FINDING_EVERY == FINDING_EVERY - 1:
                    observed = (now - timedelta(hours=1)).isoformat()
                    finding = {
                        "subject_type": "cadre", "subject_id": phone.cadre_id,
                        "kind": "absent_from_post", "severity": "major", "observed_at": observed,
                        "description": "not in the village on an unannounced visit",
                        "evidence_urls": [],
                    }  # fmt: skip
                    rid = uuid.uuid4().hex
                    async with assessment.post(
                        "/assessment/v1/findings",
                        data=orjson.dumps(finding),
                        headers={**inspector, "X-Request-ID": rid, **JSON},
                    ) as r:
                        await r.read()
                    if r.status == 201:
                        findings.append((rid, time.time()))
                else:
                    async with assessment.post(
                        "/assessment/v1/sign-ins",
                        data=orjson.dumps(body),
                        headers={**phone.headers, **JSON},
                    ) as r:
                        await r.read()
                    signin_ms.append((time.monotonic() - t0) * 1000)
                status: int | str = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:  # counted, not fatal
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1

    async def sample_rss() -> None:
        while True:
            for s in SERVICES:
                rss[s] = max(rss[s], group_rss_mb(stack.procs[s].pid))
            loads.append(os.getloadavg()[0])
            await asyncio.sleep(1)

    lags: list[float] = []

    async def loop_lag() -> None:
        """How late this process's loop wakes up: the 201s it times are that much late."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append((time.monotonic() - t - 0.05) * 1000)

    sampler = asyncio.create_task(sample_rss())
    lagger = asyncio.create_task(loop_lag())
    spies = profile(stack, seconds) if os.environ.get("BENCH_PROFILE") else []
    start = time.monotonic()
    tasks = []
    for i, (phone, body) in enumerate(stream):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, phone, body)))
    await asyncio.gather(*tasks)
    sent_for = time.monotonic() - start
    for spy in spies:
        spy.wait()
    back_to_zero = await settle(clients, 60)
    await asyncio.sleep(1)  # the last changes reach the watcher
    stop.set()
    seen = await asyncio.to_thread(results.recv)
    watcher.join()
    sampler.cancel()
    lagger.cancel()
    latencies, upstream, relayed, consumed = [], [], [], []
    for rid, noted in findings:
        arrived, computed, published, entry, accepted = seen.get(rid, (float("inf"),) * 5)
        # From the earlier of the 201 as noted here (late by this loop's lag) and the
        # finding's time in assessment (its entry's occurred_at, before the commit).
        at = min(noted, accepted)
        latencies.append(arrived - at)
        upstream.append(entry - at)
        consumed.append(computed - entry)
        relayed.append(published - computed)
    for c in clients.values():
        await c.aclose()
    await assessment.close()
    return {
        "sent": n, "sent_for": sent_for, "statuses": statuses, "findings": len(findings),
        "latencies": latencies, "upstream": upstream, "relayed": relayed, "rss": rss,
        "consumed": consumed,
        "back_to_zero": back_to_zero,
        "signin_ms": signin_ms, "loads": loads, "lags": lags,
    }  # fmt: skip


def main(seconds: float, rate: float) -> int:
    env = {"FRONTLINE_KAFKA_FETCH_MAX_WAIT_MS": "500", "FRONTLINE_RELAY_IDLE_SECONDS": "5.0"}
    with postgres_server() as pg, kafka_cluster(1) as kafka:
        stack = Stack(pg, kafka.bootstrap, Path(tempfile.mkdtemp(prefix="fl-pipe-")), extra_env=env)
        try:
            stack.up()
            print(f"logs in {stack.log_dir}", flush=True)
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
    lat, upstream = out["latencies"], out["upstream"]
    missing = sum(1 for v in lat if v == float("inf"))
    accepted = sum(n for st, n in out["statuses"].items() if st in (200, 201))
    print(f"sent {out['sent']} in {out['sent_for']:.1f} s, statuses {out['statuses']},"
          f" findings {out['findings']}, no change seen for {missing}", flush=True)  # fmt: skip
    loads = out["loads"]
    table = Table(f"Distributed pipeline on Apache Kafka, {rate:g} events/s for {seconds:g} s")
    table.info("load average (1 min): start / peak / end of the load",
               f"{loads[0]:.1f} / {max(loads):.1f} / {loads[-1]:.1f}")  # fmt: skip
    achieved = accepted / out["sent_for"]
    table.ratio("events accepted per second (201s over the run)", achieved, rate, 0.95, "/s",
                "offered")  # fmt: skip
    sm = out["signin_ms"]
    table.info("sign-in POST p50 / p99 (assessment, 64 in flight)",
               f"{percentile(sm, 0.5):,.0f} / {percentile(sm, 0.99):,.0f} ms")  # fmt: skip
    table.info("load generator's event-loop lag p50 / p99",
               f"{percentile(out['lags'], 0.5):,.0f} / {percentile(out['lags'], 0.99):,.0f} ms",
               "how late it notes a 201")  # fmt: skip
    up50, up99 = percentile(upstream, 0.5) * 1000, percentile(upstream, 0.99) * 1000
    table.info("finding 201 -> assessment's relay published it, p50 / p99",
               f"{up50:,.0f} / {up99:,.0f} ms", "its negative entry (CreateTime)")  # fmt: skip
    cs = out["consumed"]
    table.info("published -> incentives computed the change, p50 / p99",
               f"{percentile(cs, 0.5) * 1000:,.0f} / {percentile(cs, 0.99) * 1000:,.0f} ms",
               "broker, incentives consumer")  # fmt: skip
    rl = out["relayed"]
    table.info("incentives computed -> its relay published, p50 / p99",
               f"{percentile(rl, 0.5) * 1000:,.0f} / {percentile(rl, 0.99) * 1000:,.0f} ms",
               "rest of the transaction, commit, relay wake-up")  # fmt: skip
    table.info("finding -> eligibility changed seen, p50", f"{percentile(lat, 0.5) * 1000:,.0f} ms")
    table.limit("finding -> eligibility changed seen, p99", percentile(lat, 0.99) * 1000, 1000,
                "ms", f"{len(lat)} findings, {missing} unseen, at {achieved:.0f}/s")  # fmt: skip
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
