"""How the shipped stacks reach OpenSearch: TLS that verifies, and a least-privilege user.

No OpenSearch runs here, so these check what can be checked offline: the demo certificate's
names and chain (openssl), the client verifying a certificate for another name than the URL's
host (a real TLS handshake with the stand-in), the role covering exactly our indexes, the setup
script's requests (run for real against the stand-in), and the compose and Kubernetes wiring.
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.unit.backends.opensearch.standin import OpenSearchStandIn

from tenantrag.backends.opensearch import OpenSearchIndex
from tenantrag.backends.opensearch.mappings import Layout
from tenantrag.errors import DependencyUnavailable
from tenantrag.models import Chunk, Classification

ROOT = Path(__file__).resolve().parents[4]
SETUP = ROOT / "deploy" / "opensearch"
K8S = ROOT / "deploy" / "k8s"
CERTS = Path(__file__).resolve().parent / "certs"  # the demo node certificate, public
DEMO_NAME = "node-0.example.com"


def openssl(*args: str | Path) -> str:
    """openssl's standard output; fails the test on an error."""
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)  # noqa: S603, S607  # fixed arguments
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_demo_node_certificate_names_neither_service_host() -> None:
    """The demo CA signs the demo node certificate, which names node-0.example.com and localhost
    only: not `opensearch` (compose) nor the Kubernetes Service. Hence the server-name setting."""
    assert "OK" in openssl("verify", "-CAfile", SETUP / "demo-root-ca.pem", CERTS / "demo-node.pem")
    names = openssl("x509", "-in", CERTS / "demo-node.pem", "-noout", "-ext", "subjectAltName")
    assert f"DNS:{DEMO_NAME}" in names and "DNS:localhost" in names
    assert "opensearch" not in names


@pytest.fixture(scope="module")
def node_certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(CA, node certificate, node key): a CA of our own and a node certificate for DEMO_NAME."""
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    cert, key = folder / "node.pem", folder / "node-key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-subj", "/CN=test root")
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        key,
        "-out",
        cert,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-subj",
        f"/CN={DEMO_NAME}",
        "-addext",
        f"subjectAltName=DNS:{DEMO_NAME}",
    )
    yield ca, cert, key


def test_the_server_name_setting_verifies_a_certificate_for_another_host(
    node_certificate: tuple[Path, Path, Path],
) -> None:
    """Reached as 127.0.0.1, a node whose certificate names node-0.example.com verifies with
    tls_server_name set, and fails without it: verification is never switched off."""
    ca, cert, key = node_certificate
    with OpenSearchStandIn(tls=(cert, key)) as node:
        named = OpenSearchIndex(node.url, ca_certs=ca, tls_server_name=DEMO_NAME, dimensions=4)
        assert named.keyword.ping() is True
        chunk = Chunk("acme", "d", 0, "hello", rowid=1, classification=Classification.PUBLIC)
        named.keyword.apply("acme", [chunk], replace_documents=[], seq=1)
        found = named.keyword.search(
            "acme", "hello", limit=5, max_classification=Classification.PUBLIC
        )
        assert [hit.rowid for hit in found] == [1]
        unnamed = OpenSearchIndex(node.url, ca_certs=ca, dimensions=4, backoff_s=0)
        assert unnamed.keyword.ping() is False
        with pytest.raises(DependencyUnavailable, match="certificate could not be verified"):
            unnamed.keyword.applied_seq("acme")


def role() -> dict[str, object]:
    """The application role the setup script installs."""
    loaded: dict[str, object] = json.loads((SETUP / "tenantrag-role.json").read_text())
    return loaded


def test_the_role_covers_exactly_our_indexes() -> None:
    """Every index and alias the backend names (default prefix) matches a pattern of the role,
    and nothing else a cluster commonly holds does."""
    layout = Layout("tenantrag")
    ours = [layout.state_alias, layout.vector_alias]
    ours += [
        layout.keyword_alias(tenant, level)
        for tenant in ("acme", "globex-2")
        for level in Classification
    ]
    ours += [Layout.backing(name) for name in ours]
    (grant,) = role()["index_permissions"]  # type: ignore[misc]
    patterns = grant["index_patterns"]
    for name in ours:
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), name
    for other in (
        ".opendistro_security",
        ".kibana",
        "logs-2026",
        "tenantragx",
        "security-auditlog",
    ):
        assert not any(fnmatch.fnmatchcase(other, p) for p in patterns), other
    assert set(grant["allowed_actions"]) == {
        "crud",
        "create_index",
        "manage_aliases",
        "indices:admin/exists",
        "indices:admin/get",
        "indices:admin/mappings/get",
        "indices:admin/refresh*",
        "indices:admin/delete",
    }
    assert set(role()["cluster_permissions"]) == {  # type: ignore[arg-type]
        "cluster:monitor/main",
        "indices:data/write/bulk",
        "indices:data/read/scroll*",
    }


def _fake_image(folder: Path) -> Path:
    """A folder standing in for /usr/share/opensearch: its entrypoint just waits, as a node."""
    entry = folder / "opensearch-docker-entrypoint.sh"
    entry.write_text('#!/bin/bash\necho "$@" > node-args\nexec sleep 60\n')
    entry.chmod(0o755)
    return folder


def test_the_setup_script_makes_the_role_user_and_mapping(
    tmp_path: Path, node_certificate: tuple[Path, Path, Path]
) -> None:
    """entrypoint.sh starts the image's entrypoint, waits for the node, PUTs the role, the user
    with its password and the mapping as admin, and stops the node when it is stopped."""
    _, cert, key = node_certificate
    home = _fake_image(tmp_path)
    with OpenSearchStandIn(tls=(cert, key)) as node:
        env = os.environ | {
            "OPENSEARCH_APP_PASSWORD": "App-password-0123456789",
            "OPENSEARCH_INITIAL_ADMIN_PASSWORD": "Admin-pw-1",
            "OPENSEARCH_LOCAL_URL": node.url,
        }
        script = subprocess.Popen(  # noqa: S603  # our script, fixed arguments
            ["/bin/bash", str(SETUP / "entrypoint.sh"), "opensearch"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while len(node.security) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        script.send_signal(signal.SIGTERM)
        _, errors = script.communicate(timeout=20)
    assert node.security == {
        ("roles", "tenantrag_app"): role(),
        ("internalusers", "tenantrag"): {
            "password": "App-password-0123456789",
            "description": "tenantrag application",
        },
        ("rolesmapping", "tenantrag_app"): {"users": ["tenantrag"]},
    }, errors
    admin = "Basic " + __import__("base64").b64encode(b"admin:Admin-pw-1").decode()
    assert {r.headers["authorization"] for r in node.recorded} == {admin}
    assert (home / "node-args").read_text().strip() == "opensearch"
    assert script.returncode != 0  # the node was stopped by the forwarded SIGTERM


@pytest.mark.parametrize(
    "password", ["", "short-one", "has spaces in it 123", 'quote"d-0123456789']
)
def test_the_setup_script_refuses_a_missing_or_unsafe_password(
    tmp_path: Path, password: str
) -> None:
    """Without a 16+ character URL-safe password the container stops before OpenSearch starts."""
    home = _fake_image(tmp_path)
    done = subprocess.run(  # noqa: S603  # our script, fixed arguments
        ["/bin/bash", str(SETUP / "entrypoint.sh"), "opensearch"],
        cwd=home,
        env=os.environ | {"OPENSEARCH_APP_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 1
    assert "OPENSEARCH_APP_PASSWORD" in done.stderr
    assert not (home / "node-args").exists()


def test_kubernetes_carries_the_same_setup_files() -> None:
    """deploy/k8s/opensearch-tenantrag.yaml holds byte-identical copies of deploy/opensearch/."""
    config = yaml.safe_load((K8S / "opensearch-tenantrag.yaml").read_text())
    for name in ("entrypoint.sh", "tenantrag-role.json", "demo-root-ca.pem"):
        assert config["data"][name] == (SETUP / name).read_text(), name


def test_both_stacks_connect_as_the_app_user_with_the_ca_and_server_name() -> None:
    """The API logs in as `tenantrag` (never admin), trusts the demo CA, checks node-0's name."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    env = compose["environment"]
    assert env["TENANTRAG_OPENSEARCH_URL"].startswith("https://tenantrag:")
    assert env["TENANTRAG_OPENSEARCH_TLS_SERVER_NAME"] == DEMO_NAME
    mount = f"./deploy/opensearch/demo-root-ca.pem:{env['TENANTRAG_OPENSEARCH_CA_CERTS']}:ro"
    assert mount in compose["volumes"]
    assert not any("ADMIN" in str(value) for value in env.values())

    docs = list(yaml.safe_load_all((K8S / "deployment.yaml").read_text()))
    pod = docs[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    variables = {v["name"]: v for v in container["env"]}
    assert variables["TENANTRAG_OPENSEARCH_URL"]["value"].startswith("https://tenantrag:")
    assert "OPENSEARCH_ADMIN_PASSWORD" not in variables
    config = yaml.safe_load((K8S / "configmap.yaml").read_text())["data"]
    assert config["TENANTRAG_OPENSEARCH_TLS_SERVER_NAME"] == DEMO_NAME
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "opensearch-ca"]
    (item,) = volume["configMap"]["items"]
    assert f"{mounts['opensearch-ca']}/{item['path']}" == config["TENANTRAG_OPENSEARCH_CA_CERTS"]
    assert item["key"] == "demo-root-ca.pem"
