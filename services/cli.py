"""`frontline`: run the services, and operate a running Frontline from a terminal.

frontline run                              all three services in one process (embedded)
frontline serve registry [--workers N]     one service (distributed: PostgreSQL + Kafka)
frontline migrate [SERVICE ...]            upgrade databases (a release's migration job)
frontline seed --profile demo|anlong       a county, through the services' HTTP write paths
frontline simulate                         phones signing in (the load generator)
frontline import units|cadres|postings F   a registry import (CSV or XLSX, all rows or none)
frontline export batch 2026-11 --out F     a month's stipend batch as CSV or XLSX
frontline close-week 2026-W48              judge a week (idempotent)
frontline user create|deactivate           logins
frontline dlq list|replay|discard TOPIC    dead letters
frontline audit verify [SERVICE]           check the audit chains (exit 1 on any break)
frontline dev up|down                      the distributed stack on this machine (make up)

The commands that talk to a running Frontline take `--base-url` (FRONTLINE_URL) and sign
in as FRONTLINE_USERNAME / FRONTLINE_PASSWORD (else the bootstrap admin's settings).
"""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal, get_args

import httpx
import orjson
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import DBAPIError

from services import client
from services.main import SERVICES, embedded_app, service_app, specs
from shared import audit, dlq, logs, tracing
from shared.clock import Clock
from shared.db import make_engine
from shared.keys import KeyConfigError
from shared.migrate import upgrade
from shared.runtime import make_transport
from shared.settings import KernelSettings

DEFAULT_PORTS = {"registry": 8001, "assessment": 8002, "incentives": 8003}
SERVE_ENV = "FRONTLINE_SERVE_SERVICE"
# Our JSON access lines replace uvicorn's; its logging stays as configured by shared.logs.
_UVICORN = {"log_config": None, "access_log": False, "server_header": False}

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(help="Dead letters: list, replay or discard.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit logs.", no_args_is_help=True)
import_app = typer.Typer(help="Registry imports (CSV or XLSX, header first).", no_args_is_help=True)
export_app = typer.Typer(help="Exports for the finance office.", no_args_is_help=True)
user_app = typer.Typer(help="Logins.", no_args_is_help=True)
dev_app = typer.Typer(help="The distributed stack on this machine.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(user_app, name="user")
app.add_typer(dev_app, name="dev")
out = Console()
err = Console(stderr=True)

BaseUrl = Annotated[
    str, typer.Option(envvar="FRONTLINE_URL", help="the Frontline to talk to (a gateway)")
]
ServiceName = Literal["registry", "assessment", "incentives"]
assert get_args(ServiceName) == SERVICES


def _kernel() -> KernelSettings:
    kernel = KernelSettings()
    logs.configure(kernel.log_level, kernel.log_format)
    return kernel


def _print(value: Any) -> None:
    out.print_json(orjson.dumps(value).decode())


def _credentials(kernel: KernelSettings) -> tuple[str, str]:
    username = os.environ.get("FRONTLINE_USERNAME") or kernel.bootstrap_admin_username or "admin"
    password = os.environ.get("FRONTLINE_PASSWORD") or kernel.bootstrap_admin_password
    if not password and sys.stdin.isatty():
        password = typer.prompt(f"password for {username}", hide_input=True)
    if not password:
        err.print("set FRONTLINE_USERNAME and FRONTLINE_PASSWORD (an org_admin's, or finance's)")
        raise typer.Exit(2)
    return username, password


def _remote(base_url: str, work: Callable[[client.Api], Awaitable[Any]]) -> Any:
    """Sign in at `base_url` and run `work`; a refused call ends the command with its
    problem on stderr and exit status 1."""
    username, password = _credentials(_kernel())

    async def go() -> Any:
        async with httpx.AsyncClient(timeout=300) as http:
            api = client.Api(http, {"": base_url})
            api.headers = await api.login(username, password)
            return await work(api)

    try:
        return asyncio.run(go())
    except (client.ClientError, httpx.HTTPError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


# Running the services


@dev_app.command("up")
def dev_up() -> None:
    """PostgreSQL, Apache Kafka and the three services on :8001-:8003, detached; your
    FRONTLINE_* settings (the bootstrap admin among them) reach every service."""
    from shared.devstack import local

    raise typer.Exit(local.up())


@dev_app.command("down")
def dev_down() -> None:
    """Stop what `frontline dev up` started (and drop its databases)."""
    from shared.devstack import local

    raise typer.Exit(local.down())


@app.command()
def run(
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
    host: Annotated[str, typer.Option(envvar="HOST")] = "127.0.0.1",
) -> None:
    """All three services in one process (embedded), SQLite under var/."""
    kernel = _kernel()
    tracing.configure(kernel.otlp_endpoint, "frontline-embedded")
    user = kernel.bootstrap_admin_username or "admin"
    out.print(f"Frontline (embedded) on http://127.0.0.1:{port}")
    out.print(f"  services: /registry  /assessment  /incentives   data: {kernel.var_dir}/")
    if kernel.bootstrap_admin_password:
        out.print(f"  bootstrap admin: {user}")
    else:
        out.print(f"  admin: {user}; a first start prints its generated password once")
    uvicorn.run(
        _app_or_exit(lambda: embedded_app(kernel=kernel, freeze_gc=True)),
        host=host,
        port=port,
        **_UVICORN,
    )


def _app_or_exit(make_app):
    """The app, or exit naming the missing setting (keys are required distributed)."""
    try:
        return make_app()
    except KeyConfigError as exc:
        err.print(f"[red]frontline: {exc}[/red]")
        raise typer.Exit(2) from exc


def serve_factory():
    """The app of one `frontline serve --workers N` worker process."""
    return service_app(os.environ[SERVE_ENV], kernel=KernelSettings(), freeze_gc=True)


@app.command()
def serve(
    service: ServiceName,
    port: Annotated[int | None, typer.Option(help="default: 8001/8002/8003")] = None,
    host: Annotated[str, typer.Option(envvar="HOST")] = "127.0.0.1",
    workers: Annotated[
        int,
        typer.Option(
            envvar="FRONTLINE_WORKERS",
            help="processes on one port; each is a replica (shares the consumer group and outbox)",
        ),
    ] = 1,
) -> None:
    """One service (distributed mode: PostgreSQL and Kafka)."""
    kernel = _kernel()
    tracing.configure(kernel.otlp_endpoint, f"frontline-{service}")
    port = port or DEFAULT_PORTS[service]
    if workers > 1:
        # Worker processes import the app by name; the service travels in the environment.
        os.environ[SERVE_ENV] = service
        uvicorn.run(
            "services.cli:serve_factory",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            **_UVICORN,
        )
    else:
        app_ = _app_or_exit(lambda: service_app(service, kernel=kernel, freeze_gc=True))
        uvicorn.run(app_, host=host, port=port, **_UVICORN)


@app.command()
def migrate(services: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Upgrade services' databases to the latest schema (all three by default)."""
    names = services or list(SERVICES)
    if unknown := set(names) - set(SERVICES):
        raise typer.BadParameter(f"unknown service(s): {', '.join(sorted(unknown))}")
    asyncio.run(_migrate(_kernel(), names))


async def _migrate(kernel: KernelSettings, names: list[str]) -> None:
    for spec in specs(names):
        engine = make_engine(spec.settings_cls().url_or_default(spec.name, kernel.var_dir))
        try:
            await upgrade(engine, spec.migrations)
        finally:
            await engine.dispose()
        out.print(f"{spec.name}: schema at head")


# A county to look at, and load


@app.command()
def seed(
    profile: Literal["demo", "anlong"] = "demo",
    scale: Annotated[float, typer.Option(help="anlong: a fraction of every count")] = 1.0,
    go_live: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="anlong: the county's assessment_start_date (default: next Monday, once)",
        ),
    ] = None,
    base_url: BaseUrl = "http://127.0.0.1:8000",
) -> None:
    """Load a county through the services' own HTTP write paths (safe to run again)."""
    from services import seed as seeding

    username, password = _credentials(_kernel())
    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bars:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bars.add_task(what, total=total)
            bars.update(tasks[what], completed=min(done, total), total=total)

        try:
            result = asyncio.run(
                seeding.run(
                    profile,
                    base_url=base_url,
                    username=username,
                    password=password,
                    scale=scale,
                    go_live=go_live.date() if go_live else None,
                    progress=progress,
                )
            )
        except (client.ClientError, httpx.HTTPError) as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    logins = result.pop("logins", {})
    _print(result)
    for name, secret in logins.items():
        out.print(f"  login {name} / {secret}")


@app.command()
def simulate(
    base_url: BaseUrl = "http://127.0.0.1:8000",
    cadres: int = 100,
    duration: Annotated[float, typer.Option(help="seconds of load")] = 30.0,
    connections: Annotated[int, typer.Option(help="keep-alive connections")] = 64,
    admin_user: Annotated[str, typer.Option(envvar="FRONTLINE_BOOTSTRAP_ADMIN_USERNAME")] = "admin",
    admin_password: Annotated[
        str, typer.Option(envvar="FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD")
    ] = "admin",
    jwt_private_key_file: Annotated[
        str,
        typer.Option(help="the registry's signing key (PEM): mint cadre tokens, skip logins"),
    ] = "",
) -> None:
    """Phones signing in against a running Frontline (the benchmarks' load generator)."""
    from services.simulate import simulate as load

    _kernel()
    args = SimpleNamespace(
        base_url=base_url,
        cadres=cadres,
        duration=duration,
        connections=connections,
        admin_user=admin_user,
        admin_password=admin_password,
        jwt_private_key_file=jwt_private_key_file,
    )
    _print(asyncio.run(load(args)))


# Day-to-day operations over HTTP


def _import(kind: str, file: Path, dry_run: bool, base_url: str) -> None:
    content = file.read_bytes()
    _print(
        _remote(
            base_url, lambda api: client.import_file(api, kind, file.name, content, dry_run=dry_run)
        )
    )


File = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
DryRun = Annotated[bool, typer.Option("--dry-run", help="check only, write nothing")]


@import_app.command("units")
def import_units(file: File, dry_run: DryRun = False, base_url: BaseUrl = "http://127.0.0.1:8000"):
    """Org units: code, name, kind, parent_code, lat, lon, radius_m, special_difficulty."""
    _import("units", file, dry_run, base_url)


@import_app.command("cadres")
def import_cadres(file: File, dry_run: DryRun = False, base_url: BaseUrl = "http://127.0.0.1:8000"):
    """Cadres: name, phone, category, position, unit_code, role, start_date, end_date."""
    _import("cadres", file, dry_run, base_url)


@import_app.command("postings")
def import_postings(
    file: File, dry_run: DryRun = False, base_url: BaseUrl = "http://127.0.0.1:8000"
):
    """Postings of registered cadres: phone, unit_code, role, start_date, end_date."""
    _import("postings", file, dry_run, base_url)


@export_app.command("batch")
def export_batch(
    month: Annotated[str, typer.Argument(help="e.g. 2026-11")],
    out_file: Annotated[Path, typer.Option("--out", dir_okay=False)],
    fmt: Annotated[Literal["csv", "xlsx"], typer.Option("--format")] = "csv",
    base_url: BaseUrl = "http://127.0.0.1:8000",
) -> None:
    """A month's stipend batch as CSV or XLSX (a draft is marked draft)."""
    batch, content = _remote(base_url, lambda api: client.export_batch(api, month, fmt))
    out_file.write_bytes(content)
    out.print(f"{batch['month']} ({batch['status']}): {len(content)} bytes to {out_file}")


@app.command("close-week")
def close_week(
    week: Annotated[str, typer.Argument(help="e.g. 2026-W48")],
    base_url: BaseUrl = "http://127.0.0.1:8000",
) -> None:
    """Judge every cadre posted all week (again: re-judge with the data as it is)."""
    _print(_remote(base_url, lambda api: client.close_week(api, week)))


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[list[str], typer.Option(help="repeat for several roles")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="NEW_PASSWORD")],
    unit_id: Annotated[str | None, typer.Option(help="scope: this unit's subtree")] = None,
    cadre_id: Annotated[str | None, typer.Option(help="the cadre this login is")] = None,
    base_url: BaseUrl = "http://127.0.0.1:8000",
) -> None:
    """Create a login."""
    body = {"username": username, "password": password, "roles": role}
    body.update(unit_id=unit_id, cadre_id=cadre_id)
    _print(_remote(base_url, lambda api: client.user_create(api, **body)))


@user_app.command("deactivate")
def user_deactivate(username: str, base_url: BaseUrl = "http://127.0.0.1:8000") -> None:
    """Deactivate a login; its tokens stop working on every service within seconds."""
    _print(_remote(base_url, lambda api: client.user_deactivate(api, username)))


# Dead letters and the audit trail (straight to the broker and the databases)


Topic = Annotated[str, typer.Argument(help="e.g. frontline.assessment.dlq")]
Partition = Annotated[int | None, typer.Option(help="the dead letter's DLQ partition")]
Offset = Annotated[int | None, typer.Option(help="the dead letter's DLQ offset")]


def _dlq(action: str, topic: str, partition: int | None, offset: int | None) -> None:
    if (partition is None) != (offset is None):
        raise typer.BadParameter("--partition and --offset name a dead letter together")
    at = None if offset is None else (partition, offset)
    if action == "discard" and at is None:
        raise typer.BadParameter("discard needs --partition and --offset")
    raise typer.Exit(asyncio.run(_dlq_run(_kernel(), action, topic, at)))


async def _dlq_run(kernel: KernelSettings, action: str, topic: str, at: Any) -> int:
    transport = make_transport(kernel, "frontline-dlq")
    await transport.start()
    now = Clock().now()
    try:
        if action == "list":
            for entry in await dlq.entries(transport, topic, at):
                print(orjson.dumps(entry).decode())
        elif action == "replay":
            n = await dlq.replay(transport, topic, now=now, at=at)
            print(f"replayed {n} event(s) from {topic}")
        else:
            n = await dlq.discard(transport, topic, now=now, at=at)
            print(f"discarded {n} dead letter(s) in {topic}")
    except dlq.NotADeadLetter as exc:
        print(f"{topic}: {exc}", file=sys.stderr)
        return 2
    finally:
        await transport.stop()
    return 0


@dlq_app.command("list")
def dlq_list(topic: Topic, partition: Partition = None, offset: Offset = None) -> None:
    """Every dead letter with its status (dead, replayed, discarded)."""
    _dlq("list", topic, partition, offset)


@dlq_app.command("replay")
def dlq_replay(topic: Topic, partition: Partition = None, offset: Offset = None) -> None:
    """The one named by --partition and --offset, else every one still dead."""
    _dlq("replay", topic, partition, offset)


@dlq_app.command("discard")
def dlq_discard(topic: Topic, partition: Partition = None, offset: Offset = None) -> None:
    """The one named (required); the decision is kept on the topic."""
    _dlq("discard", topic, partition, offset)


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise typer.BadParameter("expected SEQ:HASH as printed by a previous verify")
    return int(seq), digest


@audit_app.command("verify")
def audit_verify(
    service: Annotated[ServiceName | None, typer.Argument(help="all three if omitted")] = None,
    anchor: Annotated[str | None, typer.Option(help="SEQ:HASH of an earlier head")] = None,
) -> None:
    """Check each service's audit chain, read from the database its settings name."""
    names = [service] if service else list(SERVICES)
    ok = asyncio.run(_audit_verify(_kernel(), names, _anchor(anchor)))
    raise typer.Exit(0 if ok else 1)


async def _audit_verify(
    kernel: KernelSettings, names: list[str], anchor: tuple[int, str] | None
) -> bool:
    ok = True
    for spec in specs(names):
        engine = make_engine(spec.settings_cls().url_or_default(spec.name, kernel.var_dir))
        try:
            report = await audit.verify(engine, anchor=anchor)
        except DBAPIError as exc:  # unreachable, or not migrated: say so, not a traceback
            print(f"{spec.name}: cannot read its audit log: {exc.orig}", flush=True)
            ok = False
            continue
        finally:
            await engine.dispose()
        head = f"head {report.head_seq}:{report.head_hash}"
        if report.ok:
            print(f"{spec.name}: {report.rows} rows, chain intact, {head}", flush=True)
            continue
        ok = False
        print(f"{spec.name}: {report.rows} rows, {len(report.problems)} problem(s), {head}")
        for problem in report.problems:
            print(f"  {spec.name} {problem}", flush=True)
    return ok


def resolve(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The command a command line names and its parameters, without running it (the
    deploy tests check manifests' command lines with it)."""
    command = typer.main.get_command(app)
    names: list[str] = []
    ctx = None
    args = list(argv)
    while True:
        ctx = command.make_context(command.name or "frontline", args, parent=ctx)
        if not hasattr(command, "resolve_command"):  # a command, not a group of them
            return " ".join(names), ctx.params
        name, sub, args = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])  # noqa: SLF001
        assert name is not None and sub is not None
        names.append(name)
        command = sub


def main(argv: list[str] | None = None) -> None:
    app(args=argv, prog_name="frontline")


if __name__ == "__main__":
    main()
