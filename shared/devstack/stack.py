"""A local distributed stack: PostgreSQL (one database per service), Apache Kafka, and the
three services as real processes, each on its own port.

Used by the end-to-end suite (pytest is the supervisor) and by `frontline dev up`
(`make up`) through shared/devstack/local.py (a detached supervisor process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from shared.devstack.postgres import _run_sync, create_database, drop_database, unique_db_name
from shared.fieldcrypt import new_key as new_field_key
from shared.keys import new_private_pem

SERVICES = ("registry", "assessment", "incentives")
DEFAULT_PORTS = {"registry": 8001, "assessment": 8002, "incentives": 8003}
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """Processes of the services against one PostgreSQL server and one broker."""

    def __init__(
        self,
        pg_base: str,
        bootstrap: str,
        log_dir: Path,
        *,
        ports: dict[str, int] | None = None,
        admin: tuple[str, str] = ("admin", "stack-admin-pass"),
        extra_env: dict[str, str] | None = None,
        replication_factor: int = 1,
    ):
        self.pg_base, self.bootstrap, self.log_dir = pg_base, bootstrap, log_dir
        self.ports = dict(ports or {s: free_port() for s in SERVICES})
        self.admin = admin
        self.procs: dict[str, subprocess.Popen] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.databases = {s: unique_db_name(f"{s}_{self.run_id}") for s in SERVICES}
        self.extra_env = extra_env or {}
        self.replication_factor = replication_factor
        # The registry signs with this key; the others fetch its public half (JWKS).
        self.private_key = new_private_pem().decode()
        # Registry and incentives share the key personal fields are encrypted with.
        self.field_key = new_field_key()
        log_dir.mkdir(parents=True, exist_ok=True)

    def create_databases(self) -> None:
        async def create() -> None:
            for name in self.databases.values():
                await create_database(self.pg_base, name)

        _run_sync(create())

    def drop_databases(self) -> None:
        async def drop() -> None:
            for name in self.databases.values():
                await drop_database(self.pg_base, name)

        _run_sync(drop())

    def db_url(self, service: str, driver: str = "postgresql+asyncpg") -> str:
        base = self.pg_base.replace("postgresql://", f"{driver}://", 1)
        return f"{base}/{self.databases[service]}"

    def env(self, service: str = "") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTLINE_")}
        env.update(
            {
                "FRONTLINE_MODE": "distributed",
                "FRONTLINE_TRANSPORT": "kafka",
                "FRONTLINE_VAR_DIR": str(self.log_dir),
                "FRONTLINE_FIELD_KEY": self.field_key,
                "FRONTLINE_CURSOR_SECRET": f"stack-cursor-{self.run_id}-{os.urandom(8).hex()}",
                "FRONTLINE_BOOTSTRAP_ADMIN_USERNAME": self.admin[0],
                "FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD": self.admin[1],
                "FRONTLINE_RELAY_IDLE_SECONDS": "0.1",
                "FRONTLINE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "FRONTLINE_KAFKA_PARTITIONS": "4",
                "FRONTLINE_KAFKA_REPLICATION_FACTOR": str(self.replication_factor),
                "FRONTLINE_KAFKA_MIN_INSYNC_REPLICAS": str(min(2, self.replication_factor)),
                "FRONTLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "FRONTLINE_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                "FRONTLINE_KAFKA_FETCH_MAX_WAIT_MS": "100",
                "FRONTLINE_KAFKA_TOPIC_NAMESPACE": f"s{self.run_id}.",
                "FRONTLINE_KAFKA_CLIENT_ID_PREFIX": f"s{self.run_id}",
            }
        )
        for s in SERVICES:
            env[f"FRONTLINE_{s.upper()}_DATABASE_URL"] = self.db_url(s)
        if service == "registry":
            env["FRONTLINE_JWT_PRIVATE_KEY"] = self.private_key
        else:
            env["FRONTLINE_JWKS_URL"] = f"{self.url('registry')}/registry/.well-known/jwks.json"
        env.update(self.extra_env)
        return env

    def start(self, service: str, *, replica: str = "", port: int | None = None) -> str:
        """Start one process of a service; returns its name (service or service-replica)."""
        name = f"{service}-{replica}" if replica else service
        port = port or (self.ports[service] if not replica else free_port())
        self.ports[name] = port
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", service, "--port", str(port)],
            cwd=ROOT,
            env=self.env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return name

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_healthy(self, names: list[str] | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in names or list(self.procs):
            service = name.split("-")[0]
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode}: {self.tail(name)}")
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(f"{self.url(name)}/{service}/health", timeout=5)
                    if r.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not healthy: {self.tail(name)}")
                time.sleep(0.2)

    def up(self) -> None:
        self.create_databases()
        for s in SERVICES:
            self.start(s)
        self.wait_healthy()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def down(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for name in list(self.procs):
            try:
                self.procs[name].wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.procs.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )
