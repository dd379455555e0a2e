"""`make up` / `make down`: the distributed stack on this machine.

A detached supervisor holds PostgreSQL (the given server, the local one on :5432, or a
throwaway cluster), Apache Kafka (one KRaft broker from shared/devstack/pom.xml, or the
given bootstrap servers), and registry :8001, assessment :8002, incentives :8003 as
separate processes. Logs go to var/log/. Given servers: STACK_PG=postgresql://user@host:port,
STACK_KAFKA=host:port.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.devstack.kafka import kafka_cluster  # noqa: E402
from shared.devstack.postgres import postgres_server  # noqa: E402
from shared.devstack.stack import DEFAULT_PORTS, Stack  # noqa: E402

VAR = ROOT / "var"
PIDFILE, READY, LOG_DIR = VAR / "stack.pid", VAR / "stack.ready", VAR / "log"


def supervise() -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with contextlib.ExitStack() as cleanup:
        pg = os.environ.get("STACK_PG") or cleanup.enter_context(postgres_server())
        kafka = os.environ.get("STACK_KAFKA") or cleanup.enter_context(kafka_cluster(1)).bootstrap
        stack = Stack(pg, kafka, LOG_DIR, ports=DEFAULT_PORTS)
        cleanup.callback(stack.drop_databases)
        cleanup.callback(stack.down)
        stack.up()
        READY.write_text(f"postgres {pg}\nkafka {kafka}\nadmin {stack.admin[0]} {stack.admin[1]}\n")
        while not stop:
            time.sleep(0.5)
    READY.unlink(missing_ok=True)


def up() -> int:
    if PIDFILE.exists():
        print(f"already up (pid {PIDFILE.read_text().strip()}); `make down` first")
        return 1
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    READY.unlink(missing_ok=True)
    log = open(LOG_DIR / "stack.log", "ab")  # noqa: SIM115 (the supervisor keeps it)
    proc = subprocess.Popen(
        [sys.executable, __file__, "supervise"], stdout=log, stderr=log, start_new_session=True
    )
    PIDFILE.write_text(str(proc.pid))
    deadline = time.monotonic() + 120
    while not READY.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print((LOG_DIR / "stack.log").read_text()[-3000:])
            down()
            return 1
        time.sleep(0.3)
    print(READY.read_text(), end="")
    for name, port in DEFAULT_PORTS.items():
        print(f"{name:<11} http://127.0.0.1:{port}/{name}/health")
    return 0


def down() -> int:
    if not PIDFILE.exists():
        print("not running")
        return 0
    pid = int(PIDFILE.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    print("stack down")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "supervise":
        supervise()
    else:
        sys.exit({"up": up, "down": down}[command]())
