"""Entity versions: every event about an entity carries the entity's version, so consumers
converge on the producer's latest state whatever the order of delivery.

Producer: the entity's row has a `version` column; each change that announces the entity
increments it in the same transaction, under the row's lock (`bump` takes the lock with the
UPDATE itself), and the event carries the new value (`entity_version`). A new row starts
at 1.

Consumer: `advance(session, entity, id, version)` records the version in `entity_version`
(one kernel table in every service database, migrated by the kernel branch) and says
whether the event is newer than anything applied for that entity. A handler applies the
event's whole state only then; older and equal versions (redelivery, reordering, DLQ
replays) are skipped. A revoke or an end is a version like any other, so a revoke that
arrives before its award is remembered and the award is skipped.

One table rather than a column on each projection: skipped deletes and revokes need no
tombstone rows, one statement guards any handler, and a projection keyed by something
other than the entity (history rows, derived state) can still be guarded.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import is_postgres


def versions_table(metadata: MetaData) -> Table:
    """The applied version per entity, on a service's metadata (migrated by the kernel)."""
    return Table(
        "entity_version",
        metadata,
        Column("entity", String(40), primary_key=True),
        Column("entity_id", String(120), primary_key=True),
        Column("version", BigInteger, nullable=False),
    )


ENTITY_VERSIONS = versions_table(MetaData())


async def advance(session: AsyncSession, entity: str, entity_id: Any, version: int) -> bool:
    """True when `version` is newer than every version applied for the entity (and record
    it); False when an equal or newer one was applied already: skip the event.

    One upsert guarded by `version < excluded.version`: on PostgreSQL it holds the row's
    lock to the end of the transaction, so two consumers of one entity cannot both win.
    """
    t = ENTITY_VERSIONS
    dialect = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(t).values(entity=entity, entity_id=str(entity_id), version=version)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.entity, t.c.entity_id],
        set_={"version": stmt.excluded.version},
        where=t.c.version < stmt.excluded.version,
    )
    return (await session.execute(stmt)).rowcount == 1


async def applied(session: AsyncSession, entity: str, entity_id: Any) -> int | None:
    """The version applied for an entity, None when none was."""
    t = ENTITY_VERSIONS
    return await session.scalar(
        t.select()
        .with_only_columns(t.c.version)
        .where(t.c.entity == entity, t.c.entity_id == str(entity_id))
    )


async def bump(session: AsyncSession, table: Table, *where: Any) -> dict[Any, int]:
    """Producer side: increment `version` of the rows matching `where`; returns {primary
    key (a tuple when composite): new version}. The UPDATE takes each row's lock
    (PostgreSQL) or the write lock (SQLite) and holds it to commit, so versions follow the
    database's commit order. Call it after the change is flushed and build the event from
    the row as it is then.
    """
    pk = list(table.primary_key.columns)
    rows = await session.execute(
        update(table)
        .where(*where)
        .values(version=table.c.version + 1)
        .returning(table.c.version, *pk)
    )
    return {(tuple(r[1:]) if len(pk) > 1 else r[1]): r[0] for r in rows}


def versioned_upsert(
    session: AsyncSession, table: Table, index: Sequence[str], update_cols: Sequence[str]
):
    """Producer side for set-based writes: INSERT (rows carry `version` 1) ... ON CONFLICT
    (index) DO UPDATE the named columns and `version = version + 1`, RETURNING the index
    columns and the version each row now has (under its lock, as `bump`)."""
    dialect = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(table)
    set_ = {c: stmt.excluded[c] for c in update_cols} | {"version": table.c.version + 1}
    return stmt.on_conflict_do_update(index_elements=list(index), set_=set_).returning(
        *[table.c[c] for c in index], table.c.version
    )
