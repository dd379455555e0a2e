"""`frontline simulate`: phones signing in against any running Frontline, over keep-alive HTTP.

A county is built through the public API (a township, fenced villages, cadres posted
there, a login per cadre), then each phone lives its days: a morning and an evening
sign-in on post, a few phones standing outside their village's fence, a few reporting a
mock location, and some offline that upload their queue as a batch when they come back.
The benchmarks (`bench/`) build their counties and their request bodies with this code.

The load itself goes through aiohttp, the county through httpx: at 64 keep-alive
connections httpx spent about 4 ms of CPU per request here against aiohttp's 0.2 ms, so a
load generator on httpx could not offer 200 requests/s on the 2-core machine it shares
with the services it measures (bench/README.md, "Load generator").

  frontline simulate --base-url http://127.0.0.1:8000 --cadres 100 --duration 30
"""

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from shared.clock import LOCAL_TZ

FENCE_RADIUS_M = 800.0
# About 2 km north: well outside any village fence plus the accuracy slack.
OUTSIDE_OFFSET_DEG = 0.02


@dataclass
class Phone:
    """One cadre's phone: where it stands, how it behaves, what it has queued."""

    cadre_id: str
    village: dict[str, float]
    token: str
    outside: bool = False
    mock: bool = False
    offline: bool = False
    queue: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sign_in(self, moment: datetime, key: str | None = None) -> dict[str, Any]:
        lat = self.village["lat"] + (OUTSIDE_OFFSET_DEG if self.outside else 0.0)
        self.sent += 1
        return {
            "idempotency_key": key or f"{self.cadre_id[:8]}-{uuid.uuid4().hex}",
            "cadre_id": self.cadre_id,
            "device_time": moment.astimezone(LOCAL_TZ).isoformat(),
            "lat": lat,
            "lon": self.village["lon"],
            "accuracy_m": 15.0,
            "device_id": f"phone-{self.cadre_id[:8]}",
            "mock_location": self.mock,
        }


def day_of(phone: Phone, day: date, rng: random.Random) -> list[datetime]:
    """A realistic day on post: one sign-in in the morning, one in the evening (local)."""
    morning = datetime(day.year, day.month, day.day, 7, tzinfo=LOCAL_TZ)
    evening = datetime(day.year, day.month, day.day, 20, 30, tzinfo=LOCAL_TZ)
    return [
        morning + timedelta(minutes=rng.randint(0, 120)),
        evening + timedelta(minutes=rng.randint(0, 90)),
    ]


@dataclass
class County:
    """What `build_county` made: the phones, and the admin's headers."""

    base_url: str
    admin: dict[str, str]
    phones: list[Phone]


async def _call(client: httpx.AsyncClient, method: str, path: str, **kw) -> Any:
    r = await client.request(method, path, **kw)
    if r.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


async def admin_headers(client: httpx.AsyncClient, username: str, password: str) -> dict:
    body = await _call(
        client,
        "POST",
        "/registry/v1/auth/token",
        data={"username": username, "password": password},
    )
    return {"Authorization": f"Bearer {body['access_token']}"}


async def build_county(
    base_url: str,
    *,
    cadres: int,
    villages: int = 10,
    admin: tuple[str, str] = ("admin", "admin"),
    outside_share: float = 0.05,
    mock_share: float = 0.02,
    offline_share: float = 0.1,
    start: date | None = None,
    seed: int = 7,
    mint_token=None,
    in_flight: int = 16,
) -> County:
    """A township with fenced villages and `cadres` posted cadres, each with a login.

    Each cadre gets a user; `mint_token(cadre_id, user_id) -> str` skips its password login
    (benchmarks that hold the signing key); otherwise each logs in.
    """
    rng = random.Random(seed)
    start = start or (datetime.now(LOCAL_TZ).date() - timedelta(days=60))
    limits = httpx.Limits(max_connections=in_flight)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        headers = await admin_headers(client, *admin)
        tag = uuid.uuid4().hex[:6]

        async def unit(kind: str, parent: str | None, **extra) -> str:
            body = {"code": f"{kind[:2]}-{tag}-{rng.randrange(10**9)}", "name": kind}
            body |= {"kind": kind, "parent_id": parent, **extra}
            made = await _call(client, "POST", "/registry/v1/org-units", json=body, headers=headers)
            return made["id"]

        county = await unit("county", None)
        township = await unit("township", county)
        fences = []
        for v in range(villages):
            fence = {"lat": 25.0 + v * 0.05, "lon": 105.4 + v * 0.05, "radius_m": FENCE_RADIUS_M}
            fences.append((await unit("village", township, geofence=fence), fence))
        gate = asyncio.Semaphore(in_flight)

        async def cadre(i: int) -> Phone:
            village_id, fence = fences[i % villages]
            async with gate:
                body = {"name": f"sim {i}", "phone": f"138{rng.randrange(10**8):08d}"}
                body["category"] = "first_secretary"
                made = await _call(
                    client, "POST", "/registry/v1/cadres", json=body, headers=headers
                )
                posting = {"cadre_id": made["id"], "unit_id": village_id, "role": "member"}
                posting["start_date"] = start.isoformat()
                await _call(client, "POST", "/registry/v1/postings", json=posting, headers=headers)
                user = {"username": f"sim-{tag}-{i}", "password": uuid.uuid4().hex}
                user |= {"roles": ["cadre"], "cadre_id": made["id"]}
                login = await _call(
                    client, "POST", "/registry/v1/users", json=user, headers=headers
                )
                if mint_token is not None:
                    token = mint_token(made["id"], login["id"])
                else:
                    token = (await admin_headers(client, user["username"], user["password"]))[
                        "Authorization"
                    ].split()[1]
            return Phone(
                made["id"],
                fence,
                token,
                outside=rng.random() < outside_share,
                mock=rng.random() < mock_share,
                offline=rng.random() < offline_share,
            )

        phones = list(await asyncio.gather(*(cadre(i) for i in range(cadres))))
        await settle(client)
    return County(base_url, headers, phones)


async def settle(client: httpx.AsyncClient, timeout: float = 120) -> None:
    """Wait until every service reports an empty outbox and no consumer lag, twice."""
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:
        quiet = True
        for s in ("registry", "assessment", "incentives"):
            body = (await client.get(f"/{s}/health")).json()
            lag = body.get("consumer_lag") or {}
            if body.get("outbox", {}).get("unsent") or any(v for v in lag.values()):
                quiet = False
        calm = calm + 1 if quiet else 0
        if time.monotonic() > deadline:
            raise TimeoutError("events did not settle")
        await asyncio.sleep(0.3)


def live_stream(phones: list[Phone], n: int, now: datetime) -> list[tuple[Phone, dict]]:
    """`n` sign-ins at the present moment, round-robin over the phones (a busy morning).

    Each phone's device times step forward by a second, so every body is fresh and none is
    in the future or in a closed week.
    """
    out = []
    for i in range(n):
        phone = phones[i % len(phones)]
        moment = (
            now - timedelta(seconds=n // len(phones) + 60) + timedelta(seconds=i // len(phones))
        )
        out.append((phone, phone.sign_in(moment)))
    return out


def offline_queue(phone: Phone, days: list[date], rng: random.Random) -> list[dict]:
    """What a phone that was offline over `days` uploads when it comes back."""
    return [phone.sign_in(m) for d in days for m in day_of(phone, d, rng)]


@dataclass
class Tally:
    started: float = field(default_factory=time.perf_counter)
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    items: int = 0

    def add(self, status: int, seconds: float, items: int = 1) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)
        self.items += items

    def summary(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        lat = sorted(self.latencies) or [0.0]
        return {
            "requests": len(self.latencies),
            "items": self.items,
            "seconds": round(elapsed, 2),
            "req_per_s": round(len(self.latencies) / elapsed, 1),
            "items_per_s": round(self.items / elapsed, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
            "statuses": {str(k): n for k, n in sorted(self.statuses.items())},  # JSON keys
            "errors": self.errors,
        }


def load_client(base_url: str, connections: int) -> aiohttp.ClientSession:
    """The load's keep-alive client: at most `connections` open, 30 s per request."""
    return aiohttp.ClientSession(
        base_url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=30),
    )


async def run_load(
    county: County,
    *,
    duration: float,
    connections: int = 64,
    offline_days: int = 3,
    seed: int = 11,
) -> dict[str, Any]:
    """Each connection plays phones in turn for `duration` seconds: online phones sign in
    now, offline ones upload `offline_days` of queued sign-ins as one batch."""
    rng = random.Random(seed)
    tally = Tally()
    deadline = time.perf_counter() + duration
    today = datetime.now(LOCAL_TZ).date()
    async with load_client(county.base_url, connections) as client:

        async def worker(w: int) -> None:
            n = w
            while time.perf_counter() < deadline:
                phone = county.phones[n % len(county.phones)]
                n += connections
                if phone.offline:
                    days = [today - timedelta(days=d) for d in range(offline_days, 0, -1)]
                    path, body = (
                        "/assessment/v1/sign-ins/batch",
                        {"items": offline_queue(phone, days, rng)},
                    )
                    items = len(body["items"])
                else:
                    path, body = "/assessment/v1/sign-ins", phone.sign_in(datetime.now(LOCAL_TZ))
                    items = 1
                t0 = time.perf_counter()
                try:
                    async with client.post(
                        path,
                        data=orjson.dumps(body),
                        headers=phone.headers | {"Content-Type": "application/json"},
                    ) as r:
                        await r.read()
                    tally.add(r.status, time.perf_counter() - t0, items)
                except (aiohttp.ClientError, TimeoutError):
                    tally.errors += 1

        await asyncio.gather(*(worker(w) for w in range(connections)))
    return tally.summary()


async def simulate(args) -> dict[str, Any]:
    mint = None
    if args.jwt_private_key_file:
        pem = await asyncio.to_thread(Path(args.jwt_private_key_file).read_text)
        mint = token_minter(pem)
    county = await build_county(
        args.base_url,
        cadres=args.cadres,
        admin=(args.admin_user, args.admin_password),
        mint_token=mint,
    )
    return await run_load(county, duration=args.duration, connections=args.connections)


def token_minter(private_key_pem: str, issuer: str = "frontline-registry"):
    """Cadre tokens signed locally with the registry's key (benchmarks that hold it; no
    per-cadre password login). The user must exist: services refuse unknown users."""
    from shared.auth import Principal, issue_token
    from shared.clock import Clock
    from shared.keys import KeyRing, load_private
    from shared.settings import KernelSettings

    keys = KeyRing(signing=load_private(private_key_pem))
    kernel = KernelSettings(jwt_issuer=issuer)
    clock = Clock()

    def mint(cadre_id: str, user_id: str) -> str:
        principal = Principal(
            user_id=user_id, username=f"sim-{cadre_id[:8]}", roles=["cadre"], cadre_id=cadre_id
        )
        return issue_token(keys, kernel, clock, principal)[0]

    return mint
