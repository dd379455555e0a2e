"""`make up` is a product feature: it honours the operator's FRONTLINE_* settings."""

import os
import subprocess
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_make_up_honours_the_bootstrap_admin_settings(pg_base_dsn, kafka_bootstrap, tmp_path):
    env = {
        **os.environ,
        "STACK_PG": pg_base_dsn,
        "STACK_KAFKA": kafka_bootstrap.bootstrap,
        "FRONTLINE_VAR_DIR": str(tmp_path),
        "FRONTLINE_BOOTSTRAP_ADMIN_USERNAME": "chief-ops",
        "FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD": "Chief-ops-pass-2026",
    }
    up = subprocess.run(
        ["make", "--no-print-directory", "up"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "admin chief-ops (password as set)" in up.stdout
        assert f"logs {tmp_path / 'log'}/" in up.stdout
        token = "http://127.0.0.1:8001/registry/v1/auth/token"
        ok = httpx.post(token, data={"username": "chief-ops", "password": "Chief-ops-pass-2026"})
        assert ok.status_code == 200, ok.text
        assert (
            httpx.post(token, data={"username": "admin", "password": "x" * 12}).status_code == 401
        )
        assert (tmp_path / "log" / "registry.log").exists()
    finally:
        down = subprocess.run(
            ["make", "--no-print-directory", "down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert "stack down" in down.stdout
