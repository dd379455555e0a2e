"""`frontline dev up` / `frontline dev down` (`make up` / `make down`): the distributed stack
on this machine.

A detached supervisor holds PostgreSQL (STACK_PG=postgresql://user@host:port, else the
server on :5432, else a throwaway cluster), Apache Kafka (STACK_KAFKA=host:port, else one
KRaft broker from shared/devstack/pom.xml) and registry :8001, assessment :8002,
incentives :8003 as separate processes. The operator's FRONTLINE_* settings reach every
service (the bootstrap admin among them), except those the stack itself must decide: the
mode, the transport, the broker, the databases and the token keys. Without a bootstrap
password the admin gets a random one, printed once. Its files (pid, logs) are under
FRONTLINE_VAR_DIR (default var/).
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.devstack.kafka import kafka_cluster
from shared.devstack.postgres import postgres_server
from shared.devstack.stack import DEFAULT_PORTS, ROOT, Stack

# What the stack decides for its processes, whatever the operator's environment says.
OWNED = ("FRONTLINE_MODE", "FRONTLINE_TRANSPORT", "FRONTLINE_VAR_DIR", "FRONTLINE_JWT_")


def var_dir() -> Path:
    return (ROOT / os.environ.get("FRONTLINE_VAR_DIR", "var")).resolve()


def files() -> tuple[Path, Path, Path]:
    var = var_dir()
    return var / "stack.pid", var / "stack.ready", var / "log"


def operator_settings() -> dict[str, str]:
    """The FRONTLINE_* settings of the caller that the services get as they are."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith("FRONTLINE_")
        and not k.startswith(OWNED)
        and not k.endswith("_DATABASE_URL")
        and not k.startswith("FRONTLINE_KAFKA_")
    }


def supervise() -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    _, ready, log_dir = files()
    admin = (
        os.environ.get("FRONTLINE_BOOTSTRAP_ADMIN_USERNAME") or "admin",
        os.environ.get("FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD") or secrets.token_urlsafe(12),
    )
    with contextlib.ExitStack() as cleanup:
        pg = os.environ.get("STACK_PG") or cleanup.enter_context(postgres_server())
        kafka = os.environ.get("STACK_KAFKA") or cleanup.enter_context(kafka_cluster(1)).bootstrap
        extra = operator_settings()
        extra.update(
            FRONTLINE_BOOTSTRAP_ADMIN_USERNAME=admin[0], FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD=admin[1]
        )
        stack = Stack(pg, kafka, log_dir, ports=DEFAULT_PORTS, admin=admin, extra_env=extra)
        cleanup.callback(stack.drop_databases)
        cleanup.callback(stack.down)
        stack.up()
        given = "FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD" in os.environ
        ready.write_text(
            f"postgres {pg}\nkafka {kafka}\n"
            f"admin {admin[0]} {'(password as set)' if given else admin[1]}\n"
            f"logs {log_dir}/\n"
        )
        while not stop:
            time.sleep(0.5)
    ready.unlink(missing_ok=True)


def up() -> int:
    pidfile, ready, log_dir = files()
    if pidfile.exists():
        print(f"already up (pid {pidfile.read_text().strip()}); `frontline dev down` first")
        return 1
    log_dir.mkdir(parents=True, exist_ok=True)
    ready.unlink(missing_ok=True)
    log = open(log_dir / "stack.log", "ab")  # noqa: SIM115 (the supervisor keeps it)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.devstack.local", "supervise"],
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + 180
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print((log_dir / "stack.log").read_text()[-3000:])
            down()
            return 1
        time.sleep(0.3)
    print(ready.read_text(), end="")
    for name, port in DEFAULT_PORTS.items():
        print(f"{name:<11} http://127.0.0.1:{port}/{name}/health")
    return 0


def down() -> int:
    pidfile, _, _ = files()
    if not pidfile.exists():
        print("not running")
        return 0
    pid = int(pidfile.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    print("stack down")
    return 0


if __name__ == "__main__":
    supervise()
