"""Every route of every app declares who may call it (shared/authz.py), exactly once."""

from fastapi import FastAPI

from services.main import SERVICES, embedded_app, service_app
from shared.authz import route_table


def undeclared(app: FastAPI) -> list[str]:
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    wrong = []
    for entry in route_table(app):
        if not entry.api:
            # Starlette routes carry no dependencies: only FastAPI's own docs may be one.
            if entry.path not in docs:
                wrong.append(f"{entry.path}: not an APIRoute, so it cannot declare a policy")
        elif len(entry.rules) != 1:
            found = ", ".join(r.describe() for r in entry.rules) or "none"
            wrong.append(f"{list(entry.methods)} {entry.path}: {len(entry.rules)} ({found})")
    return wrong


def test_every_route_of_the_embedded_app_declares_one_policy():
    app = embedded_app()
    assert sum(e.api for e in route_table(app)) > 80
    assert undeclared(app) == []


def test_every_route_of_each_distributed_app_declares_one_policy():
    for name in SERVICES:
        app = service_app(name)
        assert route_table(app), name
        assert undeclared(app) == [], name


def test_the_probe_sees_a_route_without_a_policy():
    app = embedded_app()

    @app.get("/registry/v1/naked")
    async def naked() -> dict:
        return {}

    [problem] = undeclared(app)
    assert "/registry/v1/naked" in problem
