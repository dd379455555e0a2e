"""Pruning: what delivery no longer needs is deleted after a horizon (settings, in days).

- Outbox rows, once published, after `outbox_retention_days` (7): they are kept that long
  only to answer "was it sent, when".
- Inbox rows after `inbox_retention_days` (45). An inbox row is what recognises a
  redelivered event, and a record can be redelivered for as long as the broker keeps it,
  so this horizon must outlive the event topics' retention (`FRONTLINE_KAFKA_RETENTION_MS`,
  30 days). Registry topics are compacted and keep each entity's last record for ever: a
  redelivery of one older than the inbox is ignored by its entity version instead. The
  newest inbox row is always kept: an empty inbox means "this database never applied an
  event", and that starts a rebuild from the log (shared/inbox.py).
- Local-bus rows (embedded mode) after `bus_retention_days` (30), like Kafka's retention;
  on compacted topics only rows that a newer row of the same key supersedes, like Kafka's
  compaction.

A supervised background job of every service runs it every `prune_interval_seconds`, in
batches so that no transaction holds many rows.
"""

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from shared.outbox import INBOX, OUTBOX

log = logging.getLogger(__name__)
BATCH = 5_000


async def _batched(sessionmaker, statement_for) -> int:
    total = 0
    while True:
        async with sessionmaker() as s, s.begin():
            n = (await s.execute(statement_for())).rowcount
        total += n
        if n < BATCH:
            return total


async def prune_service(rt, now: datetime) -> dict[str, int]:
    """Delete one service's published outbox rows and old inbox rows; returns counts."""
    k = rt.kernel
    sent_before = now - timedelta(days=k.outbox_retention_days)
    seen_before = now - timedelta(days=k.inbox_retention_days)

    def outbox():
        old = (
            select(OUTBOX.c.id)
            .where(OUTBOX.c.published_at.is_not(None), OUTBOX.c.published_at < sent_before)
            .limit(BATCH)
        )
        return delete(OUTBOX).where(OUTBOX.c.id.in_(old))

    newest = select(INBOX.c.event_id).order_by(INBOX.c.processed_at.desc()).limit(1)

    def inbox():
        old = (
            select(INBOX.c.event_id)
            .where(INBOX.c.processed_at < seen_before, INBOX.c.event_id.not_in(newest))
            .limit(BATCH)
        )
        return delete(INBOX).where(INBOX.c.event_id.in_(old))

    counts = {
        "outbox": await _batched(rt.sessionmaker, outbox),
        "inbox": await _batched(rt.sessionmaker, inbox),
    }
    prune_bus = getattr(rt.transport, "prune", None)
    if prune_bus is not None:  # the local bus; Kafka applies its own topic configs
        counts["bus"] = await prune_bus(now - timedelta(days=k.bus_retention_days))
    return counts


async def prune_job(rt) -> None:
    """The background job: prune now and then, for as long as the service runs."""
    every = rt.kernel.prune_interval_seconds
    await asyncio.sleep(min(every, 60))  # not in the middle of start-up
    while True:
        counts = await prune_service(rt, rt.clock.now())
        if any(counts.values()):
            log.info("%s: pruned %s", rt.name, counts)
        await asyncio.sleep(every)
