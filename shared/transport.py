"""The transport interface and the local bus used in embedded mode.

Both transports look like Kafka to the code above them: topics are append-only logs,
publish returns once the records are durable, consumers in a group read from their
committed offset and commit only after processing. The local bus keeps its log in a
SQLite file (var/bus.sqlite), so events survive a restart of the embedded process.
"""

import asyncio
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clock import Clock
from shared.db import make_engine, make_sessionmaker, upsert
from shared.events import is_compacted


@dataclass(frozen=True)
class Record:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]
    error: str = ""  # set when the key or a header could not be read: a dead letter


class Consumer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def poll(self, timeout: float) -> list[Message]: ...
    async def commit(self, messages: list[Message]) -> None: ...
    async def lag(self) -> dict[str, int | None]: ...
    async def partition_lag(self) -> dict[tuple[str, int], int | None]: ...


class Transport(Protocol):
    name: str
    sent: Counter[str]  # records acknowledged per topic by this process (for settling tests)

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, records: list[Record]) -> None: ...
    def consumer(self, group: str, topics: list[str]) -> Consumer: ...
    async def lag(self, group: str, topics: list[str]) -> dict[str, int]: ...
    async def rewind(self, group: str, topics: list[str]) -> bool: ...
    async def read(self, topic: str, start: int = 0, limit: int | None = None) -> list[Message]: ...


TAIL = 10_000  # records per topic kept in memory for consumers
_md = MetaData()
BUS = Table(
    "bus_messages",
    _md,
    Column("topic", String(200), primary_key=True),
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(200), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False, default="{}"),
    # When the row was appended, for pruning (shared/prune.py); null in logs made before.
    Column("appended_at", DateTime(timezone=True), nullable=True),
)
OFFSETS = Table(
    "bus_offsets",
    _md,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)


class LocalBus:
    """A durable in-process log: one partition per topic, offsets per consumer group."""

    name = "local"

    def __init__(self, url: str, clock: Clock | None = None):
        self.url = url
        self.clock = clock or Clock()
        self.engine: AsyncEngine | None = None
        self.sent: Counter[str] = Counter()
        self._write = asyncio.Lock()
        self._new = asyncio.Condition()
        # What this process knows of each topic: its next offset, and its newest records.
        # Consumers read from the tail in memory and skip the file when nothing is new, so
        # neither an idle nor a busy bus polls SQLite; `refresh` catches up with records
        # another process (a `frontline dlq replay`) appended, once per long poll.
        self.heads: dict[str, int] = {}
        self.tails: dict[str, deque[Message]] = {}
        self.version = 0

    async def start(self) -> None:
        if self.engine is None:
            self.engine = make_engine(self.url)
            async with self.engine.begin() as conn:
                await conn.run_sync(_md.create_all)
                await conn.run_sync(_add_appended_at)
            self.sessionmaker = make_sessionmaker(self.engine)

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()
            self.engine = None

    async def _heads_from_file(self, topics: set[str]) -> dict[str, int]:
        async with self.sessionmaker() as s:
            rows = await s.execute(
                select(BUS.c.topic, func.max(BUS.c.offset))
                .where(BUS.c.topic.in_(topics))
                .group_by(BUS.c.topic)
            )
            found = dict(rows.all())
        return {t: found.get(t, -1) + 1 for t in topics}

    async def refresh(self, topics: list[str]) -> None:
        """Re-read the heads from the file (records appended by another process)."""
        async with self._write:
            fresh = await self._heads_from_file(set(topics))
            moved = False
            for t, head in fresh.items():
                if t not in self.heads or head > self.heads[t]:
                    self.heads[t] = head
                    self.tails.pop(t, None)  # the tail must reach the head without a gap
                    moved = True
        if moved:
            await self._notify()

    async def learn_heads(self, topics: list[str]) -> None:
        """Heads of topics this process has not seen yet, read once from the file; until
        then every consumer's poll read those topics from the file (each publish wakes
        every consumer)."""
        async with self._write:
            unknown = {t for t in topics if t not in self.heads}
            if unknown:
                self.heads.update(await self._heads_from_file(unknown))

    async def _notify(self) -> None:
        async with self._new:
            self.version += 1
            self._new.notify_all()

    async def publish(self, records: list[Record]) -> None:
        if not records:
            return
        async with self._write:
            topics = {r.topic for r in records}
            unknown = {t for t in topics if t not in self.heads}
            if unknown:
                self.heads.update(await self._heads_from_file(unknown))
            try:
                await self._append(records)
            except IntegrityError:  # another process appended to these topics meanwhile
                self.heads.update(await self._heads_from_file(topics))
                for t in topics:
                    self.tails.pop(t, None)
                await self._append(records)
        self.sent.update(r.topic for r in records)
        await self._notify()

    async def _append(self, records: list[Record]) -> None:
        heads = dict(self.heads)
        messages = []
        for r in records:
            messages.append(Message(r.topic, 0, heads[r.topic], r.key, r.value, r.headers))
            heads[r.topic] += 1
        now = self.clock.now()
        rows = [
            {
                "topic": m.topic,
                "offset": m.offset,
                "key": m.key,
                "value": m.value,
                "headers": orjson.dumps(m.headers).decode(),
                "appended_at": now,
            }
            for m in messages
        ]
        async with self.sessionmaker() as s, s.begin():
            await s.execute(BUS.insert(), rows)
        self.heads = heads
        for m in messages:
            self.tails.setdefault(m.topic, deque(maxlen=TAIL)).append(m)

    def consumer(self, group: str, topics: list[str]) -> "LocalConsumer":
        return LocalConsumer(self, group, topics)

    async def committed(self, group: str, topics: list[str]) -> dict[str, int]:
        async with self.sessionmaker() as s:
            rows = await s.execute(
                select(OFFSETS.c.topic, OFFSETS.c.next_offset).where(
                    OFFSETS.c.group_id == group, OFFSETS.c.topic.in_(topics)
                )
            )
            return dict(rows.all())

    async def rewind(self, group: str, topics: list[str]) -> bool:
        """Forget the group's offsets: it reads the topics from their start (a rebuild)."""
        async with self._write, self.sessionmaker() as s, s.begin():
            await s.execute(
                delete(OFFSETS).where(OFFSETS.c.group_id == group, OFFSETS.c.topic.in_(topics))
            )
        return True

    async def lag(self, group: str, topics: list[str]) -> dict[str, int]:
        done = await self.committed(group, topics)
        async with self.sessionmaker() as s:
            rows = await s.execute(
                select(BUS.c.topic, func.max(BUS.c.offset))
                .where(BUS.c.topic.in_(topics))
                .group_by(BUS.c.topic)
            )
            heads = dict(rows.all())
        return {t: heads.get(t, -1) + 1 - done.get(t, 0) for t in topics}

    async def read(self, topic: str, start: int = 0, limit: int | None = None) -> list[Message]:
        """A topic from an offset to its end (or `limit` rows), without a group."""
        async with self.sessionmaker() as s:
            rows = await s.execute(
                select(BUS)
                .where(BUS.c.topic == topic, BUS.c.offset >= start)
                .order_by(BUS.c.offset)
                .limit(limit)
            )
            return [_message(r) for r in rows]

    async def prune(self, before: datetime) -> int:
        """Delete rows appended before `before` (Kafka's retention); on compacted topics only
        those a newer row of the same key supersedes (Kafka's compaction)."""
        newer = BUS.alias("newer")
        superseded = (
            select(newer.c.offset)
            .where(
                newer.c.topic == BUS.c.topic,
                newer.c.key == BUS.c.key,
                newer.c.offset > BUS.c.offset,
            )
            .exists()
        )
        compacted = [t for t in await self.topics() if is_compacted(t)]
        async with self._write, self.sessionmaker() as s, s.begin():
            old = BUS.c.appended_at < before
            gone = await s.execute(delete(BUS).where(old, BUS.c.topic.not_in(compacted)))
            n = gone.rowcount
            if compacted:
                gone = await s.execute(
                    delete(BUS).where(old, BUS.c.topic.in_(compacted), superseded)
                )
                n += gone.rowcount
        return n

    async def topics(self) -> list[str]:
        async with self.sessionmaker() as s:
            return list((await s.scalars(select(BUS.c.topic).distinct())).all())


def _add_appended_at(conn) -> None:
    # The bus has no migrations (it is a cache of the embedded process's events); a log made
    # before pruning existed gets the column, its old rows stay until compaction.
    if "appended_at" not in {c["name"] for c in inspect(conn).get_columns("bus_messages")}:
        conn.execute(text("ALTER TABLE bus_messages ADD COLUMN appended_at TIMESTAMP"))


def _message(r) -> Message:
    return Message(r.topic, 0, r.offset, r.key, r.value, orjson.loads(r.headers))


class LocalConsumer:
    def __init__(self, bus: LocalBus, group: str, topics: list[str]):
        self.bus, self.group, self.topics = bus, group, topics
        self.positions: dict[str, int] = {}

    async def start(self) -> None:
        committed = await self.bus.committed(self.group, self.topics)
        self.positions = {t: committed.get(t, 0) for t in self.topics}

    async def stop(self) -> None:
        pass

    async def lag(self) -> dict[str, int | None]:
        return dict(await self.bus.lag(self.group, self.topics))

    async def partition_lag(self) -> dict[tuple[str, int], int | None]:
        return {(t, 0): n for t, n in (await self.lag()).items()}  # one partition per topic

    async def _fetch(self, limit: int = 500) -> list[Message]:
        if unknown := [t for t in self.positions if t not in self.bus.heads]:
            await self.bus.learn_heads(unknown)
        out: list[Message] = []
        for topic, start in self.positions.items():
            head = self.bus.heads.get(topic)
            if head is not None and start >= head:
                continue  # nothing new: no query at all
            tail = self.bus.tails.get(topic)
            if tail and tail[0].offset <= start:
                skip = start - tail[0].offset
                out.extend(itertools.islice(tail, skip, skip + limit))
                continue
            async with self.bus.sessionmaker() as s:
                rows = await s.execute(
                    select(BUS)
                    .where(BUS.c.topic == topic, BUS.c.offset >= start)
                    .order_by(BUS.c.offset)
                    .limit(limit)
                )
                out.extend(_message(r) for r in rows)
        for m in out:
            self.positions[m.topic] = m.offset + 1
        return out

    async def poll(self, timeout: float) -> list[Message]:
        """New records at once; otherwise wait for this process's next publish, and after
        `timeout` without one look at the file for records from elsewhere (a long poll)."""
        seen = self.bus.version
        got = await self._fetch()
        if got:
            return got
        async with self.bus._new:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that lands as the wait completes, and the worker would never stop.
            try:
                async with asyncio.timeout(timeout):
                    await self.bus._new.wait_for(lambda: self.bus.version != seen)
            except TimeoutError:
                pass
        if self.bus.version == seen:
            await self.bus.refresh(self.topics)
        return await self._fetch()

    async def commit(self, messages: list[Message]) -> None:
        upto: dict[str, int] = {}
        for m in messages:
            upto[m.topic] = max(upto.get(m.topic, 0), m.offset + 1)
        if not upto:
            return
        async with self.bus._write, self.bus.sessionmaker() as s, s.begin():
            stmt = upsert(s, OFFSETS, ["group_id", "topic"], ["next_offset"])
            await s.execute(
                stmt,
                [{"group_id": self.group, "topic": t, "next_offset": o} for t, o in upto.items()],
            )
