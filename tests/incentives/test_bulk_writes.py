"""The bulk paths a batch build writes through (shared/bulk.py, add_event_dicts) leave
the same rows as the ordinary ones: outbox bodies byte for byte, upserts that update."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlalchemy import select

from services.incentives.models import eligibility, outbox
from shared.bulk import fetch, insert_rows, upsert_rows
from shared.contracts.incentives import EligibilityChanged
from shared.outbox import add_event_dicts, add_events

AT = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def changed(cadre, gross: str, deductions: str) -> EligibilityChanged:
    g, d = Decimal(gross), Decimal(deductions)
    applied = min(g, d)
    return EligibilityChanged(
        cadre_id=cadre,
        month="2026-11",
        gross=g,
        total_deductions=d,
        net=g - applied,
        deductions_applied=applied,
        carried_forward=d - applied,
    )


async def test_event_dicts_write_the_rows_add_events_writes(system):
    payloads = [changed(uuid4(), "2000.00", "0.00"), changed(uuid4(), "1000.00", "1200.00")]
    async with system.transaction("incentives") as s:
        await add_events(s, [(p, p.cadre_id) for p in payloads], producer="incentives",
                         occurred_at=AT)  # fmt: skip
        await add_event_dicts(
            s,
            EligibilityChanged,
            [(p.model_dump(mode="json"), p.cadre_id) for p in payloads],
            producer="incentives",
            occurred_at=AT,
        )
        assert s.info["outbox_written"] == 4
        assert s.info["audit_events"]["count"] == 4
    async with system.transaction("incentives") as s:
        rows = (await s.execute(select(outbox).order_by(outbox.c.id))).all()
    assert len(rows) == 4
    bodies = []
    for r in rows:
        body = json.loads(r.body)
        assert body.pop("event_id") == r.event_id
        bodies.append((r.topic, r.key, r.type, r.created_at, json.dumps(body)))
    assert bodies[:2] == bodies[2:]
    assert bodies[1][4].index('"carried_forward": "200.00"') > 0


async def test_event_dicts_refuse_a_payload_that_is_not_the_model(system):
    p = changed(uuid4(), "2000.00", "0.00").model_dump(mode="json")
    reordered = {k: p[k] for k in reversed(p)}
    async with system.transaction("incentives") as s:
        for bad in ({**p, "gross": 2000}, reordered):
            with pytest.raises(ValueError, match="EligibilityChanged"):
                await add_event_dicts(
                    s, EligibilityChanged, [(bad, p["cadre_id"])], producer="incentives",
                    occurred_at=AT,
                )  # fmt: skip
        assert (await fetch(s, select(outbox.c.id))) == []


async def test_bulk_insert_and_upsert(system):
    a, b = uuid4(), uuid4()

    def row(cadre, gross: str) -> dict:
        g = Decimal(gross)
        return {"cadre_id": cadre, "month": "2026-11", "gross": g, "total_deductions": g * 0,
                "deductions_applied": g * 0, "carried_forward": g * 0, "net": g, "items": "{}",
                "policy_versions": "", "computed_at": AT}  # fmt: skip

    async with system.transaction("incentives") as s:
        await insert_rows(s, eligibility, [row(a, "1.50")])
        await upsert_rows(
            s, eligibility, [row(a, "2.25"), row(b, "3.00")], ["cadre_id", "month"],
            ["gross", "net"],
        )  # fmt: skip
        e = eligibility.c
        got = await fetch(s, select(e.cadre_id, e.gross, e.net).where(e.month == "2026-11"))
    assert sorted((r[0], r[1], r[2]) for r in got) == sorted(
        [(a, Decimal("2.25"), Decimal("2.25")), (b, Decimal("3.00"), Decimal("3.00"))]
    )
