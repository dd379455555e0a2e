"""Five days, four nights: windows, boundaries, leave, the ISO week, judging and closing."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from shared.clock import format_week
from shared.contracts.enums import Role
from tests.assessment import factories as f

# What runs beside a request: the outbox relay, the token-version refresh (each second) and
# the pruning job.
RELAY = re.compile(
    r"\s*(SELECT pg_try_advisory|SELECT outbox\.|UPDATE outbox|DELETE FROM (outbox|inbox)"
    r"|SELECT .*\bFROM user_token_version\b)",
    re.S,
)
W47 = "2026-W47"  # Monday 16 .. Sunday 22 November 2026; the clock is on Wed 25th
MON = date(2026, 11, 16)


@pytest.fixture
async def village(system):
    return (await f.tree(system)).village


async def counts(system, cadre_id, week=W47) -> tuple[int, int, int]:
    p = await f.presence(system, cadre_id, week)
    return p["days"], p["nights"], p["leave_days"]


@pytest.mark.parametrize(
    ("days", "nights", "compliant"),
    [(5, 4, True), (4, 4, False), (5, 3, False), (7, 7, True)],
)
async def test_five_days_and_four_nights_is_compliant_one_short_is_not(
    system, village, days, nights, compliant
):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, f.full_week(MON, days=days, nights=nights))
    p = await f.presence(system, c, W47)
    assert (p["days"], p["nights"], p["leave_days"]) == (days, nights, 0)
    assert (p["compliant"], p["judged"]) == (compliant, False)
    closed = await f.close(system, W47)
    assert closed == {
        "week": W47,
        "judged": 1,
        "compliant": int(compliant),
        "non_compliant": int(not compliant),
    }
    assert (await f.presence(system, c, W47))["judged"] is True


async def test_distinct_dates_count_once(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, [f.local(2026, 11, 16, h) for h in (7, 9, 12, 19)])
    await f.attend(system, c, [f.local(2026, 11, 16, 21), f.local(2026, 11, 16, 23)])
    assert await counts(system, c) == (1, 1, 0)


async def test_19_59_is_a_day_and_20_00_a_night(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, [f.local(2026, 11, 16, 19, 59, 59)])
    assert await counts(system, c) == (1, 0, 0)
    await f.attend(system, c, [f.local(2026, 11, 17, 20, 0)])
    assert await counts(system, c) == (1, 1, 0)


async def test_05_59_is_the_previous_evenings_night_and_06_00_a_day(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, [f.local(2026, 11, 18, 5, 59)])
    assert await counts(system, c) == (0, 1, 0)  # the night of Tuesday 17th
    await f.attend(system, c, [f.local(2026, 11, 17, 22, 0)])
    assert await counts(system, c) == (0, 1, 0)  # the same night
    await f.attend(system, c, [f.local(2026, 11, 18, 6, 0)])
    assert await counts(system, c) == (1, 1, 0)


async def test_a_night_across_midnight_belongs_to_the_evening(system, village):
    c = await f.posted_cadre(system, village)
    # 00:30 on Monday 23rd is the night of Sunday 22nd: it counts in W47, not W48.
    await f.attend(system, c, [f.local(2026, 11, 23, 0, 30)])
    assert await counts(system, c, W47) == (0, 1, 0)
    assert await counts(system, c, "2026-W48") == (0, 0, 0)
    # 00:30 on Monday 16th is the night of Sunday 15th: W46, not W47.
    await f.attend(system, c, [f.local(2026, 11, 16, 0, 30)])
    assert await counts(system, c, W47) == (0, 1, 0)
    assert await counts(system, c, "2026-W46") == (0, 1, 0)


async def test_utc_device_times_count_on_asia_shanghai_dates(system, village):
    c = await f.posted_cadre(system, village)
    at = datetime(2026, 11, 15, 23, 30, tzinfo=UTC)  # Monday 16th 07:30 in Shanghai
    r = await f.sign_in(system, c, at)
    assert r.json()["status"] == "accepted"
    assert await counts(system, c) == (1, 0, 0)
    at = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)  # Sunday 22nd 22:00 in Shanghai
    await f.sign_in(system, c, at)
    assert await counts(system, c) == (1, 1, 0)
    at = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # Monday 23rd 06:30: a W48 day
    await f.sign_in(system, c, at)
    assert await counts(system, c) == (1, 1, 0)
    assert await counts(system, c, "2026-W48") == (1, 0, 0)


async def test_flagged_sign_ins_do_not_count(system, village):
    c = await f.posted_cadre(system, village)
    r = await f.sign_in(system, c, f.local(2026, 11, 16, 10), mock_location=True)
    assert r.json()["status"] == "flagged"
    r = await f.sign_in(system, c, f.local(2026, 11, 17, 10), lat=f.VILLAGE_LAT + 0.1)
    assert r.json()["status"] == "flagged"
    assert await counts(system, c) == (0, 0, 0)


async def approved_leave(system, cadre_id, start: date, end: date) -> dict:
    admin = system.headers(Role.org_admin)
    r = await system.client.post(
        "/assessment/v1/leave-requests",
        json={
            "cadre_id": str(cadre_id),
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "kind": "personal",
            "reason": "family",
        },
        headers=system.headers(Role.cadre, cadre_id=cadre_id),
    )
    assert r.status_code == 201, r.text
    r = await system.client.post(
        f"/assessment/v1/leave-requests/{r.json()['id']}/approve", headers=admin
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_an_approved_leave_day_counts_as_a_day_and_a_night(system, village):
    c = await f.posted_cadre(system, village)
    # Leave Monday and Tuesday; present Wednesday to Friday days and Wed, Thu nights.
    await approved_leave(system, c, date(2026, 11, 16), date(2026, 11, 17))
    await f.attend(system, c, f.full_week(MON + timedelta(days=2), days=3, nights=2))
    p = await f.presence(system, c, W47)
    assert (p["days"], p["nights"], p["leave_days"], p["compliant"]) == (5, 4, 2, True)


async def test_leave_on_a_day_already_signed_counts_once(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, [f.local(2026, 11, 16, 10), f.local(2026, 11, 16, 21)])
    await approved_leave(system, c, date(2026, 11, 16), date(2026, 11, 16))
    assert await counts(system, c) == (1, 1, 1)


async def test_requested_or_rejected_leave_does_not_count(system, village):
    c = await f.posted_cadre(system, village)
    r = await system.client.post(
        "/assessment/v1/leave-requests",
        json={
            "cadre_id": str(c),
            "start_date": "2026-11-16",
            "end_date": "2026-11-18",
            "kind": "sick",
        },
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 201
    assert await counts(system, c) == (0, 0, 0)


async def test_only_cadres_posted_every_day_of_the_week_are_judged(system, village):
    whole = await f.posted_cadre(system, village, start=MON)
    late = await f.posted_cadre(system, village, start=MON + timedelta(days=1))
    early = await f.cadre(system)
    posting = await f.post(system, early, village)
    await f.end_posting(system, posting, early, village, MON + timedelta(days=5))
    for c in (whole, early):
        await f.attend(system, c, f.full_week(MON, days=3, nights=0))
    await f.attend(system, late, f.full_week(MON + timedelta(days=1), days=3, nights=0))
    closed = await f.close(system, W47)
    assert (closed["judged"], closed["non_compliant"]) == (1, 1)
    assert (await f.presence(system, whole, W47))["judged"] is True
    for c in (late, early):
        p = await f.presence(system, c, W47)
        assert (p["judged"], p["compliant"], p["days"]) == (False, False, 3)
    verdicts = await f.events(system, "assessment.presence.judged")
    assert [e.payload["cadre_id"] for e in verdicts] == [str(whole)]


async def test_a_replacement_mid_week_keeps_the_cadre_posted_every_day(system, village):
    t = await f.tree(system)
    c = await f.cadre(system)
    first = await f.post(system, c, village)
    await f.end_posting(system, first, c, village, MON + timedelta(days=2))
    await f.post(system, c, t.other_village, start=MON + timedelta(days=3))
    closed = await f.close(system, W47)
    assert closed["judged"] == 1
    [judged] = await f.events(system, "assessment.presence.judged")
    assert judged.payload["unit_id"] == str(t.other_village)  # the Sunday's posting


@pytest.mark.parametrize("week", ["2026-W54", "2027-W53", "2026-48", "W48", "2026-W00"])
async def test_a_week_that_does_not_exist_is_422(system, village, week):
    c = await f.posted_cadre(system, village)
    r = await system.client.get(
        f"/assessment/v1/cadres/{c}/presence",
        params={"week": week},
        headers=system.headers(Role.org_admin),
    )
    assert (r.status_code, r.json()["field"]) == (422, "week")
    r = await system.client.post(
        f"/assessment/v1/weeks/{week}/close", headers=system.headers(Role.org_admin)
    )
    assert (r.status_code, r.json()["field"]) == (422, "week")


async def test_the_iso_week_at_the_years_end(system, village):
    # 2025-W01 runs from Monday 30 December 2024 to Sunday 5 January 2025. (Tokens carry
    # a real issue time, so the clock goes back to a year's end rather than forward.)
    system.clock.set(f.local(2025, 1, 6, 6, 0).astimezone(UTC))
    c = await f.posted_cadre(system, village, start=date(2024, 1, 1))
    await f.attend(system, c, f.full_week(date(2024, 12, 30)))
    assert await counts(system, c, "2025-W01") == (5, 4, 0)
    assert await counts(system, c, "2024-W52") == (0, 0, 0)
    assert (await f.close(system, "2025-W01"))["compliant"] == 1
    # The week's Sunday (5 January 2025) dates its entries and their month.
    short = await f.posted_cadre(system, village, start=date(2024, 1, 1))
    await f.attend(system, short, f.full_week(date(2024, 12, 30), days=4))
    assert (await f.close(system, "2025-W01"))["non_compliant"] == 1
    [entry] = await f.events(system, "assessment.negative_entry.recorded")
    assert (entry.payload["date"], entry.payload["month"]) == ("2025-01-05", "2025-01")
    # A year with 53 weeks has its W53, one with 52 has none.
    assert await counts(system, c, "2026-W53") == (0, 0, 0)
    r = await system.client.get(
        f"/assessment/v1/cadres/{c}/presence",
        params={"week": "2024-W53"},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 422


async def test_unknown_cadre_is_404_and_others_presence_is_403(system, village):
    r = await system.client.get(
        f"/assessment/v1/cadres/{f.uuid.uuid4()}/presence",
        params={"week": W47},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 404
    c = await f.posted_cadre(system, village)
    other = await f.cadre(system)
    for headers, status in (
        (system.headers(Role.cadre, cadre_id=c), 200),
        (system.headers(Role.cadre, cadre_id=other), 403),
        (system.headers(Role.inspector), 200),  # inspectors read presence (#13 finding 6)
        (system.headers(Role.finance), 403),
    ):
        r = await system.client.get(
            f"/assessment/v1/cadres/{c}/presence", params={"week": W47}, headers=headers
        )
        assert r.status_code == status


async def test_unit_presence_lists_the_subtree(system):
    t = await f.tree(system)
    in_group = await f.posted_cadre(system, t.group)
    in_village = await f.posted_cadre(system, t.village)
    elsewhere = await f.posted_cadre(system, t.other_village)
    await f.attend(system, in_group, f.full_week(MON))
    got = {}
    cursor = None
    while True:
        r = await system.client.get(
            f"/assessment/v1/units/{t.township}/presence",
            params={"week": W47, "limit": 1} | ({"cursor": cursor} if cursor else {}),
            headers=system.headers(Role.auditor),
        )
        assert r.status_code == 200, r.text
        got.update({p["cadre_id"]: p for p in r.json()["items"]})
        if not (cursor := r.json()["next_cursor"]):
            break
    assert set(got) == {str(in_group), str(in_village)}
    assert got[str(in_group)]["compliant"] is True
    assert str(elsewhere) not in got
    r = await system.client.get(
        f"/assessment/v1/units/{f.uuid.uuid4()}/presence",
        params={"week": W47},
        headers=system.headers(Role.org_admin),
    )
    assert r.status_code == 404


# --- closing a week --------------------------------------------------------------------


async def test_closing_before_monday_06_00_after_the_week_is_409(system, village):
    await f.posted_cadre(system, village)
    system.clock.set(f.local(2026, 11, 23, 5, 59, 59).astimezone(UTC))
    headers = system.headers(Role.org_admin)
    r = await system.client.post(f"/assessment/v1/weeks/{W47}/close", headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "week_not_ended")
    r = await system.client.post("/assessment/v1/weeks/2026-W48/close", headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "week_not_ended")
    assert await f.events(system, "assessment.week.closed") == []
    system.clock.set(f.local(2026, 11, 23, 6, 0).astimezone(UTC))
    r = await system.client.post(f"/assessment/v1/weeks/{W47}/close", headers=headers)
    assert r.status_code == 200
    for role in (Role.cadre, Role.auditor, Role.inspector):
        r = await system.client.post(
            "/assessment/v1/weeks/2026-W47/close", headers=system.headers(role)
        )
        assert r.status_code == 403


async def test_closing_again_with_the_same_data_changes_nothing(system, village):
    good = await f.posted_cadre(system, village)
    short = await f.posted_cadre(system, village)
    await f.attend(system, good, f.full_week(MON))
    await f.attend(system, short, f.full_week(MON, nights=3))
    first = await f.close(system, W47)
    assert first == {"week": W47, "judged": 2, "compliant": 1, "non_compliant": 1}
    published = await f.events(system)
    assert [e.type for e in published].count("assessment.week.closed") == 1
    again = await f.close(system, W47)
    assert again == first
    assert len(await f.events(system)) == len(published)


async def test_closing_again_with_changed_data_compensates(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, f.full_week(MON, days=4))
    assert (await f.close(system, W47))["non_compliant"] == 1
    # A leave approved afterwards for the missing day re-judges the closed week at once.
    # (It ends on Sunday: reporting back is due on Monday, in the next week.)
    await approved_leave(system, c, date(2026, 11, 22), date(2026, 11, 22))
    assert (await f.presence(system, c, W47))["compliant"] is True
    assert (await f.close(system, W47))["compliant"] == 1
    types = [e.type for e in await f.events(system) if e.type != "assessment.leave.changed"]
    assert types == [
        *["assessment.signin.recorded"] * 8,
        "assessment.presence.judged",
        "assessment.negative_entry.recorded",
        "assessment.accountability.opened",
        "assessment.week.closed",
        "assessment.presence.judged",
        "assessment.negative_entry.revoked",
        "assessment.accountability.cancelled",
        "assessment.week.closed",
    ]
    verdicts = await f.events(system, "assessment.presence.judged")
    assert [v.payload["compliant"] for v in verdicts] == [False, True]


async def test_a_late_sign_in_rejudges_its_closed_week(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, f.full_week(MON, nights=3))
    await f.close(system, W47)
    assert (await f.presence(system, c, W47))["compliant"] is False
    # The phone comes back in signal with Thursday's night.
    await f.attend(system, c, [f.local(2026, 11, 19, 23)])
    p = await f.presence(system, c, W47)
    assert (p["nights"], p["compliant"], p["judged"]) == (4, True, True)
    entries = await f.events(
        system, "assessment.negative_entry.recorded", "assessment.negative_entry.revoked"
    )
    assert [e.type.rsplit(".", 1)[1] for e in entries] == ["recorded", "revoked"]
    [cancelled] = await f.events(system, "assessment.accountability.cancelled")
    assert cancelled.payload["entry_id"] == entries[0].payload["entry_id"]


async def test_a_late_sign_in_judges_a_cadre_the_close_had_no_verdict_for(system, village):
    c = await f.posted_cadre(system, village)
    assert (await f.close(system, W47))["non_compliant"] == 1
    await f.attend(system, c, f.full_week(MON))
    assert (await f.presence(system, c, W47))["compliant"] is True
    r = await system.client.get(
        "/assessment/v1/negative-list",
        params={"month": "2026-11", "subject_id": str(c)},
        headers=system.headers(Role.org_admin),
    )
    assert [e["status"] for e in r.json()["items"]] == ["revoked"]


async def test_a_late_sign_in_for_an_unclosed_week_judges_nothing(system, village):
    c = await f.posted_cadre(system, village)
    await f.attend(system, c, f.full_week(MON, days=2))
    assert await f.events(system, "assessment.presence.judged") == []


async def test_week_close_is_set_based_not_a_query_per_cadre(system, village):
    """The statements a close issues do not grow with the number of cadres."""

    async def statements_to_close(monday: date, n: int) -> int:
        system.clock.set(f.local(*(monday + timedelta(days=9)).timetuple()[:3], 10))
        for i in range(n):  # half of them one day short
            c = await f.posted_cadre(system, village)
            await f.attend(system, c, f.full_week(monday, days=4 + i % 2))
        seen = []
        engine = system.runtime("assessment").engine.sync_engine

        def count(conn, cursor, statement, *_):
            if not RELAY.match(statement):
                seen.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            closed = await f.close(system, format_week(monday))
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert closed["compliant"] == n // 2
        return seen

    # A first week leaves one cadre with an entry (and one without), so that both closes
    # below file entries of both kinds: a cadre's first of the year (opened set-based on
    # PostgreSQL) and a second one (the ladder's general way): the same statements.
    await statements_to_close(date(2026, 11, 2), 2)
    few = await statements_to_close(date(2026, 11, 9), 2)
    many = await statements_to_close(MON, 10)
    assert len(many) == len(few)


async def test_a_scoped_reader_sees_only_its_subtree(system):
    t = await f.tree(system)
    scoped = system.headers(Role.org_admin, unit_id=t.township)
    for unit_id, status in ((t.village, 200), (t.township, 200), (t.other_village, 403)):
        r = await system.client.get(
            f"/assessment/v1/units/{unit_id}/presence", params={"week": W47}, headers=scoped
        )
        assert r.status_code == status


async def test_a_scoped_reader_reads_one_cadre_only_inside_its_subtree(system):
    t = await f.tree(system)
    inside = await f.posted_cadre(system, t.village)
    outside = await f.posted_cadre(system, t.other_village)
    scoped = system.headers(Role.org_admin, unit_id=t.township)
    for cadre_id, status in ((inside, 200), (outside, 403)):
        r = await system.client.get(
            f"/assessment/v1/cadres/{cadre_id}/presence", params={"week": W47}, headers=scoped
        )
        assert r.status_code == status, r.text
    unscoped = system.headers(Role.org_admin)
    r = await system.client.get(
        f"/assessment/v1/cadres/{outside}/presence", params={"week": W47}, headers=unscoped
    )
    assert r.status_code == 200
