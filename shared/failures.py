"""Transient or deterministic: what a consumer retries without limit and what it may give up on.

Transient means the world, not the event, is at fault and will heal: the connection was
lost, the database is down or restarting, a serialization failure or deadlock, a timeout,
a broker that does not answer. Retrying the same event later can succeed, so it is never
dead-lettered. Anything else is taken to be about the event itself.
"""

import errno
import socket
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# PostgreSQL SQLSTATE classes and codes that say "try again later".
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P", "58")  # connection, resources, shutdown, io
_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "57014",  # query_canceled (statement_timeout)
    "25006",  # read_only_sql_transaction: a failover left us on a standby for a moment
}
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "disk i/o error")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([e.__cause__, e.__context__, getattr(e, "orig", None)])


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is an outage, not a property of the input."""
    for e in _chain(exc):
        if isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if isinstance(e, OSError) and e.errno in _NETWORK_ERRNOS:
            return True
        if isinstance(e, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
            return True  # the pool: connection gone, or none free in time
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str) and (
            state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_CLASSES)
        ):
            return True
        name = type(e).__name__
        if name in ("ConnectionDoesNotExistError", "ConnectionFailureError"):
            return True  # asyncpg: the server went away mid-statement
        if name == "InterfaceError" and "connection" in str(e).lower() and "closed" in str(e):
            return True  # asyncpg/SQLAlchemy: "connection is closed"
        if isinstance(e, sqlite3.OperationalError) and str(e).lower().startswith(_SQLITE_TRANSIENT):
            return True
        if getattr(e, "retriable", False) and type(e).__module__.startswith("aiokafka"):
            return True  # a broker that is down, moving leaders or short of replicas
        if name in ("KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError"):
            return True
    return False


def describe(exc: BaseException) -> str:
    """One line for health and logs: the type and the first line of the message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
