"""Frontline over HTTP, as an operator's terminal sees it: the `frontline` commands that work
against any running Frontline (embedded, or distributed behind a gateway) by its base URL,
as a user whose credentials come from the environment (FRONTLINE_URL, FRONTLINE_USERNAME,
FRONTLINE_PASSWORD).
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx


class ClientError(RuntimeError):
    """A call that did not get the answer it needed; the message says what came back."""


@dataclass
class Api:
    """One Frontline over HTTP (embedded: one base URL; distributed: a gateway, or one
    base URL per service)."""

    client: httpx.AsyncClient
    bases: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        service = path.split("/", 2)[1]
        return self.bases.get(service, self.bases[""]).rstrip("/") + path

    async def call(self, method: str, path: str, *, ok=(200, 201), as_user=None, **kw) -> Any:
        headers = as_user if as_user is not None else self.headers
        r = await self.client.request(method, self.url(path), headers=headers, **kw)
        if r.status_code not in ok:
            raise ClientError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    async def all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items, cursor = [], None
        while True:
            page = await self.call(
                "GET",
                path,
                params={**params, "limit": 500, **({"cursor": cursor} if cursor else {})},
            )
            items += page["items"]
            if not (cursor := page["next_cursor"]):
                return items

    async def login(self, username: str, password: str) -> dict[str, str]:
        r = await self.client.post(
            self.url("/registry/v1/auth/token"), data={"username": username, "password": password}
        )
        if r.status_code != 200:
            raise ClientError(f"login as {username}: {r.status_code} {r.text[:300]}")
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def settle(self, timeout: float = 120.0) -> None:
        """Wait until every outbox is published and every consumer has caught up, so what
        the registry wrote is known to assessment and incentives."""
        loop = asyncio.get_running_loop()
        deadline, calm = loop.time() + timeout, 0
        while calm < 2:
            reports = [
                await self.call("GET", f"/{s}/health", ok=(200, 503))
                for s in ("registry", "assessment", "incentives")
            ]
            busy = any(r.get("outbox", {}).get("unsent") for r in reports) or any(
                lag for r in reports for lag in (r.get("consumer_lag") or {}).values()
            )
            calm = 0 if busy else calm + 1
            if loop.time() > deadline:
                raise ClientError("events did not settle in time")
            await asyncio.sleep(0.3)


IMPORTS = {"units": "org-units", "cadres": "cadres", "postings": "postings"}


async def import_file(
    api: Api, kind: str, name: str, content: bytes, *, dry_run: bool = False
) -> dict:
    """Upload a CSV or XLSX to the registry's import; all rows or none."""
    r = await api.client.post(
        api.url(f"/registry/v1/imports/{IMPORTS[kind]}"),
        params={"dry_run": "true"} if dry_run else None,
        files={"file": (name, content)},
        headers=api.headers,
    )
    if r.status_code != 200:
        raise ClientError(_problem(r))
    return r.json()


async def export_batch(api: Api, month: str, fmt: str) -> tuple[dict, bytes]:
    """The month's stipend batch as listed, and its export as CSV or XLSX."""
    page = await api.call("GET", "/incentives/v1/stipend-batches", params={"month": month})
    if not page["items"]:
        raise ClientError(f"no stipend batch for {month}")
    batch = page["items"][0]
    r = await api.client.get(
        api.url(f"/incentives/v1/stipend-batches/{batch['id']}/export"),
        params={"format": fmt},
        headers=api.headers,
    )
    if r.status_code != 200:
        raise ClientError(_problem(r))
    return batch, r.content


async def close_week(api: Api, week: str) -> dict:
    return await api.call("POST", f"/assessment/v1/weeks/{week}/close")


async def user_create(api: Api, **body: Any) -> dict:
    return await api.call("POST", "/registry/v1/users", json={k: v for k, v in body.items() if v})


async def user_deactivate(api: Api, username: str) -> dict:
    users = [u for u in await api.all("/registry/v1/users") if u["username"] == username]
    if not users:
        raise ClientError(f"no user {username!r}")
    return await api.call("POST", f"/registry/v1/users/{users[0]['id']}/deactivate")


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} {r.text[:300]}"
    lines = [f"{r.status_code} {body.get('code', '')}: {body.get('detail') or body.get('title')}"]
    for e in body.get("errors", [])[:50]:
        lines.append(f"  row {e.get('row')}, {e.get('field')}: {e.get('problem')}")
    return "\n".join(lines)
