"""The Kubernetes manifests and compose file agree with the image and the supervisor."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from reenact.serving.supervisor import SupervisorConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "docker" / "k8s"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _load(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert len(docs) == 1, name
    return docs[0]


def _manifests() -> dict[str, dict]:
    by_kind = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                assert doc["kind"] not in by_kind, f"two {doc['kind']} manifests"
                by_kind[doc["kind"]] = doc
    return by_kind


# Kubernetes version the manifests are validated against (kubernetes-validate's schemas), and the
# custom resources its built-in schemas cannot know (the Prometheus operator's)
KUBERNETES_VERSION = "1.31"
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "PodMonitor")}


def test_every_manifest_is_valid_kubernetes():
    checked = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in (d for d in yaml.safe_load_all(path.read_text()) if d):
            kind = (doc["apiVersion"], doc["kind"])
            if kind in CUSTOM_RESOURCES:
                with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                continue
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked.append(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(
        checked
    )


def test_the_validator_refuses_a_broken_manifest():
    broken = _load("deployment.yaml")
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _exposed_ports() -> set[int]:
    line = next(x for x in DOCKERFILE.read_text().splitlines() if x.startswith("EXPOSE"))
    return {int(p) for p in line.split()[1:]}


def _container() -> dict:
    return _load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]


def _named_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in _container()["ports"]}


def test_every_manifest_parses_with_the_kinds_expected():
    kinds = set(_manifests())
    assert kinds == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodMonitor",
        "PodDisruptionBudget",
        "ConfigMap",
    }


def test_container_ports_are_the_images_and_the_supervisors_health_port():
    ports = _named_ports()
    assert set(ports.values()) == _exposed_ports()
    assert ports["health"] == SupervisorConfig().health_port
    cmd = DOCKERFILE.read_text()
    for name, flag in (
        ("http", "--http-port"),
        ("grpc", "--grpc-port"),
        ("metrics", "--metrics-port"),
    ):
        assert f'"{flag}={ports[name]}"' in cmd
    assert f"--health-port={ports['health']}" in cmd


def test_probes_point_at_the_supervisors_endpoints():
    container = _container()
    ports = _named_ports()
    ready = container["readinessProbe"]["httpGet"]
    live = container["livenessProbe"]["httpGet"]
    startup = container["startupProbe"]["httpGet"]
    assert ready["path"] == "/health/ready"
    assert live["path"] == "/health/live"
    assert startup["path"] in ("/health/live", "/health/ready")
    for probe in (ready, live, startup):
        assert ports[probe["port"]] == SupervisorConfig().health_port
    # a readiness probe shorter than the deep check's own time limit would read a slow
    # server as broken
    deep_timeout = SupervisorConfig().deep_check_timeout_s
    assert container["readinessProbe"]["timeoutSeconds"] >= deep_timeout
    # the startup probe allows at least the supervisor's start-up time limit
    startup_s = (
        container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"]
    )
    assert startup_s >= SupervisorConfig().startup_timeout_s


def test_gpu_resources_shm_and_non_root():
    pod = _load("deployment.yaml")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = next(name for name, path in mounts.items() if path == "/dev/shm")
    assert volumes[shm]["emptyDir"]["medium"] == "Memory"
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M)
    assert user is not None and pod["securityContext"]["runAsUser"] == int(user.group(1))


def test_termination_grace_covers_prestop_and_tritonservers_exit_timeout():
    pod = _load("deployment.yaml")["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    exit_timeout = int(re.search(r"--exit-timeout-secs=(\d+)", DOCKERFILE.read_text()).group(1))
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + exit_timeout


def test_service_pdb_and_podmonitor_select_the_deployments_pods():
    deployment = _load("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _load("service.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert _load("pdb.yaml")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    monitor = _load("podmonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = _named_ports()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "grpc", "metrics"}
    for port in service["spec"]["ports"]:
        assert port["port"] == ports[port["targetPort"]]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def test_hpa_scales_the_deployment_on_the_adapters_metric():
    hpa = _load("hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == _load("deployment.yaml")["metadata"]["name"]
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods"
    rules = yaml.safe_load(_load("prometheus-adapter-rules.yaml")["data"]["config.yaml"])["rules"]
    outputs = {rule["name"]["as"] for rule in rules}
    assert metric["pods"]["metric"]["name"] in outputs
    rule = next(r for r in rules if r["name"]["as"] == metric["pods"]["metric"]["name"])
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_compose_publishes_the_ports_and_probes_readiness():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    service = compose["services"]["reenact"]
    published = {int(p.split(":")[1]) for p in service["ports"]}
    assert published == _exposed_ports()
    assert service["init"] is True
    assert service["shm_size"]
    assert "/health/ready" in " ".join(service["healthcheck"]["test"])
    device = service["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"]
    # nothing outside the repository: the build context is the repository root
    assert (ROOT / "docker" / service["build"]["context"]).resolve() == ROOT
