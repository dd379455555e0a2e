"""Small builders for registry tests: everything goes through the HTTP API, as a client would."""

import itertools
from typing import Any

from shared.contracts.enums import Role
from shared.events import decode
from tests.support import System

API = "/registry/v1"
_seq = itertools.count(1)


def admin(system: System, **kwargs) -> dict[str, str]:
    return system.headers(Role.org_admin, **kwargs)


async def post(system: System, path: str, body: dict, headers=None, status: int = 201) -> dict:
    r = await system.client.post(f"{API}{path}", json=body, headers=headers or admin(system))
    assert r.status_code == status, r.text
    return r.json()


async def get(system: System, path: str, headers=None, status: int = 200, **params) -> Any:
    r = await system.client.get(f"{API}{path}", params=params, headers=headers or admin(system))
    assert r.status_code == status, r.text
    return r.json()


async def make_unit(system: System, kind: str, parent_id: str | None = None, **extra) -> dict:
    n = next(_seq)
    body = {"code": f"{kind[:2].upper()}{n:05d}", "name": f"{kind} {n}", "kind": kind}
    if parent_id:
        body["parent_id"] = parent_id
    if kind == "village" and "geofence" not in extra:
        body["geofence"] = {"lat": 25.1, "lon": 105.4, "radius_m": 800}
    return await post(system, "/org-units", body | extra)


async def make_tree(system: System) -> dict[str, dict]:
    """county > township > village > group, plus a second township with a village."""
    county = await make_unit(system, "county")
    town = await make_unit(system, "township", county["id"])
    village = await make_unit(system, "village", town["id"])
    group = await make_unit(system, "group", village["id"])
    town2 = await make_unit(system, "township", county["id"])
    village2 = await make_unit(system, "village", town2["id"])
    return {
        "county": county,
        "town": town,
        "village": village,
        "group": group,
        "town2": town2,
        "village2": village2,
    }


async def make_cadre(system: System, **overrides) -> dict:
    n = next(_seq)
    body = {"name": f"Cadre {n}", "phone": f"139{n:08d}", "category": "resident_cadre"}
    return await post(system, "/cadres", body | overrides)


async def make_posting(system: System, cadre_id: str, unit_id: str, **overrides) -> dict:
    body = {
        "cadre_id": cadre_id,
        "unit_id": unit_id,
        "role": "member",
        "start_date": "2026-01-01",
    }
    return await post(system, "/postings", body | overrides)


async def make_user(system: System, password: str = "correct horse", **overrides) -> dict:
    n = next(_seq)
    body = {"username": f"user{n}", "password": password, "roles": ["org_admin"]}
    return await post(system, "/users", body | overrides)


async def login(system: System, username: str, password: str):
    return await system.client.post(
        f"{API}/auth/token", data={"username": username, "password": password}
    )


async def bus_events(system: System, type_: str | None = None) -> list[dict]:
    """Every registry event a subscriber of the topic has received so far (after settling)."""
    await system.settle()
    messages = await system.app.state.transport.read("frontline.registry")
    envelopes = [decode(m.value) for m in messages]
    return [
        {"type": e.type, "key": e.key, **e.payload}
        for e in envelopes
        if type_ is None or e.type == type_
    ]
