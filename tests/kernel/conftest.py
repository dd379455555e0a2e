"""Fixtures of the kernel tests."""

import io
import logging

import orjson
import pytest

from shared.logs import JsonFormatter


@pytest.fixture
def lines():
    """What the process logs during the test, as parsed JSON objects."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [orjson.loads(line) for line in out.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
