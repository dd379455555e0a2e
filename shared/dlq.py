"""Dead letters: inspect what a consumer gave up on, and replay it after a fix.

A replayed event keeps its event_id, so a consumer that did apply it meanwhile skips it.
"""

from typing import Any

from shared.events import decode
from shared.transport import Message, Record, Transport


def describe(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dlq_offset": message.offset,
        "dlq_partition": message.partition,
        "key": message.key,
        "source_topic": message.headers.get("source_topic"),
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


async def read(transport: Transport, topic: str, limit: int = 1000) -> list[Message]:
    return await transport.read(topic, 0, limit)


async def replay(transport: Transport, dlq_topic: str, *, offsets: set[int] | None = None) -> int:
    """Publish dead letters back to their source topic; returns how many.

    Each consumer group that gave up on a message wrote its own dead letter; the message
    goes back once, and every group receives it again (those that applied it skip it).
    """
    messages, origins = [], set()
    for m in await read(transport, dlq_topic):
        origin = (m.headers.get("source_partition"), m.headers.get("source_offset"), m.value)
        if (offsets is None or m.offset in offsets) and origin not in origins:
            origins.add(origin)
            messages.append(m)
    records = [
        Record(
            m.headers.get("source_topic") or dlq_topic.removesuffix(".dlq"),
            m.key,
            m.value,
            {"replayed_from": f"{dlq_topic}@{m.partition}:{m.offset}"},
        )
        for m in messages
    ]
    await transport.publish(records)
    return len(records)
