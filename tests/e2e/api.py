"""The system as a client sees it: HTTP calls against the running processes, plus a wait
for events to settle read from the services' own health reports.
"""

import asyncio
import uuid
from datetime import date, datetime, time, timedelta

import httpx

from shared.clock import LOCAL_TZ
from tests.infra.stack import SERVICES, Stack

VILLAGE = {"lat": 25.1, "lon": 105.47, "radius_m": 800}


class Api:
    """One client per service: separate processes, or the same embedded app for all three."""

    def __init__(self, clients: dict[str, httpx.AsyncClient], admin: tuple[str, str]):
        self.clients = clients
        self.admin_login = admin
        self.admin: dict[str, str] = {}
        self.acked = 0  # writes answered 2xx
        self.retrying = False  # retry 5xx and dropped connections, as a phone would

    @classmethod
    def of_stack(cls, stack: Stack) -> "Api":
        clients = {s: httpx.AsyncClient(base_url=stack.url(s), timeout=30) for s in SERVICES}
        api = cls(clients, stack.admin)
        api.stack = stack
        return api

    async def close(self) -> None:
        for c in set(self.clients.values()):
            await c.aclose()

    async def token(self, username: str, password: str) -> dict[str, str]:
        r = await self.clients["registry"].post(
            "/registry/v1/auth/token", data={"username": username, "password": password}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def login(self) -> None:
        self.admin = await self.token(*self.admin_login)

    async def call(self, method: str, path: str, *, as_=None, expect=(200, 201), **kw):
        service = path.split("/")[1]
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            try:
                r = await self.clients[service].request(
                    method, path, headers=as_ or self.admin, **kw
                )
            except httpx.TransportError:
                if not self.retrying or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            # A phone retries what failed on the server's side (the same idempotency key).
            if r.status_code < 500 or not self.retrying:
                break
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text}"
        if method != "GET":
            self.acked += 1
        return r.json()

    async def settle(self, timeout: float = 60) -> None:
        """Every outbox published and every consumer caught up, twice in a row."""
        deadline = asyncio.get_running_loop().time() + timeout
        calm = 0
        while calm < 2:
            quiet, reports = True, {}
            for s in SERVICES:
                body = reports[s] = (await self.clients[s].get(f"/{s}/health")).json()
                lag = body.get("consumer_lag") or {}
                if body.get("outbox", {}).get("unsent") or any(v != 0 for v in lag.values()):
                    quiet = False
            calm = calm + 1 if quiet else 0
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"events did not settle: {reports}")
            await asyncio.sleep(0.3)

    async def unit(self, kind: str, parent: str | None, **extra) -> dict:
        code = f"{kind[:2].upper()}-{uuid.uuid4().hex[:8]}"
        body = {"code": code, "name": f"{kind} {code}", "kind": kind, "parent_id": parent, **extra}
        return await self.call("POST", "/registry/v1/org-units", json=body)

    async def posted_cadre(
        self, village: str, role: str, start: date, category: str, name: str = ""
    ) -> dict:
        phone = f"139{uuid.uuid4().int % 10**8:08d}"
        cadre = await self.call(
            "POST",
            "/registry/v1/cadres",
            json={"name": name or f"cadre {phone}", "phone": phone, "category": category},
        )
        await self.call(
            "POST",
            "/registry/v1/postings",
            json={
                "cadre_id": cadre["id"],
                "unit_id": village,
                "role": role,
                "start_date": start.isoformat(),
            },
        )
        return cadre

    async def user(self, roles: list[str], **extra) -> dict[str, str]:
        username, password = f"u{uuid.uuid4().hex[:10]}", "pass-" + uuid.uuid4().hex
        await self.call(
            "POST",
            "/registry/v1/users",
            json={"username": username, "password": password, "roles": roles, **extra},
        )
        return await self.token(username, password)


def sign_in(cadre_id: str, day: date, hour: int, minute: int = 0, *, at=VILLAGE) -> dict:
    moment = datetime.combine(day, time(hour, minute), tzinfo=LOCAL_TZ)
    return {
        "idempotency_key": f"{cadre_id}-{day}-{hour}-{minute}",
        "cadre_id": cadre_id,
        "device_time": moment.isoformat(),
        "lat": at["lat"],
        "lon": at["lon"],
        "accuracy_m": 15,
        "device_id": "phone-1",
        "mock_location": False,
    }


def last_ended_week(now: datetime) -> date:
    """Monday of the most recent ISO week that has ended (Monday 06:00 local after it)."""
    local = now.astimezone(LOCAL_TZ)
    this_monday = local.date() - timedelta(days=local.weekday())
    ended = local >= datetime.combine(this_monday, time(6), tzinfo=LOCAL_TZ)
    return this_monday - timedelta(days=7 if ended else 14)


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"
