"""Cursor pagination (DESIGN.md §7.1): `{"items": [...], "next_cursor": ...}`.

The cursor is the sort key of the last item, opaque to clients: urlsafe base64 of JSON,
signed with HMAC-SHA256 over the route it was issued for. A cursor that was tampered with,
made up, or replayed on another list is a 422 naming `cursor`, never a query with a key
of the wrong shape. Lists sort by a unique key (usually `(created_at, id)` or `id`), so
keyset paging is stable.

The key comes from `FRONTLINE_CURSOR_SECRET`; embedded mode without it generates one into
`var/cursor.key` (mode 0600) and keeps it, distributed mode refuses to start without it
(replicas of a service must honour each other's cursors).
"""

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from shared.errors import InvalidInput
from shared.settings import KernelSettings

T = TypeVar("T")
MAX_LIMIT = 500
MAX_CURSOR = 2048
_SIG = 16  # bytes of HMAC-SHA256 kept: forging needs 2^128 tries


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    """A page request: its size, the cursor, and the key and route a cursor is bound to."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    limit: int = 100
    cursor: str | None = None
    route: str = ""
    key: bytes = b""

    def after(self) -> list[Any] | None:
        """The decoded sort key to continue after, or None for the first page."""
        if not self.cursor:
            return None
        try:
            raw = base64.urlsafe_b64decode(self.cursor.encode("ascii"))
            body, sig = raw[:-_SIG], raw[-_SIG:]
            if len(raw) <= _SIG or not hmac.compare_digest(sig, self._sign(body)):
                raise ValueError("bad signature")
            value = orjson.loads(body)
        except ValueError as exc:  # binascii.Error, UnicodeError, JSONDecodeError included
            raise InvalidInput("cursor", "not a cursor this list issued") from exc
        if not isinstance(value, list):
            raise InvalidInput("cursor", "not a cursor this list issued")
        return value

    def encode(self, key: list[Any]) -> str:
        body = orjson.dumps(key, default=str)
        return base64.urlsafe_b64encode(body + self._sign(body)).decode()

    def _sign(self, body: bytes) -> bytes:
        if not self.key:
            raise RuntimeError("PageParams without a signing key (use the Paging dependency)")
        message = self.route.encode() + b"\x00" + body
        return hmac.new(self.key, message, hashlib.sha256).digest()[:_SIG]


def cursor_key(kernel: KernelSettings) -> bytes:
    """The cursor signing key: from settings, or (embedded) generated once under var/."""
    if kernel.cursor_secret:
        return kernel.cursor_secret.encode()
    if kernel.mode != "embedded":
        raise RuntimeError("distributed mode needs FRONTLINE_CURSOR_SECRET (cursor signing key)")
    path = Path(kernel.var_dir) / "cursor.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def page_params(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
) -> PageParams:
    # The route's template (no ids), under the service's prefix: routers are included with
    # a prefix, and the route object knows only its own part of the path.
    service = request.url.path.split("/")[1]
    route = getattr(request.scope.get("route"), "path", request.url.path)
    bound = f"{request.method} /{service}{route}"
    return PageParams(limit=limit, cursor=cursor, route=bound, key=request.app.state.cursor_key)


Paging = Annotated[PageParams, Depends(page_params)]


def make_page(rows: list[Any], page: PageParams, key) -> dict[str, Any]:
    """Fetch `page.limit + 1` rows, pass them here with a function giving each row's sort key."""
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return {"items": rows, "next_cursor": page.encode(key(rows[-1])) if more and rows else None}
