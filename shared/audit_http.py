"""The HTTP side of the audit trail: the request id, the row of a state-changing request,
and `GET /<service>/v1/audit`.

Which requests leave a row: every POST, PUT, PATCH or DELETE whose route owns a
`SessionDep` transaction and succeeds; the row is written last in that transaction, so it
exists exactly when the change does. An idempotent replay is a request like any other and
leaves a row. A write refused with 403 to an authenticated principal (the attempts the
authorization policy stops) leaves a `refused` row, written in a transaction of its own
after the answer. Other refusals (401, 404, 409, 422) and failures changed nothing and
leave no row; their request id is in the response and the access log. Request bodies are
kept in the summary with secrets (`password`, `token`, `secret`, `id_card`, `bank_account`
keys) masked, cut at 4,000
characters; uploads only by name and size.

Who reads the log: auditors, county-wide or scoped. Org admins are among the people the log
watches, so they do not read it. A scoped auditor sees rows whose target unit lies in its
subtree; a row whose unit is not known (a sign-in, a user without a unit) is county-wide
only.
"""

import logging
import re
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import Table, false, or_, select
from starlette.types import Scope

from shared.audit import (
    AUDIT,
    Entry,
    append,
    current_actor,
    event_targets_and_unit,
)
from shared.authz import Access, Authz
from shared.contracts.enums import Role
from shared.errors import InvalidInput
from shared.pagination import Page, Paging, make_page

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
# ID-card numbers and bank accounts are personal: never in an audit row (shared/fieldcrypt.py).
_SECRET_KEYS = re.compile(r"password|secret|token|id_card|bank_account", re.IGNORECASE)
MAX_BODY = 4000


def request_id_of(scope: Scope) -> str:
    """`X-Request-ID` when it is a sane token (1-64 of `A-Za-z0-9._:-`), else a new one
    (the HTTP edge, shared/edge.py, puts it on `request.state` and on the response)."""
    given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


async def record_refusal(request: Request, status: int) -> None:
    """A refused write, in a transaction of its own (the request's own one rolled back)."""
    runtime = request.app.state.runtimes.get(request.url.path.split("/")[1])
    if runtime is None:
        return
    info = {"audit_request": request, "audit_note": {"summary": {"status": status}}}
    entry = request_entry(SimpleNamespace(info=info), request, runtime.clock.now())
    entry.kind = "refused"
    try:
        async with runtime.transaction() as session:
            await append(session, entry)
    except Exception:  # the answer has gone out; a lost refusal row must not look like a 500
        log.exception("%s: the audit row of a refused request was not written", runtime.name)


def route_template(request: Request) -> str:
    """`/registry/v1/users/{user_id}`: an included router's route knows only its own tail
    of the path, so the head is taken from the request's path, segment for segment.
    """
    return template_of(request.scope) or request.url.path


def template_of(scope: Scope) -> str | None:
    """The route template of a routed request (None before routing or when none matched)."""
    route = getattr(scope.get("route"), "path", None)
    if route is None:
        return None
    path = scope["path"].rstrip("/").split("/")
    tail = route.rstrip("/").split("/")[1:]
    return "/".join(path[: len(path) - len(tail)] + tail)


async def record_request(session: Any, request: Request, at: datetime) -> None:
    await append(session, request_entry(session, request, at))


def request_entry(session: Any, request: Request, at: datetime) -> Entry:
    """The row of a state-changing request, from what its transaction noted in
    `session.info` (anything with an `info` dict: the sign-in hot path has no session)."""
    template = route_template(request)
    actor = current_actor(session)
    extra = session.info.get("audit_note") or {}
    event_targets, event_unit = event_targets_and_unit(session)
    summary: dict[str, Any] = {"path": request.url.path}
    if request.query_params:
        summary["query"] = _redact(dict(request.query_params))
    body = _body(request)
    if body is not None:
        summary["body"] = body
    noted = session.info.get("audit_events")
    if noted:
        summary["events"] = [{"type": t, "key": k} for t, k, _ in noted["items"]]
        summary["events_count"] = noted["count"]
    summary.update(extra.get("summary", {}))
    return Entry(
        at=at,
        kind="request",
        action=f"{request.method} {template}",
        actor_id=actor.user_id,
        actor_name=actor.username,
        roles=",".join(actor.roles),
        request_id=actor.request_id,
        targets=[
            *(str(v) for v in request.path_params.values()),
            *extra.get("targets", []),
            *event_targets,
        ],
        unit_id=extra.get("unit_id") or event_unit,
        summary=summary,
    )


def _body(request: Request) -> Any:
    raw = getattr(request, "_body", None)
    if raw is None:
        form = getattr(request, "_form", None)
        if not form:
            return None
        return _cut(
            {
                k: f"<file {v.filename} {v.size} bytes>" if hasattr(v, "filename") else v
                for k, v in form.multi_items()
            }
        )
    if not raw:
        return None
    ctype = request.headers.get("content-type", "")
    if "json" not in ctype:
        return {"content_type": ctype[:100], "bytes": len(raw)}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"bytes": len(raw)}
    return _cut(doc, redact=not _plain(raw))


# The masked words as bytes: an ASCII JSON text without escapes that holds none of them
# (in any case) has no key to mask, and skips the walk (a 500-item batch: ~2 ms of it).
_WORDS = _SECRET_KEYS.pattern.split("|")
_SECRET_WORDS = tuple(w.encode() for w in _WORDS) if all(re.escape(w) == w for w in _WORDS) else ()


def _plain(raw: bytes) -> bool:
    if not _SECRET_WORDS or not raw.isascii() or b"\\" in raw:
        return False
    lowered = raw.lower()
    return not any(w in lowered for w in _SECRET_WORDS)


def _cut(doc: Any, *, redact: bool = True) -> Any:
    if redact:
        doc = _redact(doc)
    flat = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
    return doc if len(flat) <= MAX_BODY else {"cut": flat[:MAX_BODY], "chars": len(flat)}


def _redact(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: "***" if _SECRET_KEYS.search(str(k)) else _redact(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_redact(v) for v in doc]
    return doc


class AuditRow(BaseModel):
    seq: int
    at: datetime
    kind: str
    action: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    roles: list[str]
    request_id: str | None
    target_id: str | None
    targets: list[str]
    unit_id: uuid.UUID | None
    summary: dict[str, Any]
    prev_hash: str
    hash: str


def audit_router(name: str, unit_closure: Table | None) -> APIRouter:
    """`GET /v1/audit` for one service; `unit_closure` is its (ancestor_id, unit_id) table."""
    router = APIRouter(prefix="/v1", tags=[name])

    @router.get("/audit", response_model=Page[AuditRow])
    async def list_audit(
        request: Request,
        paging: Paging,
        principal: Annotated[Access, Authz(unit_closure).allow(Role.auditor)],
        since: datetime | None = None,
        until: datetime | None = None,
        actor_id: uuid.UUID | None = None,
        request_id: Annotated[str | None, Query(max_length=64)] = None,
        target: Annotated[str | None, Query(max_length=64)] = None,
        kind: Literal["request", "event", "refused"] | None = None,
    ) -> dict[str, Any]:
        """The audit log in order (time range, actor, request id, target, kind); auditors only."""
        for field, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput(field, "must carry a UTC offset")
        stmt = select(AUDIT).order_by(AUDIT.c.seq).limit(paging.limit + 1)
        after = paging.after()
        if after is not None:
            if len(after) != 1 or not isinstance(after[0], int):
                raise InvalidInput("cursor", "not a cursor this service issued")
            stmt = stmt.where(AUDIT.c.seq > after[0])
        if kind is not None:
            stmt = stmt.where(AUDIT.c.kind == kind)
        if actor_id is not None:
            stmt = stmt.where(AUDIT.c.actor_id == actor_id)
        if request_id is not None:
            stmt = stmt.where(AUDIT.c.request_id == request_id)
        if target is not None:
            # The first target is indexed; the others are searched within the other filters.
            stmt = stmt.where(
                or_(
                    AUDIT.c.target_id == target,
                    AUDIT.c.targets.contains(f'"{target}"', autoescape=True),
                )
            )
        if since is not None:
            stmt = stmt.where(AUDIT.c.at >= since)
        if until is not None:
            stmt = stmt.where(AUDIT.c.at < until)
        if principal.unit_id is not None:
            stmt = stmt.where(
                AUDIT.c.unit_id.in_(
                    select(unit_closure.c.unit_id).where(
                        unit_closure.c.ancestor_id == principal.unit_id
                    )
                )
                if unit_closure is not None
                else false()
            )
        async with request.app.state.runtimes[name].sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        items = [
            {
                **row._asdict(),
                "at": row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
                "roles": [r for r in row.roles.split(",") if r],
                "targets": orjson.loads(row.targets),
                "summary": orjson.loads(row.summary),
            }
            for row in rows
        ]
        return make_page(items, paging, lambda r: [r["seq"]])

    return router
