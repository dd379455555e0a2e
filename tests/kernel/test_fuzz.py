"""schemathesis against every service's OpenAPI: whatever it sends, no answer is a 5xx.

schemathesis generates the cases (in a worker thread, once per run); they are sent over
ASGI to the embedded app (all three services) on SQLite and on PostgreSQL (NUL bytes are
where the two differ), with a county-wide token holding every staff role. Bounded by
example count: 3 valid and 3 invalid cases per operation, each valid one sent again made
hostile (~870 calls per backend); `FRONTLINE_FUZZ_EXAMPLES` widens it for a longer hunt.
The seed is fixed, so CI is repeatable.
"""

import asyncio
import os
import re
import time
from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

from shared.contracts.enums import Role
from tests.support import System

EXAMPLES = int(os.environ.get("FRONTLINE_FUZZ_EXAMPLES", "3"))
SERVICES = ("registry", "assessment", "incentives")
BASE = "http://frontline"
HOSTILE = ("params", "json", "data")
_generated: list[tuple[str, bool, Any]] = []
_DATE = re.compile(r"^\d{4}-(\d{2}(-\d{2})?|W\d{2})$")


def hostile(value: Any) -> Any:
    """The same input made hostile where random generation rarely goes: every string gets a
    NUL and a bidi override, every date, month and week moves to year 9999."""
    if isinstance(value, str):
        return "9999" + value[4:] if _DATE.match(value) else value + "\x00\u202e"
    if isinstance(value, dict):
        return {k: hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hostile(v) for v in value]
    return value


def _cases(operation: Any, mode: GenerationMode) -> list[Any]:
    found: list[Any] = []

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
        found.append(case)

    try:
        keep()
    except hypothesis.errors.Unsatisfiable:
        pass  # no invalid input exists for an operation without parameters
    return found


def generate(openapi: dict[str, Any]) -> list[tuple[str, bool, Any]]:
    """Cases for every operation, valid and invalid, made once and replayed on each backend."""
    if not _generated:
        schema = schemathesis.openapi.from_dict(openapi)
        for result in schema.get_all_operations():
            operation = result.ok()
            service = operation.path.split("/")[1]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                valid = mode == GenerationMode.POSITIVE
                _generated.extend((service, valid, case) for case in _cases(operation, mode))
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
    # A crash becomes the 500 a client would see, so every one is counted, not just the first.
    transport = httpx.ASGITransport(app=system.app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url=BASE)
    for service, valid, case in cases:
        request = to_httpx(case.as_transport_kwargs(base_url=BASE, headers=headers))
        variants = [request]
        if valid:
            variants.append({k: hostile(v) if k in HOSTILE else v for k, v in request.items()})
        for variant in variants:
            response = await client.request(**variant)
            calls[service] += 1
            if response.status_code >= 500:
                label = case.operation.label
                errors.append(f"{label} -> {response.status_code}: {variant}"[:2000])
    timing = (
        f"generated in {generated - started:.1f} s, sent in {time.monotonic() - generated:.1f} s"
    )
    return {"cases": len(cases), "calls": calls, "errors": errors, "timing": timing}


async def test_schemathesis_finds_no_server_error(system: System):
    token = system.headers(Role.org_admin, Role.finance, Role.auditor, Role.inspector)
    report = await fuzz(system, token)
    print(f"fuzz: {report['cases']} cases, calls per service {report['calls']}, {report['timing']}")
    assert all(report["calls"].values()), report["calls"]
    assert report["errors"] == [], f"{len(report['errors'])} 5xx:\n" + "\n".join(
        report["errors"][:20]
    )
