"""Async engines and sessions for SQLite (aiosqlite) and PostgreSQL (asyncpg).

Each service declares its tables on its own metadata (`service_base()`), so three services
can share one process and still keep a database each.
"""

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import registry
from sqlmodel import SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_base(name: str) -> type[SQLModel]:
    """A SQLModel base with a metadata of its own, for one service's tables.

    The kernel's own tables (migrated by the kernel branch) are declared on it here.
    """
    from shared.revocation import declare_table

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    declare_table(metadata)
    return type(f"{name.title()}Base", (SQLModel,), {}, registry=registry(metadata=metadata))


def _sha256_hex(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    # What PostgreSQL has built in, for the audit chain (shared/audit.py).
    dbapi_conn.create_function("sha256_hex", 1, _sha256_hex, deterministic=True)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def prepare_sqlite(dbapi_conn: Any) -> None:
    """What every SQLite connection gets, also a raw sqlite3 one (the sign-in hot path)."""
    _sqlite_pragmas(dbapi_conn, None)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_postgres(session_or_engine: AsyncSession | AsyncEngine) -> bool:
    bind = (
        session_or_engine.bind if isinstance(session_or_engine, AsyncSession) else session_or_engine
    )
    return bind.dialect.name == "postgresql"


def insert_ignore(session: AsyncSession, table: Table, *, index: Sequence[str] | None = None):
    """INSERT ... ON CONFLICT DO NOTHING for either dialect (the idempotency guard)."""
    dialect = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_nothing(index_elements=list(index) if index else None)


def upsert(session: AsyncSession, table: Table, index: Sequence[str], update: Sequence[str]):
    """INSERT ... ON CONFLICT (index) DO UPDATE SET the named columns, for either dialect."""
    dialect = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(index), set_={c: stmt.excluded[c] for c in update}
    )
