"""Sign-in on post: one at a time, or a phone's offline queue as a batch."""

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from services.assessment.api.deps import Own, Policy, Runtime, Session, SignInReader
from services.assessment.schemas import (
    SignInBatch,
    SignInBatchResult,
    SignInCreate,
    SignInPublic,
    SignInReview,
)
from services.assessment.service import review, signin_batch, signin_fast, signins
from services.assessment.settings import policy_of
from shared.audit_http import record_request
from shared.authz import Access
from shared.contracts.enums import SignInReason, SignInStatus
from shared.errors import InvalidInput
from shared.lanes import Lane
from shared.pagination import Page, Paging
from shared.runtime import ClockDep
from shared.types import Day

router = APIRouter(tags=["sign-ins"])


async def sign_in_lane(request: Request, access: Access, body: SignInCreate) -> Response:
    """`sign_in` below, served as a lane (shared/lanes.py): the same checks and answer."""
    runtime = request.app.state.runtimes["assessment"]
    access.ensure_cadre(body.cadre_id)
    outcome = await signin_fast.sign_in(
        runtime,
        request,
        body,
        now=request.app.state.clock.now(),
        policy=policy_of(runtime.settings),
    )
    return signins.respond(outcome)


LANES = [Lane("POST", "/v1/sign-ins", SignInCreate, sign_in_lane)]


@router.post("/sign-ins", response_model=SignInPublic, status_code=201)
async def sign_in(
    body: SignInCreate,
    request: Request,
    runtime: Runtime,
    principal: Own,
    clock: ClockDep,
    policy: Policy,
) -> Response:
    """Sign in on post (a cadre, for themself); a replayed key answers its first answer."""
    principal.ensure_cadre(body.cadre_id)
    outcome = await signin_fast.sign_in(runtime, request, body, now=clock.now(), policy=policy)
    return signins.respond(outcome)


@router.post("/sign-ins/batch", response_model=SignInBatchResult)
async def sign_in_batch(
    body: SignInBatch,
    request: Request,
    runtime: Runtime,
    principal: Own,
    clock: ClockDep,
    policy: Policy,
) -> Response:
    """Upload an offline queue: one result per item, in input order; a bad item fails alone.

    Rendered with orjson as `SignInBatchResult` renders it (no pydantic pass over 500
    results), like the single sign-in's answer."""
    principal.ensure_cadre(principal.cadre_id)  # a cadre user linked to a cadre
    if len(body.items) > policy.batch_max_items:
        raise InvalidInput("items", f"at most {policy.batch_max_items} items per batch")
    results: list[dict[str, Any] | None] = [None] * len(body.items)
    valid: list[tuple[int, SignInCreate]] = []
    for n, raw in enumerate(body.items):
        key = raw.get("idempotency_key") if isinstance(raw, dict) else None
        try:
            item = SignInCreate.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error.get("loc", ())) or "item"
            results[n] = _rejected(n, key, "invalid_input", field, error.get("msg", ""))
            continue
        if item.cadre_id != principal.cadre_id:
            results[n] = _rejected(n, key, "not_own_record", "cadre_id", "not your record")
            continue
        valid.append((n, item))
    outcomes = await _record_batch(
        runtime, request, principal.cadre_id, [i for _, i in valid], clock.now(), policy
    )
    for (n, item), outcome in zip(valid, outcomes, strict=True):
        results[n] = (
            _rejected(n, item.idempotency_key, outcome.code, outcome.field, outcome.detail)
            if outcome.kind in ("rejected", "conflict")
            else signins.public(outcome.body)
        )
    content = orjson.dumps({"results": results}, option=orjson.OPT_UTC_Z)
    return Response(content, media_type="application/json")


@router.get("/sign-ins", response_model=Page[SignInReview])
async def list_sign_ins(
    session: Session,
    who: SignInReader,
    page: Paging,
    cadre_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    status: SignInStatus | None = None,
    reason: SignInReason | None = None,
) -> dict[str, Any]:
    """Sign-ins to review, by device time: cadre, unit subtree, local dates, status, reason."""
    return await review.listing(
        session,
        cadre_id=who.own_cadre(cadre_id),
        unit_id=await who.narrow(session, unit_id),
        first=first,
        last=last,
        status=status,
        reason=reason,
        page=page,
    )


async def _record_batch(
    runtime: Any,
    request: Request,
    cadre_id: uuid.UUID,
    items: list[SignInCreate],
    now: datetime,
    policy: Any,
) -> list[signins.Outcome]:
    """PostgreSQL's prepared path, else (SQLite, a closed week to re-judge) the general
    one; either writes the request's audit row in the batch's transaction."""
    outcomes = await signin_batch.sign_in_batch(
        runtime, request, cadre_id, items, now=now, policy=policy
    )
    if outcomes is not None:
        return outcomes
    async with runtime.transaction() as session:
        session.info["audit_request"] = request
        outcomes = await signins.record(session, cadre_id, items, now=now, policy=policy)
        await record_request(session, request, now)
    return outcomes


def _rejected(n: int, key: Any, code: str, field: str, detail: str) -> dict[str, Any]:
    return {
        "status": "rejected",
        "code": code,
        "field": field,
        "detail": detail,
        "index": n,
        "idempotency_key": key if isinstance(key, str) else None,
    }
