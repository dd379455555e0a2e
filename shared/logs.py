"""Structured logs: one JSON object per line, with the request id that caused the line.

The request id is taken from `X-Request-ID` (or made) by the HTTP middleware and carried
in event envelopes, so a sign-in's access line, the assessment consumer's line and the
incentives consumer's line all name the same id. `FRONTLINE_LOG_LEVEL` sets the level,
`FRONTLINE_LOG_FORMAT=text` gives plain lines for a terminal, and
`FRONTLINE_ACCESS_LOG_SAMPLE` (0..1) the share of successful requests with an access line:
errors (status ≥ 400) and slow requests (≥ 1 s) are always logged.
"""

import logging
import random
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
access = logging.getLogger("frontline.access")
events = logging.getLogger("frontline.events")
# What a record may carry besides its message (`log.info(..., extra={...})`).
FIELDS = (
    "service",
    "method",
    "route",
    "status",
    "latency_ms",
    "user",
    "event_id",
    "event_type",
    "outcome",
    "topic",
    "key",
    "group",
)
_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "request_id" and value is not None:
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is written (a test's capture comes and
    goes; a handler holding the first one would write to a closed file)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """The process's logging: JSON lines (or text) on stderr at `level`."""
    handler = _Stderr()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Noisy at info: aiokafka's group chatter, uvicorn's access lines (ours replace them), and
    # httpx's line per request of the CLI's own calls.
    for noisy in ("aiokafka", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_request(
    *,
    sample: float,
    service: str,
    method: str,
    route: str,
    status: int,
    seconds: float,
    user: str | None,
) -> None:
    if status < 400 and seconds < 1.0 and (sample <= 0 or random.random() >= sample):
        return
    if not access.isEnabledFor(logging.INFO):
        return
    access.info(
        "request",
        extra={
            "service": service,
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "user": user,
        },
    )
