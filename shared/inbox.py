"""Idempotent consumers: apply a handler and record the event id in one transaction.

Delivery is at-least-once, the effect exactly-once. Failures are of two kinds
(shared/failures.py). Transient ones (database or broker unavailable, connection lost,
serialization failure, deadlock, timeout) are retried with capped exponential backoff
without limit: the offset is not committed, nothing is dead-lettered, later events of the
partition wait (order holds), and health says `stalled since ..., on ...`. Deterministic
ones (an undecodable record, an invalid payload, a handler error that repeats on the same
event) send the event to `<topic>.dlq` with the error after `max_attempts`, and the
consumer goes on.
"""

import asyncio
import contextlib
import logging
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import audit, logs, metrics, tracing
from shared.clock import Clock
from shared.db import insert_ignore
from shared.events import Envelope, EventPayload, decode, dlq_topic, parse_payload
from shared.failures import describe, is_transient
from shared.outbox import INBOX
from shared.transport import Consumer, Message, Record, Transport

log = logging.getLogger(__name__)
Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]


class Handlers:
    """Which handler applies which event type, for one service."""

    def __init__(self) -> None:
        self.by_type: dict[str, Handler] = {}

    def on(self, *payload_types: type[EventPayload]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for t in payload_types:
                self.by_type[t.TYPE] = fn
            return fn

        return register

    def topics(self) -> list[str]:
        from shared.events import topic_for

        return sorted({topic_for(t) for t in self.by_type})


@dataclass
class Stall:
    since: datetime
    on: str  # "topic@partition:offset", or what the runner was doing
    error: str

    def __str__(self) -> str:
        return f"stalled since {self.since.isoformat()}, on {self.on} ({self.error})"


class ConsumerRunner:
    def __init__(
        self,
        *,
        group: str,
        handlers: Handlers,
        transport: Transport,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        max_attempts: int = 3,
        retry_seconds: float = 0.2,
        backoff_max_seconds: float = 30.0,
        after_commit: Callable[[], None] | None = None,
        parallel_partitions: bool = False,
    ):
        self.group = group
        self.handlers = handlers
        self.transport = transport
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.after_commit = after_commit
        # The partitions of one poll are applied side by side, each in its own order (keys
        # never cross partitions, so order per key holds). Only for services whose
        # handlers serialise what they share (incentives locks the cadre it recomputes)
        # and on PostgreSQL (SQLite takes one writer at a time anyway).
        self.parallel_partitions = parallel_partitions
        self._keepalive = asyncio.Lock()
        self.applied = 0
        self.skipped = 0
        self.dead = 0
        self.retries = 0  # transient failures retried, over the runner's life
        self.stall: Stall | None = None
        self.gaps: list[dict[str, Any]] = []  # offsets lost to retention (KafkaConsumer)
        self.consumer: Consumer | None = None
        self.seen: Counter[str] = Counter()  # messages finished per topic, whatever the outcome

    async def handle(self, message: Message) -> str:
        """Apply one message: 'applied', 'duplicate', 'ignored' or 'dead'. Each transient
        failure counts as `retried` and each deterministic one as `failed` in the events
        metric (`_consume` counts the outcome).

        Returns only once the message is settled one way or the other: a transient failure
        is retried here for as long as it lasts.
        """
        where = f"{message.topic}@{message.partition}:{message.offset}"
        if message.error:
            await self._dead(message, f"unreadable record: {message.error}")
            return "dead"
        try:
            env = decode(message.value)
        except Exception as exc:
            await self._dead(message, f"undecodable: {exc}")
            return "dead"
        handler = self.handlers.by_type.get(env.type)
        if handler is None:
            return "ignored"
        try:
            payload = parse_payload(env)
        except ValidationError as exc:
            await self._dead(message, f"invalid payload: {exc}")
            return "dead"
        attempts, delay = 0, self.retry_seconds
        while True:
            try:
                outcome = await self._apply(handler, payload, env)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    metrics.EVENTS.labels(self.service, env.type, "retried").inc()
                    delay = await self._wait_out(exc, where, delay)
                    continue
                attempts += 1
                metrics.EVENTS.labels(self.service, env.type, "failed").inc()
                log.warning(
                    "%s: %s at %s failed (attempt %d of %d): %s",
                    self.group,
                    env.type,
                    where,
                    attempts,
                    self.max_attempts,
                    describe(exc),
                )
                if attempts >= self.max_attempts:
                    await self._dead(message, traceback.format_exc(limit=5))
                    return "dead"
                await self._sleep(self.retry_seconds * attempts)
                continue
            self._recovered()
            return outcome

    async def _wait_out(self, exc: BaseException, where: str, delay: float) -> float:
        """One transient failure: note the stall, keep the group membership, back off."""
        self.retries += 1
        if self.stall is None:
            self.stall = Stall(self.clock.now(), where, describe(exc))
            log.warning("%s: %s; retrying until it heals", self.group, self.stall)
        else:
            self.stall.on, self.stall.error = where, describe(exc)
        await self._sleep(delay)
        return min(delay * 2, self.backoff_max_seconds)

    def _recovered(self) -> None:
        if self.stall is not None:
            log.warning("%s: recovered after %s", self.group, self.stall)
            self.stall = None

    async def _sleep(self, seconds: float) -> None:
        """Back off, polling now and then so that the member is not dropped from its group."""
        keepalive = getattr(self.consumer, "keepalive", None)
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, 1.0))
            if keepalive is not None:
                with contextlib.suppress(Exception):
                    async with self._keepalive:  # partitions backing off at once: one at a time
                        await keepalive()

    async def _retrying(self, what: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run a broker operation (DLQ publish, commit) until it succeeds or fails for good."""
        delay = self.retry_seconds
        while True:
            try:
                result = await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = await self._wait_out(exc, what, delay)
                continue
            self._recovered()
            return result

    def status(self) -> str:
        """For health: "ok", "starting", or since when and on what it is stalled."""
        if self.stall is not None:
            return str(self.stall)
        return "ok" if self.consumer is not None else "starting"

    async def _apply(self, handler: Handler, payload: EventPayload, env: Envelope) -> str:
        async with self.sessionmaker() as session:
            async with session.begin():
                seen = await session.execute(
                    insert_ignore(session, INBOX).values(
                        event_id=str(env.event_id),
                        type=env.type,
                        topic=env.topic,
                        processed_at=self.clock.now(),
                    )
                )
                if seen.rowcount == 0:
                    self.skipped += 1
                    return "duplicate"
                session.info["audit_actor"] = audit.Actor.of_envelope(env)
                await handler(session, payload, env)
                await audit.record_event(session, env, self.clock.now())
            if session.info.get("outbox_written") and self.after_commit:
                self.after_commit()
        self.applied += 1
        return "applied"

    async def _dead(self, message: Message, error: str) -> None:
        self.dead += 1
        log.error("%s: event from %s@%d to DLQ", self.group, message.topic, message.offset)
        headers = dict(message.headers)
        headers.update(
            {
                "error": error[-4000:],
                "source_topic": message.topic,
                "source_partition": str(message.partition),
                "source_offset": str(message.offset),
                "consumer_group": self.group,
            }
        )
        record = Record(dlq_topic(message.topic), message.key, message.value, headers)
        await self._retrying(
            f"publishing to {record.topic}", lambda: self.transport.publish([record])
        )

    async def lag(self) -> dict[str, int | None]:
        """Messages behind per topic, as the running consumer sees them."""
        if self.consumer is None:
            return dict(await self.transport.lag(self.group, self.handlers.topics()))
        return await self.consumer.lag()

    async def never_applied(self) -> bool:
        """An empty inbox: this database never applied an event (pruning keeps the newest)."""
        async with self.sessionmaker() as s:
            return (await s.execute(select(INBOX.c.event_id).limit(1))).first() is None

    async def _consume(self, m: Message) -> str:
        """One message inside its consumer span, its request id on every line it logs."""
        kind = m.headers.get("type") or "unknown"
        if kind not in self.handlers.by_type and m.headers.get("type") and not m.error:
            # Most of a shared topic is other services' business (every sign-in reaches
            # incentives): passed over by its type header, without decoding, span or line.
            metrics.EVENTS.labels(self.service, kind, "ignored").inc()
            return "ignored"
        token = logs.REQUEST_ID.set(m.headers.get("request_id"))
        try:
            with tracing.span(
                f"consume {kind}",
                parent=m.headers.get("traceparent"),
                kind=SpanKind.CONSUMER,
                **{"messaging.destination.name": m.topic, "messaging.consumer.group": self.group},
            ):
                outcome = await self.handle(m)
            metrics.EVENTS.labels(self.service, kind, outcome).inc()
            logs.events.info(
                "event",
                extra={
                    "service": self.service,
                    "event_type": kind,
                    "outcome": outcome,
                    "topic": m.topic,
                    "key": m.key,
                    "event_id": m.headers.get("event_id"),
                },
            )
            return outcome
        finally:
            logs.REQUEST_ID.reset(token)

    @property
    def service(self) -> str:
        return self.group.rsplit("-", 1)[-1]  # groups are "<prefix>-<service>"

    async def run(self, *, poll_seconds: float = 5.0) -> None:
        """Consume until cancelled. A broker that cannot be reached (at start or later) is
        retried with backoff; the service meanwhile serves and writes as usual.

        A long poll: transports deliver as soon as they have records; `poll_seconds` only
        bounds how long an idle consumer sleeps between looks."""
        topics = self.handlers.topics()
        delay = self.retry_seconds
        rewound = False
        while True:
            consumer = self.transport.consumer(self.group, topics)
            try:
                if not rewound and await self.never_applied():
                    # A new or emptied database: read every topic from its start, so
                    # projections are rebuilt from the log (registry topics are compacted
                    # by entity, so they still hold every entity's last state).
                    await self.transport.rewind(self.group, topics)
                rewound = True
                await consumer.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = await self._wait_out(exc, "joining its group", delay)
                continue
            self.consumer = consumer
            self._recovered()
            delay = self.retry_seconds
            try:
                await self._consume_loop(consumer, poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = await self._wait_out(exc, "polling", delay)
            finally:
                self.consumer = None
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _consume_loop(self, consumer: Consumer, poll_seconds: float) -> None:
        owns = getattr(consumer, "owns", None)
        while True:
            messages = await consumer.poll(poll_seconds)
            if gaps := getattr(consumer, "gaps", None):
                self.gaps.extend(gaps)
                gaps.clear()
            parts: dict[tuple[str, int], list[Message]] = {}
            for m in messages:
                key = (m.topic, m.partition) if self.parallel_partitions else ("", 0)
                parts.setdefault(key, []).append(m)
            if len(parts) > 1:
                tasks = [asyncio.create_task(self._in_order(ms, owns)) for ms in parts.values()]
                try:
                    await asyncio.gather(*tasks)
                finally:  # one partition failed (or we were cancelled): stop the others too
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
            else:
                for ms in parts.values():
                    await self._in_order(ms, owns)
            if messages:
                await self._retrying("committing offsets", lambda ms=messages: consumer.commit(ms))
                self.seen.update(m.topic for m in messages)

    async def _in_order(self, messages: list[Message], owns) -> None:
        for m in messages:
            # After a long retry a rebalance may have given the partition to another
            # member, which re-reads it from the last commit: leave the rest to it.
            if owns is None or owns(m):
                await self._consume(m)
