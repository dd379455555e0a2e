"""deploy/ is validated, not run (no Docker engine here): the wiring must name settings
that exist, databases that the init script creates, and the ports of DESIGN.md §7.1.
"""

import re
from pathlib import Path

import yaml

from services.cli import DEFAULT_PORTS
from services.main import specs
from shared.settings import KafkaSettings, KernelSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def known_env() -> set[str]:
    names = {f"FRONTLINE_{f.upper()}" for f in KernelSettings.model_fields}
    names |= {f"FRONTLINE_KAFKA_{f.upper()}" for f in KafkaSettings.model_fields}
    for spec in specs():
        prefix = spec.settings_cls.model_config["env_prefix"]
        names |= {f"{prefix}{f.upper()}" for f in spec.settings_cls.model_fields}
    return names


def test_every_frontline_variable_is_a_real_setting():
    services = compose()["services"]
    used = {
        k
        for name in ("registry", "assessment", "incentives")
        for k in services[name]["environment"]
        if k.startswith("FRONTLINE_")
    }
    assert used and used <= known_env(), used - known_env()


def test_each_service_runs_on_its_port_with_its_own_database():
    services = compose()["services"]
    created = set(re.findall(r"CREATE DATABASE (\w+);", (DEPLOY / "postgres-init.sql").read_text()))
    for name, port in DEFAULT_PORTS.items():
        env = services[name]["environment"]
        assert env["SERVICE"] == name and env["PORT"] == str(port)
        url = env[f"FRONTLINE_{name.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and url.rsplit("/", 1)[1] == name
    assert created == set(DEFAULT_PORTS)


def test_kafka_is_kraft_and_topics_are_created_by_the_services():
    kafka = compose()["services"]["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_dockerfile_runs_the_cli_that_exists():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "frontline serve" in text and "pip install" in text


def test_containers_restart_and_services_wait_for_healthy_dependencies():
    services = compose()["services"]
    for name, svc in services.items():
        assert svc["restart"] in ("always", "unless-stopped"), name
        assert svc.get("healthcheck", {}).get("test"), name
    for name in DEFAULT_PORTS:
        deps = services[name]["depends_on"]
        assert {d: c["condition"] for d, c in deps.items()} == {
            "postgres": "service_healthy",
            "kafka": "service_healthy",
        }
        # The probe asks the service's own liveness route, on its own port.
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "/health/live" in probe and "PORT" in probe and "SERVICE" in probe


def test_kubernetes_topics_are_created_as_the_services_would_create_them():
    from shared.kafka import KafkaTransport
    from shared.settings import KafkaSettings

    made = KafkaTransport(KafkaSettings()).topic_configs
    docs = yaml.safe_load_all((DEPLOY / "k8s/base/topics.yaml").read_text())
    for topic in docs:
        name, config = topic["spec"]["topicName"], topic["spec"]["config"]
        assert {k: str(v) for k, v in config.items()} == made(name), name
