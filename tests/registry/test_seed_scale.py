"""The seed's county imports whole and lists page by page without an N+1 query."""

from contextlib import contextmanager

from sqlalchemy import event

from shared.contracts.enums import Role
from tests.registry import seed_tree
from tests.registry.factories import API, admin, get


@contextmanager
def statements(system):
    """Count the SQL statements the registry's engine runs inside the block."""
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        # The outbox relay publishes the import's events meanwhile (its lock, its outbox
        # reads and marks), the token-version refresher reads its projection, and the prune
        # job (a minute after start) trims the outbox and inbox: those statements belong to
        # them, not to the list.
        background = ("outbox", "inbox", "advisory", "user_token_version")
        if not any(w in statement for w in background):
            seen.append(statement)

    engine = system.runtime("registry").engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def walk(system, path: str, headers, **params) -> tuple[list[dict], list[int]]:
    """Every item of a list, and the number of statements each page took."""
    items, per_page, cursor = [], [], None
    while True:
        with statements(system) as seen:
            page = await get(
                system,
                path,
                headers=headers,
                limit=500,
                **params,
                **({"cursor": cursor} if cursor else {}),
            )
        per_page.append(len(seen))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items, per_page


async def test_seed_sized_county_imports_and_pages(system):
    units, codes = seed_tree.units_csv()
    r = await system.client.post(
        f"{API}/imports/org-units", files={"file": ("units.csv", units)}, headers=admin(system)
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == {"units": 1 + 13 + 181 + 1891}
    cadres, total = seed_tree.cadres_csv(codes)
    assert total == 12_689
    r = await system.client.post(
        f"{API}/imports/cadres", files={"file": ("cadres.csv", cadres)}, headers=admin(system)
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == {"cadres": total, "postings": total}

    everyone, per_page = await walk(system, "/cadres", admin(system))
    assert len(everyone) == total and len({c["id"] for c in everyone}) == total
    assert len(per_page) == 26
    assert len(set(per_page)) == 1 and per_page[0] <= 2, per_page

    groups, per_page = await walk(system, "/org-units", admin(system), kind="group")
    assert len(groups) == 1891 and len(set(per_page)) == 1, per_page

    town = (await get(system, "/org-units", kind="township", limit=1))["items"][0]
    scoped = system.headers(Role.org_admin, unit_id=town["id"])
    posted, per_page = await walk(system, "/cadres", scoped, posted_on="2026-11-25")
    assert 0 < len(posted) < total and len(set(per_page)) == 1, per_page
    postings, per_page = await walk(system, "/postings", scoped, posted_on="2026-11-25")
    assert len(postings) == len(posted) and len(set(per_page)) == 1, per_page
