"""Sign-in on post (签到到岗): flags, idempotency, and the offline batch.

The hot path is one short transaction of Core statements: read the cadre's postings,
fences and neighbouring sign-ins, insert every new row in one multi-row statement
guarded by the (cadre, key) unique constraint, write the outbox rows, commit. A key
seen before (even by a concurrent request) answers the first stored sign-in.
"""

import bisect
import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
from fastapi import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.assessment.schemas import SignInCreate
from services.assessment.service import presence
from services.assessment.service.common import (
    PRODUCER,
    SIGN_INS,
    WEEKS,
    as_utc,
    distance_m,
    emit,
    fences_of,
    posting_on,
    postings_of,
    week_of,
)
from services.assessment.settings import AssessmentSettings
from shared.audit import current_actor
from shared.clock import local_datetime, week_end_moment
from shared.contracts.assessment import SignInRecorded
from shared.contracts.enums import SignInReason, SignInStatus
from shared.db import insert_ignore
from shared.errors import Conflict, InvalidInput
from shared.events import Envelope, envelope_for
from shared.metrics import SIGN_INS as SIGN_INS_METRIC

REASON_ORDER = list(SignInReason)


@dataclass
class Outcome:
    """What one submitted sign-in came to: created, replayed or rejected."""

    kind: str
    body: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    field: str = ""
    detail: str = ""


def request_hash(
    item: SignInCreate, moment: datetime | None = None, cadre: str | None = None
) -> str:
    """What makes two submissions of one key "identical": the same cadre, instant (whatever
    the offset it was written with), position, accuracy, device and mock flag. `moment`
    (the device time in UTC) and `cadre` (the cadre id as text) when the caller has them."""
    canonical = "|".join(
        (
            cadre or str(item.cadre_id),
            (moment or as_utc(item.device_time)).isoformat(),
            repr(float(item.lat)),
            repr(float(item.lon)),
            repr(float(item.accuracy_m)),
            item.device_id,
            "1" if item.mock_location else "0",
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def reused(key: str) -> Outcome:
    return Outcome(
        "conflict",
        code="idempotency_key_reused",
        field="idempotency_key",
        detail=f"idempotency key {key!r} was used before with a different sign-in",
    )


def answer(stored: dict[str, Any], item: SignInCreate) -> Outcome:
    """A key seen before: its first answer when the body is the same, else a conflict
    (rows stored before hashes were kept have none and answer as a replay)."""
    if stored.get("request_hash") not in (None, request_hash(item)):
        return reused(item.idempotency_key)
    return Outcome("replayed", body_of(stored))


def body_of(row: dict[str, Any]) -> dict[str, Any]:
    """The answer for a stored sign-in: the same bytes for the first answer and any replay."""
    return {
        "id": row["id"],
        "idempotency_key": row["idempotency_key"],
        "cadre_id": row["cadre_id"],
        "device_time": row["device_time"],
        "received_at": row["received_at"],
        "status": row["status"],
        "reasons": [r for r in row["reasons"].split(",") if r],
    }


def public(b: dict[str, Any]) -> dict[str, Any]:
    """A stored sign-in as `SignInPublic` renders it (for orjson with `OPT_UTC_Z`)."""
    return {
        "id": str(b["id"]),
        "idempotency_key": b["idempotency_key"],
        "cadre_id": str(b["cadre_id"]),
        "device_time": as_utc(b["device_time"]),
        "received_at": as_utc(b["received_at"]),
        "status": b["status"],
        "reasons": b["reasons"],
    }


def respond(outcome: Outcome) -> Response:
    """The HTTP answer to one sign-in: 201 first, 200 replay, 409 reused key, 422 rejected.

    Rendered with orjson (`Z` for UTC, as pydantic writes it), so the first answer and
    every replay are the same bytes whichever path stored the row."""
    if outcome.kind == "rejected":
        raise InvalidInput(outcome.field, outcome.detail, code=outcome.code)
    if outcome.kind == "conflict":
        raise Conflict(outcome.detail, code=outcome.code, field=outcome.field)
    content = orjson.dumps(public(outcome.body), option=orjson.OPT_UTC_Z)
    status = 201 if outcome.kind == "created" else 200
    return Response(content, status_code=status, media_type="application/json")


def _within(t: time, start: time, end: time) -> bool:
    return start <= t < end if start < end else (t >= start or t < end)


def windows(
    device_time: datetime, policy: AssessmentSettings
) -> tuple[date, date | None, date | None]:
    """(local date, the day it counts for as a day, the evening it counts for as a night).

    A night runs from the evening into the next morning and belongs to the evening's date.
    """
    local = local_datetime(device_time)
    t, d = local.time(), local.date()
    day = d if _within(t, policy.day_start, policy.day_end) else None
    night = None
    if _within(t, policy.night_start, policy.night_end):
        crosses = policy.night_start > policy.night_end
        night = d - timedelta(days=1) if crosses and t < policy.night_end else d
    return d, day, night


async def _stored(session: AsyncSession, cadre_id: uuid.UUID, keys: list[str]) -> dict[str, dict]:
    rows = await session.execute(
        select(SIGN_INS).where(
            SIGN_INS.c.cadre_id == cadre_id, SIGN_INS.c.idempotency_key.in_(keys)
        )
    )
    return {r.idempotency_key: dict(r._mapping) for r in rows}


async def _track(session: AsyncSession, cadre_id: uuid.UUID, first: datetime, last: datetime):
    """The cadre's sign-ins from the one before `first` up to `last`, by device time."""
    cols = (SIGN_INS.c.device_time, SIGN_INS.c.lat, SIGN_INS.c.lon)
    before = (
        await session.execute(
            select(*cols)
            .where(SIGN_INS.c.cadre_id == cadre_id, SIGN_INS.c.device_time < first)
            .order_by(SIGN_INS.c.device_time.desc())
            .limit(1)
        )
    ).all()
    during = (
        await session.execute(
            select(*cols).where(
                SIGN_INS.c.cadre_id == cadre_id, SIGN_INS.c.device_time.between(first, last)
            )
        )
    ).all()
    return sorted(tuple(r) for r in [*before, *during])


def count_stored(bodies: list[dict[str, Any]]) -> None:
    """The sign-ins counter of /assessment/metrics: one per stored sign-in and reason."""
    counts = Counter((b["status"], reason) for b in bodies for reason in b["reasons"] or [""])
    for (status, reason), n in counts.items():
        SIGN_INS_METRIC.labels("assessment", status, reason).inc(n)


async def record(
    session: AsyncSession,
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> list[Outcome]:
    """Record a cadre's sign-ins; one outcome per item, in input order."""
    if not items:
        return []
    stored = await _stored(session, cadre_id, list({i.idempotency_key for i in items}))
    outcomes, fresh = triage(items, stored, now, policy)
    rows = await _evaluate(session, cadre_id, [items[n] for n in fresh.values()], now, policy)
    if rows:
        result = await session.execute(
            insert_ignore(session, SIGN_INS).returning(SIGN_INS.c.id), rows
        )
        inserted = set(result.scalars())
        created = [r for r in rows if r["id"] in inserted]
        lost = [r["idempotency_key"] for r in rows if r["id"] not in inserted]
        # A concurrent request stored these keys first: its answer is the answer.
        winners = await _stored(session, cadre_id, lost) if lost else {}
        settle(items, outcomes, fresh, created, winners)
        await emit(session, [(_event(r), cadre_id) for r in created], now)
        await _rejudge_closed_weeks(session, cadre_id, created, now=now, policy=policy)
    return repeats(items, outcomes, fresh)


def triage(
    items: list[SignInCreate],
    stored: dict[str, dict[str, Any]],
    now: datetime,
    policy: AssessmentSettings,
) -> tuple[list[Outcome | None], dict[str, int]]:
    """The answers known before anything is written (a key stored before, a device time
    too far ahead), and the index of the first item of each new key (the rest wait)."""
    outcomes: list[Outcome | None] = [None] * len(items)
    fresh: dict[str, int] = {}  # key -> index of its first new item
    for n, item in enumerate(items):
        if item.idempotency_key in stored:
            outcomes[n] = answer(stored[item.idempotency_key], item)
        elif item.idempotency_key in fresh:
            continue  # answered by `repeats`, once the first item of that key is stored
        elif as_utc(item.device_time) - now > timedelta(seconds=policy.future_tolerance_seconds):
            outcomes[n] = Outcome(
                "rejected",
                code="device_time_in_future",
                field="device_time",
                detail="device time is more than the tolerance ahead of the server",
            )
        else:
            fresh[item.idempotency_key] = n
    return outcomes, fresh


def settle(
    items: list[SignInCreate],
    outcomes: list[Outcome | None],
    fresh: dict[str, int],
    created: list[dict[str, Any]],
    winners: dict[str, dict[str, Any]],
) -> None:
    """The answers of the new keys once written: created, or the concurrent winner's."""
    bodies = [body_of(r) for r in created]
    for r, body in zip(created, bodies, strict=True):
        outcomes[fresh[r["idempotency_key"]]] = Outcome("created", body)
    count_stored(bodies)
    for key, row in winners.items():
        outcomes[fresh[key]] = answer(row, items[fresh[key]])


def repeats(
    items: list[SignInCreate], outcomes: list[Outcome | None], fresh: dict[str, int]
) -> list[Outcome]:
    """Each repeat of a key first seen in this same batch answers as that first item did
    (a replay), or is a reused key when its body differs."""
    for n, item in enumerate(items):
        if outcomes[n] is None:
            first = items[fresh[item.idempotency_key]]
            same = request_hash(first) == request_hash(item)
            outcome = outcomes[fresh[item.idempotency_key]]
            outcomes[n] = (
                Outcome("replayed", outcome.body) if same else reused(item.idempotency_key)
            )
    return outcomes  # type: ignore[return-value]


async def _evaluate(
    session: AsyncSession,
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    now: datetime,
    policy: AssessmentSettings,
) -> list[dict[str, Any]]:
    """The rows for new sign-ins, each with its flags (DESIGN.md §4)."""
    if not items:
        return []
    postings = (await postings_of(session, [cadre_id]))[cadre_id]
    fences = await fences_of(session, [p.unit_id for p in postings])
    times = [as_utc(i.device_time) for i in items]
    track = await _track(session, cadre_id, min(times), max(times))
    return evaluate(cadre_id, items, postings, fences, track, now, policy)


def evaluate(
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    postings: list,
    fences: dict[uuid.UUID, Any],
    track: list[tuple[datetime, float, float]],
    now: datetime,
    policy: AssessmentSettings,
) -> list[dict[str, Any]]:
    """The rows for new sign-ins, by device time, given the cadre's postings (newest
    first), their units' fences and the cadre's stored sign-ins (device time, lat, lon;
    sorted) from the one before the first item up to the last: each item is also the
    previous sign-in of the next."""
    rows = []
    times = [as_utc(i.device_time) for i in items]
    limits = Limits.of(policy, now)
    cadre = str(cadre_id)
    for item, moment in sorted(zip(items, times, strict=True), key=lambda pair: pair[1]):
        posting = posting_on(postings, local_datetime(moment).date())
        fence = fences.get(posting.unit_id) if posting is not None else None
        at = bisect.bisect_right(track, (moment, INF, INF))
        previous = track[at - 1] if at else None
        rows.append(
            judge(
                cadre_id,
                item,
                moment,
                posting,
                fence,
                previous,
                now,
                policy,
                limits,
                cadre if item.cadre_id == cadre_id else None,
            )
        )
        track.insert(at, (moment, item.lat, item.lon))
    return rows


INF = float("inf")


@dataclass(frozen=True)
class Limits:
    """The policy's numbers `judge` reads, worked out once for a batch."""

    accuracy_cap_m: float
    max_speed_kmh: float
    late_before: datetime  # a device time before this syncs late

    @classmethod
    def of(cls, policy: AssessmentSettings, now: datetime) -> "Limits":
        return cls(
            policy.accuracy_cap_m,
            policy.max_speed_kmh,
            now - timedelta(days=policy.offline_window_days),
        )


def judge(
    cadre_id: uuid.UUID,
    item: SignInCreate,
    moment: datetime,
    posting: Any,
    fence: Any,
    previous: tuple[datetime, float, float] | None,
    now: datetime,
    policy: AssessmentSettings,
    limits: Limits | None = None,
    cadre: str | None = None,
) -> dict[str, Any]:
    """The row for one new sign-in with its flags (DESIGN.md §4), given the posting that
    holds on its local date, that posting's fence and the cadre's sign-in just before it.
    `limits` and `cadre` (the id as text): worked out once by a batch's caller."""
    limits = limits or Limits.of(policy, now)
    local, day, night = windows(moment, policy)
    reasons: set[SignInReason] = set()
    if posting is None:
        reasons.add(SignInReason.not_posted)
    elif fence is not None:
        slack = min(item.accuracy_m, limits.accuracy_cap_m)
        far = distance_m(item.lat, item.lon, fence.fence_lat, fence.fence_lon)
        if far > fence.fence_radius_m + slack:
            reasons.add(SignInReason.outside_geofence)
    if previous is not None:
        then, lat, lon = previous
        hours = (moment - then).total_seconds() / 3600
        if distance_m(lat, lon, item.lat, item.lon) / 1000 > limits.max_speed_kmh * hours:
            reasons.add(SignInReason.implausible_travel)
    if item.mock_location:
        reasons.add(SignInReason.mock_location)
    if moment < limits.late_before:
        reasons.add(SignInReason.late_sync)
    return {
        "id": uuid.uuid4(),
        "cadre_id": cadre_id,
        "idempotency_key": item.idempotency_key,
        "device_time": moment,
        "received_at": now,
        "lat": item.lat,
        "lon": item.lon,
        "accuracy_m": item.accuracy_m,
        "device_id": item.device_id,
        "mock_location": item.mock_location,
        "status": (SignInStatus.flagged if reasons else SignInStatus.accepted).value,
        "reasons": ",".join(r.value for r in REASON_ORDER if r in reasons) if reasons else "",
        "counted": not reasons,
        "posting_id": posting.posting_id if posting else None,
        "unit_id": posting.unit_id if posting else None,
        "local_date": local,
        "day_date": day,
        "night_date": night,
        "request_hash": request_hash(item, moment, cadre),
    }


def ended_weeks(row: dict[str, Any], now: datetime) -> list[date]:
    """The weeks a counted sign-in counts in that have already ended (closing may have
    judged them without it)."""
    if not row["counted"]:
        return []
    dates = (row["local_date"], row["day_date"], row["night_date"])
    return [m for m in {week_of(d) for d in dates if d is not None} if week_end_moment(m) <= now]


def judged(
    request: Any,
    cadre_id: uuid.UUID,
    item: SignInCreate,
    moment: datetime,
    posting: Any,
    fence: Any,
    previous: tuple[datetime, float, float] | None,
    now: datetime,
    policy: AssessmentSettings,
) -> tuple[dict[str, Any], Envelope] | None:
    """A new sign-in's row (`judge`) and its event's envelope, naming the request's actor;
    None when it counts in a week that has ended (the general path re-judges that week).
    What the single sign-in's fast paths, PostgreSQL and SQLite, share."""
    row = judge(cadre_id, item, moment, posting, fence, previous, now, policy)
    if ended_weeks(row, now):
        return None
    actor = current_actor(SimpleNamespace(info={"audit_request": request}))  # type: ignore[arg-type]
    envelope = envelope_for(
        _event(row),
        key=cadre_id,
        producer=PRODUCER,
        occurred_at=now,
        request_id=actor.request_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
    )
    return row, envelope


def _event(row: dict[str, Any]) -> SignInRecorded:
    body = body_of(row)
    return SignInRecorded(
        sign_in_id=body["id"],
        cadre_id=body["cadre_id"],
        device_time=body["device_time"],
        received_at=body["received_at"],
        status=body["status"],
        reasons=body["reasons"],
        counted=row["counted"],
    )


async def _rejudge_closed_weeks(
    session: AsyncSession,
    cadre_id: uuid.UUID,
    created: list[dict[str, Any]],
    *,
    now: datetime,
    policy: AssessmentSettings,
) -> None:
    """A counted sign-in for a week already closed re-judges that week for its cadre."""
    ended = list({m for r in created for m in ended_weeks(r, now)})
    if not ended:  # the usual case: this week's sign-ins cost no extra statement
        return
    closed = (
        await session.execute(select(WEEKS.c.monday).where(WEEKS.c.monday.in_(ended)))
    ).scalars()
    for monday in sorted(closed):
        await presence.rejudge(session, monday, [cadre_id], now=now, policy=policy)
