"""deploy/k8s is validated, not applied (no cluster here): every object, base and overlays as
kustomize would render them, against the Kubernetes schemas; and the wiring against the code
(ports, probe paths, settings, CLI commands, topics).
"""

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from services.cli import DEFAULT_PORTS, main, resolve
from services.main import SERVICES, embedded_app
from shared.events import all_topics
from tests.deploy.test_deploy_files import known_env

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES = "1.33.0"
OVERLAYS = ["dev", "prod"]


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(base, patch):
    """A strategic merge patch as kustomize applies it to these files: maps merge, lists of
    named items merge by name, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list) and all("name" in p for p in patch):
        out = list(base)
        for p in patch:
            i = next((i for i, b in enumerate(out) if b.get("name") == p["name"]), None)
            if i is None:
                out.append(p)
            else:
                out[i] = _merge(out[i], p)
        return out
    return patch


def render(directory: Path) -> list[dict]:
    """What `kustomize build directory` gives, for the features these files use."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict] = []
    for res in kust.get("resources", []):
        path = directory / res
        objects += render(path) if path.is_dir() else copy.deepcopy(_docs(path))
    for patch_ref in kust.get("patches", []):
        [patch] = _docs(directory / patch_ref["path"])
        targets = [
            o
            for o in objects
            if (o["kind"], o["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        assert len(targets) == 1, f"patch {patch_ref['path']} matches {len(targets)} objects"
        objects[objects.index(targets[0])] = _merge(targets[0], patch)
    for rep in kust.get("replicas", []):
        [dep] = [
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == rep["name"]
        ]
        dep["spec"]["replicas"] = rep["count"]
    for image in kust.get("images", []):
        for o in objects:
            for c in _containers(o):
                if c["image"].split(":")[0] == image["name"]:
                    c["image"] = f"{image['name']}:{image['newTag']}"
    if ns := kust.get("namespace"):
        for o in objects:
            o["metadata"]["namespace"] = ns
    return objects


def _containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    return pod.get("containers", [])


def _env_names(container: dict, configmaps: dict[str, dict]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for src in container.get("envFrom", []):
        names |= set(configmaps[src["configMapRef"]["name"]]["data"])
    return names


@pytest.fixture(scope="module")
def routes() -> set[str]:
    return set(embedded_app().openapi()["paths"])


@pytest.mark.parametrize("where", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_object_validates_against_the_kubernetes_schemas(where):
    objects = render(K8S / where)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("kafka.strimzi.io/"):
            continue  # a custom resource: checked against the code below
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize("where", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_the_wiring_agrees_with_the_code(where, routes):
    objects = render(K8S / where)
    by_kind: dict[str, dict[str, dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    configmaps = by_kind["ConfigMap"]
    env_ok = known_env()
    assert set(by_kind["Deployment"]) == set(SERVICES)
    for name, dep in by_kind["Deployment"].items():
        [c] = _containers(dep)
        port = DEFAULT_PORTS[name]
        assert c["ports"] == [{"name": "http", "containerPort": port}]
        command, params = resolve(c["args"][1:])
        assert (command, params["service"], params["port"]) == ("serve", name, port)
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] in routes, (name, probe)
        assert c["readinessProbe"]["httpGet"]["path"] == f"/{name}/health"
        names = _env_names(c, configmaps)
        assert names <= env_ok, names - env_ok
        assert f"FRONTLINE_{name.upper()}_DATABASE_URL" in names
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        svc = by_kind["Service"][name]
        assert svc["spec"]["ports"][0]["port"] == port
        assert by_kind["PodDisruptionBudget"][name]["spec"]["minAvailable"] == 1
    hpa = by_kind["HorizontalPodAutoscaler"]["assessment"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "assessment"
    [job] = by_kind["Job"].values()
    [c] = _containers(job)
    command, params = resolve(c["args"][1:])
    assert command == "migrate" and set(params["services"]) == set(SERVICES)
    assert _env_names(c, configmaps) <= env_ok


def test_topics_are_replicated_three_times_and_match_the_code():
    topics = [o for o in render(K8S / "base") if o["kind"] == "KafkaTopic"]
    # The services' topics (a test's toy service may have registered more event types).
    ours = {t for t in all_topics() if t.split(".")[1] in SERVICES}
    assert {t["spec"]["topicName"] for t in topics} == ours
    for t in topics:
        assert t["spec"]["replicas"] == 3
        assert t["spec"]["config"]["min.insync.replicas"] == 2
        assert t["metadata"]["labels"]["strimzi.io/cluster"]


def test_the_overlays_change_what_they_say():
    dev = {
        o["metadata"]["name"]: o for o in render(K8S / "overlays/dev") if o["kind"] == "Deployment"
    }
    prod = {
        o["metadata"]["name"]: o for o in render(K8S / "overlays/prod") if o["kind"] == "Deployment"
    }
    assert {d["spec"]["replicas"] for d in dev.values()} == {1}
    assert {d["spec"]["replicas"] for d in prod.values()} == {3}
    [c] = _containers(prod["assessment"])
    assert c["resources"]["limits"]["cpu"] == "2" and c["image"] == "frontline:0.1.0"
    assert all(o["metadata"]["namespace"] == "frontline-dev" for o in render(K8S / "overlays/dev"))


def test_the_migrate_command_refuses_an_unknown_service(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["migrate", "registry", "payroll"])
    assert stop.value.code == 2 and "payroll" in capsys.readouterr().err
