"""Revocation: every token carries its user's token version (claim `ver`), and every service
refuses a token older than the version it knows, or of a user it does not know (401).

The registry bumps a user's version on deactivation, reactivation, a password change or
reset, and a change of roles, unit scope or cadre link, and publishes `UserUpserted` with
it. Every service applies that event through a kernel handler into its own
`user_token_version` table (kernel Alembic branch) and into an in-process cache, which is
what a request is checked against: a dict lookup, no query. Replicas of one service share
a database but each applies only its own partitions' events, so each process also re-reads
the rows changed lately, every `token_versions_refresh_seconds`.

A user the service has not heard of yet is refused: a token is only as good as the user
behind it. The registry republishes, on start, every user its own projection lacks (the
bootstrap admin, users created before the projection existed), and learns a user's version
itself when it issues a token, so a fresh login works at once where it was issued; the
other services accept it once the user's event reaches them (milliseconds embedded, about
a second distributed).
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Uuid,
    false,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

TABLE = "user_token_version"


def declare_table(metadata: MetaData) -> Table:
    """The projection's table on a service's metadata (migrated by the kernel branch)."""
    return Table(
        TABLE,
        metadata,
        Column("user_id", Uuid, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("active", Boolean, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("ix_user_token_version_updated_at", "updated_at"),
    )


class TokenVersions:
    """The in-process cache: user id -> (version, active); it only ever moves forward."""

    def __init__(self) -> None:
        self._by_user: dict[uuid.UUID, tuple[int, bool]] = {}
        self.watermarks: dict[str, datetime] = {}  # per table: latest `updated_at` read

    def __len__(self) -> int:
        return len(self._by_user)

    def known(self, user_id: uuid.UUID) -> tuple[int, bool] | None:
        return self._by_user.get(user_id)

    def learn(self, user_id: uuid.UUID, version: int, active: bool) -> None:
        known = self._by_user.get(user_id)
        # Same version, different state: keep the inactive one (the safe side).
        if known is None or version > known[0] or (version == known[0] and not active):
            self._by_user[user_id] = (version, active)

    def refusal(self, user_id: uuid.UUID, version: int) -> str | None:
        """Why a token of `version` for `user_id` is refused, or None if it is good."""
        known = self._by_user.get(user_id)
        if known is None:
            return "unknown user"
        if version < known[0]:
            return "token revoked"
        if not known[1]:
            return "user deactivated"
        return None  # a newer version than ours: the registry issued it; our event lags

    async def apply(
        self, session: AsyncSession, table: Table, *, user_id, version, active, now: datetime
    ) -> None:
        """Upsert one user's version into `table` (never backwards) and learn it."""
        dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(
            user_id=user_id, version=version, active=active, updated_at=now
        )
        ex = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"version": ex.version, "active": ex.active, "updated_at": ex.updated_at},
            where=(table.c.version < ex.version)
            | ((table.c.version == ex.version) & (ex.active == false())),
        )
        await session.execute(stmt)
        # Learnt before commit: a rollback redelivers the event, and being ahead is safe.
        self.learn(user_id, version, active)

    async def load(
        self, session: AsyncSession, table: Table, *, source: str, overlap: timedelta
    ) -> int:
        """Learn `source`'s rows changed since its last read (all of them the first time)."""
        stmt = select(table.c.user_id, table.c.version, table.c.active, table.c.updated_at)
        mark = self.watermarks.get(source)
        if mark is not None:
            stmt = stmt.where(table.c.updated_at >= mark - overlap)
        n = 0
        for user_id, version, active, updated_at in await session.execute(stmt):
            self.learn(user_id, version, active)
            if mark is None or updated_at > mark:
                mark = updated_at
            n += 1
        if mark is not None:
            self.watermarks[source] = mark
        return n
