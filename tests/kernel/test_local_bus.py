"""The local bus delivers from memory without polling its file, and still sees what another
process appended to the same file (a `frontline dlq replay`)."""

from sqlalchemy import event

from shared.transport import LocalBus, Record


def bus_at(tmp_path) -> LocalBus:
    return LocalBus(f"sqlite+aiosqlite:///{tmp_path / 'bus.sqlite'}")


def record(n: int) -> Record:
    return Record("frontline.toy", f"k{n % 3}", f"v{n}".encode(), {"n": str(n)})


def reads_of(bus: LocalBus) -> list[str]:
    seen: list[str] = []
    event.listen(
        bus.engine.sync_engine,
        "before_cursor_execute",
        lambda conn, cur, statement, *a: (
            seen.append(statement)
            if "bus_messages" in statement and statement.lstrip().upper().startswith("SELECT")
            else None
        ),
    )
    return seen


async def drain(consumer, want: int, timeout: float = 0.05) -> list:
    got: list = []
    for _ in range(200):  # bounded by count, not by time
        got += await consumer.poll(timeout)
        if len(got) >= want:
            break
    return got


async def test_a_busy_bus_delivers_from_memory_without_reading_its_file(tmp_path):
    bus = bus_at(tmp_path)
    await bus.start()
    try:
        consumer = bus.consumer("g", ["frontline.toy"])
        await consumer.start()
        await bus.publish([record(0)])  # learns the topic's head
        assert [m.value for m in await drain(consumer, 1)] == [b"v0"]
        reads = reads_of(bus)
        for batch in range(5):
            await bus.publish([record(n) for n in range(1 + batch * 20, 21 + batch * 20)])
            got = await consumer.poll(5.0)
            assert [m.offset for m in got] == list(range(1 + batch * 20, 21 + batch * 20))
            assert got[0].headers == {"n": str(1 + batch * 20)}
        assert reads == []
    finally:
        await bus.stop()


async def test_records_another_process_appended_are_delivered_in_order(tmp_path):
    here, there = bus_at(tmp_path), bus_at(tmp_path)
    await here.start()
    await there.start()
    try:
        consumer = here.consumer("g", ["frontline.toy"])
        await consumer.start()
        await there.publish([record(1)])
        await here.publish([record(2)])
        await there.publish([record(3)])  # `here` has a stale head now
        await here.publish([record(4)])  # and must not overwrite offset 2
        got = await drain(consumer, 4)
        assert [(m.offset, m.value) for m in got] == [
            (0, b"v1"),
            (1, b"v2"),
            (2, b"v3"),
            (3, b"v4"),
        ]
        await there.publish([record(5)])  # nothing wakes `here`: found by the long poll
        assert [m.value for m in await drain(consumer, 1)] == [b"v5"]
        await consumer.commit(got)
        assert await here.lag("g", ["frontline.toy"]) == {"frontline.toy": 1}
    finally:
        await here.stop()
        await there.stop()
