"""Dependencies every registry route module shares."""

from typing import Annotated

from fastapi import Depends, Request

from services.registry.settings import RegistrySettings, registry_settings
from shared.keys import KeyRing
from shared.revocation import TokenVersions
from shared.runtime import SessionDep
from shared.settings import KernelSettings

Session = SessionDep("registry")


def _settings(request: Request) -> RegistrySettings:
    return registry_settings(request.app.state.runtimes["registry"].settings)


def _kernel(request: Request) -> KernelSettings:
    return request.app.state.kernel


def _keys(request: Request) -> KeyRing:
    return request.app.state.keys


def _token_versions(request: Request) -> TokenVersions:
    return request.app.state.token_versions


Settings = Annotated[RegistrySettings, Depends(_settings)]
Keys = Annotated[KeyRing, Depends(_keys)]
Versions = Annotated[TokenVersions, Depends(_token_versions)]
Kernel = Annotated[KernelSettings, Depends(_kernel)]
