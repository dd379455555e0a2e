"""Secrets an embedded run makes for itself on first start and keeps under var/ (mode 0600).

Distributed mode never generates one: its secrets come from settings. One mechanism for
every such file (the token signing key, and whatever else the kernel needs to keep).
"""

import os
from collections.abc import Callable
from pathlib import Path


def load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The file's bytes; on first use `make()` them and write the file readable by us only.

    Written whole to a private temporary file, then linked into place (which fails if the
    name exists): two processes starting at once agree on one secret, the loser reads the
    winner's file, and nobody ever reads a half-written one.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read(path)
    finally:
        tmp.unlink(missing_ok=True)
    return data


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # tighten a copy restored with looser permissions
    return data
