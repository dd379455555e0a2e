"""The Kafka transport (aiokafka): acks=all, idempotent producer, keyed records, consumer
groups with offsets committed only after the inbox transaction, topics created when the
broker is first reached.

Nothing here needs the broker at start: the producer connects on the first publish and
consumers when they start, and both are retried with backoff by the relay and the
consumer runner, so a service starts and takes writes while Kafka is down.
"""

import asyncio
import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
    UnknownMemberIdError,
)

from shared.events import all_topics, is_compacted
from shared.failures import describe
from shared.settings import KafkaSettings
from shared.transport import Message, Record

log = logging.getLogger(__name__)
# Our keys and header values are text; bytes that are not UTF-8 survive a round trip
# through the DLQ as lone surrogates.
_ESC = "surrogateescape"


def _message(topic: str, r) -> Message:
    """Never raises: what cannot be read faithfully is said in `error` (the runner sends
    such a record to the DLQ instead of jamming its partition)."""
    problems = []
    try:
        key = (r.key or b"").decode()
    except UnicodeDecodeError:
        key = r.key.decode(errors=_ESC)
        problems.append("key is not UTF-8")
    headers: dict[str, str] = {}
    for name, value in r.headers or ():
        if value is None:
            problems.append(f"header {name!r} is null")
            continue
        try:
            headers[name] = value.decode()
        except UnicodeDecodeError:
            headers[name] = value.decode(errors=_ESC)
            problems.append(f"header {name!r} is not UTF-8")
    return Message(
        topic, r.partition, r.offset, key, r.value or b"", headers, error="; ".join(problems)
    )


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
        self._connect = asyncio.Lock()
        self._topics_ready = False
        # Since when the broker is unreachable (None: it answered last time), and why.
        self.down_since: datetime | None = None
        self.last_error = ""
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
        try:
            await admin.start()
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

    def reached(self) -> None:
        if self.down_since is not None:
            log.warning("kafka: broker reachable again")
        self.down_since, self.last_error = None, ""

    def unreachable(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
            log.warning("kafka: broker unreachable: %s", describe(exc))
        self.last_error = describe(exc)

    def status(self) -> str:
        """For health: "ok", or since when and why the broker is unreachable."""
        if self.down_since is None:
            return "ok"
        return f"unreachable since {self.down_since.isoformat()} ({self.last_error})"

    async def ping(self, timeout: float = 3.0) -> str:
        """Ask the broker for metadata (health): "ok" or "unreachable since ..."."""
        try:
            async with asyncio.timeout(timeout):
                producer = await self._producer()
                if not await producer.client.force_metadata_update():
                    raise ConnectionError("no broker answered a metadata request")
            self.reached()
        except Exception as exc:
            self.unreachable(exc)
        return self.status()

    async def ensure_topics_once(self) -> None:
        if not self._topics_ready:
            await self.ensure_topics([self.real(t) for t in all_topics()])
            self._topics_ready = True

    async def start(self) -> None:
        """Nothing to do before the first publish: a service starts while Kafka is down."""

    async def _producer(self) -> AIOKafkaProducer:
        async with self._connect:
            if self.producer is None:
                await self.ensure_topics_once()
                acks = self.settings.acks
                producer = AIOKafkaProducer(
                    **self._common(),
                    client_id=f"{self.client_id}-producer",
                    acks=acks if acks == "all" else int(acks),
                    enable_idempotence=self.settings.enable_idempotence,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self.producer = producer
            return self.producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, records: list[Record]) -> None:
        """Send and wait for every acknowledgement; raises if any failed.

        Records of one key go out one after another, each only once the previous one was
        acknowledged; different keys go out together. So a send that fails part-way never
        lets a later record of a key land before an earlier one: the relay retries the
        batch, and per key the log holds a prefix, then the retried whole.
        """
        if not records:
            return
        try:
            producer = await self._producer()
        except Exception as exc:
            self.unreachable(exc)
            raise
        by_key: dict[str, list[Record]] = defaultdict(list)
        for r in records:
            by_key[r.key].append(r)

        async def chain(rs: list[Record]) -> None:
            for r in rs:
                await self._send(producer, r)

        results = await asyncio.gather(*map(chain, by_key.values()), return_exceptions=True)
        failed = [e for e in results if isinstance(e, BaseException)]
        if failed:
            self.unreachable(failed[0])
            raise failed[0]
        self.reached()
        self.sent.update(r.topic for r in records)

    async def _send(self, producer: AIOKafkaProducer, r: Record) -> Any:
        """One record, acknowledged (the seam a test uses to fail the k-th send)."""
        future = await producer.send(
            self.real(r.topic),
            r.value,
            key=r.key.encode(errors=_ESC),
            headers=[(k, v.encode(errors=_ESC)) for k, v in r.headers.items()] or None,
        )
        return await future

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
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.session_timeout_ms / 1000 * 1.5 + 2
        try:
            await consumer.start()
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
        # Partitions whose committed offset had fallen off the log (retention): the events
        # in between were never seen by this group. Read by the runner for health.
        self.gaps: list[dict[str, Any]] = []

    async def start(self) -> None:
        s = self.transport.settings
        try:
            await self.transport.ensure_topics_once()
            self.consumer = AIOKafkaConsumer(
                *[self.transport.real(t) for t in self.topics],
                **self.transport._common(),
                client_id=f"{self.transport.client_id}-{self.group}",
                group_id=self.group,
                enable_auto_commit=False,
                # "none", not "earliest": a committed offset that fell off retention must
                # be seen (poll), not silently skipped; a new group starts at the beginning.
                auto_offset_reset="none",
                session_timeout_ms=s.session_timeout_ms,
                heartbeat_interval_ms=s.heartbeat_interval_ms,
                max_poll_interval_ms=s.max_poll_interval_ms,
                fetch_max_wait_ms=s.fetch_max_wait_ms,
                max_poll_records=s.max_poll_records,
            )
            await self.consumer.start()
        except Exception as exc:
            self.transport.unreachable(exc)
            await self.stop()
            raise
        self.transport.reached()

    async def stop(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.stop()

    async def poll(self, timeout: float) -> list[Message]:
        assert self.consumer is not None
        try:
            batches = await self.consumer.getmany(timeout_ms=int(timeout * 1000))
        except NoOffsetForPartitionError as exc:
            (tp,) = exc.args  # a new group: from the beginning
            await self.consumer.seek_to_beginning(tp)
            return []
        except OffsetOutOfRangeError as exc:
            await self._lost(exc.args[0])
            return []
        out: list[Message] = []
        for tp, records in batches.items():
            out.extend(_message(self.transport.logical(tp.topic), r) for r in records)
        return out

    async def _lost(self, positions: dict[TopicPartition, int]) -> None:
        """The position is no longer in the log: say so loudly, then go on from the oldest
        record there is (rebuilding the service from the log recovers the rest)."""
        assert self.consumer is not None
        first = await self.consumer.beginning_offsets(list(positions))
        for tp, offset in positions.items():
            gap = {
                "topic": self.transport.logical(tp.topic),
                "partition": tp.partition,
                "committed": offset,
                "oldest_kept": first.get(tp),
                "lost": max(0, (first.get(tp) or 0) - offset),
                "at": datetime.now(UTC).isoformat(),
            }
            self.gaps.append(gap)
            log.error(
                "consumer %s: offset %d of %s[%d] is no longer in the log (oldest kept: %s):"
                " %d events were deleted by retention before this group read them",
                self.group,
                offset,
                gap["topic"],
                tp.partition,
                gap["oldest_kept"],
                gap["lost"],
            )
            await self.consumer.seek_to_beginning(tp)

    def owns(self, message: Message) -> bool:
        """Still assigned to this member (a rebalance may have moved it meanwhile)."""
        assert self.consumer is not None
        tp = TopicPartition(self.transport.real(message.topic), message.partition)
        return tp in self.consumer.assignment()

    async def keepalive(self) -> None:
        """Count as a poll without taking records: while one event is retried for long,
        the member stays in its group (max.poll.interval.ms; heartbeats run anyway)."""
        if self.consumer is None:
            return
        assigned = list(self.consumer.assignment())
        self.consumer.pause(*assigned)
        try:
            async with asyncio.timeout(1):
                await self.consumer.getmany(timeout_ms=0)
        except (TimeoutError, NoOffsetForPartitionError, OffsetOutOfRangeError):
            pass
        finally:
            self.consumer.resume(*[tp for tp in assigned if tp in self.consumer.assignment()])

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
