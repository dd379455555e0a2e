"""PostgreSQL for tests: the launcher lives in shared/devstack/postgres.py (`make up` uses it
too); re-exported here for the fixtures and benchmarks."""

from shared.devstack.postgres import (  # noqa: F401
    FORCE_THROWAWAY_ENV,
    _run_sync,
    create_database,
    drop_database,
    postgres_server,
    unique_db_name,
)
