"""Where a sign-in's time goes: py-spy on `frontline run` under wrk load, or under the
offline batch (500 items, 4 in flight) with `batch`; on PostgreSQL, or on SQLite (the
`make run` default) with `sqlite`.

Prints the functions with the most samples on the server's threads (own and total);
`PROFILE_RAW=path` keeps the raw py-spy output (for a flame graph).

  .venv/bin/python bench/profile_signin.py [SECONDS] [batch] [sqlite]
"""

import collections
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, databases, frontline, wrk
from signin_ratio import BATCH_REQUESTS, CONNECTIONS, batches, county, post_batches, singles


def summarise(raw: Path, top: int = 25) -> None:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    print(f"{samples} samples")
    print("-- own --")
    for f, n in own.most_common(top):
        print(f"{100 * n / samples:5.1f}%  {f}")
    print("-- total --")
    for f, n in total.most_common(top * 2):
        print(f"{100 * n / samples:5.1f}%  {f}")


def main(seconds: int, mode: str, backend: str) -> None:
    spy = str(ROOT / ".venv" / "bin" / "py-spy")
    lite = backend == "sqlite"
    with (
        contextlib.nullcontext(None)
        if lite
        else databases("registry", "assessment", "incentives") as dsns,
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        tmp = Path(tmp_name)
        with frontline(dsns, tmp) as (url, pid):
            phones = county(url).phones
            raw = tmp / "profile.txt"
            spy_proc = subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(seconds),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if mode == "batch":
                import asyncio

                result = asyncio.run(post_batches(url, batches(phones, BATCH_REQUESTS)))
            else:
                result = wrk(
                    url, singles(phones, 3000 * seconds), connections=CONNECTIONS, seconds=seconds
                )
            spy_proc.wait()
            print(result)
            summarise(raw)
            if keep := os.environ.get("PROFILE_RAW"):
                shutil.copy(raw, keep)


if __name__ == "__main__":
    args = sys.argv[1:]
    seconds = int(args.pop(0)) if args and args[0].isdigit() else 15
    main(seconds, "batch" if "batch" in args else "", "sqlite" if "sqlite" in args else "pg")
