"""The CLI tests sign in as a bootstrap admin of their own."""

import pytest

from shared.settings import KernelSettings

ADMIN, PASSWORD = "ops-admin", "Ops-admin-pass-2026"


@pytest.fixture
def kernel_settings(tmp_path) -> KernelSettings:
    return KernelSettings(
        var_dir=tmp_path,
        relay_idle_seconds=0.05,
        consumer_retry_seconds=0.01,
        run_scheduler=False,
        bootstrap_admin_username=ADMIN,
        bootstrap_admin_password=PASSWORD,
    )
