"""The authorization matrix: every route × principal × target township, against a checked-in
table of expected statuses (tests/authz/matrix.tsv), plus the rules checked on their own.

Rules checked besides the table (DESIGN.md §8): without a token only public routes answer;
auditors write nothing; a township-scoped user never writes in, and never reads anything of,
the other township; a cadre never writes another's record nor reads another's; routes for
county-wide users refuse scoped ones. A read "sees" a record when its id is in the answer.

`FRONTLINE_MATRIX_WRITE=1 pytest tests/authz/test_matrix.py -k sqlite` rewrites the table
from what the app answers: review the diff line by line before committing it.
"""

import os
import time
from pathlib import Path

from services.main import embedded_app
from shared.authz import Scope, route_table
from tests.authz.cases import CASES
from tests.authz.world import PRINCIPALS, World

TABLE = Path(__file__).with_name("matrix.tsv")
SIDES = ("T1", "T2")
OK = range(200, 300)


def routes() -> dict[tuple[str, str], Scope]:
    """(method, path) → the declared scope, for every route the embedded app serves."""
    found = {}
    for entry in route_table(embedded_app()):
        if entry.api:
            for method in entry.methods:
                found[(method, entry.path)] = entry.rules[0].scope
    return found


def read_table() -> dict[tuple[str, str, str], dict[str, int]]:
    rows = {}
    lines = TABLE.read_text().splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        cells = line.split("\t")
        method, path, side, *statuses = cells
        rows[(method, path, side)] = dict(zip(header[3:], map(int, statuses), strict=True))
    return rows


def write_table(got: dict[tuple[str, str, str], dict[str, int]]) -> None:
    out = ["\t".join(["method", "path", "target", *PRINCIPALS])]
    for (method, path, side), statuses in sorted(
        got.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])
    ):
        out.append("\t".join([method, path, side, *(str(statuses[p]) for p in PRINCIPALS)]))
    TABLE.write_text("\n".join(out) + "\n")


def rule_breaches(scope: Scope, method: str, side: str, who: str, status: int) -> str | None:
    """The §8 rules, independent of the table."""
    write = method != "GET"
    if who == "anonymous":
        return None if (scope is Scope.public) == (status != 401) else "anonymous"
    if scope is Scope.county and who.endswith("_t1") and status in OK:
        return "a scoped user on a county-wide route"
    if (
        who.startswith("auditor")
        and write
        and scope not in (Scope.public, Scope.self)
        and status in OK
    ):
        return "an auditor wrote"
    if side == "T2" and write and scope is Scope.subtree and status in OK:
        if who.endswith("_t1"):
            return "a T1 user wrote in T2"
        if who == "cadre":
            return "a cadre wrote another's record"
    return None


async def test_the_authorization_matrix(system):
    declared = routes()
    missing = sorted(set(declared) - set(CASES))
    assert not missing, f"routes without a matrix case: {missing}"
    world = World(system)
    await world.build()
    got: dict[tuple[str, str, str], dict[str, int]] = {}
    breaches: list[str] = []
    calls = 0
    profile = os.environ.get("FRONTLINE_MATRIX_PROFILE")
    for (method, path), make in CASES.items():
        scope = declared[(method, path)]
        started = time.perf_counter()
        for side in SIDES:
            row = got.setdefault((method, path, side), {})
            for who in PRINCIPALS:
                req = await make(world, world.t[side])
                url = req.pop("url")
                r = await system.client.request(method, url, headers=world.headers[who], **req)
                calls += 1
                row[who] = r.status_code
                if path.endswith("/users/me/password") and r.status_code == 204:
                    await world.relogin(who)  # a password change revokes the caller's tokens
                if r.status_code >= 500:
                    breaches.append(f"{method} {path} {side} {who}: {r.status_code} {r.text[:200]}")
                if why := rule_breaches(scope, method, side, who, r.status_code):
                    breaches.append(f"{method} {path} {side} {who}: {r.status_code}: {why}")
                if r.status_code in OK and scope is not Scope.public:
                    seen = [i for i in world.leak_ids(who) if i in r.text]
                    if seen:
                        breaches.append(f"{method} {path} {side} {who}: sees {seen[:3]}")
        if profile:
            print(f"{time.perf_counter() - started:6.2f}s {method} {path}")
    if os.environ.get("FRONTLINE_MATRIX_WRITE"):
        write_table(got)
    expected = read_table()
    for key, statuses in got.items():
        want = expected.get(key)
        if want is None:
            breaches.append(f"{' '.join(key)}: not in {TABLE.name}")
            continue
        for who, status in statuses.items():
            if want[who] != status:
                breaches.append(f"{' '.join(key)} {who}: {status}, expected {want[who]}")
    stale = sorted(set(expected) - set(got))
    breaches += [f"{' '.join(k)}: in {TABLE.name} but no such route" for k in stale]
    print(f"authz matrix: {len(CASES)} routes × {len(PRINCIPALS)} principals × 2 = {calls} calls")
    assert not breaches, f"{len(breaches)} violations:\n" + "\n".join(breaches)
