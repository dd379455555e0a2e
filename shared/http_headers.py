"""Security headers on every response, and each service's own OpenAPI document.

`X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
and `Cache-Control: no-store` unless the route chose its own (the JWKS may be cached).
The `server` banner is switched off where uvicorn runs (services/cli.py).
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.authz import PUBLIC

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's headers with the security headers added and any `server` banner gone
    (applied to every response by the HTTP edge, shared/edge.py)."""
    out = [(k, v) for k, v in headers if k.lower() != b"server"]
    out += SECURITY_HEADERS
    if not any(k.lower() == b"cache-control" for k, _ in out):
        out.append((b"cache-control", b"no-store"))
    return out


def docs_public(kernel) -> bool:
    """Docs and OpenAPI: public embedded; distributed only with FRONTLINE_PUBLIC_DOCS."""
    return kernel.mode == "embedded" or kernel.public_docs


def add_service_openapi(app: FastAPI, name: str) -> None:
    """`/<name>/openapi.json`: the app's document cut to that service's paths and the
    schemas they reach (built once)."""
    prefix = f"/{name}/"
    document: dict[str, Any] = {}

    async def openapi(request: Request) -> JSONResponse:
        if not document:
            document.update(service_document(request.app.openapi(), name, prefix))
        return JSONResponse(document)

    app.add_api_route(
        f"/{name}/openapi.json", openapi, include_in_schema=False, dependencies=[PUBLIC]
    )


def service_document(whole: dict[str, Any], name: str, prefix: str) -> dict[str, Any]:
    paths = {p: v for p, v in whole.get("paths", {}).items() if p.startswith(prefix)}
    schemas = whole.get("components", {}).get("schemas", {})
    keep: set[str] = set()
    todo = [paths]
    while todo:  # follow $refs from the paths through the schemas they name
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                key = ref.rsplit("/", 1)[1]
                if key not in keep and key in schemas:
                    keep.add(key)
                    todo.append(schemas[key])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    doc = {k: v for k, v in whole.items() if k not in ("paths", "components")}
    doc["info"] = {**whole.get("info", {}), "title": f"Frontline {name}"}
    doc["paths"] = paths
    components = {k: v for k, v in whole.get("components", {}).items() if k != "schemas"}
    components["schemas"] = {k: schemas[k] for k in sorted(keep)}
    doc["components"] = components
    return doc
