"""Servers for development and tests on one machine (`make up`, `make test`): never imported
by a service at run time."""
