"""A generated org tree and workforce the size of Anlong's (DESIGN.md: 13 township HQs,
181 village posts, 1,891 front groups; 44 county leaders, 424 first secretaries and
resident cadres, 4,608 front group members, 7,613 responsible persons)."""

import csv
import io

from services.seed import spread

TOWNSHIPS, VILLAGES, GROUPS = 13, 181, 1891


def units_csv() -> tuple[bytes, dict[str, list[str]]]:
    rows = [["code", "name", "kind", "parent_code", "lat", "lon", "radius_m"]]
    rows.append(["AL", "安龙县", "county", "", "", "", ""])
    towns = [f"AL-T{i:02d}" for i in range(TOWNSHIPS)]
    rows += [[c, f"镇{c}", "township", "AL", "", "", ""] for c in towns]
    villages = [f"{t}-V{i:03d}" for i, t in enumerate(spread(VILLAGES, towns))]
    rows += [
        [v, f"村{v}", "village", v[:6], f"{25 + i / 1000:.4f}", f"{105 + i / 1000:.4f}", "800"]
        for i, v in enumerate(villages)
    ]
    groups = [f"{v}-G{i:04d}" for i, v in enumerate(spread(GROUPS, villages))]
    rows += [[g, f"组{g}", "group", g.rsplit("-G", 1)[0], "", "", ""] for g in groups]
    return _csv(rows), {"township": towns, "village": villages, "group": groups}


def cadres_csv(units: dict[str, list[str]]) -> tuple[bytes, int]:
    towns, villages, groups = units["township"], units["village"], units["group"]
    rows = [["name", "phone", "category", "unit_code", "role", "start_date"]]
    plan = (
        [("county_leader", t, "commander") for t in towns]
        + [("county_leader", villages[i], "team_leader") for i in range(44 - len(towns))]
        + [("first_secretary", v, "first_secretary") for v in villages]
        + [("resident_cadre", villages[i % len(villages)], "member") for i in range(424 - 181)]
        + [("front_group_member", groups[i % len(groups)], "member") for i in range(4608)]
        + [("responsible_person", groups[i % len(groups)], "member") for i in range(7613)]
    )
    for n, (category, unit, role) in enumerate(plan):
        rows.append([f"干部{n}", f"15{n:09d}", category, unit, role, "2018-01-01"])
    return _csv(rows), len(plan)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()
