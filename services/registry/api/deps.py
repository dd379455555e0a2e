"""Dependencies every registry route module shares."""

from typing import Annotated

from fastapi import Depends, Request

from services.registry.settings import RegistrySettings, registry_settings
from shared.runtime import SessionDep
from shared.settings import KernelSettings

Session = SessionDep("registry")


def _settings(request: Request) -> RegistrySettings:
    return registry_settings(request.app.state.runtimes["registry"].settings)


def _kernel(request: Request) -> KernelSettings:
    return request.app.state.kernel


Settings = Annotated[RegistrySettings, Depends(_settings)]
Kernel = Annotated[KernelSettings, Depends(_kernel)]
