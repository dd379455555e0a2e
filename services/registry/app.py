"""The registry service: its spec, and an app serving it alone (distributed mode)."""

from pathlib import Path

from fastapi import FastAPI

import shared.contracts  # noqa: F401  (registers every event type)
from services.registry import models
from services.registry.api import router
from services.registry.events import handlers
from services.registry.service import imports as import_service
from services.registry.service import users as user_service
from services.registry.settings import RegistrySettings, registry_settings
from shared.runtime import ServiceRuntime, ServiceSpec, build_app


async def on_start(rt: ServiceRuntime) -> None:
    """Settle the settings class, announce users the services may not know yet, then make
    sure there is an org_admin to log in with."""
    rt.settings = registry_settings(rt.settings)
    import_service.parser_pool().submit(int)  # start the upload parser now, not on first use
    # Revocations reach this process's token-version cache on commit (service/users.py).
    rt.sessionmaker.configure(info={"token_versions": rt.token_versions})
    async with rt.transaction() as session:
        await user_service.publish_unprojected_users(session, clock=rt.clock)
        await user_service.bootstrap_admin(
            session, kernel=rt.kernel, settings=rt.settings, clock=rt.clock
        )


spec = ServiceSpec(
    name="registry",
    router=router,
    metadata=models.metadata,
    settings_cls=RegistrySettings,
    migrations=Path(__file__).parent / "migrations",
    handlers=handlers,
    on_start=on_start,
    unit_closure=models.UnitTree.__table__,
    signs_tokens=True,
    uses_field_key=True,
)


def create_app(**kwargs) -> FastAPI:
    return build_app([spec], **kwargs)
