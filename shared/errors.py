"""One domain error base rendered as RFC 9457 problem+json with a stable code."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM = "application/problem+json"


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, message: str = "", *, code: str | None = None, **extra: Any):
        super().__init__(message or self.title)
        self.message = message or self.title
        if code:
            self.code = code
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        body = {
            "type": f"https://frontline.example/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        body.update(self.extra)
        return body


class InvalidInput(DomainError):
    status, code, title = 422, "invalid_input", "Invalid input"

    def __init__(self, field: str, message: str, *, code: str | None = None, **extra: Any):
        super().__init__(f"{field}: {message}", code=code, field=field, **extra)
        self.field = field


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Not authenticated"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unavailable(DomainError):
    """503: a dependency is out of reach for now (the client should retry, not give up)."""

    status, code, title = 503, "unavailable", "Service unavailable"


class TooManyRequests(DomainError):
    """429 with `Retry-After` (whole seconds)."""

    status, code, title = 429, "too_many_requests", "Too many requests"

    def __init__(self, message: str = "", *, retry_after: int, code: str | None = None):
        super().__init__(message, code=code, retry_after=retry_after)
        self.retry_after = retry_after


def problem_response(
    status: int, body: dict[str, Any], headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_of(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


async def _domain(_: Request, exc: DomainError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(exc.status, exc.problem(), headers)


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": _field_of(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = errors[0]["field"] if errors else ""
    return problem_response(
        422,
        {
            "type": "https://frontline.example/problems/invalid_input",
            "title": "Invalid input",
            "status": 422,
            "detail": f"{first}: {errors[0]['message']}" if errors else "invalid input",
            "code": "invalid_input",
            "field": first,
            "errors": errors,
        },
    )


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    return problem_response(
        exc.status_code,
        {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "code": code.get(exc.status_code, "http_error"),
        },
        getattr(exc, "headers", None),
    )


async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
    # A constraint the service did not pre-check (a concurrent writer got there first).
    return problem_response(
        409,
        {
            "type": "https://frontline.example/problems/integrity_conflict",
            "title": "Conflict",
            "status": 409,
            "detail": "the change conflicts with data written concurrently; retry",
            "code": "integrity_conflict",
        },
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IntegrityError, _integrity)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, _domain)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
