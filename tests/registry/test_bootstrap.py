"""The first org_admin comes from settings (FRONTLINE_BOOTSTRAP_ADMIN_*), whatever the mode."""

import re

import pytest
from sqlalchemy import delete

from services.registry.models import User
from services.registry.service.users import bootstrap_admin
from services.registry.settings import registry_settings
from shared.fieldcrypt import new_key as new_field_key
from shared.keys import new_private_pem
from shared.settings import KernelSettings
from tests.registry.factories import bus_events, get, login


@pytest.fixture
def kernel_settings(tmp_path) -> KernelSettings:
    return KernelSettings(
        var_dir=tmp_path,
        mode="distributed",
        cursor_secret="bootstrap-test-cursor-secret",
        field_key=new_field_key(),
        jwt_private_key=new_private_pem().decode(),
        relay_idle_seconds=0.05,
        run_scheduler=False,
        bootstrap_admin_username="chief",
        bootstrap_admin_password="chief-password",
    )


async def test_bootstrap_admin_from_settings(system):
    assert (await login(system, "chief", "chief-password")).status_code == 200
    assert (await login(system, "admin", "admin")).status_code == 401
    events = await bus_events(system, "registry.user.upserted")
    assert [(e["username"], e["roles"]) for e in events] == [("chief", ["org_admin"])]


async def test_bootstrap_restores_the_admin_password_and_role(system):
    rt = system.runtime("registry")
    chief = (await get(system, "/users"))["items"][0]
    r = await system.client.patch(
        f"/registry/v1/users/{chief['id']}",
        json={"roles": ["auditor"]},
        headers=system.headers("org_admin"),
    )
    assert r.status_code == 200
    r = await system.client.post(
        f"/registry/v1/users/{chief['id']}/password",
        json={"new_password": "someone else's"},
        headers=system.headers("org_admin"),
    )
    assert r.status_code == 204
    async with rt.transaction() as s:
        await bootstrap_admin(
            s, kernel=rt.kernel, settings=registry_settings(rt.settings), clock=rt.clock
        )
    assert (await login(system, "chief", "chief-password")).status_code == 200
    again = await get(system, f"/users/{chief['id']}")
    assert set(again["roles"]) == {"auditor", "org_admin"}
    users = await get(system, "/users")
    assert len(users["items"]) == 1


async def test_without_settings_an_empty_embedded_run_gets_a_generated_password_once(
    system, capsys
):
    rt = system.runtime("registry")
    settings = registry_settings(rt.settings)
    async with rt.transaction() as s:
        await s.execute(delete(User))
    capsys.readouterr()
    printed = []
    for mode, expected in [("distributed", []), ("embedded", ["admin"]), ("embedded", ["admin"])]:
        kernel = rt.kernel.model_copy(
            update={"bootstrap_admin_username": "", "bootstrap_admin_password": "", "mode": mode}
        )
        async with rt.transaction() as s:
            await bootstrap_admin(s, kernel=kernel, settings=settings, clock=rt.clock)
        users = await get(system, "/users")
        assert [u["username"] for u in users["items"]] == expected, mode
        printed.append(capsys.readouterr().out)
    # Printed on the start that made the admin, and only then.
    assert printed[0] == "" and printed[2] == ""
    [password] = re.findall(r"generated admin login: admin / (\S+)", printed[1])
    assert len(password) >= 16
    assert (await login(system, "admin", "admin")).status_code == 401
    assert (await login(system, "admin", password)).status_code == 200
