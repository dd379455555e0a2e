"""The registry's audit log through HTTP (who may read it, scope, filters, pages) and
`frontline audit verify` against its database, tampered with behind its back.
"""

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from services.cli import main
from shared.contracts.enums import Role
from tests.support import System

AUDIT = "/registry/v1/audit"


async def read(system: System, headers, status: int = 200, **params):
    r = await system.client.get(AUDIT, params=params, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def unit_by(system: System, admin_id: uuid.UUID, kind: str, parent=None, rid=None) -> dict:
    headers = system.headers(Role.org_admin, user_id=admin_id, username="zuzhi-wang")
    if rid:
        headers["X-Request-ID"] = rid
    body = {"code": f"{kind[:2]}-{uuid.uuid4().hex[:8]}", "name": kind, "kind": kind}
    if parent:
        body["parent_id"] = parent
    if kind == "village":
        body["geofence"] = {"lat": 25.1, "lon": 105.4, "radius_m": 800}
    r = await system.client.post("/registry/v1/org-units", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == (rid or r.headers["x-request-id"])
    return r.json()


async def test_auditors_read_the_log_scoped_to_their_subtree(system):
    admin_id = uuid.uuid4()
    county = await unit_by(system, admin_id, "county")
    town = await unit_by(system, admin_id, "township", county["id"], rid="make-town-1")
    village = await unit_by(system, admin_id, "village", town["id"])
    town2 = await unit_by(system, admin_id, "township", county["id"])

    everything = (await read(system, system.headers(Role.auditor)))["items"]
    made = [r for r in everything if r["action"] == "POST /registry/v1/org-units"]
    assert [r["unit_id"] for r in made] == [county["id"], town["id"], village["id"], town2["id"]]
    first = made[1]
    assert (first["actor_id"], first["actor_name"], first["roles"]) == (
        str(admin_id),
        "zuzhi-wang",
        ["org_admin"],
    )
    assert first["request_id"] == "make-town-1" and first["target_id"] == town["id"]
    assert first["summary"]["body"]["kind"] == "township"
    assert first["at"] == "2026-11-25T02:00:00Z"

    r = await system.client.patch(
        f"/registry/v1/org-units/{village['id']}",
        json={"name": "Polao"},
        headers=system.headers(Role.org_admin, user_id=admin_id),
    )
    assert r.status_code == 200, r.text
    renamed = (await read(system, system.headers(Role.auditor), target=village["id"]))["items"]
    assert [(x["action"], x["target_id"]) for x in renamed if x["kind"] == "request"] == [
        ("POST /registry/v1/org-units", village["id"]),
        ("PATCH /registry/v1/org-units/{unit_id}", village["id"]),
    ]

    scoped = await read(system, system.headers(Role.auditor, unit_id=town["id"]))
    assert {r["unit_id"] for r in scoped["items"]} == {town["id"], village["id"]}

    # The log watches org admins and everyone else: only auditors read it.
    for role in (Role.org_admin, Role.finance, Role.inspector, Role.cadre):
        await read(system, system.headers(role), status=403)
    await read(system, {}, status=401)


async def test_filters_and_pages(system):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    county = await unit_by(system, alice, "county", rid="r-county")
    system.clock.advance(hours=1)
    town = await unit_by(system, bob, "township", county["id"], rid="r-town")
    system.clock.advance(hours=1)
    await unit_by(system, alice, "township", county["id"], rid="r-town2")
    auditor = system.headers(Role.auditor)

    def actions(page):
        return [r["request_id"] for r in page["items"] if r["kind"] == "request"]

    assert actions(await read(system, auditor, actor_id=str(bob))) == ["r-town"]
    only = await read(system, auditor, kind="request")
    assert {r["kind"] for r in only["items"]} == {"request"} and len(only["items"]) == 3
    assert (await read(system, auditor, status=422, kind="update"))["field"] == "kind"
    assert actions(await read(system, auditor, request_id="r-town2")) == ["r-town2"]
    assert actions(await read(system, auditor, target=town["id"])) == ["r-town"]
    since = (system.clock.now() - timedelta(minutes=90)).isoformat()
    until = system.clock.now().isoformat()
    assert actions(await read(system, auditor, since=since, until=until)) == ["r-town"]
    bad = await read(system, auditor, status=422, since="2026-11-25T10:00:00")
    assert bad["field"] == "since"

    seen, cursor = [], None
    while True:
        page = await read(system, auditor, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r["seq"] for r in seen] == list(range(1, len(seen) + 1))
    assert actions({"items": seen}) == ["r-county", "r-town", "r-town2"]
    assert all(r["prev_hash"] == p["hash"] for p, r in zip(seen, seen[1:], strict=False))


def verify_cli(*args: str) -> int:
    try:
        main(["audit", "verify", *args])
    except SystemExit as exit:
        return exit.code
    raise AssertionError("the command must exit with a status")


@pytest.fixture
def cli_env(system, monkeypatch, service_settings) -> None:
    """The CLI reads the registry's database from settings, as `frontline serve` does."""
    monkeypatch.setenv("FRONTLINE_VAR_DIR", str(system.kernel.var_dir))
    if service_settings:
        url = service_settings["registry"].database_url
        monkeypatch.setenv("FRONTLINE_REGISTRY_DATABASE_URL", url)


async def tamper(system: System, sql: str) -> None:
    async with system.runtime("registry").engine.begin() as conn:
        await conn.execute(text(sql))


async def test_verify_names_edited_deleted_and_inserted_rows(system, cli_env, capsys):
    admin_id = uuid.uuid4()
    await system.settle()  # row 1: the registry applying its bootstrap admin's user event
    county = await unit_by(system, admin_id, "county")
    for _ in range(4):
        await unit_by(system, admin_id, "township", county["id"])
    assert await asyncio.to_thread(verify_cli, "registry") == 0
    intact = capsys.readouterr().out
    assert "registry: 6 rows, chain intact, head 6:" in intact

    await tamper(system, "UPDATE audit_log SET actor_name = 'nobody' WHERE seq = 2")
    assert await asyncio.to_thread(verify_cli, "registry") == 1
    assert "registry row 2: content does not match its hash" in capsys.readouterr().out

    await tamper(system, "DELETE FROM audit_log WHERE seq = 4")
    assert await asyncio.to_thread(verify_cli, "registry") == 1
    out = capsys.readouterr().out
    assert "registry row 4: missing (deleted)" in out
    assert "registry row 5: prev_hash does not match the hash of row 3" in out

    await tamper(
        system,
        "INSERT INTO audit_log SELECT 4, at, kind, action, actor_id, actor_name, roles,"
        " request_id, target_id, targets, unit_id, summary, hash, hash FROM audit_log"
        " WHERE seq = 3",
    )
    assert await asyncio.to_thread(verify_cli, "registry") == 1
    out = capsys.readouterr().out
    assert "registry row 4: content does not match its hash" in out
    assert "missing" not in out

    # A cut tail leaves an intact chain: the head printed earlier catches it.
    head = intact.split("head ")[1].strip()
    await tamper(system, "DELETE FROM audit_log WHERE seq >= 2")
    assert await asyncio.to_thread(verify_cli, "registry") == 0
    assert await asyncio.to_thread(verify_cli, "registry", "--anchor", head) == 1
    assert (
        "registry row 6: differs from or is missing against the anchor" in capsys.readouterr().out
    )
