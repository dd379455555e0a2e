"""Dead letters: inspect what a consumer gave up on, replay it after a fix, or discard it.

A DLQ topic holds two kinds of records: the dead letters the consumers wrote, and the
operator's decisions about them. A decision is a record on the same topic with the header
`dlq_decision` ("replayed" or "discarded") whose value lists the dead letters it settles
("partition:offset"), so `list` shows each dead letter with its status for as long as the
topic keeps it, and a later `replay` without a target skips what was already decided. A
replayed event keeps its event_id and its entity version, so a consumer that applied it,
or something newer about the same entity, meanwhile skips it.

Every consumer group that gave up on a message wrote its own dead letter of it; a replay
publishes each source message once and settles all of its dead letters.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.events import decode
from shared.transport import Message, Record, Transport

DECISION = "dlq_decision"
Position = tuple[int, int]  # (partition, offset) in the DLQ topic


class NotADeadLetter(LookupError):
    """The named partition and offset hold no dead letter of this topic."""


@dataclass
class Letters:
    dead: list[Message]  # the dead letters, in topic order
    status: dict[Position, tuple[str, str]]  # settled ones: (decision, when)


def describe(message: Message, status: tuple[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dlq_partition": message.partition,
        "dlq_offset": message.offset,
        "status": status[0] if status else "dead",
        "decided_at": status[1] if status else None,
        "key": message.key,
        "source_topic": message.headers.get("source_topic"),
        "source_partition": message.headers.get("source_partition"),
        "source_offset": message.headers.get("source_offset"),
        "consumer_group": message.headers.get("consumer_group"),
        "error": message.headers.get("error", ""),
    }
    try:
        env = decode(message.value)
        entry.update(event_id=str(env.event_id), type=env.type, payload=env.payload)
    except Exception:  # an undecodable message is shown as it is
        entry.update(raw=message.value.decode(errors="replace"))
    return entry


async def read(transport: Transport, topic: str) -> list[Message]:
    """The dead letters of a DLQ topic, every partition read to its end (decisions left out)."""
    return (await letters(transport, topic)).dead


async def letters(transport: Transport, topic: str) -> Letters:
    dead: list[Message] = []
    status: dict[Position, tuple[str, str]] = {}
    for m in await transport.read(topic):
        if DECISION in m.headers:
            body = orjson.loads(m.value)
            for where in body["entries"]:
                partition, offset = where.split(":")
                status[(int(partition), int(offset))] = (m.headers[DECISION], body["at"])
        else:
            dead.append(m)
    dead.sort(key=lambda m: (m.partition, m.offset))
    return Letters(dead, status)


async def entries(transport: Transport, topic: str, at: Position | None = None) -> list[dict]:
    """Every dead letter (or the one at `at`) described, with its status."""
    got = await letters(transport, topic)
    return [
        describe(m, got.status.get((m.partition, m.offset)))
        for m in got.dead
        if at is None or (m.partition, m.offset) == at
    ]


def _origin(m: Message) -> tuple:
    return (m.headers.get("source_topic"), m.headers.get("source_partition"),
            m.headers.get("source_offset"), m.value)  # fmt: skip


def _chosen(got: Letters, at: Position | None) -> list[Message]:
    """The named dead letter, or every one not yet decided; with their siblings (the dead
    letters other groups wrote of the same source message)."""
    if at is not None:
        named = [m for m in got.dead if (m.partition, m.offset) == at]
        if not named:
            raise NotADeadLetter(f"no dead letter at partition {at[0]} offset {at[1]}")
    else:
        named = [m for m in got.dead if (m.partition, m.offset) not in got.status]
    origins = {_origin(m) for m in named}
    return [m for m in got.dead if _origin(m) in origins]


async def _decide(
    transport: Transport, topic: str, decision: str, settled: Iterable[Message], now: datetime
) -> None:
    settled = list(settled)
    if not settled:
        return
    body = {"entries": [f"{m.partition}:{m.offset}" for m in settled], "at": now.isoformat()}
    await transport.publish(
        [Record(topic, settled[0].key, orjson.dumps(body), {DECISION: decision})]
    )


async def replay(
    transport: Transport, dlq_topic: str, *, now: datetime, at: Position | None = None
) -> int:
    """Publish dead letters back to their source topic; returns how many messages went back.

    With `at`, exactly that dead letter (whatever its status); without, every one not yet
    replayed or discarded.
    """
    chosen = _chosen(await letters(transport, dlq_topic), at)
    once: dict[tuple, Message] = {}
    for m in chosen:
        once.setdefault(_origin(m), m)
    records = [
        Record(
            m.headers.get("source_topic") or dlq_topic.removesuffix(".dlq"),
            m.key,
            m.value,
            {"replayed_from": f"{dlq_topic}@{m.partition}:{m.offset}"},
        )
        for m in once.values()
    ]
    # Published before the decision: a crash in between leaves the letter "dead", and a
    # second replay is harmless (event ids and entity versions).
    await transport.publish(records)
    await _decide(transport, dlq_topic, "replayed", chosen, now)
    return len(records)


async def discard(transport: Transport, dlq_topic: str, *, now: datetime, at: Position) -> int:
    """Record that the dead letter at `at` (and its siblings) is not to be replayed."""
    chosen = _chosen(await letters(transport, dlq_topic), at)
    await _decide(transport, dlq_topic, "discarded", chosen, now)
    return len(chosen)
