"""The single sign-in's own paths (signin_fast.py on PostgreSQL, signin_lite.py on a SQLite
file) against the general one: the same rows, one row per key whichever path each
request takes, and a writer that waits its turn for the audit chain without failing."""

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from services.assessment.models import SignIn
from services.assessment.service.common import as_utc
from shared import audit
from shared.audit import AUDIT, Entry
from shared.contracts.enums import Role
from shared.outbox import OUTBOX
from tests.assessment import factories as f

URL = "/assessment/v1/sign-ins"


@pytest.fixture
async def posted(system):
    return await f.posted_cadre(system, (await f.tree(system)).village)


async def stored_count(system) -> int:
    async with system.transaction("assessment") as s:
        return await s.scalar(select(func.count()).select_from(SignIn))


async def test_each_backend_has_its_own_single_sign_in_path(system, backend):
    runtime = system.runtime("assessment")
    assert (runtime.signin_pool is not None) == (backend == "postgres")
    assert (runtime.signin_lite is not None) == (backend == "sqlite")


async def test_the_single_path_stores_what_the_general_path_reads(system, posted):
    """Every column read back through SQLAlchemy, the outbox row and the audit row."""
    headers = system.headers(Role.cadre, cadre_id=posted) | {"X-Request-ID": "one"}
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="k", mock_location=True)
    r = await system.client.post(URL, json=body, headers=headers)
    assert r.status_code == 201, r.text
    answer = r.json()
    async with system.transaction("assessment") as s:
        row = (await s.execute(select(SignIn.__table__))).one()
        [event] = (await s.execute(select(OUTBOX))).all()
        [entry] = (await s.execute(select(AUDIT).where(AUDIT.c.action == f"POST {URL}"))).all()
    assert (str(row.id), row.cadre_id, row.idempotency_key) == (answer["id"], posted, "k")
    assert row.device_time == f.local(2026, 11, 25, 9) and row.device_time.tzinfo is not None
    assert row.received_at == system.clock.now()
    assert (row.status, row.reasons, row.counted) == ("flagged", "mock_location", False)
    assert row.mock_location is True and row.posting_id is not None
    assert row.unit_id is not None and isinstance(row.unit_id, uuid.UUID)
    assert (str(row.local_date), str(row.day_date), row.night_date) == (
        "2026-11-25",
        "2026-11-25",
        None,
    )
    assert len(row.request_hash) == 32
    assert (event.type, event.key) == ("assessment.signin.recorded", str(posted))
    assert as_utc(event.created_at) == system.clock.now()
    assert entry.request_id == "one" and answer["id"] in entry.targets
    [sent] = await f.events(system, "assessment.signin.recorded")
    assert sent.payload["sign_in_id"] == answer["id"] and sent.request_id == "one"
    report = await audit.verify(system.runtime("assessment").engine)
    assert report.ok, report.problems


async def test_one_key_through_the_single_and_the_batch_path_at_once(system, posted):
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="both")
    headers = system.headers(Role.cadre, cadre_id=posted)
    batch = system.client.post(f"{URL}/batch", json={"items": [body]}, headers=headers)
    singles = [system.client.post(URL, json=body, headers=headers) for _ in range(4)]
    from_batch, *answers = await asyncio.gather(batch, *singles)
    assert from_batch.status_code == 200
    [result] = from_batch.json()["results"]
    assert {a.status_code for a in answers} <= {200, 201}
    assert len({a.json()["id"] for a in answers} | {result["id"]}) == 1
    assert sum(a.status_code == 201 for a in answers) <= 1
    assert await stored_count(system) == 1
    assert len(await f.events(system, "assessment.signin.recorded")) == 1


async def test_a_sign_in_waits_while_another_transaction_holds_the_audit_chain(system, posted):
    """On SQLite the other connection holds the write lock, on PostgreSQL the chain's lock:
    the sign-in neither fails nor writes until that transaction commits."""
    headers = system.headers(Role.cadre, cadre_id=posted)
    body = f.sign_in_body(posted, f.local(2026, 11, 25, 9), key="later")
    async with system.transaction("assessment") as s:
        await audit.append(s, Entry(at=system.clock.now(), kind="request", action="hold"))
        pending = asyncio.create_task(system.client.post(URL, json=body, headers=headers))
        for _ in range(20):  # give it many turns of the loop: it must still be waiting
            await asyncio.sleep(0.01)
        assert not pending.done()
    r = await pending
    assert r.status_code == 201, r.text
    async with system.transaction("assessment") as s:
        actions = (await s.scalars(select(AUDIT.c.action).order_by(AUDIT.c.seq))).all()
    assert actions[-2:] == ["hold", f"POST {URL}"] and await stored_count(system) == 1
    report = await audit.verify(system.runtime("assessment").engine)
    assert report.ok, report.problems


async def test_the_sqlite_path_has_a_pool_connection_checkpoint_the_wal(system, posted, backend):
    """Its own connection never checkpoints (no fsync on the loop); every so many commits
    it asks the pool, whose connection does it in its own thread."""
    writer = system.runtime("assessment").signin_lite
    if backend == "postgres":
        assert writer is None
        return
    writer.CHECKPOINT_EVERY = 2
    assert writer.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    for hour in (9, 10):
        r = await f.sign_in(system, posted, f.local(2026, 11, 24, hour))
        assert r.status_code == 201, r.text
    assert writer.checkpointing is not None
    await writer.checkpointing  # raises if the checkpoint failed
