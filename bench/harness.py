"""What the bench scripts share: PostgreSQL databases, server processes, wrk, the table.

Every figure is measured against a reference in the same run, so the ratio survives a
busy machine better than the raw figure does.
"""

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.keys import new_private_pem  # noqa: E402
from tests.infra.postgres import create_database, drop_database, postgres_server  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
# The registry's signing key for a bench run (tokens are minted with it, see token_minter).
JWT_PRIVATE_KEY = new_private_pem().decode()
ADMIN = ("benchadmin", "bench-admin-pass")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def databases(*names: str) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases (asyncpg DSNs by name), dropped afterwards."""
    with postgres_server() as base:
        made = {n: f"bench_{n}_{uuid.uuid4().hex[:6]}" for n in names}
        for db in made.values():
            asyncio.run(create_database(base, db))
        try:
            yield {n: f"{base}/{db}" for n, db in made.items()}
        finally:
            for db in made.values():
                asyncio.run(drop_database(base, db))


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[int]:
    """A server process (its own process group), up once `health` answers; stopped after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{args} exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(health, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{args} did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.3)
            yield proc.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextlib.contextmanager
def frontline(dsns: dict[str, str] | None, tmp: Path, extra_env: dict | None = None):
    """`frontline run` (embedded, local bus) on PostgreSQL databases, or SQLite when None."""
    port = free_port()
    env = {
        "FRONTLINE_VAR_DIR": str(tmp / "var"),
        "FRONTLINE_JWT_PRIVATE_KEY": JWT_PRIVATE_KEY,
        "FRONTLINE_BOOTSTRAP_ADMIN_USERNAME": ADMIN[0],
        "FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1],
        "FRONTLINE_RUN_SCHEDULER": "false",
        **(extra_env or {}),
    }
    for name, dsn in (dsns or {}).items():
        env[f"FRONTLINE_{name.upper()}_DATABASE_URL"] = sqlalchemy_url(dsn)
    args = [PYTHON, "-m", "services.cli", "run", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with server(args, env, f"{url}/assessment/health", tmp / f"frontline-{port}.log") as pid:
        yield url, pid


def wrk_binary() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
    return shutil.which("wrk")


WRK_LUA = r"""
local lines, n, step = {}, 0, 1
function setup(thread)
  thread:set("tid", #threads_seen + 1)
  table.insert(threads_seen, thread)
end
threads_seen = {}
function init(args)
  for line in io.lines(args[1]) do
    local path, token, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
    table.insert(lines, {path, token, body})
  end
  n = tonumber(tid) - 1
  step = tonumber(args[2])
end
function request()
  n = n + step
  local l = lines[(n % #lines) + 1]
  return wrk.format("POST", l[1], {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. l[2]}, l[3])
end
"""


def wrk(
    url: str,
    requests: list[tuple[str, str, bytes]],
    *,
    connections: int,
    seconds: int,
    threads: int = 2,
) -> dict:
    """Fire (path, token, body) requests with wrk; each request is used at most once
    as long as the list is longer than what wrk sends. Returns req/s, p50/p99 ms, errors."""
    exe = wrk_binary()
    if exe is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        data, script = Path(tmp) / "requests.tsv", Path(tmp) / "post.lua"
        with open(data, "wb") as f:
            for path, token, body in requests:
                f.write(path.encode() + b"\t" + token.encode() + b"\t" + body + b"\n")
        script.write_text(WRK_LUA)
        out = subprocess.run(
            [
                exe,
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
                "--",
                str(data),
                str(threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return parse_wrk(out)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {
        "rate": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, in seconds (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12))  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


class Table:
    """figure | value | reference (same run) | ratio | target | PASS/MISS."""

    def __init__(self, title: str):
        self.title = title
        self.rows: list[tuple[str, str, str, str, str, str]] = []

    def ratio(
        self,
        figure: str,
        value: float,
        ref: float,
        target: float,
        unit: str = "",
        ref_name: str = "",
    ) -> None:
        r = value / ref if ref else 0.0
        self.rows.append(
            (
                figure,
                f"{value:,.0f} {unit}".strip(),
                f"{ref_name} {ref:,.0f} {unit}".strip(),
                f"{r:.2f}x",
                f">= {target}x",
                "PASS" if r >= target else "MISS",
            )
        )

    def limit(self, figure: str, value: float, limit: float, unit: str, ref: str = "-") -> None:
        self.rows.append(
            (
                figure,
                f"{value:,.1f} {unit}",
                ref,
                "-",
                f"<= {limit:g} {unit}",
                "PASS" if value <= limit else "MISS",
            )
        )

    def info(self, figure: str, value: str, ref: str = "-", ratio: str = "-") -> None:
        self.rows.append((figure, value, ref, ratio, "-", "-"))

    def print(self) -> None:
        head = ("figure", "value", "reference (same run)", "ratio", "target", "")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(6)]
        print(
            f"\n{self.title}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"load {os.getloadavg()[0]:.2f})"
        )
        for row in [head, tuple("-" * w for w in widths), *self.rows]:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        sys.stdout.flush()
