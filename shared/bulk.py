"""Bulk reads and writes in the session's own transaction, for set-based jobs (a stipend
batch of 100,000 cadres): on PostgreSQL straight through the session's asyncpg connection
(plain records, no ORM rows; COPY for inserts), on SQLite through SQLAlchemy as usual.

Statements are SQLAlchemy Core, compiled once per call for the session's dialect, so both
backends run the same query. Read rows by position: an asyncpg Record and a SQLAlchemy Row
both index by number.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from shared.db import is_postgres, upsert


async def driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        # SQLAlchemy begins lazily, at its first statement: start it before ours.
        await session.execute(select(1))
    return raw


async def fetch(session: AsyncSession, stmt: Executable) -> Sequence[Any]:
    """All rows of a Core statement (an IN list is rendered into the SQL text)."""
    if not is_postgres(session):
        return (await session.execute(stmt)).all()
    compiled = stmt.compile(
        dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.construct_params()
    args = [params[name] for name in compiled.positiontup or ()]
    return await (await driver(session)).fetch(str(compiled), *args)


async def insert_rows(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows (all with the same keys): COPY on PostgreSQL."""
    if not rows:
        return
    if not is_postgres(session):
        await session.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    await (await driver(session)).copy_records_to_table(
        table.name,
        records=[tuple(r[c] for c in columns) for r in rows],
        columns=columns,
        schema_name=table.schema,
    )


async def upsert_rows(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    index: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (index) DO UPDATE the `update` columns, for many rows with the
    same keys: on PostgreSQL one statement over `unnest` of one array per column."""
    if not rows:
        return
    if not is_postgres(session):
        await session.execute(upsert(session, table, index, update), rows)
        return
    dialect = session.get_bind().dialect
    columns = list(rows[0])
    arrays = ", ".join(
        f"${i}::{table.c[c].type.compile(dialect)}[]" for i, c in enumerate(columns, 1)
    )
    sets = ", ".join(f"{c} = excluded.{c}" for c in update)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT ({', '.join(index)}) DO UPDATE SET {sets}"
    )
    await (await driver(session)).execute(sql, *([r[c] for r in rows] for c in columns))
