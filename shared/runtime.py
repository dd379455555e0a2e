"""How a service runs: its database, relay and consumers, and the app that serves one
service (distributed) or all three (embedded) under the same paths.
"""

import asyncio
import functools
import gc
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit import MUTATING, ensure_pg_function
from shared.audit_http import audit_router, record_request
from shared.authz import PUBLIC
from shared.clock import Clock
from shared.contracts.registry import UserUpserted
from shared.db import make_engine, make_sessionmaker
from shared.edge import Edge
from shared.errors import install_error_handlers
from shared.events import Envelope, catalogue
from shared.fieldcrypt import FieldCipher
from shared.http_headers import add_service_openapi, docs_public
from shared.inbox import ConsumerRunner, Handlers
from shared.keys import KeyRing
from shared.lanes import Lane, install_lanes
from shared.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from shared.metrics import render as render_metrics
from shared.migrate import upgrade
from shared.outbox import Relay, backlog
from shared.pagination import cursor_key
from shared.prune import prune_job
from shared.revocation import TABLE as TOKEN_VERSIONS
from shared.revocation import TokenVersions
from shared.settings import KernelSettings, ServiceSettings
from shared.transport import LocalBus, Transport
from shared.types import clean_params, remember_query

log = logging.getLogger(__name__)


@dataclass
class ServiceSpec:
    """What a service is made of; each service's app.py declares one as `spec`."""

    name: str
    router: APIRouter
    metadata: MetaData
    settings_cls: type[ServiceSettings]
    migrations: Path
    handlers: Handlers | None = None
    on_start: Callable[["ServiceRuntime"], Awaitable[None]] | None = None
    background: list[Callable[["ServiceRuntime"], Awaitable[None]]] = field(default_factory=list)
    # The service's unit closure, (ancestor_id, unit_id): scopes its audit log to a subtree.
    unit_closure: Table | None = None
    # The one service holding the private key (the registry): it signs tokens, serves JWKS.
    signs_tokens: bool = False
    # Holds personal fields encrypted with FRONTLINE_FIELD_KEY (shared/fieldcrypt.py).
    uses_field_key: bool = False
    # Hot routes served ahead of FastAPI's routing, each like its declared twin (shared/lanes.py).
    lanes: list[Lane] = field(default_factory=list)
    # Its handlers serialise what partitions share, so a poll's partitions may be applied
    # side by side on PostgreSQL (shared/inbox.py, ConsumerRunner).
    parallel_partitions: bool = False


class ServiceRuntime:
    def __init__(
        self,
        spec: ServiceSpec,
        *,
        kernel: KernelSettings,
        settings: ServiceSettings,
        clock: Clock,
        transport: Transport,
        token_versions: TokenVersions | None = None,
    ):
        self.spec, self.name = spec, spec.name
        self.token_versions = token_versions if token_versions is not None else TokenVersions()
        self.kernel, self.settings = kernel, settings
        self.clock, self.transport = clock, transport
        self.url = settings.url_or_default(spec.name, kernel.var_dir)
        self.engine = make_engine(self.url)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.relay = Relay(
            spec.name,
            self.sessionmaker,
            transport,
            clock,
            batch_size=kernel.relay_batch_size,
            idle_seconds=kernel.relay_idle_seconds,
            linger_seconds=kernel.relay_linger_seconds,
        )
        self.runner = ConsumerRunner(
            group=f"{kernel.kafka.client_id_prefix}-{spec.name}",
            handlers=self._handlers(),
            transport=transport,
            sessionmaker=self.sessionmaker,
            clock=clock,
            max_attempts=kernel.consumer_max_attempts,
            retry_seconds=kernel.consumer_retry_seconds,
            backoff_max_seconds=kernel.consumer_backoff_max_seconds,
            after_commit=self.relay.wake,
            parallel_partitions=spec.parallel_partitions
            and self.engine.dialect.name == "postgresql",
        )
        self.tasks: list[asyncio.Task] = []
        # Called on stop, before the engine is disposed (pools a service opened itself).
        self.closers: list[Callable[[], Awaitable[None]]] = []

    def _handlers(self) -> Handlers:
        """The service's handlers plus the kernel's: every service projects users' token
        versions (shared/revocation.py), before its own handler of the same event runs."""
        handlers = Handlers()
        handlers.by_type.update(self.spec.handlers.by_type if self.spec.handlers else {})
        own = handlers.by_type.get(UserUpserted.TYPE)
        table = self.spec.metadata.tables[TOKEN_VERSIONS]

        async def on_user(session: AsyncSession, p: UserUpserted, env: Envelope) -> None:
            await self.token_versions.apply(
                session,
                table,
                user_id=p.user_id,
                version=p.token_version,
                active=p.active,
                now=self.clock.now(),
            )
            if own is not None:
                await own(session, p, env)

        handlers.by_type[UserUpserted.TYPE] = on_user
        return handlers

    async def load_token_versions(self) -> int:
        """Learn this database's token versions changed since the last read."""
        async with self.sessionmaker() as session:
            return await self.token_versions.load(
                session,
                self.spec.metadata.tables[TOKEN_VERSIONS],
                source=self.name,
                overlap=timedelta(seconds=5 * self.kernel.token_versions_refresh_seconds + 5),
            )

    async def _refresh_token_versions(self) -> None:
        while True:
            await asyncio.sleep(self.kernel.token_versions_refresh_seconds)
            await self.load_token_versions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on error, then wake the relay."""
        async with self.sessionmaker() as session:
            async with session.begin():
                yield session
            if session.info.get("outbox_written"):
                self.relay.wake()

    async def start(self, *, workers: bool = True) -> None:
        if self.settings.migrate_on_start:
            await upgrade(self.engine, self.spec.migrations)
        if self.engine.dialect.name == "postgresql":
            await ensure_pg_function(self.engine)  # the audit chain's lock-and-append
        if self.spec.on_start:
            await self.spec.on_start(self)
        await self.load_token_versions()
        if workers:
            self.tasks.append(self._supervise("relay", self.relay.run))
            self.tasks.append(self._supervise("consumer", self.runner.run))
            self.tasks.append(self._supervise("token-versions", self._refresh_token_versions))
            self.tasks.append(self._supervise("prune", lambda: prune_job(self)))
            for job in self.spec.background:
                self.tasks.append(self._supervise(job.__name__, lambda job=job: job(self)))

    def _supervise(self, what: str, fn: Callable[[], Awaitable[None]]) -> asyncio.Task:
        async def loop() -> None:
            while True:
                try:
                    await fn()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s %s crashed; restarting", self.name, what)
                    await asyncio.sleep(1.0)

        return asyncio.create_task(loop(), name=f"{self.name}-{what}")

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks, timeout=10)
            for t in stuck:  # shutdown must finish even if a worker ignores cancellation
                log.error("%s: %s did not stop in time", self.name, t.get_name())
        self.tasks.clear()
        for close in self.closers:
            try:
                await asyncio.wait_for(close(), timeout=10)
            except Exception:  # shutdown goes on; the server drops the connections anyway
                log.exception("%s: a pool did not close", self.name)
        self.closers.clear()
        await asyncio.wait_for(self.engine.dispose(), timeout=10)

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"service": self.name, "transport": self.transport.name}
        try:
            async with self.sessionmaker() as s:
                await s.execute(text("SELECT 1"))
                report["outbox"] = await backlog(s, self.clock.now())
            report["database"] = "ok"
        except Exception as exc:  # health must answer, whatever is down
            report["database"] = f"unreachable: {type(exc).__name__}"
        # The broker being down does not make the service unready: writes go on into the
        # outbox (whose backlog above grows) and leave once it is back.
        ping = getattr(self.transport, "ping", None)
        if ping is not None:
            report["broker"] = await ping()
        if self.runner:
            report["consumer"] = self.runner.status()
            if self.runner.gaps:
                # Loud: events this group never saw were deleted by retention.
                report["consumer"] = f"events lost to retention: {self.runner.gaps}"
                report["consumer_gaps"] = self.runner.gaps
            report["consumer_lag"] = None
            if report.get("broker", "ok") == "ok":
                try:
                    report["consumer_lag"] = await asyncio.wait_for(self.runner.lag(), 5)
                    report.setdefault("broker", "ok")
                except Exception as exc:
                    report.setdefault("broker", f"unreachable: {type(exc).__name__}")
        report["status"] = "ok" if report["database"] == "ok" else "degraded"
        return report

    async def metrics_state(self) -> dict[str, Any]:
        """What the scrape reads live: backlog, lag per topic and partition, pool in use."""
        state: dict[str, Any] = {"outbox": None, "lag": {}}
        try:
            async with self.sessionmaker() as s:
                state["outbox"] = await backlog(s, self.clock.now())
        except Exception:  # a scrape must answer whatever is down; health says what
            log.debug("%s: backlog unavailable for metrics", self.name, exc_info=True)
        if self.runner:
            try:
                if self.runner.consumer is not None:
                    async with asyncio.timeout(5):
                        state["lag"] = await self.runner.consumer.partition_lag()
            except Exception:
                log.debug("%s: lag unavailable for metrics", self.name, exc_info=True)
        checkedout = getattr(self.engine.sync_engine.pool, "checkedout", None)
        state["pool_in_use"] = checkedout() if checkedout else 0
        return state

    async def version(self) -> dict[str, Any]:
        """What is running: the package, the commit it was built from, the schema heads."""
        async with self.sessionmaker() as s:
            heads = (await s.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            schema = sorted(heads)
        return {
            "service": self.name,
            "version": package_version(),
            "git_sha": git_sha(),
            "schema": schema,
        }

    async def settled(self) -> bool:
        async with self.sessionmaker() as s:
            if (await backlog(s, self.clock.now()))["unsent"]:
                return False
        if self.runner:
            # Counted in-process: broker end offsets are not reliable on every test broker.
            sent = self.transport.sent
            return all(self.runner.seen[t] >= sent[t] for t in self.runner.handlers.topics())
        return True


def package_version() -> str:
    try:
        return metadata.version("frontline")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def git_sha() -> str:
    """FRONTLINE_GIT_SHA (set by the image build), else the checkout's HEAD, else unknown."""
    if sha := os.environ.get("FRONTLINE_GIT_SHA"):
        return sha
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def make_transport(
    kernel: KernelSettings, client_id: str = "frontline", clock: Clock | None = None
) -> Transport:
    if kernel.transport == "kafka":
        from shared.kafka import KafkaTransport

        return KafkaTransport(kernel.kafka, client_id=client_id)
    return LocalBus(kernel.local_bus_url(), clock=clock)


def build_app(
    specs: list[ServiceSpec],
    *,
    kernel: KernelSettings | None = None,
    clock: Clock | None = None,
    transport: Transport | None = None,
    service_settings: dict[str, ServiceSettings] | None = None,
    workers: bool = True,
    keys: KeyRing | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """One app for the given services, each under `/<name>`; runs their workers in lifespan.

    `freeze_gc` (the servers of `frontline run` and `serve`, not tests, which start an app
    per test): once started, what start-up built (modules, routes, schemas, pools) is moved
    out of the cycle collector's full passes, which scanned all of it (~180 ms each, one per
    eight 500-item batches; bench/README.md "Offline batch", 2026-12-03 18:20).

    Raises KeyConfigError (naming the setting) when the token keys are not configured.
    """
    kernel = kernel or KernelSettings()
    keys = keys or KeyRing.from_settings(kernel, signs=any(s.signs_tokens for s in specs))
    # One cache for the app: embedded, the three services learn users' versions together.
    token_versions = TokenVersions()
    clock = clock or Clock()
    transport = transport or make_transport(kernel, "-".join(s.name for s in specs), clock)
    service_settings = service_settings or {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keys.jwks_url and not keys.can_sign:
            await keys.refresh()  # the registry may not be up yet: then on the first token
        await transport.start()
        runtimes = app.state.runtimes
        for spec in specs:
            settings = service_settings.get(spec.name) or spec.settings_cls()
            runtimes[spec.name] = ServiceRuntime(
                spec,
                kernel=kernel,
                settings=settings,
                clock=clock,
                transport=transport,
                token_versions=token_versions,
            )
        try:
            for rt in runtimes.values():
                await rt.start(workers=workers)
            if freeze_gc:
                gc.collect()
                gc.freeze()
            yield
        finally:
            for rt in runtimes.values():
                await rt.stop()
            await transport.stop()

    public = docs_public(kernel)
    app = FastAPI(
        title="Frontline",
        lifespan=lifespan,
        docs_url="/docs" if public else None,
        redoc_url="/redoc" if public else None,
        openapi_url="/openapi.json" if public else None,
    )
    app.state.kernel, app.state.clock, app.state.transport = kernel, clock, transport
    app.state.runtimes = {}
    app.state.cursor_key = cursor_key(kernel)  # distributed mode without one refuses to start
    app.state.keys, app.state.token_versions = keys, token_versions
    # Distributed without FRONTLINE_FIELD_KEY, a service holding personal fields refuses to start.
    if any(s.uses_field_key for s in specs):
        app.state.field_cipher = FieldCipher.from_settings(kernel)
    install_error_handlers(app)
    # Every query parameter is declared (else 422 unknown_parameter) and no query or path
    # parameter carries a control character. Not on the operational routes (health,
    # metrics, version, keys, openapi): probes, scrapers and doc viewers may add their own.
    clean = [Depends(clean_params)]
    for spec in specs:
        prefix = f"/{spec.name}"
        app.include_router(spec.router, prefix=prefix, dependencies=clean)
        app.include_router(_service_routes(spec), prefix=prefix)
        app.include_router(
            audit_router(spec.name, spec.unit_closure), prefix=prefix, dependencies=clean
        )
        if public:
            add_service_openapi(app, spec.name)
    for ctx in iter_route_contexts(app.routes):  # the query names each route accepts, once
        if isinstance(ctx.original_route, APIRoute):
            remember_query(ctx.original_route, ctx.dependant)
    for spec in specs:
        install_lanes(app, f"/{spec.name}", spec.lanes)
    app.add_middleware(Edge)  # request id, span, metric, access line, security headers
    return app


def _service_routes(spec: ServiceSpec) -> APIRouter:
    name = spec.name
    router = APIRouter(tags=[name], dependencies=[PUBLIC])

    if spec.signs_tokens:

        @router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
        async def jwks(request: Request) -> JSONResponse:
            # Short cache: a rotation must reach verifiers well within a token's lifetime.
            return JSONResponse(
                request.app.state.keys.jwks(), headers={"Cache-Control": "public, max-age=300"}
            )

    @router.get("/health", summary=f"{name}: database, broker, outbox backlog, consumer lag")
    async def health(request: Request) -> JSONResponse:
        report = await request.app.state.runtimes[name].health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @router.get("/metrics", summary=f"{name}: Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        body = await render_metrics(request.app.state.runtimes[name])
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    @router.get("/health/live", summary=f"{name}: the process answers (liveness)")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/version", summary=f"{name}: package version, git sha, schema revision")
    async def version(request: Request) -> dict[str, Any]:
        return await request.app.state.runtimes[name].version()

    @router.get("/asyncapi.json", summary="The event catalogue as AsyncAPI")
    async def asyncapi() -> dict[str, Any]:
        return catalogue()

    return router


def session_dependency(name: str) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """The dependency that owns a request's transaction for service `name` (use SessionDep).

    Events written in it carry the request's id and actor; a state-changing request that
    succeeds appends its audit row last, just before the commit (shared/audit_http.py).
    """

    async def session(request: Request) -> AsyncIterator[AsyncSession]:
        async with request.app.state.runtimes[name].transaction() as s:
            s.info["audit_request"] = request
            yield s
            if request.method in MUTATING:
                await record_request(s, request, request.app.state.clock.now())

    return session


async def settle(app: FastAPI, timeout: float = 15.0) -> None:
    """Wait until every outbox is published and every consumer has caught up (tests, CLI)."""
    runtimes = list(app.state.runtimes.values())
    deadline = asyncio.get_running_loop().time() + timeout
    calm = 0
    while calm < 2:
        for rt in runtimes:
            rt.relay.wake()
        await asyncio.sleep(0.02)
        calm = calm + 1 if all([await rt.settled() for rt in runtimes]) else 0
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("events did not settle")


async def get_clock(request: Request) -> Clock:  # async: no thread-pool hop per request
    return request.app.state.clock


ClockDep = Annotated[Clock, Depends(get_clock)]


def SessionDep(name: str) -> Any:  # noqa: N802 (reads as a type in signatures)
    """`Annotated[AsyncSession, ...]` whose transaction commits before the response is sent.

    FastAPI's default scope for yield dependencies ends them after the response has gone
    out; a client must never see 201 for a write that then fails to commit.
    """
    return Annotated[AsyncSession, Depends(session_dependency(name), scope="function")]
