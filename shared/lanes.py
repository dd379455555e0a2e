"""Lanes: one hot route served ahead of FastAPI's routing and dependency solving.

Measured on the sign-in path (bench/README.md): behind three services' nested routers and
six dependencies, FastAPI's per-request machinery cost more CPU than the sign-in's own
work. A lane is a plain Starlette route put first in the app's routes for one method and
path; it answers exactly as its twin, the declared `APIRoute` of the same method and path,
which stays in place for the OpenAPI document, the authorization matrix and the route
table. What a lane does before its handler is what the twin's dependencies do:

- the twin is put in `scope["route"]`, so route templates (metrics, logs, audit rows) and
  the query check (`clean_params`, 422 `unknown_parameter`) see the twin;
- the twin's one `Guard` (shared/authz.py) runs on the bearer token: 401 and 403 as before,
  and the principal on `request.state` for the audit row and a refused write's row;
- the JSON body is parsed and validated as FastAPI does it, errors located under `body`
  (422 problem+json naming the field).

Everything around routing (request id, metrics, security headers, body limit, the
problem+json handlers) wraps a lane as it wraps any route. The same tests run against a
lane as against its twin, since a lane is reached by the same requests.
"""

import email.message
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.routing import Route

from shared.auth import _bearer
from shared.authz import Access, Guard, guards_of
from shared.types import clean_params


@dataclass(frozen=True)
class Lane:
    """`handler(request, access, body)` answers `method path` (the path under the service's
    prefix) for a route whose body is `body` (a pydantic model)."""

    method: str
    path: str
    body: type[BaseModel]
    handler: Callable[[Request, Access, Any], Awaitable[Response]]


def install_lanes(app: FastAPI, prefix: str, lanes: list[Lane]) -> None:
    """Put each lane first in the app's routes, bound to its twin (which must exist)."""
    for lane in lanes:
        path = prefix + lane.path
        ctx = next(
            c
            for c in iter_route_contexts(app.routes)
            if isinstance(c.original_route, APIRoute)
            and c.path == path
            and lane.method in (c.methods or ())
        )
        [guard] = guards_of(ctx.dependant)
        route = Route(path, _endpoint(lane, ctx.original_route, guard), methods=[lane.method])
        route.include_in_schema = False
        route.lane_of = ctx  # type: ignore[attr-defined]  (route_table reads the twin's rule)
        app.router.routes.insert(0, route)


def _endpoint(lane: Lane, twin: APIRoute, guard: Guard) -> Callable[[Request], Awaitable[Any]]:
    async def endpoint(request: Request) -> Response:
        request.scope["route"] = twin
        value = decode_body(await request.body(), request.headers.get("content-type"))
        await clean_params(request)
        access = await guard(request, await _bearer(request))
        return await lane.handler(request, access, validate_body(value, lane.body))

    return endpoint


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """The body as FastAPI reads it, before the dependencies run: parsed when the content
    type is JSON (else the bytes, which fail validation), None when empty."""
    if not raw:
        return None
    if not (content_type and _is_json(content_type)):
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc


def validate_body(value: Any, model: type[BaseModel]) -> Any:
    """A required body validated as FastAPI does it, after the dependencies: 422 with each
    error located under `body`."""
    if value is None:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=value) from exc


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")
