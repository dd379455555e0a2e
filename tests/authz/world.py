"""The matrix's fixture world, built once per backend through the services' own HTTP APIs.

A county with two townships T1 and T2 (two villages each, a group in the first), a cadre
posted in each township's village (A in T1, B in T2) plus a second T1 cadre, their logins,
honors, households and pairings, training, sign-ins, leave, findings (and the actions they
set off), rosters, tasks, work logs, a published report and October's stipend batch. The
principals are real users who log in with a password.
"""

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shared.contracts.enums import Role
from tests.support import System

PASSWORD = "matrix-Pass-phrase-2026"
VILLAGE = {"T1": (25.0, 105.5), "T2": (25.2, 105.9)}
# name: (roles, scope: None county-wide, "T1" the first township, "cadre" cadre A's login)
PRINCIPALS: dict[str, tuple[tuple[Role, ...], str | None]] = {
    "anonymous": ((), None),
    "cadre": ((Role.cadre,), "cadre"),
    "inspector": ((Role.inspector,), None),
    "inspector_t1": ((Role.inspector,), "T1"),
    "org_admin": ((Role.org_admin,), None),
    "org_admin_t1": ((Role.org_admin,), "T1"),
    "finance": ((Role.finance,), None),
    "finance_t1": ((Role.finance,), "T1"),
    "auditor": ((Role.auditor,), None),
    "auditor_t1": ((Role.auditor,), "T1"),
}
_seq = itertools.count(1)
_months = itertools.count(0)


def n() -> int:
    return next(_seq)


@dataclass
class Side:
    """One township's records: what a call on T1 or on T2 targets."""

    name: str
    ids: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> str:
        try:
            return self.ids[key]
        except KeyError:
            raise AttributeError(key) from None


class World:
    def __init__(self, system: System):
        self.system = system
        self.client = system.client
        self.admin = system.headers(Role.org_admin)
        self.t = {"T1": Side("T1"), "T2": Side("T2")}
        self.headers: dict[str, dict[str, str]] = {}
        self.stipend = ""

    async def call(self, method: str, url: str, headers=None, ok=(200, 201, 204), **kw) -> Any:
        r = await self.client.request(method, url, headers=headers or self.admin, **kw)
        assert r.status_code in ok, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content and r.headers.get("content-type", "").endswith("json") else {}

    async def reg(self, path: str, body: dict, **kw) -> dict:
        return await self.call("POST", f"/registry/v1{path}", json=body, **kw)

    async def asm(self, path: str, body: dict, **kw) -> dict:
        return await self.call("POST", f"/assessment/v1{path}", json=body, **kw)

    # --- registry things, fresh on every call -------------------------------------------

    async def unit(self, kind: str, parent: str, **extra) -> str:
        i = n()
        body = {"code": f"M{kind[:2].upper()}{i:05d}", "name": f"{kind} {i}", "kind": kind}
        if kind == "village":
            lat, lon = VILLAGE[extra.pop("side", "T1")]
            body["geofence"] = {"lat": lat, "lon": lon, "radius_m": 800}
        return (await self.reg("/org-units", body | {"parent_id": parent} | extra))["id"]

    async def cadre(self, side: Side, **extra) -> str:
        i = n()
        body = {"name": f"Cadre {i}", "phone": f"138{i:08d}", "category": "resident_cadre"}
        return (await self.reg("/cadres", body | {"unit_id": side.village} | extra))["id"]

    async def posting(self, cadre: str, unit: str, start: str = "2026-01-01") -> str:
        body = {"cadre_id": cadre, "unit_id": unit, "role": "member", "start_date": start}
        return (await self.reg("/postings", body))["id"]

    async def user(self, side: Side | None, roles: list[str], **extra) -> dict:
        body = {"username": f"m{n()}user", "password": PASSWORD, "roles": roles}
        if side is not None:
            body["unit_id"] = side.village
        return await self.reg("/users", body | extra)

    async def honor(self, side: Side) -> str:
        body = {"cadre_id": side.cadre, "level": "county", "year": 2025, "title": f"H{n()}"}
        return (await self.reg("/honors", body))["id"]

    async def household(self, side: Side) -> str:
        body = {"village_id": side.village, "code": f"HH{n():05d}", "head_name": "Head"}
        return (await self.reg("/households", body))["id"]

    async def pairing(self, side: Side) -> str:
        body = {
            "cadre_id": side.cadre,
            "household_id": await self.household(side),
            "start_date": "2026-02-01",
        }
        return (await self.reg("/pairings", body))["id"]

    async def training(self, side: Side, attendees: list[str] = ()) -> str:
        body = {
            "kind": "concentrated",
            "title": f"Training {n()}",
            "unit_id": side.town,
            "start_date": "2026-03-02",
            "attendee_ids": list(attendees),
        }
        return (await self.reg("/training-sessions", body))["id"]

    # --- assessment things ---------------------------------------------------------------

    def finding_body(self, side: Side) -> dict:
        return {
            "subject_type": "cadre",
            "subject_id": side.cadre,
            "kind": "work_style",
            "severity": "minor",
            "observed_at": "2026-11-24T10:00:00+08:00",
            "description": f"seen on a visit {n()}",
        }

    async def finding(self, side: Side) -> dict:
        headers = self.system.headers(Role.inspector)
        return await self.asm("/findings", self.finding_body(side), headers=headers)

    async def action(self, side: Side) -> dict:
        """A pending accountability action: the one a fresh finding sets off."""
        finding = await self.finding(side)
        page = await self.call(
            "GET",
            "/assessment/v1/accountability-actions",
            params={"cadre_id": side.cadre, "status": "pending", "limit": 500},
        )
        [action] = [a for a in page["items"] if a["entry_id"] == finding["entry_id"]]
        return action

    def leave_body(self, side: Side, start: date) -> dict:
        end = start + timedelta(days=1)
        return {
            "cadre_id": side.cadre,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "kind": "personal",
            "reason": "family",
        }

    def future(self) -> date:
        return date(2027, 1, 1) + timedelta(days=3 * n())

    def past(self) -> date:
        """Distinct two-day spans in 2025, so no two fresh leaves overlap."""
        return date(2025, 1, 1) + timedelta(days=3 * (n() % 120))

    async def leave(self, side: Side, start: date | None = None, approve: bool = False) -> str:
        row = await self.asm("/leave-requests", self.leave_body(side, start or self.future()))
        if approve:
            await self.asm(f"/leave-requests/{row['id']}/approve", {})
        return row["id"]

    async def task(self, side: Side) -> str:
        body = {
            "unit_id": side.village,
            "quarter": "2026-Q4",
            "title": f"Task {n()}",
            "assignee_id": side.cadre,
            "deadline": "2026-12-20",
        }
        return (await self.asm("/tasks", body))["id"]

    def signin_body(self, side: Side) -> dict:
        lat, lon = VILLAGE[side.name]
        return {
            "idempotency_key": f"k{n()}",
            "cadre_id": side.cadre,
            "device_time": "2026-11-25T09:00:00+08:00",
            "lat": lat,
            "lon": lon,
            "accuracy_m": 10,
            "device_id": "phone",
        }

    # --- incentives ----------------------------------------------------------------------

    def month(self) -> str:
        """A distinct month with nobody posted, for a fresh (small) stipend batch."""
        i = next(_months)
        return f"{2000 + i // 12:04d}-{i % 12 + 1:02d}"

    async def batch(self, lock: bool = False) -> str:
        fin = self.system.headers(Role.finance)
        body = await self.call(
            "POST", "/incentives/v1/stipend-batches", json={"month": self.month()}, headers=fin
        )
        if lock:
            await self.call(
                "POST", f"/incentives/v1/stipend-batches/{body['id']}/lock", headers=fin
            )
        return body["id"]

    # --- the world -----------------------------------------------------------------------

    async def build(self) -> None:
        county = await self.unit("county", None)
        for name, side in self.t.items():
            side.ids["town"] = await self.unit("township", county)
            side.ids["village"] = await self.unit("village", side.town, side=name)
            side.ids["village_b"] = await self.unit("village", side.town, side=name)
            side.ids["group"] = await self.unit("group", side.village)
            side.ids["cadre"] = await self.cadre(side)
            side.ids["posting"] = await self.posting(side.cadre, side.village)
            if name == "T2":  # T1's cadre login is the matrix's cadre principal
                login = await self.user(side, ["cadre"], cadre_id=side.cadre)
                side.ids["user"], side.ids["username"] = login["id"], login["username"]
            side.ids["reset_user"] = (await self.user(side, ["inspector"]))["id"]
            side.ids["honor"] = await self.honor(side)
            side.ids["household"] = await self.household(side)
            side.ids["pairing"] = await self.pairing(side)
            side.ids["training"] = await self.training(side, [side.cadre])
        t1 = self.t["T1"]
        t1.ids["cadre2"] = await self.cadre(t1)
        await self.posting(t1.cadre2, t1.village)
        await self.logins()
        await self.system.settle()
        for side in self.t.values():
            signin = await self.asm(
                "/sign-ins", self.signin_body(side), headers=self.as_cadre(side)
            )
            side.ids["signin"] = signin["id"]
            side.ids["finding"] = (await self.finding(side))["id"]
            side.ids["leave"] = await self.leave(side)
            side.ids["task"] = await self.task(side)
            roster = {
                "unit_id": side.village,
                "duties": [{"cadre_id": side.cadre, "duty_date": "2026-11-20"}],
            }
            side.ids["roster"] = (await self.asm("/duty-rosters", roster))["id"]
            log = {"cadre_id": side.cadre, "log_date": "2026-11-24", "text": "visited"}
            side.ids["log"] = (await self.asm("/work-logs", log, headers=self.as_cadre(side)))["id"]
        await self.asm("/reports", {"kind": "weekly_dispatch", "period": "2026-W47"}, ok=(200, 201))
        await self.system.settle()
        fin = self.system.headers(Role.finance)
        body = await self.call(
            "POST", "/incentives/v1/stipend-batches", json={"month": "2026-10"}, headers=fin
        )
        self.stipend = body["id"]

    def as_cadre(self, side: Side) -> dict[str, str]:
        return self.system.headers(Role.cadre, cadre_id=side.cadre)

    async def logins(self) -> None:
        """Every principal is a user of the registry and logs in with its password."""
        for name, (roles, scope) in PRINCIPALS.items():
            if not roles:
                self.headers[name] = {}
                continue
            extra: dict[str, Any] = {}
            if scope == "cadre":
                extra = {"cadre_id": self.t["T1"].cadre, "unit_id": self.t["T1"].village}
            elif scope == "T1":
                extra = {"unit_id": self.t["T1"].town}
            user = await self.reg(
                "/users",
                {"username": f"m{name}", "password": PASSWORD, "roles": [r.value for r in roles]}
                | extra,
            )
            if scope == "cadre":
                self.t["T1"].ids["user"], self.t["T1"].ids["username"] = user["id"], f"m{name}"
            r = await self.client.post(
                "/registry/v1/auth/token", data={"username": f"m{name}", "password": PASSWORD}
            )
            assert r.status_code == 200, r.text
            self.headers[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def relogin(self, name: str) -> None:
        """A new token after the principal's own password change ended its old ones."""
        r = await self.client.post(
            "/registry/v1/auth/token", data={"username": f"m{name}", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        self.headers[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def leak_ids(self, principal: str) -> set[str]:
        """Ids a principal must never see in an answer: T2's for a T1-scoped user, other
        cadres' records (not the org tree) for a cadre."""
        t2 = self.t["T2"]
        if principal.endswith("_t1"):
            return {v for k, v in t2.ids.items() if k not in ("username",)}
        if principal == "cadre":
            skip = ("town", "village", "village_b", "group", "username")
            return {v for k, v in t2.ids.items() if k not in skip} | {self.t["T1"].cadre2}
        return set()
