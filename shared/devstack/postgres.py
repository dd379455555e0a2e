"""A PostgreSQL server for tests: the one given, the local one, or a throwaway cluster."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

FORCE_THROWAWAY_ENV = "FRONTLINE_TEST_PG_FORCE_THROWAWAY"

# base DSN -> database to connect to for CREATE/DROP DATABASE (default "postgres").
_admin_db: dict[str, str] = {}


@contextlib.contextmanager
def postgres_server(force_throwaway: bool | None = None) -> Iterator[str]:
    """Yield a base DSN (``postgresql://user@host:port``, no database part)."""
    if force_throwaway is None:
        force_throwaway = os.environ.get(FORCE_THROWAWAY_ENV, "") not in ("", "0")
    given = os.environ.get("TEST_DATABASE_URL")
    if given and not force_throwaway:
        base, db = _split_db(given)
        _admin_db[base] = db or "postgres"
        yield base
        return
    local = None if force_throwaway else _local_server()
    if local:
        yield local
        return
    with _throwaway_cluster() as base:
        yield base


def unique_db_name(prefix: str) -> str:
    clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40]
    return f"fl_{clean}_{secrets.token_hex(6)}"


async def create_database(base_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(base_dsn))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(base_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(base_dsn))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _admin_dsn(base_dsn: str) -> str:
    return f"{base_dsn}/{_admin_db.get(base_dsn, 'postgres')}"


def _split_db(url: str) -> tuple[str, str]:
    # Query parameters are dropped: callers append "/dbname" to the base.
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return base, parts.path.lstrip("/")


def _run_sync(coro):
    # A thread of its own, so asyncio.run never touches the test session's event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _can_connect(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _local_server() -> str | None:
    for user in ("postgres", "root"):
        base = f"postgresql://{user}@127.0.0.1:5432"
        if _run_sync(_can_connect(f"{base}/postgres")):
            return base
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"no PostgreSQL server given and no {name} binary found")
    return path


def _version_key(path: str) -> int:
    m = re.search(r"/postgresql/(\d+)/", path)
    return int(m.group(1)) if m else 0


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    # PostgreSQL refuses to run as root, so the cluster belongs to an unprivileged user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        as_user = ["runuser", "-u", user, "--"]
    tmp = tempfile.mkdtemp(prefix="fl-pg-")
    if as_user:
        pw = pwd.getpwnam(as_user[2])
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
    data, port = os.path.join(tmp, "data"), _free_port()
    pg_ctl = [*as_user, _pg_bin("pg_ctl"), "-D", data, "-w", "-l", os.path.join(tmp, "log")]

    def stop() -> None:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], cwd=tmp, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    # atexit covers a session that dies without running fixture teardown.
    atexit.register(stop)
    try:
        _check(
            "initdb",
            [
                *as_user,
                _pg_bin("initdb"),
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ],
            tmp,
        )
        opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        _check("pg_ctl start", [*pg_ctl, "-o", opts, "start"], tmp)
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        atexit.unregister(stop)
        stop()


def _check(what: str, cmd: list[str], cwd: str) -> None:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        log = os.path.join(cwd, "log")
        tail = open(log).read()[-2000:] if os.path.exists(log) else ""
        raise RuntimeError(f"{what} failed ({res.returncode}):\n{res.stdout}{res.stderr}{tail}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
