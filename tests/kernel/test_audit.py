"""The audit trail on the toy service: a row per state-changing request and per applied
event, in the same transaction as the change; one hash chain per database, whatever the
concurrency; tampering behind the service's back is named row by row. SQLite and PostgreSQL.
"""

import asyncio
import uuid
from contextlib import asynccontextmanager

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import select, text

from shared import audit
from shared.auth import Principal, issue_token
from shared.clock import FrozenClock
from shared.contracts.enums import Role
from shared.events import decode
from shared.outbox import OUTBOX
from shared.runtime import build_app, settle
from shared.settings import KernelSettings, ServiceSettings
from tests.kernel import toy
from tests.support import DEFAULT_NOW


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def toy_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    return request.getfixturevalue("pg_database_url")


@asynccontextmanager
async def running(tmp_path, url: str, *, workers: bool = True):
    kernel = KernelSettings(var_dir=tmp_path, relay_idle_seconds=0.05)
    app = build_app(
        [toy.spec],
        kernel=kernel,
        clock=FrozenClock(DEFAULT_NOW),
        service_settings={"toy": ServiceSettings(database_url=url, migrate_on_start=False)},
        workers=workers,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


def bearer(app, user_id: uuid.UUID, *roles: Role, username: str = "insp-li") -> dict[str, str]:
    principal = Principal(user_id=user_id, username=username, roles=list(roles))
    app.state.token_versions.learn(user_id, principal.token_version, True)  # as if announced
    token = issue_token(app.state.keys, app.state.kernel, app.state.clock, principal)[0]
    return {"Authorization": f"Bearer {token}"}


async def rows(app) -> list:
    async with app.state.runtimes["toy"].transaction() as s:
        return (await s.execute(select(audit.AUDIT).order_by(audit.AUDIT.c.seq))).all()


async def tamper(app, sql: str, **params) -> None:
    """Raw SQL on the service's database, as someone with a database login would."""
    async with app.state.runtimes["toy"].engine.begin() as conn:
        await conn.execute(text(sql), params)


async def verify(app, **kwargs) -> audit.Report:
    return await audit.verify(app.state.runtimes["toy"].engine, **kwargs)


async def test_request_and_applied_event_name_the_same_request_and_actor(tmp_path, toy_db):
    user = uuid.uuid4()
    async with running(tmp_path, toy_db) as (app, client):
        r = await client.post(
            "/toy/v1/signed-notes",
            json={"key": "k1", "seq": 1, "password": "hunter2-hunter2"},
            headers={**bearer(app, user, Role.inspector, Role.auditor), "X-Request-ID": "req-42"},
        )
        assert r.status_code == 201 and r.headers["x-request-id"] == "req-42"
        await settle(app)
        request_row, event_row = await rows(app)
        async with app.state.runtimes["toy"].transaction() as s:
            [body] = (await s.execute(select(OUTBOX.c.body))).scalars().all()

    assert (request_row.seq, request_row.kind, request_row.action) == (
        1,
        "request",
        "POST /toy/v1/signed-notes",
    )
    assert (request_row.actor_id, request_row.actor_name, request_row.roles) == (
        user,
        "insp-li",
        "inspector,auditor",
    )
    assert request_row.request_id == "req-42" and request_row.target_id == "k1"
    summary = orjson.loads(request_row.summary)
    assert summary["body"] == {"key": "k1", "seq": 1, "password": "***"}
    assert summary["events"] == [{"type": "toy.note.added", "key": "k1"}]
    assert request_row.at.replace(tzinfo=None) == DEFAULT_NOW.replace(tzinfo=None)

    envelope = decode(body)
    assert (envelope.request_id, envelope.actor_id, envelope.actor_name) == (
        "req-42",
        user,
        "insp-li",
    )
    assert (event_row.kind, event_row.action, event_row.request_id, event_row.actor_id) == (
        "event",
        "toy.note.added",
        "req-42",
        user,
    )
    assert orjson.loads(event_row.summary)["event_id"] == str(envelope.event_id)
    assert event_row.prev_hash == request_row.hash
    assert request_row.prev_hash == audit.GENESIS


async def test_no_row_without_a_change(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        failed = await client.post(
            "/toy/v1/notes", json={"key": "b", "seq": 1, "fail_after_write": True}
        )
        assert failed.status_code == 409
        # The INSERT passes, the COMMIT fails: the audit row goes with the change.
        orphan = await client.post("/toy/v1/orphans")
        assert orphan.status_code == 409 and orphan.json()["code"] == "integrity_conflict"
        anonymous = await client.post("/toy/v1/signed-notes", json={"key": "c", "seq": 1})
        assert anonymous.status_code == 401
        assert await rows(app) == []
        ok = await client.post("/toy/v1/notes", json={"key": "d", "seq": 1})
        assert ok.status_code == 201
        [row] = await rows(app)
    assert (row.seq, row.action, row.actor_id) == (1, "POST /toy/v1/notes", None)


async def test_a_write_refused_to_a_known_user_leaves_a_refused_row(tmp_path, toy_db):
    inspector, admin = uuid.uuid4(), uuid.uuid4()
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        headers = {**bearer(app, inspector, Role.inspector), "X-Request-ID": "try-seal"}
        refused = await client.post("/toy/v1/notes/k9/seal", headers=headers)
        assert refused.status_code == 403
        assert (await client.post("/toy/v1/notes/k9/seal")).status_code == 401
        sealed = await client.post(
            "/toy/v1/notes/k9/seal", headers=bearer(app, admin, Role.org_admin)
        )
        assert sealed.status_code == 201
        found = await rows(app)
        assert (await verify(app)).ok
    assert [(r.kind, r.action, r.actor_id, r.target_id) for r in found] == [
        ("refused", "POST /toy/v1/notes/{key}/seal", inspector, "k9"),
        ("request", "POST /toy/v1/notes/{key}/seal", admin, "k9"),
    ]
    assert found[0].request_id == "try-seal" and found[0].roles == "inspector"
    assert orjson.loads(found[0].summary)["status"] == 403


@pytest.mark.parametrize(
    ("given", "kept"),
    [(None, False), ("abc-123:x.y_z", True), ("has space", False), ("x" * 65, False)],
)
async def test_request_id_is_taken_when_sane_and_made_otherwise(tmp_path, given, kept):
    url = f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"
    async with running(tmp_path, url, workers=False) as (app, client):
        headers = {"X-Request-ID": given} if given else {}
        r = await client.post("/toy/v1/notes", json={"key": "e", "seq": 1}, headers=headers)
        [row] = await rows(app)
    returned = r.headers["x-request-id"]
    assert row.request_id == returned
    assert (returned == given) is kept
    if not kept:
        assert len(returned) == 32 and int(returned, 16) >= 0


async def test_concurrent_requests_make_one_unbroken_chain(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        results = await asyncio.gather(
            *(client.post("/toy/v1/notes", json={"key": f"k{i}", "seq": 1}) for i in range(40))
        )
        assert [r.status_code for r in results] == [201] * 40
        report = await verify(app)
        found = await rows(app)
    assert report.ok, report.problems
    assert [r.seq for r in found] == list(range(1, 41))
    assert {r.target_id for r in found} == {f"k{i}" for i in range(40)}
    assert (report.rows, report.head_seq, report.head_hash) == (40, 40, found[-1].hash)


async def test_two_replicas_on_one_database_append_to_one_chain(tmp_path, pg_database_url):
    async with (
        running(tmp_path / "a", pg_database_url, workers=False) as (app, one),
        running(tmp_path / "b", pg_database_url, workers=False) as (_, two),
    ):
        results = await asyncio.gather(
            *(
                client.post("/toy/v1/notes", json={"key": f"r{i}", "seq": 1})
                for i in range(30)
                for client in (one, two)
            )
        )
        assert [r.status_code for r in results] == [201] * 60
        report = await verify(app)
    assert report.ok, report.problems
    assert (report.rows, report.head_seq) == (60, 60)


async def test_the_database_hashes_any_text_as_the_verifier_does(tmp_path, toy_db):
    # CJK, emoji, quotes, backslashes, a line separator, an RTL override, a long body.
    odd = 'Polao 坡老村 👍 "q" \\   ‮ end'
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        user = uuid.uuid4()
        for i, (key, note) in enumerate([(odd, odd), (odd + "x" * 60, odd * 200), ("k", "")]):
            r = await client.post(
                "/toy/v1/signed-notes",
                json={"key": key, "seq": i, "note": note},
                headers=bearer(app, user, Role.inspector, username=odd),
            )
            assert r.status_code == 201, r.text
        report = await verify(app)
        found = await rows(app)
    assert report.ok, report.problems
    assert found[0].actor_name == odd and orjson.loads(found[0].summary)["body"]["note"] == odd
    assert found[1].target_id == (odd + "x" * 60)[:64]
    assert "cut" in orjson.loads(found[1].summary)["body"]


async def five_rows(client) -> None:
    for i in range(5):
        r = await client.post("/toy/v1/notes", json={"key": f"t{i}", "seq": 1})
        assert r.status_code == 201


async def test_an_edited_row_is_named(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        await five_rows(client)
        assert (await verify(app)).ok
        await tamper(app, "UPDATE audit_log SET target_id = 'someone-else' WHERE seq = 3")
        report = await verify(app)
    assert [(p.seq, "edited" in p.what) for p in report.problems] == [(3, True)]


async def test_a_deleted_row_is_named(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        await five_rows(client)
        await tamper(app, "DELETE FROM audit_log WHERE seq = 2")
        report = await verify(app)
    assert [str(p) for p in report.problems] == [
        "row 2: missing (deleted)",
        "row 3: prev_hash does not match the hash of row 1 "
        "(a row before it was inserted, deleted or rewritten)",
    ]


async def test_an_inserted_row_is_named_even_with_a_well_formed_hash(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        await five_rows(client)
        before = await rows(app)
        # Someone takes row 3's place with a row hashed the way the service would.
        forged = dict(before[2]._asdict(), target_id="forged", targets='["forged"]')
        forged["hash"] = audit.chain_hash(before[1].hash, 3, audit.canonical(forged))
        await tamper(app, "DELETE FROM audit_log WHERE seq = 3")
        columns = [c for c in forged if c not in ("at", "actor_id", "unit_id")]
        await tamper(
            app,
            f"INSERT INTO audit_log (at, {', '.join(columns)}) "
            f"SELECT at, {', '.join(':' + c for c in columns)} FROM audit_log WHERE seq = 2",
            **{c: forged[c] for c in columns},
        )
        report = await verify(app)
        # A row added at the end with a made-up hash is caught by its own hash.
        await tamper(
            app,
            "INSERT INTO audit_log SELECT seq + 1, at, kind, action, actor_id, actor_name, roles,"
            " request_id, target_id, targets, unit_id, summary, hash, :h FROM audit_log"
            " WHERE seq = 5",
            h="f" * 64,
        )
        tail = await verify(app)
    assert [p.seq for p in report.problems] == [4]
    assert "prev_hash does not match the hash of row 3" in report.problems[0].what
    assert [(p.seq, "forged" in p.what) for p in tail.problems] == [(4, False), (6, True)]


async def test_a_cut_tail_is_caught_against_an_anchor(tmp_path, toy_db):
    async with running(tmp_path, toy_db, workers=False) as (app, client):
        await five_rows(client)
        head = await verify(app)
        await tamper(app, "DELETE FROM audit_log WHERE seq = 5")
        alone = await verify(app)
        anchored = await verify(app, anchor=(head.head_seq, head.head_hash))
        unchanged = await verify(app, anchor=(4, (await rows(app))[3].hash))
    assert alone.ok  # no chain without a secret shows a cut of its newest rows
    assert [p.seq for p in anchored.problems] == [5]
    assert unchanged.ok


async def test_the_asyncpg_append_joins_the_same_chain(tmp_path, pg_database_url):
    async with running(tmp_path, pg_database_url, workers=False) as (app, client):
        await five_rows(client)
        conn = await asyncpg.connect(pg_database_url.replace("+asyncpg", ""))
        try:
            async with conn.transaction():
                await audit.append_asyncpg(
                    conn,
                    audit.Entry(
                        at=DEFAULT_NOW,
                        kind="request",
                        action="POST /toy/v1/fast",
                        actor_id=uuid.uuid4(),
                        actor_name="cadre-wang",
                        roles="cadre",
                        request_id="fast-1",
                        targets=["x"],
                        unit_id=uuid.uuid4(),
                        summary={"fast": True},
                    ),
                )
        finally:
            await conn.close()
        assert (await client.post("/toy/v1/notes", json={"key": "z", "seq": 1})).status_code == 201
        report = await verify(app)
        found = await rows(app)
    assert report.ok, report.problems
    assert [(r.seq, r.request_id) for r in found][5] == (6, "fast-1")
    assert found[6].prev_hash == found[5].hash


def test_an_envelope_from_before_request_ids_still_decodes():
    old = {
        "event_id": str(uuid.uuid4()),
        "type": "toy.note.added",
        "version": 1,
        "occurred_at": DEFAULT_NOW.isoformat(),
        "producer": "toy",
        "key": "k",
        "payload": {"key": "k", "seq": 1},
    }
    env = decode(orjson.dumps(old))
    assert (env.request_id, env.actor_id, env.actor_name) == (None, None, None)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"items": [{"idempotency_key": "k1", "lat": 25.0}, {"device_id": "phone-1"}]}',
        b'{"Password": "x", "seq": 1}',
        b'{"note": {"BANK_ACCOUNT": "6222"}}',
        b'{"pass\\u0077ord": "escaped key"}',
        '{"to\u212aen": "a Kelvin sign folds to k"}'.encode(),
        b'{"items": [{"secret": 1}], "n": "plain"}',
        b'{"value": "a token in a value only"}',
    ],
)
def test_a_body_is_masked_alike_with_or_without_the_plain_text_shortcut(raw):
    from types import SimpleNamespace

    from shared.audit_http import _body, _cut

    request = SimpleNamespace(_body=raw, headers={"content-type": "application/json"})
    assert _body(request) == _cut(orjson.loads(raw), redact=True)
