"""Apache Kafka's own broker (KRaft) on this machine, for `make test` and `make up`.

The jars come from Maven Central through the pom beside this file (`mvn
dependency:copy-dependencies`, `~/.m2` as the repository) into a cache directory, once.
`kafka_cluster(1)` is the single broker of the kernel suite and `make up`;
`kafka_cluster(3)` has replication factor 3 and `min.insync.replicas=2` for fault tests.
Each node is a combined broker+controller with its own pid, so a test can kill -9,
pause or restart one. Needs a JDK 17+ (`java`) and Maven (`mvn`) on PATH.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
JARS_ENV = "FRONTLINE_KAFKA_JARS"  # a directory of jars to use instead of resolving them
JVM_HEAP = "256m"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
# A small JVM that starts quickly: serial GC, C1 only (the test traffic is light).
JVM_OPTS = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]
_LOG4J = """\
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{HH:mm:ss.SSS} %-5p [%c{1}] %m%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def jars_dir() -> Path:
    """The broker's classpath directory, resolved with Maven on first use (then cached)."""
    given = os.environ.get(JARS_ENV)
    if given:
        return Path(given)
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "frontline"
    target = cache / f"kafka-jars-{digest}"
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Several sessions may start at once: one resolves, the others wait for it.
    with open(cache / ".kafka-jars.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            mvn = shutil.which("mvn")
            if mvn is None:
                raise RuntimeError("Apache Kafka for tests needs Maven (`mvn`) and a JDK 17+")
            partial = Path(tempfile.mkdtemp(prefix="kafka-jars-", dir=cache))
            res = subprocess.run(
                [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
                + [f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
                shutil.rmtree(partial, ignore_errors=True)
                raise RuntimeError(f"mvn could not resolve Kafka:\n{res.stdout}{res.stderr}")
            (partial / ".complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
    return target


def free_port() -> int:
    # Port 0 cannot be passed on: a broker would advertise port 0 to its clients.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    workdir: Path
    proc: subprocess.Popen | None = None
    log: object = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None


@dataclass
class KafkaCluster:
    """KRaft nodes, each broker and controller at once, on free local ports."""

    size: int = 1
    heap: str = JVM_HEAP
    extra: dict[str, str] = field(default_factory=dict)
    ports: list[int] | None = None  # client ports to listen on (default: free ones)
    root: Path | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def pids(self) -> dict[int, int | None]:
        return {n.node_id: n.pid for n in self.nodes}

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def node_at(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def properties(self, node: Node) -> dict[str, str]:
        n, isr = self.size, str(min(2, self.size))
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.workdir / "data"),
            # Topics are created by the services with their settings, never implicitly.
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "default.replication.factor": str(n),
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": str(n),
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": str(n),
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": str(n),
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            # A killed node is fenced, and its partitions led elsewhere, within ~6 s.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "6000",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.threads": "1",
        }
        props.update(self.extra)
        return props

    def start(self) -> None:
        jars = jars_dir()
        self.root = Path(tempfile.mkdtemp(prefix="fl-kafka-"))
        for i in range(1, self.size + 1):
            workdir = self.root / f"node{i}"
            workdir.mkdir()
            port = self.ports[i - 1] if self.ports else free_port()
            self.nodes.append(Node(i, port, free_port(), workdir))
        # Kafka's Uuid: 16 random bytes, URL-safe base64 without padding.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for node in self.nodes:
            props = self.properties(node)
            (node.workdir / "server.properties").write_text(
                "".join(f"{k}={v}\n" for k, v in props.items())
            )
            (node.workdir / "log4j2.properties").write_text(_LOG4J)
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            formats = [
                pool.submit(
                    _java,
                    jars,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(node.workdir / "server.properties"),
                )
                for node in self.nodes
            ]
            for f in formats:
                f.result()
        atexit.register(self.stop)
        for node in self.nodes:
            self._spawn(node, jars)
        self.wait_ready()

    def _spawn(self, node: Node, jars: Path | None = None) -> None:
        jars = jars or jars_dir()
        if node.log:
            node.log.close()
        node.log = open(node.workdir / "broker.log", "ab")  # noqa: SIM115 (the node keeps it)
        node.proc = subprocess.Popen(
            [
                _java_bin(),
                "-Xms64m",
                f"-Xmx{self.heap}",
                *JVM_OPTS,
                f"-Dlog4j2.configurationFile={node.workdir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node.workdir}",
                "-cp",
                f"{jars}/*",
                "kafka.Kafka",
                str(node.workdir / "server.properties"),
            ],
            cwd=node.workdir,
            stdin=subprocess.DEVNULL,
            stdout=node.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node's broker is registered and unfenced."""
        deadline = time.monotonic() + timeout
        want = {n.node_id for n in self.nodes if n.pid}
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None and n.node_id in want:
                    raise RuntimeError(
                        f"Kafka node {n.node_id} exited {n.proc.returncode}:\n{self.tail(n)}"
                    )
            addresses = [n.address for n in self.nodes if n.pid]
            if want <= _registered_brokers(addresses):
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"Kafka did not become ready in {timeout:.0f} s:\n"
            + "\n".join(self.tail(n) for n in self.nodes)
        )

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Signal one node (SIGKILL by default) and wait for it to be gone."""
        node = self.node(node_id)
        if node.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, sig)
        node.proc.wait(STOP_TIMEOUT)
        node.proc = None
        if node.log:
            node.log.close()

    def pause(self, node_id: int) -> None:
        os.killpg(self.node(node_id).proc.pid, signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        os.killpg(self.node(node_id).proc.pid, signal.SIGCONT)

    def restart(self, node_id: int) -> None:
        """Start a node that was killed or stopped again, on its data and ports."""
        node = self.node(node_id)
        if node.pid is None:
            self._spawn(node)
        self.wait_ready()

    def stop(self) -> None:
        """SIGTERM to every node (a clean shutdown), SIGKILL for any that lingers."""
        running = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for n in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(n.proc.pid, signal.SIGCONT)
                os.killpg(n.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for n in running:
            try:
                n.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(n.proc.pid, signal.SIGKILL)
                n.proc.wait()
        for n in self.nodes:
            if n.log:
                n.log.close()
            n.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        atexit.unregister(self.stop)

    def tail(self, node: Node, chars: int = 3000) -> str:
        path = node.workdir / "broker.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- node {node.node_id}\n{text[-chars:]}"


@contextlib.contextmanager
def kafka_cluster(size: int = 1, **options) -> Iterator[KafkaCluster]:
    """A running cluster for the block; stopped (and its data removed) after it."""
    cluster = KafkaCluster(size, **options)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise RuntimeError("Apache Kafka for tests needs a JDK 17+ (`java` on PATH)")
    return java


def _java(jars: Path, main: str, *args: str) -> str:
    res = subprocess.run(
        [_java_bin(), "-Xmx128m", *JVM_OPTS, "-cp", f"{jars}/*", main, *args],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{main} {' '.join(args)} failed:\n{res.stdout}{res.stderr}")
    return res.stdout


def _registered_brokers(addresses: list[str]) -> set[int]:
    """Node ids of the unfenced brokers the cluster's metadata lists (empty if unreachable)."""

    async def ask() -> set[int]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=addresses, request_timeout_ms=3000, client_id=f"ready-{uuid.uuid4()}"
        )
        try:
            async with asyncio.timeout(5):
                await admin.start()
                described = await admin.describe_cluster()
            return {b["node_id"] for b in described["brokers"]}
        except Exception:
            return set()
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    for address in addresses:  # until every port answers, a client would only log errors
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), 0.5).close()
        except OSError:
            return set()
    # A thread of its own: the caller may be inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ask()).result()


def _die_with_parent() -> None:
    # Linux PR_SET_PDEATHSIG: the node gets SIGKILL if its parent is killed. It fires when
    # the starting *thread* ends, so start nodes from a long-lived thread.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


if __name__ == "__main__":  # python -m shared.devstack.kafka [SIZE]: run until Ctrl-C
    import sys

    with kafka_cluster(int(sys.argv[1]) if len(sys.argv) > 1 else 1) as c:
        print(c.bootstrap, c.pids, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
