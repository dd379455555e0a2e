"""Month close at province scale on PostgreSQL: the month's presence (closing its five
ISO weeks, set-based) and the stipend batch built from what the close produced.

Per size N: two fresh databases migrated by the services themselves (assessment and
incentives, the real schema), N cadres posted to 181 villages, about 60 sign-ins each
(a day sign-in every day, a night one Monday to Friday, over the five weeks whose Sunday
falls in November 2026; a quarter of the cadres miss three days of one week). Bulk-loaded
with set-based SQL straight into the service tables: the bench measures closing, not
ingest. Then, timed: the five weeks closed one transaction each (what the scheduler
does), and the November batch built. The close's verdicts, entries and actions are
copied into incentives' projections between the two (what the events would carry).

  .venv/bin/python bench/month_close.py [N ...]          (default 10000 30000 100000)

With 100k among the sizes the targets are checked at 100k; otherwise the largest size
is scaled linearly to 100k. With two sizes or more, largest/smallest shows the growth.
"""

import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.assessment.app import spec as assessment_spec  # noqa: E402
from services.assessment.service import presence  # noqa: E402
from services.assessment.settings import AssessmentSettings  # noqa: E402
from services.incentives.app import spec as incentives_spec  # noqa: E402
from services.incentives.service import batches  # noqa: E402
from services.incentives.settings import IncentivesSettings  # noqa: E402
from shared.clock import FrozenClock, format_week  # noqa: E402
from shared.runtime import build_app  # noqa: E402
from shared.settings import KernelSettings  # noqa: E402
from tests.infra.postgres import (  # noqa: E402
    _run_sync,
    create_database,
    drop_database,
    postgres_server,
)

FIRST_MONDAY = date(2026, 10, 26)  # 2026-W44, whose Sunday is 1 November
WEEKS = [format_week(date.fromordinal(FIRST_MONDAY.toordinal() + 7 * i)) for i in range(5)]
MONTH = date(2026, 11, 1)
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # after 2026-W48 ended (Asia/Shanghai)
VILLAGES = 181
EVENT = "00000000-0000-0000-0000-000000000000"

SIGN_INS = """
INSERT INTO sign_ins (id, cadre_id, idempotency_key, device_time, received_at, lat, lon,
    accuracy_m, device_id, mock_location, status, reasons, counted, posting_id, unit_id,
    local_date, day_date, night_date)
SELECT gen_random_uuid(), p.cadre_id, m.kind || d, t, t, 25.0, 105.5, 10, 'p', false,
    'accepted', '', true, p.posting_id, p.unit_id, $1::date + d,
    CASE WHEN m.kind = 'd' THEN $1::date + d END, CASE WHEN m.kind = 'n' THEN $1::date + d END
FROM (SELECT *, row_number() OVER (ORDER BY cadre_id) AS i FROM postings) p
CROSS JOIN generate_series(0, 34) AS d
CROSS JOIN (VALUES ('d', time '10:00'), ('n', time '21:00')) AS m(kind, at)
CROSS JOIN LATERAL (SELECT (($1::date + d) + m.at) AT TIME ZONE 'Asia/Shanghai' AS t) AS x
WHERE (m.kind = 'd' OR d % 7 < 5)
  AND NOT (p.i % 4 = 0 AND d / 7 = p.i % 5 AND d % 7 < 3)
"""


async def seed_assessment(conn: asyncpg.Connection, cadres: list, villages: list) -> None:
    county, town = uuid.uuid4(), uuid.uuid4()
    units = [(county, "county", None), (town, "township", county)]
    units += [(v, "village", town) for v in villages]
    await conn.executemany(
        "INSERT INTO units (unit_id, code, name, kind, parent_id, fence_lat, fence_lon,"
        " fence_radius_m, special_difficulty, active)"
        " VALUES ($1, $2, $2, $3, $4, 25.0, 105.5, 500, false, true)",
        [(u, u.hex[:8], kind, parent) for u, kind, parent in units],
    )
    paths = [(county, county, 0), (town, town, 0), (town, county, 1)]
    paths += [p for v in villages for p in ((v, v, 0), (v, town, 1), (v, county, 2))]
    await conn.copy_records_to_table(
        "unit_paths", records=paths, columns=["unit_id", "ancestor_id", "depth"]
    )
    await conn.copy_records_to_table(
        "cadres",
        records=[(c, "x", "resident_cadre", True) for c in cadres],
        columns=["cadre_id", "name", "category", "active"],
    )
    await conn.copy_records_to_table(
        "postings",
        records=[
            (uuid.uuid4(), c, villages[i % VILLAGES], "member", date(2026, 1, 1))
            for i, c in enumerate(cadres)
        ],
        columns=["posting_id", "cadre_id", "unit_id", "role", "start_date"],
    )
    await conn.execute(SIGN_INS, FIRST_MONDAY)
    # As in service, where last week's sign-ins were vacuumed (autovacuum on inserts) before
    # the close: the visibility map lets the tallies read the partial indexes alone.
    await conn.execute("VACUUM ANALYZE")
    return county, town


async def seed_incentives(
    conn: asyncpg.Connection, source: asyncpg.Connection, county, town, villages
) -> None:
    """Incentives' projections as the registry's and assessment's events leave them."""
    units = [(county, "county", None), (town, "township", county)]
    units += [(v, "village", town) for v in villages]
    await conn.copy_records_to_table(
        "units",
        records=[(u, u.hex[:8], kind, parent, EVENT, "UnitUpserted") for u, kind, parent in units],
        columns=["unit_id", "name", "kind", "parent_id", "event_id", "event_type"],
    )
    paths = [(county, county, 0), (town, town, 0), (town, county, 1)]
    paths += [p for v in villages for p in ((v, v, 0), (v, town, 1), (v, county, 2))]
    await conn.copy_records_to_table(
        "unit_ancestors", records=paths, columns=["unit_id", "ancestor_id", "depth"]
    )
    start = date(2026, 1, 1)
    posts = await source.fetch("SELECT posting_id, cadre_id, unit_id FROM postings")
    await conn.copy_records_to_table(
        "cadres",
        records=[(p[1], "x", "resident_cadre", True, start, EVENT, "CadreUpserted") for p in posts],
        columns=["cadre_id", "name", "category", "active", "effective_date"]
        + ["event_id", "event_type"],
    )
    await conn.copy_records_to_table(
        "cadre_states",
        records=[(p[1], start, "resident_cadre", True, EVENT, "CadreUpserted") for p in posts],
        columns=["cadre_id", "effective_date", "category", "active", "event_id", "event_type"],
    )
    await conn.copy_records_to_table(
        "postings",
        records=[(*p, "member", start, EVENT, "PostingOpened") for p in posts],
        columns=["posting_id", "cadre_id", "unit_id", "role", "start_date"]
        + ["event_id", "event_type"],
    )
    verdicts = await source.fetch(
        "SELECT cadre_id, week, week_sunday, compliant, days, nights, leave_days"
        " FROM presence_weeks WHERE judged"
    )
    await conn.copy_records_to_table(
        "presence_verdicts",
        records=[(*v, EVENT, "PresenceJudged") for v in verdicts],
        columns=["cadre_id", "week", "week_sunday", "compliant", "days", "nights"]
        + ["leave_days", "event_id", "event_type"],
    )
    entries = await source.fetch(
        "SELECT id, subject_type, subject_id, reason, date, status FROM negative_entries"
    )
    await conn.copy_records_to_table(
        "negative_entries",
        records=[(*e, EVENT, "NegativeEntryRecorded") for e in entries],
        columns=["entry_id", "subject_type", "subject_id", "reason", "entry_date", "status"]
        + ["event_id", "event_type"],
    )
    actions = await source.fetch(
        "SELECT id, cadre_id, entry_id, entry_date, rung, count, status, measure"
        " FROM accountability_actions"
    )
    await conn.copy_records_to_table(
        "accountability_actions",
        records=[(*a, EVENT, "AccountabilityOpened") for a in actions],
        columns=["action_id", "cadre_id", "entry_id", "entry_date", "rung", "count", "status"]
        + ["measure", "event_id", "event_type"],
    )
    await conn.execute("ANALYZE")


class Statements:
    """BENCH_PROFILE=1: wall time per statement (first 90 characters), printed per phase."""

    def __init__(self, engines) -> None:
        self.on = os.environ.get("BENCH_PROFILE") == "1"
        self.times: dict[str, list[float]] = {}
        self.python = cProfile.Profile()
        if not self.on:
            return
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._before)
            event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, params, context, many) -> None:
        conn.info.setdefault("bench_t", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, params, context, many) -> None:
        took = time.perf_counter() - conn.info["bench_t"].pop()
        key = " ".join(statement.split())[:90]
        self.times.setdefault(key, []).append(took)

    def report(self, phase: str) -> None:
        if self.on:
            print(f"  statements of {phase} (total s, count, statement):")
            for key, t in sorted(self.times.items(), key=lambda kv: -sum(kv[1]))[:12]:
                print(f"  {sum(t):8.2f} {len(t):6} {key}")
            if self.python.getstats():
                pstats.Stats(self.python).sort_stats("tottime").print_stats(25)
                self.python = cProfile.Profile()
        self.times = {}


async def one_size(pg: str, n: int) -> dict:
    names = {s: f"bench_month_{s[:3]}_{uuid.uuid4().hex[:8]}" for s in ("assessment", "incentives")}
    for name in names.values():
        await create_database(pg, name)
    urls = {s: f"{pg}/{name}" for s, name in names.items()}
    alchemy = {s: u.replace("postgresql://", "postgresql+asyncpg://", 1) for s, u in urls.items()}
    out: dict = {"n": n}
    try:
        clock = FrozenClock(NOW)
        settings = {
            "assessment": AssessmentSettings(database_url=alchemy["assessment"]),
            "incentives": IncentivesSettings(database_url=alchemy["incentives"]),
        }
        with tempfile.TemporaryDirectory() as tmp:
            kernel = KernelSettings(var_dir=Path(tmp), run_scheduler=False)
            app = build_app(
                [assessment_spec, incentives_spec],
                kernel=kernel,
                clock=clock,
                service_settings=settings,
                workers=False,
            )
            async with app.router.lifespan_context(app):
                a_rt, i_rt = app.state.runtimes["assessment"], app.state.runtimes["incentives"]
                profile = Statements([a_rt.engine, i_rt.engine])
                a_conn = await asyncpg.connect(urls["assessment"])
                i_conn = await asyncpg.connect(urls["incentives"])
                try:
                    start = time.perf_counter()
                    cadres = [uuid.uuid4() for _ in range(n)]
                    villages = [uuid.uuid4() for _ in range(VILLAGES)]
                    county, town = await seed_assessment(a_conn, cadres, villages)
                    out["sign_ins"] = await a_conn.fetchval("SELECT count(*) FROM sign_ins")
                    out["seed_s"] = time.perf_counter() - start

                    start = time.perf_counter()
                    profile.python.enable() if profile.on else None
                    out["weeks"] = []
                    for week in WEEKS:
                        t0 = time.perf_counter()
                        async with a_rt.transaction() as s:
                            got = await presence.close_week(
                                s, week, now=clock.now(), policy=a_rt.settings
                            )
                        out["weeks"].append((got, time.perf_counter() - t0))
                    out["presence_s"] = time.perf_counter() - start
                    profile.python.disable() if profile.on else None
                    profile.report("presence")

                    await seed_incentives(i_conn, a_conn, county, town, villages)
                    start = time.perf_counter()
                    profile.python.enable() if profile.on else None
                    async with i_rt.transaction() as s:
                        body = await batches.create(
                            s, first=MONTH, user_id=uuid.uuid4(), now=clock.now(),
                            today=clock.today(),
                        )  # fmt: skip
                    out["batch_s"] = time.perf_counter() - start
                    profile.python.disable() if profile.on else None
                    profile.report("the batch build")
                    out["lines"] = body["totals"]["lines"]
                    out["net"] = body["totals"]["net"]
                finally:
                    await a_conn.close()
                    await i_conn.close()
    finally:
        for name in names.values():
            await drop_database(pg, name)
    return out


async def main(pg: str, sizes: list[int]) -> None:
    from harness import Table

    results = []
    for n in sizes:
        r = await one_size(pg, n)
        weeks = ", ".join(f"{w['week']} {t:.1f}s ({w['non_compliant']} non-compliant)"
                          for w, t in r["weeks"])  # fmt: skip
        print(
            f"{n:>7,} cadres, {r['sign_ins']:,} sign-ins (seeded in {r['seed_s']:.1f} s):"
            f" presence {r['presence_s']:.2f} s [{weeks}];"
            f" batch {r['batch_s']:.2f} s, {r['lines']:,} lines, net {r['net']}",
            flush=True,
        )
        results.append(r)
    sized = ", ".join(f"{n:,}" for n in sizes)
    table = Table(f"Month close (presence of 5 weeks + stipend batch), {sized} cadres, PostgreSQL")
    small, large = results[0], results[-1]
    for key, label, target in (("presence_s", "presence", 30), ("batch_s", "stipend batch", 10)):
        for r in results:
            table.rows.append(
                (f"{label}, {r['n']:,} cadres", f"{r[key]:.2f} s", "-", "-", "-", "-")
            )
        if large["n"] != small["n"]:
            growth = (large[key] / small[key]) / (large["n"] / small["n"])
            table.rows.append(
                (f"{label}: {large['n']:,} / {small['n']:,}",
                 f"{large[key] / small[key]:.1f}x time", f"{large['n'] / small['n']:.0f}x cadres",
                 f"{growth:.2f}x linear", "<= 1.25x linear", "PASS" if growth <= 1.25 else "MISS")
            )  # fmt: skip
        at = next((r for r in results if r["n"] == 100_000), None)
        if at:
            table.limit(f"{label} at 100,000 cadres", at[key], target, "s", "-")
        else:
            table.limit(f"{label} at 100,000 cadres (scaled linearly)",
                        large[key] * 100_000 / large["n"], target, "s",
                        f"from {large['n']:,} cadres")  # fmt: skip
    table.print()


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 30_000, 100_000]
    with postgres_server() as server:
        _run_sync(main(server, sorted(sizes)))
