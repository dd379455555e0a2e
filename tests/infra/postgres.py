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


class RestartablePostgres:
    """A throwaway PostgreSQL cluster a test may restart (a fault test's own, never the
    shared server): `restart("immediate")` is a crash and recovery, as after a failover."""

    def __init__(self) -> None:
        import os
        import pwd
        import tempfile

        from shared.devstack import postgres as pg

        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = "postgres" if pg._user_exists("postgres") else "nobody"
            self.as_user = ["runuser", "-u", user, "--"]
        self.tmp = tempfile.mkdtemp(prefix="fl-pg-fault-")
        if self.as_user:
            pw = pwd.getpwnam(self.as_user[2])
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        self.data, self.port = os.path.join(self.tmp, "data"), pg._free_port()
        self.pg_ctl = [
            *self.as_user,
            pg._pg_bin("pg_ctl"),
            "-D",
            self.data,
            "-w",
            "-l",
            os.path.join(self.tmp, "log"),
        ]
        self.opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        init = [pg._pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres"]
        pg._check("initdb", [*self.as_user, *init, "--no-sync", "-E", "UTF8"], self.tmp)
        pg._check("pg_ctl start", [*self.pg_ctl, "-o", self.opts, "start"], self.tmp)

    @property
    def base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def restart(self, mode: str = "immediate") -> None:
        from shared.devstack import postgres as pg

        pg._check("pg_ctl stop", [*self.pg_ctl, "-m", mode, "stop"], self.tmp)
        pg._check("pg_ctl start", [*self.pg_ctl, "-o", self.opts, "start"], self.tmp)

    def stop(self) -> None:
        import os
        import shutil
        import subprocess

        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run([*self.pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
