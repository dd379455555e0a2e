"""Idle CPU of `frontline run` (embedded, SQLite, local bus): /proc/<pid>/stat over 30 s.

The reference in the same run is a bare uvicorn app doing nothing, measured the same way
(what an idle Python server costs on this machine at all).

  .venv/bin/python bench/idle_cpu.py [SECONDS]
"""

import sys
import tempfile
import time
from pathlib import Path

from harness import PYTHON, Table, cpu_seconds, free_port, frontline, server


def idle_share(pid: int, seconds: float) -> float:
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)


def main(seconds: float) -> None:
    table = Table(f"Idle CPU over {seconds:g} s (% of one core)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        args = [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.reference_app:app",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        # The reference app without a database: /health only.
        with server(args, {"REF_DSN": ""}, f"http://127.0.0.1:{port}/health", tmp / "r.log") as pid:
            time.sleep(2)
            ref = idle_share(pid, seconds)
        with frontline(None, tmp) as (_, pid):
            time.sleep(5)  # start-up work (migrations, bootstrap events) settles first
            embedded = idle_share(pid, seconds)
    table.limit("embedded (frontline run), idle", embedded, 2.0, "%", f"bare uvicorn {ref:.2f} %")
    table.print()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 30)
