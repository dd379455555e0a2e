"""Kafka for tests: Apache Kafka's own broker (shared/devstack/kafka.py), or an external one.

`TEST_KAFKA_BOOTSTRAP=host:port` points the suite at an existing cluster instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from shared.devstack.kafka import KafkaCluster, kafka_cluster

EXTERNAL_ENV = "TEST_KAFKA_BOOTSTRAP"
# bootstrap -> pid of the single brokers started here, so a test can pause one.
RUNNING: dict[str, int] = {}


class Broker(NamedTuple):
    kind: str  # "apache" (started here) or "external"
    bootstrap: str  # "host:port[,host:port...]"
    overrides: dict[str, dict]  # {"producer": {...}, "consumer": {...}} aiokafka kwargs
    replication_factor: int = 1


def broker_kinds() -> list[str]:
    return ["external"] if os.environ.get(EXTERNAL_ENV) else ["apache"]


def client_overrides(kind: str) -> dict[str, dict]:
    """Test-only aiokafka options; production keeps Kafka's safe defaults."""
    # Kafka rejects sessions under 6 s; short heartbeats make rebalances quick.
    consumer = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_max_wait_ms": 100}
    return {"producer": {}, "consumer": consumer}


@contextlib.contextmanager
def kafka_broker(kind: str = "apache") -> Iterator[str]:
    """Yield a bootstrap string for a single broker running for the block."""
    if kind == "external":
        bootstrap = os.environ.get(EXTERNAL_ENV)
        if not bootstrap:
            raise RuntimeError(f"kafka_broker('external') needs {EXTERNAL_ENV}")
        yield bootstrap
        return
    if kind != "apache":
        raise ValueError(f"unknown broker kind {kind!r}")
    with kafka_cluster(1) as cluster:
        RUNNING[cluster.bootstrap] = cluster.nodes[0].pid
        try:
            yield cluster.bootstrap
        finally:
            RUNNING.pop(cluster.bootstrap, None)


@contextlib.contextmanager
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """Three nodes, replication factor 3, min.insync.replicas=2 (the fault suite's).

    Clients reach them through TCP proxies (tests/infra/proxy.py), so a test can also cut
    the network: `cluster.cut()`, `cluster.restore()`.
    """
    from tests.infra.proxy import ProxiedKafkaCluster

    cluster = ProxiedKafkaCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


async def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 3, replication_factor: int = 1
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [NewTopic(n, partitions, replication_factor) for n in names]
        response = await admin.create_topics(topics)
    finally:
        await admin.close()
    for name, code, *_ in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise for_code(code)(f"create topic {name!r}")
