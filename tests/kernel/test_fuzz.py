"""schemathesis against every service's OpenAPI: whatever it sends, no answer is a 5xx.

schemathesis generates the cases (in a worker thread, once per run); they are sent over
ASGI to the embedded app (all three services) on SQLite and on PostgreSQL (NUL bytes are
where the two differ), with a county-wide token holding every staff role. Bounded by
example count (4 valid and 4 invalid per operation, ~770 calls per backend, under a minute
of CPU in all); `FRONTLINE_FUZZ_EXAMPLES` widens it for a longer hunt. The seed is fixed,
so CI is repeatable.
"""

import asyncio
import os
import time
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from shared.contracts.enums import Role
from tests.support import System

EXAMPLES = int(os.environ.get("FRONTLINE_FUZZ_EXAMPLES", "4"))
SERVICES = ("registry", "assessment", "incentives")
BASE = "http://frontline"
_generated: list[tuple[str, Any]] = []


def generate(openapi: dict[str, Any]) -> list[tuple[str, Any]]:
    """Cases for every operation, valid and invalid, made once and replayed on each backend."""
    if _generated:
        return _generated
    schema = schemathesis.openapi.from_dict(openapi)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def keep(case) -> None:
                _generated.append((case.operation.path.split("/")[1], case))

            try:
                keep()
            except hypothesis.errors.Unsatisfiable:
                pass  # no invalid input exists for an operation without parameters
    return _generated


def to_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """schemathesis prepares requests-style keyword arguments; httpx names two differently."""
    out = {k: kwargs[k] for k in ("method", "url", "params", "json", "files") if k in kwargs}
    out["headers"] = dict(kwargs.get("headers") or {})
    data = kwargs.get("data")
    if isinstance(data, (bytes, str)):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    return out


async def fuzz(system: System, headers: dict[str, str]) -> dict[str, Any]:
    """Sends every case over ASGI; returns the calls made per service and the 5xx answers."""
    started = time.monotonic()
    cases = await asyncio.to_thread(generate, system.app.openapi())
    generated = time.monotonic()
    calls = dict.fromkeys(SERVICES, 0)
    errors: list[str] = []
    for service, case in cases:
        request = to_httpx(case.as_transport_kwargs(base_url=BASE, headers=headers))
        response = await system.client.request(**request)
        calls[service] += 1
        if response.status_code >= 500:
            label = case.operation.label
            errors.append(f"{label} -> {response.status_code}: {case.as_curl_command()}")
    timing = (
        f"generated in {generated - started:.1f} s, sent in {time.monotonic() - generated:.1f} s"
    )
    return {"cases": len(cases), "calls": calls, "errors": errors, "timing": timing}


async def test_schemathesis_finds_no_server_error(system: System):
    token = system.headers(Role.org_admin, Role.finance, Role.auditor, Role.inspector)
    report = await fuzz(system, token)
    print(f"fuzz: {report['cases']} cases, calls per service {report['calls']}, {report['timing']}")
    assert all(report["calls"].values()), report["calls"]
    assert report["errors"] == [], "\n".join(report["errors"][:20])
