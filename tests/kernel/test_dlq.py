"""The DLQ as an operator tool: list reads every partition to its end, replay and discard
act on exactly the dead letter named by partition and offset, and decisions are kept.
On the local bus and on Kafka.
"""

import pytest

from services import cli
from shared import dlq
from shared.events import decode
from shared.runtime import settle
from shared.transport import Record
from tests.kernel import toy
from tests.kernel.test_delivery import kernel, running, tally  # noqa: F401 (fixtures)

DLQ = "frontline.toy.dlq"


@pytest.fixture
def toy_db(tmp_path) -> str:
    # The DLQ does not depend on the service's database: SQLite is enough here.
    return f"sqlite+aiosqlite:///{tmp_path / 'toy.sqlite'}"


async def poisoned(client, app, keys: list[str]) -> None:
    for key in keys:
        await client.post("/toy/v1/notes", json={"key": key, "seq": 1, "poison": True})
    await settle(app, timeout=60)


async def test_list_reads_to_the_end_past_a_thousand_letters(kernel, toy_db):  # noqa: F811
    async with running(kernel, toy_db, workers=False) as (app, _):
        transport = app.state.transport
        records = [
            Record(DLQ, f"k{i % 7}", b"%d" % i, {"source_topic": "frontline.toy"})
            for i in range(1_234)
        ]
        for i in range(0, len(records), 200):
            await transport.publish(records[i : i + 200])
        got = await dlq.entries(transport, DLQ)
        assert sorted(int(e["raw"]) for e in got) == list(range(1_234))
        assert {e["status"] for e in got} == {"dead"}


async def test_replay_and_discard_act_on_exactly_the_named_letter(
    kernel,  # noqa: F811
    toy_db,
    monkeypatch,
):
    keys = [f"key-{i}" for i in range(6)]
    async with running(kernel, toy_db) as (app, client):
        await poisoned(client, app, keys)
        transport = app.state.transport
        letters = await dlq.entries(transport, DLQ)
        assert sorted(e["payload"]["key"] for e in letters) == keys
        first, second, *rest = letters
        at_zero = [e for e in letters if e["dlq_offset"] == 0]
        if kernel.transport == "kafka":
            # The same offset in two partitions: the old `--offset` could not tell them apart.
            assert len(at_zero) >= 2
        target = at_zero[-1]
        monkeypatch.setattr(toy, "POISON_IS_FATAL", False)  # the fix is deployed
        now = app.state.clock.now()
        at = (target["dlq_partition"], target["dlq_offset"])
        assert await dlq.replay(transport, DLQ, now=now, at=at) == 1
        await settle(app, timeout=60)
        applied = {k for k in keys if await tally(app, k) is not None}
        assert applied == {target["payload"]["key"]}

        other = next(e for e in letters if e is not target)
        where = (other["dlq_partition"], other["dlq_offset"])
        assert await dlq.discard(transport, DLQ, now=now, at=where) == 1
        status = {e["payload"]["key"]: e["status"] for e in await dlq.entries(transport, DLQ)}
        assert status.pop(target["payload"]["key"]) == "replayed"
        assert status.pop(other["payload"]["key"]) == "discarded"
        assert set(status.values()) == {"dead"}

        # Without a target: every letter still dead goes back, the decided ones do not.
        assert await dlq.replay(transport, DLQ, now=now) == len(keys) - 2
        await settle(app, timeout=60)
        applied = {k for k in keys if await tally(app, k) is not None}
        assert applied == set(keys) - {other["payload"]["key"]}
        assert [(await tally(app, k)).count for k in sorted(applied)] == [1] * len(applied)
        assert await dlq.replay(transport, DLQ, now=now) == 0
        # Named, a discarded letter can still be replayed: the operator changed their mind.
        assert await dlq.replay(transport, DLQ, now=now, at=where) == 1
        await settle(app, timeout=60)
        assert (await tally(app, other["payload"]["key"])).count == 1
        assert {e["status"] for e in await dlq.entries(transport, DLQ)} == {"replayed"}
        with pytest.raises(dlq.NotADeadLetter):
            await dlq.replay(transport, DLQ, now=now, at=(0, 10_000))
        # Decisions are records on the topic, never taken for dead letters.
        assert len(await dlq.read(transport, DLQ)) == len(keys)
        assert all(decode(m.value).payload["poison"] for m in await dlq.read(transport, DLQ))


async def test_a_letter_two_groups_wrote_goes_back_once_and_is_settled_for_both(
    kernel,  # noqa: F811
    toy_db,
):
    async with running(kernel, toy_db, workers=False) as (app, _):
        transport = app.state.transport
        value = b"{not an event"
        await transport.publish(
            [
                Record(DLQ, "k", value, {"source_topic": "frontline.toy", "source_offset": "7",
                                         "source_partition": "0", "consumer_group": g})
                for g in ("g-one", "g-two")
            ]
        )  # fmt: skip
        [one, _two] = await dlq.entries(transport, DLQ)
        now = app.state.clock.now()
        at = (one["dlq_partition"], one["dlq_offset"])
        assert await dlq.replay(transport, DLQ, now=now, at=at) == 1
        assert [e["status"] for e in await dlq.entries(transport, DLQ)] == ["replayed"] * 2
        back = [m for m in await transport.read("frontline.toy") if m.value == value]
        assert len(back) == 1 and back[0].headers["replayed_from"].startswith(DLQ)


def test_the_cli_names_a_letter_by_partition_and_offset_together(capsys):
    for argv in (
        ["dlq", "replay", DLQ, "--offset", "3"],
        ["dlq", "replay", DLQ, "--partition", "1"],
        ["dlq", "discard", DLQ],
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        assert "--partition" in capsys.readouterr().err


def test_the_cli_lists_replays_and_discards_on_the_local_bus(tmp_path, monkeypatch, capsys):
    import asyncio
    import json

    from shared.transport import LocalBus

    monkeypatch.setenv("FRONTLINE_VAR_DIR", str(tmp_path))

    async def put() -> None:
        bus = LocalBus(f"sqlite+aiosqlite:///{tmp_path / 'bus.sqlite'}")
        await bus.start()
        headers = {"source_topic": "frontline.toy", "consumer_group": "g"}
        await bus.publish([Record(DLQ, f"k{i}", b"%d" % i, headers) for i in range(3)])
        await bus.stop()

    asyncio.run(put())

    def run(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as stop:
            cli.main(["dlq", *args])
        out = capsys.readouterr()
        return stop.value.code, out.out + out.err

    code, out = run("replay", DLQ, "--partition", "0", "--offset", "1")
    assert (code, out.strip()) == (0, f"replayed 1 event(s) from {DLQ}")
    code, out = run("discard", DLQ, "--partition", "0", "--offset", "2")
    assert (code, out.strip()) == (0, f"discarded 1 dead letter(s) in {DLQ}")
    code, out = run("list", DLQ)
    listed = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(e["raw"], e["status"]) for e in listed] == [
        ("0", "dead"),
        ("1", "replayed"),
        ("2", "discarded"),
    ]
    code, out = run("replay", DLQ, "--partition", "0", "--offset", "9")
    assert code == 2 and "no dead letter at partition 0 offset 9" in out
