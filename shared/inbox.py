"""Idempotent consumers: apply a handler and record the event id in one transaction.

Delivery is at-least-once, the effect exactly-once. A handler that keeps failing sends
the event to `<topic>.dlq` with the error, and the consumer goes on.
"""

import asyncio
import logging
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import audit, logs, metrics, tracing
from shared.clock import Clock
from shared.db import insert_ignore
from shared.events import Envelope, EventPayload, decode, dlq_topic, parse_payload
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
        after_commit: Callable[[], None] | None = None,
    ):
        self.group = group
        self.handlers = handlers
        self.transport = transport
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.after_commit = after_commit
        self.applied = 0
        self.skipped = 0
        self.dead = 0
        self.consumer: Consumer | None = None
        self.seen: Counter[str] = Counter()  # messages finished per topic, whatever the outcome

    async def handle(self, message: Message) -> str:
        """Apply one message: 'applied', 'duplicate', 'ignored' or 'dead'."""
        try:
            env = decode(message.value)
        except Exception as exc:
            await self._dead(message, f"undecodable: {exc}")
            return "dead"
        handler = self.handlers.by_type.get(env.type)
        if handler is None:
            return "ignored"
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                outcome = await self._apply(handler, env)
                return outcome
            except asyncio.CancelledError:
                raise
            except Exception:
                error = traceback.format_exc(limit=5)
                log.warning("%s: %s failed (attempt %d)", self.group, env.type, attempt)
                await asyncio.sleep(self.retry_seconds * attempt)
        await self._dead(message, error)
        return "dead"

    async def _apply(self, handler: Handler, env: Envelope) -> str:
        payload = parse_payload(env)
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
        await self.transport.publish(
            [Record(dlq_topic(message.topic), message.key, message.value, headers)]
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
        # A long poll: transports deliver as soon as they have records; this only bounds
        # how long an idle consumer sleeps between looks.
        if await self.never_applied():
            # A new or emptied database: read every topic from its start, so projections
            # are rebuilt from the log (registry topics are compacted by entity, so they
            # still hold every entity's last state).
            await self.transport.rewind(self.group, self.handlers.topics())
        consumer = self.transport.consumer(self.group, self.handlers.topics())
        await consumer.start()
        self.consumer = consumer
        try:
            while True:
                messages = await consumer.poll(poll_seconds)
                for m in messages:
                    await self._consume(m)
                    self.seen[m.topic] += 1
                if messages:
                    await consumer.commit(messages)
        finally:
            self.consumer = None
            await consumer.stop()
