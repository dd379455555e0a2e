"""Idle CPU of each service in distributed mode on Apache Kafka (issue 11: <= 2% each);
bench/idle_cpu.py measures embedded mode.

Starts PostgreSQL (or uses the local one), one Apache Kafka broker and the three services
with production settings for polling (fetch.max.wait 500 ms, relay idle 5 s), lets them
settle, then reads each process group's CPU time from /proc over a window with no traffic.

  .venv/bin/python bench/idle_cpu_kafka.py [SECONDS]      (default 30)
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import Table  # noqa: E402

from shared.devstack.kafka import kafka_cluster  # noqa: E402
from shared.devstack.postgres import postgres_server  # noqa: E402
from shared.devstack.stack import SERVICES, Stack  # noqa: E402

TARGET = 2.0  # percent of one core
TICK = os.sysconf("SC_CLK_TCK")


def group_ticks(pgid: int) -> int:
    """utime + stime of every process in a process group."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[2] is pgrp (after state, ppid)
            total += int(fields[11]) + int(fields[12])
    return total


def main(seconds: float) -> int:
    with postgres_server() as pg, kafka_cluster(1) as kafka:
        stack = Stack(
            pg,
            kafka.bootstrap,
            Path(tempfile.mkdtemp(prefix="fl-idle-")),
            extra_env={
                "FRONTLINE_KAFKA_FETCH_MAX_WAIT_MS": "500",
                "FRONTLINE_RELAY_IDLE_SECONDS": "5.0",
            },
        )
        try:
            stack.up()
            time.sleep(10)  # joins, bootstrap events, first scheduler pass
            pgids = {s: stack.procs[s].pid for s in SERVICES}
            pgids["kafka broker"] = kafka.nodes[0].pid
            before = {name: group_ticks(p) for name, p in pgids.items()}
            start = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            after = {name: group_ticks(p) for name, p in pgids.items()}
        finally:
            stack.down()
            stack.drop_databases()
    table = Table(f"Idle CPU, distributed on Apache Kafka, no traffic, {elapsed:.0f} s")
    missed = 0
    for name in pgids:
        pct = (after[name] - before[name]) / TICK / elapsed * 100
        if name in SERVICES:
            missed += pct > TARGET
            table.limit(f"{name} idle CPU", pct, TARGET, "%")
        else:
            table.info(f"{name} idle CPU", f"{pct:.1f} %")
    table.print()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
