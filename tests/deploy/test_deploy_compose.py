"""docker-compose.yml: eight services, their health and start order, settings the API reads."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.deploy.deploy_support import (
    PROMETHEUS,
    ROOT,
    compose_variables,
    interpolate,
    run,
    settings_env_names,
    tool,
)

pytestmark = pytest.mark.integration  # starts servers or subprocesses

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SECRETS = {
    "TENANTRAG_JWT_SECRET",
    "TENANTRAG_METRICS_TOKEN",
    "REDIS_PASSWORD",
    "POSTGRES_PASSWORD",
    "OPENSEARCH_ADMIN_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
}
STRONG = "a-strong-test-secret-0123456789-abcdefghij"


def example_env() -> dict[str, str]:
    """The variables .env.example sets, with their example values."""
    pairs = [
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return {key: value for key, value in pairs}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose model after interpolation with .env.example plus stand-in secrets."""
    env = example_env() | dict.fromkeys(SECRETS, STRONG)
    model: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    return model


def test_the_stack_has_the_eight_services(compose: dict[str, Any]) -> None:
    """The API, its one-shot migration, PostgreSQL, Redis, OpenSearch, Prometheus, Jaeger and
    Grafana."""
    expected = {
        "api",
        "migrate",
        "postgres",
        "redis",
        "opensearch",
        "prometheus",
        "jaeger",
        "grafana",
    }
    assert set(compose["services"]) == expected


def test_every_service_has_an_image_and_a_healthcheck(compose: dict[str, Any]) -> None:
    """Each service names an image (or a build) and a healthcheck command; the one-shot
    `migrate` instead exits, and is waited for with service_completed_successfully."""
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if name == "migrate":
            assert service["healthcheck"] == {"disable": True} and service["restart"] == "no"
            continue
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    """depends_on waits for service_healthy (for `migrate`: its successful exit), and the API
    starts after the migration, PostgreSQL, Redis, OpenSearch and Jaeger."""
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if dependency == "migrate":
                assert condition == {"condition": "service_completed_successfully"}, name
                continue
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "test" in services[dependency]["healthcheck"]
    assert set(services["api"]["depends_on"]) == {
        "migrate",
        "postgres",
        "redis",
        "opensearch",
        "jaeger",
    }
    assert set(services["migrate"]["depends_on"]) == {"postgres"}


def test_api_and_migration_share_the_database_url(compose: dict[str, Any]) -> None:
    """The API's store of record is the compose PostgreSQL, and `migrate` upgrades that very
    database with `tenantrag db upgrade`."""
    services = compose["services"]
    url = services["api"]["environment"]["TENANTRAG_DATABASE_URL"]
    assert url == f"postgresql://tenantrag:{STRONG}@postgres:5432/tenantrag"
    assert services["migrate"]["environment"]["TENANTRAG_DATABASE_URL"] == url
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["image"] == services["api"]["image"]
    postgres = services["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("tenantrag", "tenantrag")
    assert postgres["POSTGRES_PASSWORD"] == STRONG


def test_state_lives_in_declared_named_volumes(compose: dict[str, Any]) -> None:
    """Every named volume a service mounts is declared, and every bind-mounted file exists."""
    declared = set(compose["volumes"])
    used: set[str] = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                used.add(source)
    assert used == declared
    assert {"postgres-data", "redis-data", "opensearch-data", "api-data"} <= used


def test_api_runs_four_workers_read_only(compose: dict[str, Any]) -> None:
    """The API runs `serve` with 4 uvicorn workers on a read-only root with a tmpfs /tmp."""
    api = compose["services"]["api"]
    assert api["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
    assert api["read_only"] is True and api["tmpfs"] == ["/tmp"]
    assert api["cap_drop"] == ["ALL"]


def test_redis_uses_append_only_persistence(compose: dict[str, Any]) -> None:
    """Redis runs with appendonly yes and a password."""
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1] == STRONG


def test_opensearch_is_a_single_node_with_security_on(compose: dict[str, Any]) -> None:
    """OpenSearch is single-node, keeps its security plugin and gets the admin password."""
    env = compose["services"]["opensearch"]["environment"]
    assert env["discovery.type"] == "single-node"
    assert env["OPENSEARCH_INITIAL_ADMIN_PASSWORD"] == STRONG
    assert "DISABLE_SECURITY_PLUGIN" not in env and "plugins.security.disabled" not in env


def test_observability_is_wired(compose: dict[str, Any]) -> None:
    """Prometheus loads our rules, Jaeger takes OTLP from the API, Grafana is provisioned."""
    services = compose["services"]
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    endpoint = services["api"]["environment"]["TENANTRAG_TRACING__OTLP_ENDPOINT"]
    assert endpoint == "http://jaeger:4318/v1/traces"
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["api:8000"]
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana


def test_ports_are_published_on_localhost_only(compose: dict[str, Any]) -> None:
    """Published ports bind to 127.0.0.1; Redis and OpenSearch publish none."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
    for backend in ("postgres", "redis", "opensearch"):
        assert "ports" not in compose["services"][backend], backend


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    """An unset or empty secret stops interpolation with a message naming it."""
    env = example_env() | dict.fromkeys(SECRETS, STRONG)
    env[secret] = ""
    with pytest.raises(KeyError, match=secret):
        interpolate(COMPOSE.read_text(), env)


def test_env_example_documents_every_variable_and_leaves_secrets_empty() -> None:
    """.env.example lists exactly the variables compose uses, with every secret left blank."""
    example = example_env()
    assert set(example) == compose_variables(COMPOSE.read_text())
    assert {k for k, v in example.items() if v == ""} >= SECRETS
    assert all(example[s] == "" for s in SECRETS)


def test_api_settings_variables_are_real_and_parse(compose: dict[str, Any]) -> None:
    """Every TENANTRAG_* variable the API gets is a Settings field and Settings accepts it."""
    env = {k: str(v) for k, v in compose["services"]["api"]["environment"].items()}
    assert {k for k in env if k.startswith("TENANTRAG_")} - settings_env_names() == set()
    script = (
        "from tenantrag.settings import Settings; s = Settings(_env_file=None); "
        "assert s.redis_url.startswith('redis://') and s.tracing.sample_ratio == 0.1 "
        "and s.database_url.startswith('postgresql://')"
    )
    result = run(tool("python"), "-c", script, env=env)
    assert result.returncode == 0, result.stderr


def test_metrics_need_the_token_prometheus_scrapes_with(compose: dict[str, Any]) -> None:
    """With Redis the API is distributed, so /metrics needs its token: the API gets it from .env,
    and Prometheus reads the same value as a compose secret for its bearer token."""
    services = compose["services"]
    assert services["api"]["environment"]["TENANTRAG_METRICS_TOKEN"] == STRONG
    assert compose["secrets"]["metrics_token"] == {"environment": "TENANTRAG_METRICS_TOKEN"}
    assert services["prometheus"]["secrets"] == ["metrics_token"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "tenantrag")
    assert job["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/metrics_token",
    }
