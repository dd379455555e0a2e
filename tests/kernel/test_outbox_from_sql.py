"""`add_events_from`: events built by the database from the rows of a statement (a week
close writes 100k at once) are the envelopes `add_events` writes, actor, request and
payload alike, and the transaction's audit summary counts all of them. PostgreSQL only:
SQLite writers use `add_events`."""

import uuid

import orjson
import pytest
from sqlalchemy import Boolean, Integer, String, column, select, values

from shared.audit import Actor
from shared.events import decode
from shared.outbox import OUTBOX, add_events, add_events_from
from tests.kernel import toy
from tests.kernel.test_audit import running
from tests.support import DEFAULT_NOW

pytestmark = pytest.mark.postgres


def notes(*rows: tuple[str, int, bool]):
    cols = [column("key", String), column("seq", Integer), column("poison", Boolean)]
    return values(*cols, name="notes").data(list(rows))


async def test_rows_become_the_envelopes_add_events_writes(tmp_path, pg_database_url):
    user = uuid.uuid4()
    async with running(tmp_path, pg_database_url, workers=False) as (app, _):
        async with app.state.runtimes["toy"].transaction() as s:
            s.info["audit_actor"] = Actor(request_id="req-7", user_id=user, username="insp-li")
            await add_events(
                s, [(toy.NoteAdded(key="k1", seq=1), "k1")], producer="toy", occurred_at=DEFAULT_NOW
            )
            rows = notes(("k2", 2, False), ("k3", 3, True))
            count = await add_events_from(
                s,
                toy.NoteAdded,
                rows,
                key=rows.c.key,
                payload={"key": rows.c.key, "seq": rows.c.seq, "poison": rows.c.poison},
                producer="toy",
                occurred_at=DEFAULT_NOW,
            )
            assert count == 2
            assert s.info["audit_events"]["count"] == 3 and s.info["outbox_written"] == 3
            noted = s.info["audit_events"]["items"]
            assert sorted(i[1] for i in noted) == ["k1", "k2", "k3"]
            written = (await s.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()

    assert [(r.key, r.topic, r.type) for r in written] == [
        (k, "frontline.toy", "toy.note.added") for k in ("k1", "k2", "k3")
    ]
    first, *made = [orjson.loads(r.body) for r in written]
    for row, body in zip(written[1:], made, strict=True):
        assert body["event_id"] == row.event_id != first["event_id"]
        assert row.created_at == written[0].created_at
        same = {k: v for k, v in body.items() if k not in ("event_id", "key", "payload")}
        assert same == {k: v for k, v in first.items() if k not in ("event_id", "key", "payload")}
    assert [decode(r.body).payload for r in written] == [
        {"key": "k1", "seq": 1, "poison": False},
        {"key": "k2", "seq": 2, "poison": False},
        {"key": "k3", "seq": 3, "poison": True},
    ]
    envelope = decode(written[2].body)
    assert (envelope.request_id, envelope.actor_id, envelope.actor_name) == (
        "req-7",
        user,
        "insp-li",
    )
    assert toy.NoteAdded.model_validate(envelope.payload) == toy.NoteAdded(
        key="k3", seq=3, poison=True
    )


async def test_a_payload_missing_a_field_is_refused_before_any_write(tmp_path, pg_database_url):
    async with running(tmp_path, pg_database_url, workers=False) as (app, _):
        async with app.state.runtimes["toy"].transaction() as s:
            rows = notes(("k1", 1, False))
            with pytest.raises(ValueError, match="exactly its fields"):
                await add_events_from(
                    s,
                    toy.NoteAdded,
                    rows,
                    key=rows.c.key,
                    payload={"key": rows.c.key, "seq": rows.c.seq},
                    producer="toy",
                    occurred_at=DEFAULT_NOW,
                )
            assert (await s.execute(select(OUTBOX.c.id))).all() == []


async def test_the_bodies_are_the_bytes_add_events_writes(tmp_path, pg_database_url):
    """Byte for byte but for the event id: compact JSON, the same key order, and a string
    that JSON must escape (quotes, backslash, control characters) escaped as orjson does."""
    odd = 'k "1" \\ \n\t\x01 村'
    async with running(tmp_path, pg_database_url, workers=False) as (app, _):
        async with app.state.runtimes["toy"].transaction() as s:
            s.info["audit_actor"] = Actor(request_id="req-8", user_id=None, username="li")
            note = toy.NoteAdded(key=odd, seq=-7, poison=False)
            await add_events(s, [(note, odd)], producer="toy", occurred_at=DEFAULT_NOW)
            rows = notes((odd, -7, False))
            await add_events_from(
                s,
                toy.NoteAdded,
                rows,
                key=rows.c.key,
                payload={"key": rows.c.key, "seq": rows.c.seq, "poison": rows.c.poison},
                producer="toy",
                occurred_at=DEFAULT_NOW,
            )
            written = (await s.execute(select(OUTBOX).order_by(OUTBOX.c.id))).all()
    by_python, by_sql = (r.body.replace(r.event_id, "EVENT") for r in written)
    assert by_sql == by_python
    assert written[1].key == odd
