"""Which failures are transient (waited out) and which are about the event (dead-lettered),
classified on errors raised by the real drivers, not constructed by hand."""

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared.db import make_engine
from shared.devstack.kafka import free_port
from shared.failures import is_transient


async def raised(engine, *statements: str) -> BaseException:
    with pytest.raises(Exception) as info:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(text(sql))
    return info.value


async def test_postgres_outages_are_transient_and_bad_input_is_not(pg_database_url):
    engine = make_engine(pg_database_url)
    try:
        timeout = await raised(engine, "SET LOCAL statement_timeout = 1", "SELECT pg_sleep(1)")
        killed = await raised(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
        await engine.dispose()
        unique = await raised(
            engine,
            "CREATE TEMP TABLE t (id int PRIMARY KEY)",
            "INSERT INTO t VALUES (1), (1)",
        )
        bad = await raised(engine, "SELECT 1 / 0")
    finally:
        await engine.dispose()
    assert is_transient(timeout) and is_transient(killed)
    assert isinstance(unique, IntegrityError)
    assert not is_transient(unique) and not is_transient(bad)

    down = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    try:
        refused = await raised(down, "SELECT 1")
    finally:
        await down.dispose()
    assert is_transient(refused)


async def test_sqlite_locked_is_transient_and_a_handler_bug_is_not(tmp_path):
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (id int)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("INSERT INTO t VALUES (1)")
    holder.rollback()
    with pytest.raises(sqlite3.OperationalError) as missing:
        other.execute("SELECT nope FROM t")
    other.close()
    holder.close()
    assert is_transient(locked.value)
    assert not is_transient(missing.value) and not is_transient(ValueError("bad payload"))
