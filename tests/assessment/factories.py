"""Small factories for assessment tests: registry facts as events, sign-ins as requests."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.clock import LOCAL_TZ
from shared.contracts.enums import CadreCategory, PostingRole, Role, UnitKind  # noqa: F401
from shared.contracts.registry import (
    CadreUpserted,
    Geofence,
    PostingEnded,
    PostingOpened,
    UnitUpserted,
)
from shared.events import decode
from tests.support import System, next_version

# Poláo village (坡老村), roughly: the fence every posted cadre signs in within.
VILLAGE_LAT, VILLAGE_LON, RADIUS_M = 25.0, 105.5, 500.0
OTHER_LAT, OTHER_LON = 25.2, 105.9  # the other township's village


def local(*parts: int) -> datetime:
    """A moment in Asia/Shanghai: local(2026, 11, 16, 10) is 10:00 on 16 November."""
    return datetime(*parts, tzinfo=LOCAL_TZ)


@dataclass
class Tree:
    county: uuid.UUID
    township: uuid.UUID
    village: uuid.UUID
    group: uuid.UUID
    other_township: uuid.UUID
    other_village: uuid.UUID


async def unit(
    system: System,
    kind: UnitKind,
    ancestors: list[uuid.UUID],
    *,
    fence: tuple[float, float, float] | None = None,
    unit_id: uuid.UUID | None = None,
) -> uuid.UUID:
    unit_id = unit_id or uuid.uuid4()
    geofence = Geofence(lat=fence[0], lon=fence[1], radius_m=fence[2]) if fence else None
    payload = UnitUpserted(
        unit_id=unit_id,
        code=f"{kind.value}-{unit_id.hex[:6]}",
        name=f"{kind.value} {unit_id.hex[:6]}",
        kind=kind,
        parent_id=ancestors[-1] if ancestors else None,
        ancestors=ancestors,
        geofence=geofence,
        entity_version=next_version(),
    )
    await system.emit(payload, key=unit_id)
    return unit_id


async def tree(system: System) -> Tree:
    """County > township > village (fenced) > group (unfenced); and a second township."""
    county = await unit(system, UnitKind.county, [])
    township = await unit(system, UnitKind.township, [county])
    village = await unit(
        system, UnitKind.village, [county, township], fence=(VILLAGE_LAT, VILLAGE_LON, RADIUS_M)
    )
    group = await unit(system, UnitKind.group, [county, township, village])
    other_township = await unit(system, UnitKind.township, [county])
    other_village = await unit(
        system, UnitKind.village, [county, other_township], fence=(OTHER_LAT, OTHER_LON, RADIUS_M)
    )
    return Tree(county, township, village, group, other_township, other_village)


async def cadre(
    system: System,
    name: str = "张永方",
    cadre_id: uuid.UUID | None = None,
    *,
    category: CadreCategory = CadreCategory.first_secretary,
    unit_id: uuid.UUID | None = None,
) -> uuid.UUID:
    cadre_id = cadre_id or uuid.uuid4()
    await system.emit(
        CadreUpserted(
            cadre_id=cadre_id,
            name=name,
            category=category,
            effective_date=date(2026, 1, 1),
            unit_id=unit_id,
            entity_version=next_version(),
        ),
        key=cadre_id,
    )
    return cadre_id


async def post(
    system: System,
    cadre_id: uuid.UUID,
    unit_id: uuid.UUID,
    *,
    start: date = date(2026, 1, 1),
    end: date | None = None,
    role: PostingRole = PostingRole.member,
) -> uuid.UUID:
    posting_id = uuid.uuid4()
    await system.emit(
        PostingOpened(
            posting_id=posting_id,
            cadre_id=cadre_id,
            unit_id=unit_id,
            role=role,
            start_date=start,
            end_date=end,
            entity_version=next_version(),
        ),
        key=cadre_id,
    )
    return posting_id


async def end_posting(
    system: System, posting_id: uuid.UUID, cadre_id: uuid.UUID, unit_id: uuid.UUID, end: date
) -> None:
    await system.emit(
        PostingEnded(
            posting_id=posting_id,
            cadre_id=cadre_id,
            unit_id=unit_id,
            role=PostingRole.member,
            start_date=date(2026, 1, 1),
            end_date=end,
            reason="recalled",
            entity_version=next_version(),
        ),
        key=cadre_id,
    )


async def posted_cadre(system: System, unit_id: uuid.UUID, **kwargs: Any) -> uuid.UUID:
    cadre_id = await cadre(system)
    await post(system, cadre_id, unit_id, **kwargs)
    return cadre_id


def sign_in_body(
    cadre_id: uuid.UUID,
    at: datetime,
    *,
    key: str | None = None,
    lat: float = VILLAGE_LAT,
    lon: float = VILLAGE_LON,
    accuracy_m: float = 10.0,
    mock_location: bool = False,
) -> dict[str, Any]:
    return {
        "idempotency_key": key or uuid.uuid4().hex,
        "cadre_id": str(cadre_id),
        "device_time": at.isoformat(),
        "lat": lat,
        "lon": lon,
        "accuracy_m": accuracy_m,
        "device_id": "phone-1",
        "mock_location": mock_location,
    }


async def sign_in(system: System, cadre_id: uuid.UUID, at: datetime, **kwargs: Any):
    return await system.client.post(
        "/assessment/v1/sign-ins",
        json=sign_in_body(cadre_id, at, **kwargs),
        headers=system.headers(Role.cadre, cadre_id=cadre_id),
    )


async def attend(
    system: System, cadre_id: uuid.UUID, moments: list[datetime], **kwargs: Any
) -> None:
    """Sign in at each moment, every one inside the fence and accepted."""
    for at in moments:
        r = await sign_in(system, cadre_id, at, **kwargs)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "accepted", r.json()


def full_week(monday: date, *, days: int = 5, nights: int = 4) -> list[datetime]:
    """`days` day sign-ins (10:00) and `nights` night sign-ins (21:00) from the Monday."""
    y, m, d = monday.year, monday.month, monday.day
    base = date(y, m, d).toordinal()
    moments = []
    for i in range(days):
        day = date.fromordinal(base + i)
        moments.append(local(day.year, day.month, day.day, 10))
    for i in range(nights):
        day = date.fromordinal(base + i)
        moments.append(local(day.year, day.month, day.day, 21))
    return moments


async def close(system: System, week: str) -> dict[str, Any]:
    r = await system.client.post(
        f"/assessment/v1/weeks/{week}/close", headers=system.headers(Role.org_admin)
    )
    assert r.status_code == 200, r.text
    return r.json()


async def presence(system: System, cadre_id: uuid.UUID, week: str) -> dict[str, Any]:
    r = await system.client.get(
        f"/assessment/v1/cadres/{cadre_id}/presence",
        params={"week": week},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 200, r.text
    return r.json()


async def events(system: System, *types: str) -> list:
    """Envelopes assessment has published so far (after settling), optionally by type."""
    await system.settle()
    messages = await system.app.state.transport.read("frontline.assessment")
    found = [decode(m.value) for m in messages]
    return [e for e in found if not types or e.type in types]


async def finding(
    system: System,
    subject_id: uuid.UUID,
    observed_at: datetime,
    *,
    subject_type: str = "cadre",
    severity: str = "major",
    kind: str = "absent_from_post",
    expect: int = 201,
) -> dict[str, Any]:
    r = await system.client.post(
        "/assessment/v1/findings",
        json={
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "kind": kind,
            "severity": severity,
            "observed_at": observed_at.isoformat(),
            "description": "not at the post during an unannounced check (暗访)",
            "evidence_urls": ["https://evidence.example/photo-1.jpg"],
        },
        headers=system.headers(Role.inspector),
    )
    assert r.status_code == expect, r.text
    return r.json()


async def negative_list(system: System, month: str, **params: Any) -> list[dict[str, Any]]:
    r = await system.client.get(
        "/assessment/v1/negative-list",
        params={"month": month, **{k: str(v) for k, v in params.items()}},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def actions(system: System, **params: Any) -> list[dict[str, Any]]:
    r = await system.client.get(
        "/assessment/v1/accountability-actions",
        params={k: str(v) for k, v in params.items()},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def dismiss(system: System, finding_id: str, reason: str = "mistaken identity"):
    return await system.client.post(
        f"/assessment/v1/findings/{finding_id}/dismiss",
        json={"reason": reason},
        headers=system.headers(Role.org_admin),
    )
