"""Cursor pagination (DESIGN.md §7.1): `{"items": [...], "next_cursor": ...}`.

The cursor is the sort key of the last item, opaque to clients (urlsafe base64 of JSON).
Lists sort by a unique key (usually `(created_at, id)` or `id`), so keyset paging is stable.
"""

import base64
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query
from pydantic import BaseModel

from shared.errors import InvalidInput

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int = 100
    cursor: str | None = None

    def after(self) -> list[Any] | None:
        """The decoded sort key to continue after, or None for the first page."""
        if not self.cursor:
            return None
        try:
            value = orjson.loads(base64.urlsafe_b64decode(self.cursor.encode()))
        except ValueError as exc:
            raise InvalidInput("cursor", "not a cursor this service issued") from exc
        if not isinstance(value, list):
            raise InvalidInput("cursor", "not a cursor this service issued")
        return value


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key, default=str)).decode()


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Paging = Annotated[PageParams, Depends(page_params)]


def make_page(rows: list[Any], limit: int, key) -> dict[str, Any]:
    """Fetch `limit + 1` rows, pass them here with a function giving each row's sort key."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(key(rows[-1])) if more and rows else None}
