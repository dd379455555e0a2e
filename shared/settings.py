"""Settings: a kernel base read from FRONTLINE_* plus one class per service with its own prefix.

Defaults run embedded: SQLite files under var/, events through the local bus.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """aiokafka client settings; production keeps Kafka's safe defaults."""

    model_config = SettingsConfigDict(env_prefix="FRONTLINE_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = 6
    # Topics the services create: 3 copies, and a write (acks=all) needs 2 of them in sync,
    # so one broker can fail without losing an acknowledged event. A single dev broker
    # (`make up`, tests) sets both to 1.
    replication_factor: int = 3
    min_insync_replicas: int = 2
    # Registry topics are compacted (shared/kafka.py, topic_configs). Event topics keep 30
    # days: a consumer group down for longer has lost events and says so loudly in health
    # and logs (its service is then rebuilt from the log).
    # Dead letters keep 90 days for an operator to look at.
    retention_ms: int = 30 * 24 * 3600 * 1000
    dlq_retention_ms: int = 90 * 24 * 3600 * 1000
    enable_idempotence: bool = True
    acks: str = "all"
    request_timeout_ms: int = 30_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    fetch_max_wait_ms: int = 500
    # A member that does not poll for this long leaves its group; the runner polls (with
    # its partitions paused) while it retries one event through an outage.
    max_poll_interval_ms: int = 300_000
    max_poll_records: int = 500
    security_protocol: str = "PLAINTEXT"
    client_id_prefix: str = "frontline"
    topic_namespace: str = ""


class KernelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRONTLINE_", extra="ignore")

    mode: Literal["embedded", "distributed"] = "embedded"
    transport: Literal["local", "kafka"] = "local"
    var_dir: Path = Path("var")
    # The local bus is a small durable log (SQLite) shared by the services of one process.
    bus_url: str = ""
    # Signs list cursors; embedded mode generates var/cursor.key when empty (shared.pagination).
    cursor_secret: str = ""
    # Access tokens (shared/keys.py): no default key anywhere. Embedded mode makes its own
    # under var/; distributed mode refuses to start without these.
    jwt_private_key: str = ""  # the registry's Ed25519 signing key, PEM
    jwt_public_keys: str = ""  # further keys accepted (rotation): PEM blocks or a JWKS
    jwks_url: str = ""  # verifying services: the registry's /registry/.well-known/jwks.json
    jwks_min_refresh_seconds: float = 5.0
    # Encrypts ID-card numbers and bank accounts at rest (shared/fieldcrypt.py): the same on
    # the registry and incentives; embedded mode makes var/field.key when empty.
    field_key: str = ""
    jwt_issuer: str = "frontline-registry"
    token_ttl_seconds: int = 8 * 3600
    # How often each process re-reads the token-version projection (replicas of a service
    # share a database but each applies only its partitions' events).
    token_versions_refresh_seconds: float = 1.0
    # Docs and OpenAPI: always public embedded; distributed only when this is set.
    public_docs: bool = False
    bootstrap_admin_username: str = ""
    bootstrap_admin_password: str = ""
    timezone: str = "Asia/Shanghai"
    relay_batch_size: int = 200
    # Commits in this process wake the relay at once; the idle look only catches rows a
    # replica that went away left behind.
    relay_idle_seconds: float = 5.0
    relay_linger_seconds: float = 0.02
    # A handler error that repeats on the same event this many times sends it to the DLQ;
    # transient failures (database or broker down, deadlock, timeout) are retried without
    # limit, backing off from consumer_retry_seconds up to consumer_backoff_max_seconds.
    consumer_max_attempts: int = 3
    consumer_retry_seconds: float = 0.2
    consumer_backoff_max_seconds: float = 30.0
    run_scheduler: bool = True
    # Logs (shared/logs.py): JSON lines by default; successful requests sampled.
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Successful, fast requests with an access line (errors and slow ones always have one).
    access_log_sample: float = Field(default=0.01, ge=0, le=1)
    # Pruning horizons (shared/prune.py says why each is what it is).
    outbox_retention_days: float = 7
    inbox_retention_days: float = 45
    bus_retention_days: float = 30
    prune_interval_seconds: float = 3600
    # Traces (shared/tracing.py) go to this OTLP/HTTP endpoint; none are exported without.
    otlp_endpoint: str = ""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def local_bus_url(self) -> str:
        return self.bus_url or f"sqlite+aiosqlite:///{self.var_dir / 'bus.sqlite'}"


class ServiceSettings(BaseSettings):
    """What each service has of its own (each service subclasses it with its env prefix)."""

    database_url: str = ""
    migrate_on_start: bool = True

    def url_or_default(self, name: str, var_dir: Path) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{var_dir / f'{name}.sqlite'}"
