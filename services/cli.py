"""`frontline` command line: run embedded or one service, and the admin back-doors.

frontline run                      all three services in one process (embedded)
frontline serve registry           one service (distributed mode: PostgreSQL + Kafka)
frontline migrate registry ...     upgrade services' databases (a release's migration job)
frontline dlq list|replay|discard TOPIC [--partition P --offset O]   dead letters
frontline seed --profile demo      a small live county (anlong: the seed report's county)
frontline audit verify [SERVICE]   check the audit chains (exit 1 on any break)
"""

import argparse
import asyncio
import os
import sys

import orjson
import uvicorn
from sqlalchemy.exc import DBAPIError

from services.main import SERVICES, embedded_app, service_app, specs
from shared import audit, dlq, logs, tracing
from shared.clock import Clock
from shared.db import make_engine
from shared.migrate import upgrade
from shared.runtime import make_transport
from shared.settings import KernelSettings

DEFAULT_PORTS = {"registry": 8001, "assessment": 8002, "incentives": 8003}
SERVE_ENV = "FRONTLINE_SERVE_SERVICE"


def serve_factory():
    """The app of one `frontline serve --workers N` worker process."""
    return service_app(os.environ[SERVE_ENV], kernel=KernelSettings())


def _announce(kernel: KernelSettings, port: int) -> None:
    user = kernel.bootstrap_admin_username or "admin"
    print(f"Frontline (embedded) on http://127.0.0.1:{port}", flush=True)
    print(f"  services: /registry  /assessment  /incentives   data: {kernel.var_dir}/", flush=True)
    if not kernel.bootstrap_admin_password:
        print(f"  dev admin: {user} / admin  (set FRONTLINE_BOOTSTRAP_ADMIN_*)", flush=True)
    else:
        print(f"  bootstrap admin: {user}", flush=True)


async def _dlq(kernel: KernelSettings, action: str, topic: str, at: dlq.Position | None) -> int:
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


async def _migrate(kernel: KernelSettings, names: list[str]) -> None:
    for spec in specs(names):
        settings = spec.settings_cls()
        engine = make_engine(settings.url_or_default(spec.name, kernel.var_dir))
        try:
            await upgrade(engine, spec.migrations)
        finally:
            await engine.dispose()
        print(f"{spec.name}: schema at head", flush=True)


def _seed(kernel: KernelSettings, args: argparse.Namespace) -> None:
    """Credentials: FRONTLINE_USERNAME/FRONTLINE_PASSWORD, else the bootstrap admin's."""
    from services import seed

    username = os.environ.get("FRONTLINE_USERNAME") or kernel.bootstrap_admin_username or "admin"
    password = os.environ.get("FRONTLINE_PASSWORD") or kernel.bootstrap_admin_password
    if not password:
        sys.exit("set FRONTLINE_PASSWORD (an org_admin's) or FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD")

    def progress(what: str, done: int, total: int) -> None:
        print(f"  {what}: {min(done, total)}/{total}", flush=True)

    result = asyncio.run(
        seed.run(
            args.profile,
            base_url=args.base_url,
            username=username,
            password=password,
            scale=args.scale,
            progress=progress,
        )
    )
    logins = result.pop("logins", {})
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    for name, secret in logins.items():
        print(f"  login {name} / {secret}")


async def _audit_verify(
    kernel: KernelSettings, names: list[str], anchor: tuple[int, str] | None
) -> bool:
    """Each service's chain, read from the database its settings name (as `serve` would)."""
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


def _anchor(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:HASH as printed by a previous verify")
    return int(seq), digest


# Our JSON access lines replace uvicorn's; its logging stays as configured by shared.logs.
_UVICORN = {"log_config": None, "access_log": False, "server_header": False}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frontline")
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="all three services in one process (embedded)")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve = sub.add_parser("serve", help="one service (distributed mode)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--port", type=int)
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("FRONTLINE_WORKERS", 1)),
        help="processes on one port; each is a replica (shares the consumer group and outbox)",
    )
    sim = sub.add_parser("simulate", help="phones signing in against a running Frontline")
    sim.add_argument("--base-url", default="http://127.0.0.1:8000")
    sim.add_argument("--cadres", type=int, default=100)
    sim.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    sim.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    sim.add_argument(
        "--admin-user", default=os.environ.get("FRONTLINE_BOOTSTRAP_ADMIN_USERNAME") or "admin"
    )
    sim.add_argument(
        "--admin-password", default=os.environ.get("FRONTLINE_BOOTSTRAP_ADMIN_PASSWORD") or "admin"
    )
    sim.add_argument(
        "--jwt-secret",
        default="",
        help="sign cadre tokens locally instead of creating a user per cadre",
    )
    mig = sub.add_parser("migrate", help="upgrade services' databases to the latest schema")
    # No `choices` here: argparse checks the whole default list against them and refuses it.
    mig.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(SERVICES))
    seed = sub.add_parser("seed", help="load a county through the services' HTTP write paths")
    seed.add_argument("--profile", choices=("anlong", "demo"), default="demo")
    seed.add_argument("--scale", type=float, default=1.0, help="anlong: a fraction of every count")
    seed.add_argument(
        "--base-url", default=os.environ.get("FRONTLINE_URL", "http://127.0.0.1:8000")
    )
    dead = sub.add_parser(
        "dlq",
        help="list, replay or discard dead letters",
        description="list: every dead letter with its status (dead, replayed, discarded). "
        "replay: the one named by --partition and --offset, else every one still dead. "
        "discard: the one named (required); the decision is kept on the topic.",
    )
    dead.add_argument("action", choices=("list", "replay", "discard"))
    dead.add_argument("topic", help="e.g. frontline.assessment.dlq")
    dead.add_argument("--partition", type=int, help="the dead letter's DLQ partition")
    dead.add_argument("--offset", type=int, help="the dead letter's DLQ offset")
    aud = sub.add_parser("audit", help="check services' hash-chained audit logs")
    aud.add_argument("action", choices=("verify",))
    aud.add_argument("service", nargs="?", choices=SERVICES, help="all three if omitted")
    aud.add_argument("--anchor", type=_anchor, help="SEQ:HASH of an earlier head to hold to")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "migrate":
        if unknown := set(args.services) - set(SERVICES):
            parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
        args.services = args.services or list(SERVICES)
    if args.cmd == "dlq":
        if (args.partition is None) != (args.offset is None):
            parser.error("--partition and --offset name a dead letter together")
        if args.action == "discard" and args.offset is None:
            parser.error("discard needs --partition and --offset")
        args.at = None if args.offset is None else (args.partition, args.offset)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)

    kernel = KernelSettings()
    logs.configure(kernel.log_level, kernel.log_format)
    tracing.configure(kernel.otlp_endpoint, f"frontline-{getattr(args, 'service', 'embedded')}")
    if args.cmd == "seed":
        _seed(kernel, args)
    elif args.cmd == "simulate":
        from services.simulate import simulate

        print(orjson.dumps(asyncio.run(simulate(args)), option=orjson.OPT_INDENT_2).decode())
    elif args.cmd == "migrate":
        asyncio.run(_migrate(kernel, args.services))
    elif args.cmd == "dlq":
        sys.exit(asyncio.run(_dlq(kernel, args.action, args.topic, args.at)))
    elif args.cmd == "audit":
        names = [args.service] if args.service else list(SERVICES)
        sys.exit(0 if asyncio.run(_audit_verify(kernel, names, args.anchor)) else 1)
    elif args.cmd == "run":
        _announce(kernel, args.port)
        uvicorn.run(embedded_app(kernel=kernel), host=args.host, port=args.port, **_UVICORN)
    else:
        port = args.port or DEFAULT_PORTS[args.service]
        if args.workers > 1:
            # Worker processes import the app by name; the service travels in the environment.
            os.environ[SERVE_ENV] = args.service
            uvicorn.run(
                "services.cli:serve_factory",
                factory=True,
                workers=args.workers,
                host=args.host,
                port=port,
                **_UVICORN,
            )
        else:
            app = service_app(args.service, kernel=kernel)
            uvicorn.run(app, host=args.host, port=port, **_UVICORN)
    sys.exit(0)


if __name__ == "__main__":
    main()
