"""One scenario, fed identically to the distributed stack and to the embedded app, and a
snapshot of everything it should produce, keyed by names rather than generated ids.
"""

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta

from shared.clock import LOCAL_TZ
from tests.e2e.api import Api, last_ended_week, sign_in, week_label

FULL_DAYS, SHORT_DAYS, NIGHTS = range(2, 7), range(2, 6), range(2, 6)
Hook = Callable[[int], Awaitable[None]]


async def _nothing(step: int) -> None:
    return None


class Scenario:
    def __init__(self, api: Api):
        self.api = api
        self.monday = last_ended_week(datetime.now(UTC))
        self.week = week_label(self.monday)
        sunday = self.monday + timedelta(days=6)
        self.month = f"{sunday.year:04d}-{sunday.month:02d}"
        self.cadres: dict[str, str] = {}  # name -> id
        self.tokens: dict[str, dict[str, str]] = {}
        self.findings: dict[str, str] = {}  # subject name -> finding id

    async def seed(self) -> None:
        api = self.api
        county = await api.unit("county", None)
        town = await api.unit("township", county["id"])
        village = await api.unit(
            "village", town["id"], geofence={"lat": 25.1, "lon": 105.47, "radius_m": 800}
        )
        start = self.monday - timedelta(days=40)
        for name, role, category in (
            ("good", "first_secretary", "first_secretary"),
            ("short", "member", "resident_cadre"),
            ("found", "team_leader", "resident_cadre"),
        ):
            cadre = await api.posted_cadre(village["id"], role, start, category, name=name)
            self.cadres[name] = cadre["id"]
            self.tokens[name] = await api.user(["cadre"], cadre_id=cadre["id"])
        self.inspector = await api.user(["inspector"])
        self.finance = await api.user(["finance"])
        await api.settle()

    def sign_ins(self) -> list[tuple[str, dict]]:
        plan = {"good": FULL_DAYS, "short": SHORT_DAYS, "found": FULL_DAYS}
        out = []
        for name, days in plan.items():
            cid = self.cadres[name]
            out += [(name, sign_in(cid, self.monday + timedelta(days=d), 10)) for d in days]
            out += [(name, sign_in(cid, self.monday + timedelta(days=d), 21, 30)) for d in NIGHTS]
        return out

    def finding(self, name: str) -> dict:
        observed = datetime.combine(self.monday + timedelta(days=3), time(15), tzinfo=LOCAL_TZ)
        return {
            "subject_type": "cadre",
            "subject_id": self.cadres[name],
            "kind": "absent_from_post",
            "severity": "major",
            "observed_at": observed.isoformat(),
            "description": f"{name} not found in the village on an unannounced visit",
            "evidence_urls": [],
        }

    async def load(self, hook: Hook = _nothing) -> None:
        """Sign-ins and findings, with a hook between requests (to inject faults)."""
        api = self.api
        step = 0
        for name, item in self.sign_ins():
            await hook(step)
            step += 1
            await api.call("POST", "/assessment/v1/sign-ins", json=item, as_=self.tokens[name])
        for name in ("short", "found"):
            await hook(step)
            step += 1
            posted = await api.call(
                "POST", "/assessment/v1/findings", json=self.finding(name), as_=self.inspector
            )
            self.findings[name] = posted["id"]
        # The phones retry everything they sent; the first answers stand.
        for name, item in self.sign_ins():
            await api.call("POST", "/assessment/v1/sign-ins", json=item, as_=self.tokens[name])

    async def conclude(self) -> None:
        """Dismiss the finding on "found", close the week twice, build the month's batch."""
        api = self.api
        await api.settle()
        await api.call(
            "POST",
            f"/assessment/v1/findings/{self.findings['found']}/dismiss",
            json={"reason": "mistaken identity"},
        )
        for _ in range(2):
            await api.call("POST", f"/assessment/v1/weeks/{self.week}/close")
        await api.settle()
        self.batch = await api.call(
            "POST",
            "/incentives/v1/stipend-batches",
            json={"month": self.month},
            as_=self.finance,
            expect=(201, 409),
        )
        if self.batch.get("code") == "batch_exists":  # another test built the month's batch
            self.batch = {"id": self.batch["existing_id"]}
        await api.settle()

    async def snapshot(self, *, lines: bool = True) -> dict:
        api, out = self.api, {}
        names = {cid: name for name, cid in self.cadres.items()}
        entries = await api.call(
            "GET", "/assessment/v1/negative-list", params={"month": self.month, "limit": 500}
        )
        batch_lines = (
            await api.call(
                "GET",
                f"/incentives/v1/stipend-batches/{self.batch['id']}/lines",
                params={"limit": 500},
                as_=self.finance,
            )
            if lines
            else None
        )
        for name, cid in self.cadres.items():
            presence = await api.call(
                "GET", f"/assessment/v1/cadres/{cid}/presence", params={"week": self.week}
            )
            actions = await api.call(
                "GET", "/assessment/v1/accountability-actions", params={"cadre_id": cid}
            )
            eligibility = await api.call(
                "GET",
                f"/incentives/v1/eligibility/{cid}",
                params={"month": self.month},
                as_=self.finance,
            )
            out[name] = {
                "presence": {
                    k: presence[k] for k in ("days", "nights", "leave_days", "compliant", "judged")
                },
                "entries": sorted(
                    (e["reason"], e["status"], e["date"], e["month"])
                    for e in entries["items"]
                    if e["subject_id"] == cid
                ),
                "actions": sorted((a["rung"], a["count"], a["status"]) for a in actions["items"]),
                "eligibility": {
                    "components": sorted(
                        (c["kind"], c["amount"], c["policy_version"])
                        for c in eligibility["components"]
                    ),
                    "deductions": sorted(
                        (d["kind"], d["amount"], d["policy_version"])
                        for d in eligibility["deductions"]
                    ),
                    **{k: eligibility[k] for k in ("gross", "total_deductions", "net")},
                },
            }
            if batch_lines is not None:
                out[name]["lines"] = sorted(
                    (ln["kind"], ln["for_month"], ln["gross"], ln["deductions_total"], ln["net"])
                    for ln in batch_lines["items"]
                    if names.get(ln["cadre_id"]) == name
                )
        return out


def differences(actual, expected, path: str = "") -> list[str]:
    """Every leaf where two snapshots differ, as 'path: actual != expected'."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(actual) | set(expected), key=str):
            out += differences(actual.get(key), expected.get(key), f"{path}.{key}")
        return out
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def lost_and_doubled(actual: dict, expected: dict) -> tuple[int, int]:
    """Items of the expected snapshot's lists missing from the actual one (lost effects),
    and items beyond them (doubled effects), counted per cadre and list."""
    lost = doubled = 0
    for name, want in expected.items():
        got = actual.get(name, {})
        pairs = [(got.get(k, []), want.get(k, [])) for k in ("entries", "actions", "lines")]
        for k in ("components", "deductions"):
            pairs.append((got.get("eligibility", {}).get(k, []), want["eligibility"][k]))
        for have, should in pairs:
            have, should = Counter(map(tuple, have)), Counter(map(tuple, should))
            lost += sum((should - have).values())
            doubled += sum((have - should).values())
    return lost, doubled
