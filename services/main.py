"""Compose the services into one app: all three (embedded) or one (distributed)."""

from importlib import import_module

from fastapi import FastAPI

from shared.runtime import ServiceSpec, build_app

SERVICES = ("registry", "assessment", "incentives")


def specs(names: tuple[str, ...] | list[str] = SERVICES) -> list[ServiceSpec]:
    return [import_module(f"services.{n}.app").spec for n in names]


def embedded_app(**kwargs) -> FastAPI:
    """The three services in one process on one port, each with its own SQLite file."""
    return build_app(specs(), **kwargs)


def service_app(name: str, **kwargs) -> FastAPI:
    return build_app(specs([name]), **kwargs)
