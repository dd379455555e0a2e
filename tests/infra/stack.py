"""The local distributed stack: it lives in shared/devstack/stack.py (`make up` uses it too);
re-exported here for the end-to-end suite."""

from shared.devstack.stack import DEFAULT_PORTS, ROOT, SERVICES, Stack, free_port  # noqa: F401
