"""The Kafka transport (aiokafka): acks=all, idempotent producer, keyed records, consumer
groups with offsets committed only after the inbox transaction, topics created on start.
"""

import asyncio
import logging
from collections import Counter

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
    UnknownMemberIdError,
)

from shared.events import all_topics, is_compacted
from shared.settings import KafkaSettings
from shared.transport import Message, Record

log = logging.getLogger(__name__)


def _message(topic: str, r) -> Message:
    headers = {k: v.decode() for k, v in (r.headers or ())}
    return Message(topic, r.partition, r.offset, (r.key or b"").decode(), r.value or b"", headers)


_MEMBERS_STILL_IN = (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


class KafkaTransport:
    name = "kafka"

    def __init__(self, settings: KafkaSettings, client_id: str = "frontline"):
        self.settings = settings
        self.client_id = client_id
        self.producer: AIOKafkaProducer | None = None
        self.sent: Counter[str] = Counter()
        # A namespace in front of every topic lets several counties (or test runs) share
        # one cluster: "anlong." + "frontline.assessment".
        self.ns = settings.topic_namespace

    def real(self, topic: str) -> str:
        return f"{self.ns}{topic}"

    def logical(self, topic: str) -> str:
        return topic[len(self.ns) :] if self.ns and topic.startswith(self.ns) else topic

    def _common(self) -> dict:
        s = self.settings
        return {
            "bootstrap_servers": s.bootstrap_servers,
            "request_timeout_ms": s.request_timeout_ms,
            "security_protocol": s.security_protocol,
        }

    def topic_configs(self, topic: str) -> dict[str, str]:
        """Per-topic settings (README, "Kafka settings"): in-sync replicas and retention.

        Registry topics are compacted instead: every record is its entity's whole state
        keyed by the entity's id, so the last one per key is all a rebuild needs.
        """
        s = self.settings
        retention = s.dlq_retention_ms if topic.endswith(".dlq") else s.retention_ms
        configs = {
            # Never more than there are copies: acks=all writes would all be refused.
            "min.insync.replicas": str(min(s.min_insync_replicas, s.replication_factor)),
            "cleanup.policy": "delete",
            "retention.ms": str(retention),
        }
        if is_compacted(topic):
            configs["cleanup.policy"] = "compact"
            del configs["retention.ms"]
        return configs

    async def ensure_topics(self, names: list[str]) -> None:
        admin = AIOKafkaAdminClient(**self._common(), client_id=f"{self.client_id}-admin")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(
                    n,
                    self.settings.partitions,
                    self.settings.replication_factor,
                    topic_configs=self.topic_configs(n),
                )
                for n in names
                if n not in existing
            ]
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    async def start(self) -> None:
        if self.producer is not None:
            return
        await self.ensure_topics([self.real(t) for t in all_topics()])
        producer = AIOKafkaProducer(
            **self._common(),
            client_id=f"{self.client_id}-producer",
            acks=self.settings.acks if self.settings.acks == "all" else int(self.settings.acks),
            enable_idempotence=self.settings.enable_idempotence,
        )
        await producer.start()
        self.producer = producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, records: list[Record]) -> None:
        """Send all, then wait for every acknowledgement; raises if any failed."""
        assert self.producer is not None, "transport not started"
        futures = [
            await self.producer.send(
                self.real(r.topic),
                r.value,
                key=r.key.encode(),
                headers=[(k, v.encode()) for k, v in r.headers.items()] or None,
            )
            for r in records
        ]
        await asyncio.gather(*futures)
        self.sent.update(r.topic for r in records)

    def consumer(self, group: str, topics: list[str]) -> "KafkaConsumer":
        return KafkaConsumer(self, group, topics)

    async def lag(self, group: str, topics: list[str]) -> dict[str, int]:
        """Committed offset vs end offset per topic, for health reports."""
        consumer = AIOKafkaConsumer(**self._common(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            out: dict[str, int] = {}
            for topic in map(self.real, topics):
                parts = consumer.partitions_for_topic(topic) or set()
                if not parts:
                    await consumer._client.force_metadata_update()  # noqa: SLF001
                    parts = consumer.partitions_for_topic(topic) or set()
                tps = [TopicPartition(topic, p) for p in parts]
                ends = await consumer.end_offsets(tps) if tps else {}
                lag = 0
                for tp in tps:
                    done = await consumer.committed(tp)
                    lag += ends.get(tp, 0) - (done or 0)
                out[self.logical(topic)] = lag
            return out
        finally:
            await consumer.stop()

    async def rewind(self, group: str, topics: list[str]) -> bool:
        """Commit the beginning of every partition for `group` (a rebuild from the log).

        Kafka takes such a commit only from an empty group. A member killed a moment ago
        stays in it until its session times out, so a refusal is retried for that long;
        False if live members still hold the group (they share this service's database
        and fill it themselves).
        """
        consumer = AIOKafkaConsumer(**self._common(), group_id=group, enable_auto_commit=False)
        await consumer.start()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.session_timeout_ms / 1000 * 1.5 + 2
        try:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            tps = [
                TopicPartition(t, p)
                for t in map(self.real, topics)
                for p in consumer.partitions_for_topic(t) or ()
            ]
            if not tps:
                return True
            consumer.assign(tps)
            starts = await consumer.beginning_offsets(tps)
            while True:
                try:
                    await consumer.commit({tp: starts[tp] for tp in tps})
                    return True
                except _MEMBERS_STILL_IN as exc:
                    if loop.time() > give_up:
                        log.warning("rewind of %s refused: %r", group, exc)
                        return False
                    await asyncio.sleep(1.0)
        finally:
            await consumer.stop()

    async def read(self, topic: str, start: int = 0, limit: int | None = None) -> list[Message]:
        """The whole topic as it stands, without a group (DLQ inspection): every partition
        read up to the end offset it had when the read began (from `start` in each, at
        most `limit` records)."""
        consumer = AIOKafkaConsumer(**self._common(), enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(self.real(topic)) or set()
            tps = [TopicPartition(self.real(topic), p) for p in parts]
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Message] = []
            loop = asyncio.get_running_loop()
            stalled_after = loop.time() + self.settings.request_timeout_ms / 1000
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                if batch:
                    stalled_after = loop.time() + self.settings.request_timeout_ms / 1000
                elif loop.time() > stalled_after:
                    raise TimeoutError(f"reading {topic}: no records before its end offsets")
                for tp, records in batch.items():
                    out.extend(_message(topic, r) for r in records if r.offset >= start)
                    # A broker that answers ListOffsets with the last batch's base offset
                    # (Tansu) is corrected by the high watermark of the fetch.
                    ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                if limit is not None and len(out) >= limit:
                    break
            return out[:limit]
        finally:
            await consumer.stop()


class KafkaConsumer:
    def __init__(self, transport: KafkaTransport, group: str, topics: list[str]):
        self.transport, self.group, self.topics = transport, group, topics
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        s = self.transport.settings
        self.consumer = AIOKafkaConsumer(
            *[self.transport.real(t) for t in self.topics],
            **self.transport._common(),
            client_id=f"{self.transport.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_records=s.max_poll_records,
        )
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def poll(self, timeout: float) -> list[Message]:
        assert self.consumer is not None
        batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        out: list[Message] = []
        for tp, records in batches.items():
            out.extend(_message(self.transport.logical(tp.topic), r) for r in records)
        return out

    async def lag(self) -> dict[str, int | None]:
        """Lag per topic of this member's partitions (unknown while one is not fetched yet)."""
        out: dict[str, int | None] = {t: 0 for t in self.topics}
        for (topic, _), behind in (await self.partition_lag()).items():
            total = out[topic]
            out[topic] = None if total is None or behind is None else total + behind
        return out

    async def partition_lag(self) -> dict[tuple[str, int], int | None]:
        """Per assigned partition: the high watermark of the last fetch minus the position
        (None before the first fetch). Not ListOffsets: it costs a request per scrape."""
        assert self.consumer is not None
        out: dict[tuple[str, int], int | None] = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            where = (self.transport.logical(tp.topic), tp.partition)
            out[where] = None if high is None else max(0, high - await self.consumer.position(tp))
        return out

    async def commit(self, messages: list[Message]) -> None:
        assert self.consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(self.transport.real(m.topic), m.partition)
            offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # A rebalance took the partition away: the new owner re-reads from the last
            # commit and the inbox skips what was already applied.
            log.info("consumer %s: commit lost to a rebalance", self.group)
