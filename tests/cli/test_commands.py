"""The `frontline` commands that operate a running Frontline, against an embedded app served
on a loopback port (the commands speak HTTP like any client)."""

import asyncio
import csv
import io
import socket
from datetime import UTC, datetime, timedelta

import openpyxl
import orjson
import pytest
import uvicorn

from services.cli import main
from tests.cli.conftest import ADMIN, PASSWORD


@pytest.fixture
async def base_url(system, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(system.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn gives no event to wait on)
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("FRONTLINE_URL", url)
    monkeypatch.setenv("FRONTLINE_USERNAME", ADMIN)
    monkeypatch.setenv("FRONTLINE_PASSWORD", PASSWORD)
    yield url
    server.should_exit = True
    await task


async def frontline(capsys, *argv: str) -> tuple[int, str, str]:
    """Run one command in a thread of its own (it runs its own event loop)."""
    try:
        await asyncio.to_thread(main, list(argv))
        code = 0
    except SystemExit as stop:
        code = stop.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def as_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


async def test_import_close_a_week_users_and_export(
    system, base_url, capsys, tmp_path, monkeypatch
):
    units = tmp_path / "units.csv"
    units.write_bytes(
        as_csv(
            [
                ["code", "name", "kind", "parent_code", "lat", "lon", "radius_m"],
                ["CX", "县", "county", "", "", "", ""],
                ["CX-T", "镇", "township", "CX", "", "", ""],
                ["CX-V", "村", "village", "CX-T", "25.0", "105.5", "500"],
            ]
        )
    )
    code, out, err = await frontline(capsys, "import", "units", str(units), "--dry-run")
    assert code == 0, err
    assert orjson.loads(out)["dry_run"] is True
    code, out, _ = await frontline(capsys, "import", "units", str(units))
    assert code == 0 and orjson.loads(out)["created"] == {"units": 3}

    cadres = tmp_path / "cadres.csv"
    cadres.write_bytes(
        as_csv(
            [
                ["name", "phone", "category", "unit_code", "role", "start_date"],
                ["李华", "13900000001", "first_secretary", "CX-V", "first_secretary", "2026-01-01"],
                ["王芳", "13900000002", "bogus_category", "CX-V", "member", "2026-01-01"],
            ]
        )
    )
    code, out, err = await frontline(capsys, "import", "cadres", str(cadres))
    assert code == 1 and "row 3, category" in err  # all rows or none: the bad one is named
    code, out, err = await frontline(capsys, "close-week", "2026-W47")
    assert code == 0, err
    assert orjson.loads(out)["week"] == "2026-W47"
    code, _, err = await frontline(capsys, "close-week", "2026-W48")  # not ended yet
    assert code == 1 and "409" in err and "week_not_ended" in err

    code, out, err = await frontline(
        capsys, "user", "create", "pay-clerk", "--role", "finance", "--password", "Clerk-pass-2026x"
    )
    assert code == 0, err
    assert orjson.loads(out)["roles"] == ["finance"]
    monkeypatch.setenv("FRONTLINE_USERNAME", "pay-clerk")
    monkeypatch.setenv("FRONTLINE_PASSWORD", "Clerk-pass-2026x")
    r = await system.client.post(
        "/incentives/v1/stipend-batches",
        json={"month": "2026-11"},
        headers=system.headers("finance"),
    )
    assert r.status_code == 201, r.text
    book = tmp_path / "batch.xlsx"
    code, out, err = await frontline(
        capsys, "export", "batch", "2026-11", "--format", "xlsx", "--out", str(book)
    )
    assert code == 0, err
    assert "draft" in out and openpyxl.load_workbook(book).sheetnames
    code, _, err = await frontline(capsys, "export", "batch", "2026-10", "--out", str(book))
    assert code == 1 and "no stipend batch for 2026-10" in err

    monkeypatch.setenv("FRONTLINE_USERNAME", ADMIN)
    monkeypatch.setenv("FRONTLINE_PASSWORD", PASSWORD)
    code, out, err = await frontline(capsys, "user", "deactivate", "pay-clerk")
    assert code == 0 and orjson.loads(out)["active"] is False, err
    monkeypatch.setenv("FRONTLINE_USERNAME", "pay-clerk")
    monkeypatch.setenv("FRONTLINE_PASSWORD", "Clerk-pass-2026x")
    code, _, err = await frontline(capsys, "close-week", "2026-W47")
    assert code == 1 and "401" in err  # a deactivated login signs in no more


async def test_simulate_builds_a_county_and_its_phones_sign_in(system, base_url, capsys):
    # The phones' sign-ins carry the wall clock's time (the command runs against live servers).
    system.clock.set(datetime.now(UTC) + timedelta(seconds=30))
    code, out, err = await frontline(
        capsys, "simulate", "--base-url", base_url, "--cadres", "4", "--duration", "1.5",
        "--connections", "4", "--admin-user", ADMIN, "--admin-password", PASSWORD,
    )  # fmt: skip
    assert code == 0, err
    tally = orjson.loads(out)
    assert tally["errors"] == 0 and tally["requests"] > 0
    # Online phones get 201, offline ones upload a batch (200); never a refusal.
    assert set(tally["statuses"]) <= {"200", "201"} and tally["statuses"].get("201"), tally
    r = await system.client.get("/assessment/v1/sign-ins", headers=system.headers("org_admin"))
    assert r.status_code == 200 and r.json()["items"], r.text
