"""Prometheus: config and rules pass promtool; every alert is unit-tested firing and silent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.deploy.deploy_support import (
    K8S,
    PROMETHEUS,
    ROOT,
    exposed_metric_names,
    find,
    load_docs,
    run,
    tenantrag_metric_names,
    tool,
)

pytestmark = pytest.mark.integration  # starts servers or subprocesses

ALERTS = PROMETHEUS / "alerts.yml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
REQUIRED_ALERTS = {
    "TenantragHighLatencyP95",
    "TenantragHighErrorRate",
    "TenantragInstanceDown",
    "TenantragCircuitBreakerOpen",
    "TenantragCrossTenantLeakage",
    "TenantragCostOverrun",
    "TenantragQuotaNearLimit",
    "TenantragQuotaExhausted",
    "TenantragRedisUnavailable",
}


def alert_rules() -> list[dict[str, object]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool's path; a missing promtool fails the test with the install hint."""
    return tool("promtool")


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    """`promtool check rules` accepts alerts.yml."""
    result = run(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass(promtool: str) -> None:
    """Every promtool unit test in deploy/prometheus/tests passes against alerts.yml."""
    assert UNIT_TESTS, "no promtool unit tests found"
    result = run(promtool, "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    """`promtool check config` accepts prometheus.yml, including the rule files it loads.

    promtool also checks that the bearer-token file exists; compose mounts it at
    /run/secrets/metrics_token, so the copy checked here points at a stand-in file.
    """
    config = (PROMETHEUS / "prometheus.yml").read_text()
    token = tmp_path / "metrics_token"
    token.write_text("a-stand-in-metrics-token-0123456789")
    assert "/run/secrets/metrics_token" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/run/secrets/metrics_token", str(token))
    )
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    result = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_api_every_15s_with_the_alert_rules() -> None:
    """prometheus.yml scrapes job `tenantrag` at the seed's 15 s and loads alerts.yml."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["tenantrag"]["static_configs"][0]["targets"] == ["api:8000"]


def test_every_required_alert_exists_with_a_severity_and_summary() -> None:
    """alerts.yml holds each alert the seed asks for, each with a severity and a summary."""
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]  # type: ignore[index]
        assert rule["annotations"]["summary"], rule["alert"]  # type: ignore[index]


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """Each alert has a unit test where it fires and one where it stays silent."""
    fired: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {str(r["alert"]) for r in alert_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown staying silent"


def test_alerts_use_only_metrics_the_service_exposes() -> None:
    """Every tenantrag_* name in an alert expression is a metric the service exports."""
    used = set().union(*(tenantrag_metric_names(str(r["expr"])) for r in alert_rules()))
    assert used - exposed_metric_names() == set()


def test_prometheusrule_carries_exactly_the_alert_groups() -> None:
    """The Operator's PrometheusRule has the same groups as alerts.yml, rule for rule."""
    rule = find(load_docs(K8S / "prometheusrule.yaml"), "PrometheusRule", "tenantrag")
    expected = yaml.safe_load(ALERTS.read_text())["groups"]
    assert rule["spec"]["groups"] == expected, (
        "run .venv/bin/python deploy/prometheus/sync_prometheusrule.py"
    )


def test_prometheusrule_file_is_the_generator_output() -> None:
    """prometheusrule.yaml is exactly what sync_prometheusrule.py writes (no hand edits)."""
    result = run(ROOT / ".venv" / "bin" / "python", "-c", _PRINT_RULE)
    assert result.returncode == 0, result.stderr
    assert (K8S / "prometheusrule.yaml").read_text() == result.stdout


_PRINT_RULE = (
    "import sys; sys.path.insert(0, 'deploy/prometheus'); import sync_prometheusrule as s; "
    "sys.stdout.write(s.render())"
)


def _adapter_rules() -> list[dict[str, object]]:
    configmap = find(
        load_docs(K8S / "prometheus-adapter" / "configmap.yaml"), "ConfigMap", "prometheus-adapter"
    )
    rules: list[dict[str, object]] = yaml.safe_load(configmap["data"]["config.yaml"])["rules"]
    return rules


def _as_recording_rule(rule: dict[str, object]) -> str:
    """The adapter's query for namespace `tenantrag`, as prometheus-adapter fills the template."""
    series = str(rule["seriesQuery"]).split("{")[0]
    return (
        str(rule["metricsQuery"])
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", 'namespace="tenantrag",pod=~".+"')
        .replace("<<.GroupBy>>", "namespace, pod")
    )


def _bucket(pod: str, route: str, le: str, values: str) -> dict[str, str]:
    labels = (
        f'namespace="tenantrag",pod="{pod}",route="{route}",method="GET",status="200",le="{le}"'
    )
    return {
        "series": f"tenantrag_http_request_duration_seconds_bucket{{{labels}}}",
        "values": values,
    }


def _sample(metric: str, pod: str, value: float) -> dict[str, object]:
    return {"labels": f'hpa:{metric}{{namespace="tenantrag",pod="{pod}"}}', "value": value}


# Pod a: every API request takes 2.5..5 s, so P95 interpolates to 4.875 s. Pod b: only fast
# probes, so no API quantile exists and the adapter must report 0 rather than NaN.
ADAPTER_TEST = {
    "rule_files": ["adapter.yml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                _bucket("a", "/api/query", "2.5", "0x10"),
                _bucket("a", "/api/query", "5", "0+60x10"),
                _bucket("a", "/api/query", "+Inf", "0+60x10"),
                _bucket("b", "/health", "2.5", "0+60x10"),
                _bucket("b", "/health", "5", "0+60x10"),
                _bucket("b", "/health", "+Inf", "0+60x10"),
                {
                    "series": 'tenantrag_http_requests_in_flight{namespace="tenantrag",pod="a"}',
                    "values": "12x10",
                },
            ],
            "promql_expr_test": [
                {
                    "expr": "hpa:tenantrag_http_request_p95_seconds",
                    "eval_time": "5m",
                    "exp_samples": [
                        _sample("tenantrag_http_request_p95_seconds", "a", 4.875),
                        _sample("tenantrag_http_request_p95_seconds", "b", 0),
                    ],
                },
                {
                    "expr": "hpa:tenantrag_http_requests_in_flight",
                    "eval_time": "5m",
                    "exp_samples": [_sample("tenantrag_http_requests_in_flight", "a", 12)],
                },
            ],
        }
    ],
}


def test_adapter_rules_compute_the_hpa_pod_metrics(promtool: str, tmp_path: Path) -> None:
    """The adapter gives each pod its API P95 (0 when idle, probes aside) and in-flight sum."""
    rules = {str(r["name"]["as"]): _as_recording_rule(r) for r in _adapter_rules()}  # type: ignore[index]
    assert set(rules) == {"tenantrag_http_request_p95_seconds", "tenantrag_http_requests_in_flight"}
    recording = [{"record": f"hpa:{name}", "expr": expr} for name, expr in rules.items()]
    (tmp_path / "adapter.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "adapter", "rules": recording}]})
    )
    (tmp_path / "adapter_test.yml").write_text(yaml.safe_dump(ADAPTER_TEST))
    result = run(promtool, "test", "rules", tmp_path / "adapter_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
