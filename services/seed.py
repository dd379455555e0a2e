"""`frontline seed`: a county to look at, built through the services' own HTTP write paths.

- `anlong` is shaped like the seed report's county: 13 township HQs, 181 village posts with
  geofences, 1,891 front working groups (7 of them special-difficulty villager groups);
  44 county leaders, 424 first secretaries and resident cadres, 4,608 front working group
  members, 7,613 responsible persons, 9 agricultural experts and a party secretary per
  village, all posted; poor households paired with responsible persons; the 163 training
  sessions of 2018; and the 8 village party secretaries whose honors earn deputy-section
  treatment. `--scale 0.1` makes a tenth of every count (at least one of each). The county
  goes live (`assessment_start_date`) on `--go-live DATE`, by default the Monday after the
  first seeding, so no week before it is judged.
- `demo` is small (1 township, 3 villages, 40 cadres) and alive: logins for the staff and
  the posted cadres, two weeks of sign-ins (a few missed, one mock location, one outside
  the fence), two findings, the last ended week closed, and a draft stipend batch.

Re-runnable: units are matched by code, cadres by phone, users by username, honors and
training sessions by their title; what exists is kept, and only what is missing is made.
"""

import asyncio
import csv
import io
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from services.client import Api, ClientError
from shared.clock import LOCAL_TZ, format_month, format_week, local_date

TOWNSHIPS, VILLAGES, GROUPS, SPECIAL_GROUPS = 13, 181, 1891, 7
# The seed's categories: (category, how many, where they are posted, role).
WORKFORCE = (
    ("county_leader", 44),
    ("first_secretary", 181),
    ("resident_cadre", 424 - 181),
    ("front_group_member", 4608),
    ("responsible_person", 7613),
    ("agricultural_expert", 9),
)
TRAINING_SESSIONS, TRAINING_PARTICIPANTS = 163, 22_285
HOUSEHOLDS_PER_VILLAGE = 12
Progress = Callable[[str, int, int], None]


def _n(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def spread(total: int, parents: list[str]) -> list[str]:
    """`total` children over `parents`, as evenly as possible, in order."""
    base, extra = divmod(total, len(parents))
    out: list[str] = []
    for i, p in enumerate(parents):
        out += [p] * (base + (i < extra))
    return out


def _csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def anlong_units(scale: float = 1.0) -> list[list[Any]]:
    """Unit import rows (header first): the county, townships, fenced villages, groups."""
    rows: list[list[Any]] = [
        ["code", "name", "kind", "parent_code", "lat", "lon", "radius_m", "special_difficulty"]
    ]
    rows.append(["AL", "安龙县", "county", "", "", "", "", ""])
    towns = [f"AL-T{i:02d}" for i in range(_n(TOWNSHIPS, scale))]
    rows += [[t, f"{t} 镇指挥部", "township", "AL", "", "", "", ""] for t in towns]
    villages = [f"{t}-V{i:03d}" for i, t in enumerate(spread(_n(VILLAGES, scale), towns))]
    rows += [
        [
            v,
            f"{v} 村级指挥所",
            "village",
            v[:6],
            f"{25.0 + i / 200:.4f}",
            f"{105.3 + i / 300:.4f}",
            800,
            "",
        ]
        for i, v in enumerate(villages)
    ]
    groups = [f"{v}-G{i:04d}" for i, v in enumerate(spread(_n(GROUPS, scale), villages))]
    special = set(groups[:: max(1, len(groups) // _n(SPECIAL_GROUPS, scale))][: _n(7, scale)])
    rows += [
        [
            g,
            f"{g} 前沿工作组",
            "group",
            g.rsplit("-G", 1)[0],
            "",
            "",
            "",
            "true" if g in special else "",
        ]
        for g in groups
    ]
    return rows


def anlong_cadres(units: list[list[Any]], scale: float, start: date) -> list[list[Any]]:
    """Cadre import rows (header first), each with the posting that puts them to work."""
    by_kind: dict[str, list[str]] = {}
    for code, _, kind, *_ in units[1:]:
        by_kind.setdefault(kind, []).append(code)
    towns, villages, groups = by_kind["township"], by_kind["village"], by_kind["group"]
    rows: list[list[Any]] = [
        ["name", "phone", "category", "position", "unit_code", "role", "start_date"]
    ]
    plan: list[tuple[str, str, str, str]] = []
    for category, count in WORKFORCE:
        n = _n(count, scale)
        if category == "county_leader":
            places = [(t, "commander") for t in towns] + [(v, "team_leader") for v in villages]
        elif category == "first_secretary":
            places = [(v, "first_secretary") for v in villages]
        elif category in ("resident_cadre",):
            places = [(v, "member") for v in villages]
        elif category == "agricultural_expert":
            places = [(v, "expert") for v in villages]
        else:
            places = [(g, "member") for g in groups]
        plan += [(category, "", *places[i % len(places)]) for i in range(n)]
    # Village cadres are not posted: they belong to their village.
    plan += [("village_cadre", "party_secretary", v, "") for v in villages]
    for n, (category, position, unit, role) in enumerate(plan):
        rows.append(
            [f"干部{n:05d}", f"139{n:08d}", category, position, unit, role, start if role else ""]
        )
    return rows


async def _import(api: Api, what: str, rows: list[list[Any]]) -> int:
    if len(rows) < 2:
        return 0
    res = await api.call(
        "POST",
        f"/registry/v1/imports/{what}",
        files={"file": (f"{what}.csv", _csv(rows), "text/csv")},
    )
    return int(res["rows"])


async def _gather(coros, limit: int = 8) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def anlong(
    api: Api,
    *,
    scale: float = 1.0,
    today: date,
    progress: Progress,
    go_live: date | None = None,
) -> dict[str, Any]:
    start = date(today.year, 1, 1)
    units = anlong_units(scale)
    known = {u["code"] for u in await api.all("/registry/v1/org-units")}
    progress("units", 0, len(units) - 1)
    await _import(api, "org-units", [units[0]] + [r for r in units[1:] if r[0] not in known])
    progress("units", len(units) - 1, len(units) - 1)
    live = await _go_live(api, today, go_live)

    cadres = anlong_cadres(units, scale, start)
    phones = {c["phone"] for c in await api.all("/registry/v1/cadres")}
    todo = [r for r in cadres[1:] if r[1] not in phones]
    for i in range(0, len(todo), 5000):  # a few files, so progress moves
        await _import(api, "cadres", [cadres[0], *todo[i : i + 5000]])
        progress("cadres", len(cadres) - 1 - len(todo) + min(i + 5000, len(todo)), len(cadres) - 1)
    progress("cadres", len(cadres) - 1, len(cadres) - 1)

    unit_ids = {u["code"]: u["id"] for u in await api.all("/registry/v1/org-units")}
    people = await api.all("/registry/v1/cadres")
    by_phone = {c["phone"]: c for c in people}
    rows = {r[1]: r for r in cadres[1:]}
    await _households(api, unit_ids, rows, by_phone, scale, start, progress)
    await _training(api, unit_ids, people, scale, progress)
    await _honors(api, rows, by_phone, scale, today, progress)
    return {
        "units": len(units) - 1,
        "cadres": len(cadres) - 1,
        "assessment_start_date": live,
        "townships": _n(TOWNSHIPS, scale),
        "villages": _n(VILLAGES, scale),
        "groups": _n(GROUPS, scale),
    }


async def _go_live(api: Api, today: date, wanted: date | None) -> str | None:
    """The county's go-live: `wanted` when given, else (only if none is set yet, so a re-run
    never moves it) the Monday after seeding, the first week the cadres can be judged on."""
    [county] = await api.all("/registry/v1/org-units", kind="county")
    if wanted is None and county.get("assessment_start_date"):
        return county["assessment_start_date"]
    day = wanted or today + timedelta(days=7 - today.weekday())
    await api.call(
        "PATCH",
        f"/registry/v1/org-units/{county['id']}",
        json={"assessment_start_date": day.isoformat()},
    )
    return day.isoformat()


async def _households(api, unit_ids, rows, by_phone, scale, start, progress) -> None:
    villages = [code for code in unit_ids if code.count("-") == 2 and "-V" in code]
    responsible: dict[str, list[str]] = {}
    for phone, r in rows.items():
        if r[2] == "responsible_person" and phone in by_phone:
            responsible.setdefault(r[4].rsplit("-G", 1)[0], []).append(by_phone[phone]["id"])
    existing = {h["code"] for h in await api.all("/registry/v1/households")}
    per_village = _n(HOUSEHOLDS_PER_VILLAGE, scale)
    plan = [(v, f"{v}-H{i:03d}") for v in sorted(villages) for i in range(per_village)]
    todo = [(v, code) for v, code in plan if code not in existing]

    async def one(index: int, village: str, code: str) -> None:
        household = await api.call(
            "POST",
            "/registry/v1/households",
            json={"village_id": unit_ids[village], "code": code, "head_name": f"户主{code[-8:]}"},
        )
        carers = responsible.get(village)
        if carers:
            await api.call(
                "POST",
                "/registry/v1/pairings",
                json={
                    "cadre_id": carers[index % len(carers)],
                    "household_id": household["id"],
                    "start_date": start.isoformat(),
                },
            )

    for i in range(0, len(todo), 200):
        await _gather(one(i + j, v, c) for j, (v, c) in enumerate(todo[i : i + 200]))
        progress("households", len(plan) - len(todo) + i + 200, len(plan))
    progress("households", len(plan), len(plan))


async def _training(api, unit_ids, people, scale, progress) -> None:
    """2018's 163 sessions and 22,285 participant-times, spread over the year."""
    sessions = _n(TRAINING_SESSIONS, scale)
    per = max(1, round(_n(TRAINING_PARTICIPANTS, scale) / sessions))
    titles = {t["title"] for t in await api.all("/registry/v1/training-sessions")}
    kinds = ["concentrated", "on_site_observation", "field_teaching"]
    ids = [c["id"] for c in people]

    async def one(i: int) -> None:
        title = f"2018 培训 {i + 1:03d}"
        if title in titles:
            return
        day = date(2018, 1, 8) + timedelta(days=(i * 350) // sessions)
        await api.call(
            "POST",
            "/registry/v1/training-sessions",
            json={
                "kind": kinds[i % 3],
                "title": title,
                "unit_id": unit_ids["AL"],
                "start_date": day.isoformat(),
                "attendee_ids": [ids[(i * per + k) % len(ids)] for k in range(min(per, len(ids)))],
            },
        )

    await _gather(one(i) for i in range(sessions))
    progress("training", sessions, sessions)


async def _honors(api, rows, by_phone, scale, today, progress) -> None:
    """The 8 party secretaries with deputy-section treatment: 2 by a provincial honor,
    3 by prefecture honors in two consecutive years, 3 by county honors in three."""
    secretaries = [
        by_phone[p]["id"] for p, r in rows.items() if r[3] == "party_secretary" and p in by_phone
    ][: _n(8, scale)]
    year = today.year - 1
    plan: list[tuple[str, str, int]] = []
    for i, cadre in enumerate(secretaries):
        if i < 2:
            plan.append((cadre, "province", year))
        elif i < 5:
            plan += [(cadre, "prefecture", year - 1), (cadre, "prefecture", year)]
        else:
            plan += [(cadre, "county", year - k) for k in (2, 1, 0)]
    have = {(h["cadre_id"], h["level"], h["year"]) for h in await api.all("/registry/v1/honors")}
    await _gather(
        api.call(
            "POST",
            "/registry/v1/honors",
            json={"cadre_id": c, "level": lvl, "year": y, "title": f"{y} 优秀村党组织书记"},
        )
        for c, lvl, y in plan
        if (c, lvl, y) not in have
    )
    progress("honors", len(plan), len(plan))


# The demo


DEMO_VILLAGES = [("DM-V1", 25.10, 105.40), ("DM-V2", 25.12, 105.44), ("DM-V3", 25.15, 105.47)]
DEMO_STAFF = {
    "demo-inspector": ["inspector"],
    "demo-finance": ["finance"],
    "demo-auditor": ["auditor"],
}


def demo_units() -> list[list[Any]]:
    rows: list[list[Any]] = [["code", "name", "kind", "parent_code", "lat", "lon", "radius_m"]]
    rows += [
        ["DM", "演示县", "county", "", "", "", ""],
        ["DM-T1", "演示镇指挥部", "township", "DM", "", "", ""],
    ]
    for code, lat, lon in DEMO_VILLAGES:
        rows.append([code, f"{code} 村级指挥所", "village", "DM-T1", lat, lon, 600])
        rows += [
            [f"{code}-G{i}", f"{code}-G{i} 前沿工作组", "group", code, "", "", ""] for i in (1, 2)
        ]
    return rows


def demo_cadres(start: date) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["name", "phone", "category", "position", "unit_code", "role", "start_date"]
    ]
    plan = [("county_leader", "", "DM-T1", "commander")]
    for code, *_ in DEMO_VILLAGES:
        plan += [("first_secretary", "", code, "first_secretary")]
        plan += [("resident_cadre", "", code, "member")] * 2
        plan += [
            ("village_cadre", p, code, "")
            for p in (
                "party_secretary",
                "committee_director",
                "deputy_director",
                "committee_member",
            )
        ]
        plan += [
            ("front_group_member", "", f"{code}-G{i}", "member") for i in (1, 2) for _ in range(2)
        ]
        plan += [("responsible_person", "", f"{code}-G{i}", "member") for i in (1, 2)]
    for n, (category, position, unit, role) in enumerate(plan):
        rows.append(
            [
                f"演示干部{n:02d}",
                f"1380000{n:04d}",
                category,
                position,
                unit,
                role,
                start if role else "",
            ]
        )
    return rows


async def _user(api: Api, username: str, roles: list[str], **extra: Any) -> str:
    """Make sure the user exists with a fresh password; return that password."""
    password = secrets.token_urlsafe(12)
    found = [u for u in await api.all("/registry/v1/users") if u["username"] == username]
    if found:
        await api.call(
            "POST",
            f"/registry/v1/users/{found[0]['id']}/password",
            json={"new_password": password},
            ok=(200, 204),
        )
    else:
        await api.call(
            "POST",
            "/registry/v1/users",
            json={"username": username, "password": password, "roles": roles, **extra},
        )
    return password


def _at(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), LOCAL_TZ).isoformat()


async def demo(api: Api, *, now: datetime, progress: Progress) -> dict[str, Any]:
    today = local_date(now)
    start = today - timedelta(days=60)
    units = demo_units()
    known = {u["code"] for u in await api.all("/registry/v1/org-units")}
    await _import(api, "org-units", [units[0]] + [r for r in units[1:] if r[0] not in known])
    cadres = demo_cadres(start)
    phones = {c["phone"] for c in await api.all("/registry/v1/cadres")}
    await _import(api, "cadres", [cadres[0]] + [r for r in cadres[1:] if r[1] not in phones])
    progress("registry", 1, 4)
    people = {c["phone"]: c for c in await api.all("/registry/v1/cadres")}
    # Everyone posted to a village or its groups signs in (the township commander does not).
    posted = [people[r[1]] for r in cadres[1:] if r[5] in ("first_secretary", "member")]
    logins = {name: await _user(api, name, roles) for name, roles in DEMO_STAFF.items()}
    for c in posted:
        logins[f"demo-{c['phone']}"] = await _user(
            api, f"demo-{c['phone']}", ["cadre"], cadre_id=c["id"]
        )
    await api.settle()
    progress("logins", 2, 4)

    fences = {code: (lat, lon) for code, lat, lon in DEMO_VILLAGES}
    village_of = {r[1]: r[4][:5] for r in cadres[1:]}  # DM-V1-G2 -> DM-V1
    flagged = 0
    for i, c in enumerate(posted):
        lat, lon = fences[village_of[c["phone"]]]
        items = []
        for back in range(13, 0, -1):
            day = today - timedelta(days=back)
            if i % 4 == 3 and day.weekday() in (1, 3):  # every fourth cadre misses two days a week
                continue
            for hour in (9, 21):
                items.append(
                    {
                        "idempotency_key": f"demo-{c['phone']}-{day.isoformat()}-{hour}",
                        "cadre_id": c["id"],
                        "device_time": _at(day, hour, 7 * i % 50),
                        "lat": lat + (0.2 if i == 1 and back == 3 else 0.0001 * i),
                        "lon": lon,
                        "accuracy_m": 15,
                        "device_id": f"phone-{c['phone']}",
                        "mock_location": i == 2 and back == 5,
                    }
                )
        token = await api.login(f"demo-{c['phone']}", logins[f"demo-{c['phone']}"])
        res = await api.call(
            "POST", "/assessment/v1/sign-ins/batch", json={"items": items}, as_user=token
        )
        flagged += sum(r["status"] == "flagged" for r in res["results"])
    progress("sign-ins", 3, 4)

    inspector = await api.login("demo-inspector", logins["demo-inspector"])
    for subject, kind, severity in (
        (posted[3], "absent_from_post", "minor"),
        (posted[5], "work_style", "major"),
    ):
        mark = f"demo: {kind} ({subject['phone']})"
        have = await api.all("/assessment/v1/findings", subject_id=subject["id"])
        if not any(f.get("description") == mark for f in have):
            await api.call(
                "POST",
                "/assessment/v1/findings",
                as_user=inspector,
                json={
                    "subject_type": "cadre",
                    "subject_id": subject["id"],
                    "kind": kind,
                    "severity": severity,
                    "observed_at": _at(today - timedelta(days=4), 10),
                    "description": mark,
                },
            )
    last_monday = today - timedelta(days=today.weekday() + 7)
    week = format_week(last_monday)
    closed = await api.call("POST", f"/assessment/v1/weeks/{week}/close")
    await api.settle()
    finance = await api.login("demo-finance", logins["demo-finance"])
    month = format_month(today)
    r = await api.client.post(
        api.url("/incentives/v1/stipend-batches"), json={"month": month}, headers=finance
    )
    if r.status_code not in (201, 409):
        raise ClientError(f"stipend batch: {r.status_code} {r.text[:300]}")
    batch = r.json().get("id") or r.json().get("existing_id")
    progress("assessment and pay", 4, 4)
    return {
        "units": len(units) - 1,
        "cadres": len(cadres) - 1,
        "flagged_sign_ins": flagged,
        "closed_week": closed,
        "batch_id": batch,
        "month": month,
        "logins": logins,
    }


async def run(
    profile: str,
    *,
    base_url: str,
    username: str,
    password: str,
    scale: float = 1.0,
    now: datetime | None = None,
    go_live: date | None = None,
    progress: Progress = lambda *_: None,
    transport: httpx.AsyncBaseTransport | None = None,
    service_urls: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Seed one profile into the Frontline at `base_url`, as the given org_admin."""
    now = now or datetime.now(UTC)
    async with httpx.AsyncClient(transport=transport, timeout=300) as client:
        api = Api(client, {"": base_url, **(service_urls or {})})
        api.headers = await api.login(username, password)
        if profile == "anlong":
            return await anlong(
                api, scale=scale, today=local_date(now), progress=progress, go_live=go_live
            )
        if profile == "demo":
            return await demo(api, now=now, progress=progress)
        raise ClientError(f"unknown profile {profile!r}: anlong or demo")
