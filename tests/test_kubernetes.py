"""deploy/kubernetes/: every manifest validates offline, and the manifests agree with the server.

Kubernetes kinds are validated (strict: unknown fields are errors) against the schemas that
kubernetes-validate bundles, for the oldest and the newest Kubernetes version we claim. KServe's
InferenceService is a CRD that kubernetes-validate does not bundle: its predictor is, in KServe's
API (v1beta1 PredictorSpec), a core PodSpec inlined with KServe's own scaling fields, so the
test validates the predictor as a PodSpec (inside a Pod) against the bundled schema, and checks
KServe's own fields and the resource's outline by hand.
"""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from mlapi.testing import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
KSERVE_FIELDS = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency"}


def documents() -> list[dict]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> dict:
    (doc,) = [doc for doc in documents() if doc["kind"] == kind]
    return doc


def test_every_manifest_is_a_kubernetes_object():
    kinds = sorted(doc["kind"] for doc in documents())
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "InferenceService",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "kind",
    [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PersistentVolumeClaim",
    ],
)
def test_kubernetes_kinds_validate_strictly(kind, version):
    kubernetes_validate.validate(by_kind(kind), version, strict=True)


def test_validation_really_rejects_a_bad_manifest():
    bad = by_kind("Deployment")
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kserve_predictor_is_a_valid_pod_spec(version):
    service = by_kind("InferenceService")
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert set(service["spec"]) == {"predictor"}
    predictor = dict(service["spec"]["predictor"])
    kserve = {key: predictor.pop(key) for key in KSERVE_FIELDS & set(predictor)}
    assert all(isinstance(v, int) and v >= 1 for v in kserve.values())
    assert kserve["minReplicas"] <= kserve["maxReplicas"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": predictor}
    kubernetes_validate.validate(pod, version, strict=True)
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"


def env_of(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def pod_specs() -> list[dict]:
    return [
        by_kind("Deployment")["spec"]["template"]["spec"],
        by_kind("InferenceService")["spec"]["predictor"],
    ]


@pytest.mark.parametrize("pod", pod_specs(), ids=["deployment", "kserve"])
def test_probes_reach_the_servers_health_and_readiness_on_its_port(pod, client):
    (container,) = pod["containers"]
    port = int(env_of(container)["PORT"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in named.values()
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in container:
            continue
        get = container[probe]["httpGet"]
        assert named.get(get["port"], get["port"]) == port
        assert client.get(get["path"]).status_code == 200  # the route exists on the server


@pytest.mark.parametrize("pod", pod_specs(), ids=["deployment", "kserve"])
def test_non_root_read_only_with_metrics_on_an_empty_dir(pod):
    (container,) = pod["containers"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    image_uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    metrics_dir = env_of(container)["PROMETHEUS_MULTIPROC_DIR"]
    assert "emptyDir" in volumes[mounts[metrics_dir]]
    models = volumes[mounts[env_of(container)["MODELS_DIR"]]]
    assert (
        models["persistentVolumeClaim"]["claimName"]
        == by_kind("PersistentVolumeClaim")["metadata"]["name"]
    )
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert set(limits) == set(requests) == {"cpu", "memory"}


def test_service_hpa_and_pdb_select_the_deployment():
    deployment = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert by_kind("Service")["spec"]["selector"].items() <= labels.items()
    assert (
        by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    )
    target = by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    service_port = by_kind("Service")["spec"]["ports"][0]["targetPort"]
    assert service_port in {p["name"] for p in container["ports"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == int(env_of(container)["PORT"])
