"""The HTTP edge: the one ASGI middleware around every request.

It gives the request its id (`X-Request-ID`, shared/audit_http.py), its server span
(shared/tracing.py), its latency metric and access line (shared/metrics.py), the security
headers on the answer (shared/http_headers.py) and, for a write refused with 403 to an
authenticated caller, the `refused` audit row. One layer rather than one per concern:
every resumption of a request's coroutine passes through each layer's frames, and on the
sign-in path three layers cost a measurable share of the CPU (bench/README.md).
"""

import time
from typing import Any

from fastapi import Request
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs, tracing
from shared.audit import MUTATING
from shared.audit_http import record_refusal, request_id_of
from shared.http_headers import secured
from shared.metrics import observe_request, route_label


class Edge:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_of(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        request_id_header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_at_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = secured(message.get("headers", []))
                headers.append(request_id_header)
                message = {**message, "headers": headers}
            await send(message)

        token = logs.REQUEST_ID.set(request_id)
        parent = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"traceparent"), None
        )
        with tracing.span(scope["method"], parent=parent, kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_at_edge)
            finally:
                route = route_label(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.response.status_code", status)
                observe_request(scope, state, route, status, time.perf_counter() - start)
                logs.REQUEST_ID.reset(token)
        if status == 403 and scope["method"] in MUTATING and "principal" in state:
            await record_refusal(Request(scope), status)
