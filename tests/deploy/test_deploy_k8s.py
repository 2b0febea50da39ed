"""Kubernetes manifests: strict schema validation, the seed's HPA, hardening and wiring."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.deploy_support import (
    K8S,
    PROMETHEUS,
    Doc,
    find,
    render_kustomization,
    run,
    settings_env_names,
    tool,
    walk,
)

pytestmark = pytest.mark.integration  # starts servers or subprocesses

# Custom resources of operators (Prometheus Operator, CloudNativePG): kubernetes-validate knows
# only core kinds, so these are left out of its strict check and checked by their own tests here.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "Cluster"}
# The Secret CloudNativePG writes for the database owner (not in secrets.env: the operator
# makes it).
OPERATOR_SECRETS = {"postgres-app": {"uri"}}
# 1.30 is the oldest release with the preStop `sleep` action on by default; 1.37 the newest known.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
STRONG = "a-strong-test-secret-0123456789-abcdefghij"


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    """The main kustomization, rendered with the example secrets standing in for secrets.env."""
    return render_kustomization(K8S, {"secrets.env": K8S / "secrets.env.example"})


@pytest.fixture(scope="module")
def adapter_docs() -> list[Doc]:
    """The prometheus-adapter kustomization, rendered."""
    return render_kustomization(K8S / "prometheus-adapter")


@pytest.fixture(scope="module")
def api(docs: list[Doc]) -> Doc:
    """The API Deployment."""
    return find(docs, "Deployment", "tenantrag")


def container(workload: Doc) -> Doc:
    """The first (only) container of a workload's pod template."""
    containers: list[Doc] = workload["spec"]["template"]["spec"]["containers"]
    return containers[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_manifests_pass_strict_schema_validation(
    docs: list[Doc], adapter_docs: list[Doc], version: str, tmp_path: Path
) -> None:
    """kubernetes-validate --strict accepts every core resource (unknown fields are errors)."""
    core = [d for d in docs + adapter_docs if d["kind"] not in OPERATOR_KINDS]
    # left out, because kubernetes-validate has no schema for them: exactly these, each checked
    # by its own test below (ServiceMonitor, PrometheusRule, the CloudNativePG Cluster)
    left_out = {d["kind"] for d in docs + adapter_docs} - {d["kind"] for d in core}
    assert left_out == OPERATOR_KINDS
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(core))
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    """No manifest in deploy/k8s is forgotten by kustomization.yaml."""
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_servicemonitor_scrapes_the_api_service_every_15s(docs: list[Doc]) -> None:
    """The ServiceMonitor scrapes the API Service's named port at /metrics every 15 s."""
    monitor = find(docs, "ServiceMonitor", "tenantrag")
    service = find(docs, "Service", "tenantrag")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")


def test_servicemonitor_scrapes_with_the_apis_metrics_token(docs: list[Doc], api: Doc) -> None:
    """The API runs distributed (Redis), so /metrics needs its token: the ServiceMonitor sends the
    very Secret key the pod reads, and kustomize is told to rename that reference with the hash."""
    monitor = find(docs, "ServiceMonitor", "tenantrag")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["authorization"]["type"] == "Bearer"
    credentials = endpoint["authorization"]["credentials"]
    env = {v["name"]: v for v in container(api)["env"]}
    assert env["TENANTRAG_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == credentials
    spec = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    (configuration,) = spec["configurations"]
    names = yaml.safe_load((K8S / configuration).read_text())["nameReference"]
    paths = {
        (f["kind"], f["path"]) for n in names if n["kind"] == "Secret" for f in n["fieldSpecs"]
    }
    assert ("ServiceMonitor", "spec/endpoints/authorization/credentials/name") in paths


def test_prometheusrule_is_well_formed_and_passes_promtool(docs: list[Doc], tmp_path: Path) -> None:
    """The PrometheusRule's spec is a valid Prometheus rule file by promtool's own check."""
    rule = find(docs, "PrometheusRule", "tenantrag")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    result = run(tool("promtool"), "check", "rules", tmp_path / "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rule["spec"] == yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())


def test_hpa_is_exactly_the_seed_scalability_model(docs: list[Doc]) -> None:
    """CPU 70%, memory 80%, P95 2.5 s, in-flight 30 per pod; 2..20; +100%/15 s, -50%/60 s."""
    hpa = find(docs, "HorizontalPodAutoscaler", "tenantrag")
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tenantrag",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 20)
    targets: dict[str, Any] = {}
    for metric in spec["metrics"]:
        if metric["type"] == "Resource":
            targets[metric["resource"]["name"]] = metric["resource"]["target"]["averageUtilization"]
        else:
            assert metric["type"] == "Pods"
            target = metric["pods"]["target"]
            assert target["type"] == "AverageValue"
            targets[metric["pods"]["metric"]["name"]] = float(target["averageValue"])
    assert targets == {
        "cpu": 70,
        "memory": 80,
        "tenantrag_http_request_p95_seconds": 2.5,
        "tenantrag_http_requests_in_flight": 30.0,
    }
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    assert down["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]


def test_hpa_pod_metrics_are_served_by_the_adapter_rules(
    docs: list[Doc], adapter_docs: list[Doc]
) -> None:
    """Every Pods metric the HPA reads is a name prometheus-adapter's rules publish."""
    hpa = find(docs, "HorizontalPodAutoscaler", "tenantrag")
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    config = yaml.safe_load(
        find(adapter_docs, "ConfigMap", "prometheus-adapter")["data"]["config.yaml"]
    )
    assert wanted == {rule["name"]["as"] for rule in config["rules"]}
    assert (
        find(adapter_docs, "ConfigMap", "prometheus-adapter")["metadata"]["namespace"]
        == "monitoring"
    )


def test_api_resources_and_workers_follow_the_seed(api: Doc) -> None:
    """The API asks 500m/512Mi, may use 2 CPUs/2Gi, and runs `tenantrag serve` with 4 workers."""
    c = container(api)
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert c["command"] == ["tenantrag"]
    assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
    assert "replicas" not in api["spec"], "the HPA owns the replica count"


def test_api_probes_and_graceful_drain(api: Doc) -> None:
    """Liveness /health, readiness /ready, a startup probe, and a drain within the grace period."""
    c = container(api)
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    uvicorn_drain_s = 30  # cli.py passes timeout_graceful_shutdown=30 to uvicorn
    assert (
        api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > sleep + uvicorn_drain_s
    )


def test_api_pod_is_locked_down(api: Doc) -> None:
    """Non-root, read-only root filesystem with an emptyDir /tmp, no capabilities, no token."""
    pod = api["spec"]["template"]["spec"]
    c = container(api)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"]) == (True, False)
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_api_pods_spread_over_nodes_and_zones(api: Doc) -> None:
    """Topology spread keys on hostname and zone, selecting the API's own pods."""
    pod = api["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def _selects(selector: dict[str, str], workload: Doc) -> bool:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return selector.items() <= labels.items()


def test_services_and_budgets_select_their_pods(docs: list[Doc]) -> None:
    """Every Service and PodDisruptionBudget selects the pods of exactly one workload."""
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    for doc in docs:
        if doc["kind"] == "Service":
            selector = dict(doc["spec"]["selector"])
            selector.pop("statefulset.kubernetes.io/pod-name", None)  # set by the controller
        elif doc["kind"] == "PodDisruptionBudget":
            assert doc["spec"]["maxUnavailable"] == 1
            selector = doc["spec"]["selector"]["matchLabels"]
        else:
            continue
        owners = [w["metadata"]["name"] for w in workloads if _selects(selector, w)]
        assert len(owners) == 1, f"{doc['kind']}/{doc['metadata']['name']} selects {owners}"


def test_ingress_terminates_tls_and_publishes_only_the_api(docs: list[Doc]) -> None:
    """The Ingress has TLS for its host and routes /api and /health, never /metrics or /ready."""
    ingress = find(docs, "Ingress", "tenantrag")
    (rule,) = ingress["spec"]["rules"]
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "tenantrag-tls"}]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert paths == {"/api", "/health"}


@pytest.mark.parametrize("name", ["redis", "opensearch"])
def test_stateful_backends_are_three_spread_replicas_with_storage(
    docs: list[Doc], name: str
) -> None:
    """Redis and OpenSearch: 3 replicas, one per node, a PVC each, a headless governing Service."""
    sts = find(docs, "StatefulSet", name)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    (term,) = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert _selects(term["labelSelector"]["matchLabels"], sts)
    headless = find(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_redis_persists_with_append_only_file(docs: list[Doc]) -> None:
    """Redis runs with appendonly and a password from the Secret."""
    script = container(find(docs, "StatefulSet", "redis"))["args"][0]
    assert "--appendonly yes" in script and '--requirepass "$REDIS_PASSWORD"' in script


def _ports(rules: list[Doc]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_api_network_policy_allows_only_the_listed_peers(docs: list[Doc]) -> None:
    """API in: ingress controller, Prometheus on 8000; out: Redis, OpenSearch, OTLP, DNS, 443."""
    policy = find(docs, "NetworkPolicy", "tenantrag-api")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["spec"]["ingress"]
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in ingress["from"]
    }
    assert sources == {"ingress-nginx", "monitoring"}
    assert _ports([ingress]) == {8000}
    assert _ports(policy["spec"]["egress"]) == {5432, 6379, 9200, 4317, 4318, 53, 443}
    (public,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert _ports([public]) == {443}
    assert "169.254.0.0/16" in public["to"][0]["ipBlock"]["except"]
    default = find(docs, "NetworkPolicy", "default-deny")
    assert default["spec"]["podSelector"] == {} and "ingress" not in default["spec"]


def test_every_secret_key_referenced_is_in_the_example(docs: list[Doc]) -> None:
    """Each secretKeyRef names the generated Secret and a key secrets.env.example defines."""
    secret = find(docs, "Secret", "tenantrag-secrets")
    refs = [node["secretKeyRef"] for node in walk(docs) if "secretKeyRef" in node]
    assert refs, "no secretKeyRef found"
    ours = [ref for ref in refs if ref["name"] not in OPERATOR_SECRETS]
    assert {ref["name"] for ref in ours} == {"tenantrag-secrets"}
    assert {ref["key"] for ref in ours} <= set(secret["data"])
    for ref in refs:
        if ref["name"] in OPERATOR_SECRETS:
            assert ref["key"] in OPERATOR_SECRETS[ref["name"]], ref


def test_example_secrets_are_placeholders_the_service_refuses() -> None:
    """Every value in secrets.env.example is a placeholder, so nothing real is committed."""
    values = [
        line.partition("=")[2]
        for line in (K8S / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert values and set(values) == {"changeme"}
    result = run("git", "check-ignore", "-q", K8S / "secrets.env")
    assert result.returncode == 0, "deploy/k8s/secrets.env must be git-ignored"


def _api_environment(docs: list[Doc], api: Doc) -> dict[str, str]:
    """The API container's environment as the kubelet builds it, with a strong stand-in secret."""
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in find(docs, "Secret", "tenantrag-secrets")["data"].items()
    }
    secret["TENANTRAG_JWT_SECRET"] = STRONG
    secret["TENANTRAG_METRICS_TOKEN"] = STRONG
    # what CloudNativePG writes into postgres-app's `uri` for the owner of postgres.yaml
    operator = {"uri": f"postgresql://tenantrag:{STRONG}@postgres-rw.tenantrag:5432/tenantrag"}
    env = dict(find(docs, "ConfigMap", "tenantrag-config")["data"])
    for var in container(api)["env"]:
        ref = var.get("valueFrom", {}).get("secretKeyRef", {})
        source = operator if ref.get("name") in OPERATOR_SECRETS else secret
        value = var.get("value") or source[ref["key"]]
        env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
    return env


def test_api_settings_variables_are_real_and_parse(docs: list[Doc], api: Doc) -> None:
    """Every TENANTRAG_* variable the pod gets is a Settings field and Settings accepts it."""
    env = _api_environment(docs, api)
    names = {n for n in env if n.startswith("TENANTRAG_")}
    assert names - settings_env_names() == set()
    script = (
        "from tenantrag.settings import Settings; s = Settings(_env_file=None); "
        "assert s.search_backend == 'opensearch' and s.redis_url and s.opensearch_url "
        "and s.database_url.startswith('postgresql://') and s.expected_replicas == 8"
    )
    result = run(tool("python"), "-c", script, env=env)
    assert result.returncode == 0, result.stderr


def test_api_keeps_no_shared_volume(docs: list[Doc], api: Doc) -> None:
    """No PersistentVolumeClaim anywhere for the API: its data folder (a rebuildable copy and
    indexes) is a size-limited emptyDir, so any number of pods on any nodes share nothing."""
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    assert "persistentVolumeClaim" not in str(volumes)
    assert volumes["data"]["emptyDir"]["sizeLimit"]
    mounts = {m["name"]: m["mountPath"] for m in container(api)["volumeMounts"]}
    env = _api_environment(docs, api)
    assert mounts["data"] == env["TENANTRAG_DATA_DIR"]


def test_api_migrates_the_database_before_it_serves(docs: list[Doc], api: Doc) -> None:
    """An init container runs `tenantrag db upgrade` on the API's image against the API's own
    database URL (CloudNativePG's owner Secret), locked down like the API."""
    spec = api["spec"]["template"]["spec"]
    (migrate,) = spec["initContainers"]
    assert migrate["image"] == container(api)["image"]
    assert [*migrate["command"], *migrate["args"]] == ["tenantrag", "db", "upgrade"]
    env = {v["name"]: v for v in migrate["env"]}
    api_env = {v["name"]: v for v in container(api)["env"]}
    assert env["TENANTRAG_DATABASE_URL"] == api_env["TENANTRAG_DATABASE_URL"]
    assert env["TENANTRAG_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "postgres-app",
        "key": "uri",
    }
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True
    assert migrate["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_postgres_is_a_cloudnativepg_cluster_of_three(docs: list[Doc]) -> None:
    """The CloudNativePG Cluster (its CRD is not in kubernetes-validate's schemas, so its fields
    are checked here): 3 instances on 3 nodes, owner and database `tenantrag` (whose Secret
    `postgres-app` the API reads), storage and enough connections for 20 pods' idle pools."""
    cluster = find(docs, "Cluster", "postgres")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["bootstrap"]["initdb"] == {"database": "tenantrag", "owner": "tenantrag"}
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"
    assert spec["storage"]["size"] and spec["walStorage"]["size"]
    assert int(spec["postgresql"]["parameters"]["max_connections"]) >= 20 * 4 * 2 + 20
    assert set(spec) <= {
        "instances",
        "imageName",
        "primaryUpdateStrategy",
        "bootstrap",
        "postgresql",
        "storage",
        "walStorage",
        "resources",
        "affinity",
        "monitoring",
    }
    policy = find(docs, "NetworkPolicy", "postgres")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "postgres"}
    assert _ports(policy["spec"]["ingress"]) == {5432, 8000, 9187}
