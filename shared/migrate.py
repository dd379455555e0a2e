"""Alembic per service, driven from code: embedded mode and tests upgrade on start.

Each service keeps `migrations/` (env.py + versions/) beside its models; env.py calls
`run_migrations(metadata)`. New revision: `make migration SERVICE=registry MSG="..."`.

Tables every service needs (audit log, entity versions, user token versions) are defined
once in the kernel and migrated by the kernel's own branch, `shared/migrations/versions/`
(branch label "kernel"), which every service database carries beside its own; those
revisions are written by hand. The outbox and inbox predate that branch and stay in each
service's first revision.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

KERNEL_VERSIONS = Path(__file__).parent / "migrations" / "versions"
KERNEL_BRANCH = "kernel"


def alembic_config(script_location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("version_locations", f"{script_location / 'versions'} {KERNEL_VERSIONS}")
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(slug)s")
    return cfg


def run_migrations(metadata: MetaData) -> None:
    """Body of every service's env.py."""
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        url = context.config.get_main_option("sqlalchemy.url")
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as conn:
            _configure_and_run(conn, metadata)
        return
    _configure_and_run(connection, metadata)


def _configure_and_run(connection: Connection, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade(engine: AsyncEngine, script_location: Path, revision: str = "heads") -> None:
    cfg = alembic_config(script_location)

    def _run(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            conn.execute(text("SELECT pg_advisory_xact_lock(7246001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def downgrade(engine: AsyncEngine, script_location: Path, revision: str = "base") -> None:
    cfg = alembic_config(script_location)

    def _run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


def new_revision(service: str, message: str) -> None:
    """Autogenerate a revision for one service against a scratch SQLite database at head."""
    from importlib import import_module

    spec = import_module(f"services.{service}.app").spec
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scratch.sqlite'}"
        cfg = alembic_config(spec.migrations)
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "heads")
        command.revision(cfg, message=message, autogenerate=True, head=_service_head(cfg))


def _service_head(cfg: Config) -> str:
    """The head of the service's own branch (the kernel branch is the other head)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    kernel = {r.revision for r in script.iterate_revisions(f"{KERNEL_BRANCH}@head", "base")}
    [head] = [h for h in script.get_heads() if h not in kernel]
    return head


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "revision":
        sys.exit("usage: python -m shared.migrate revision SERVICE MESSAGE")
    new_revision(sys.argv[2], sys.argv[3])
