"""Grafana: the dashboard covers golden and custom metrics with valid PromQL, and is provisioned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from tests.deploy.deploy_support import (
    DEPLOY,
    ROOT,
    exposed_metric_names,
    run,
    tenantrag_metric_names,
    tool,
)

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tenantrag.json"
CUSTOM_METRICS = {
    "tenantrag_rate_limited_total",
    "tenantrag_cross_tenant_leakage_total",
    "tenantrag_pii_redactions_total",
    "tenantrag_prompt_injection_total",
    "tenantrag_cost_usd_total",
    "tenantrag_tokens_total",
    "tenantrag_cache_requests_total",
    "tenantrag_circuit_breaker_state",
    "tenantrag_quota_usage_ratio",
    "tenantrag_retrieval_score_bucket",
    "tenantrag_dependency_up",
}
# Kubernetes' cAdvisor metrics feed the CPU and memory saturation panel.
OTHER_METRICS = {"up", "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}


def dashboard() -> dict[str, Any]:
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def test_dashboard_is_the_builder_output() -> None:
    """tenantrag.json is exactly what deploy/grafana/build_dashboard.py writes."""
    script = "import sys; sys.path.insert(0, 'deploy/grafana'); import build_dashboard as b; "
    result = run(tool("python"), "-c", script + "sys.stdout.write(b.render())")
    assert result.returncode == 0, result.stderr
    assert DASHBOARD.read_text() == result.stdout, (
        "run .venv/bin/python deploy/grafana/build_dashboard.py"
    )


def test_golden_signals_are_all_charted() -> None:
    """Latency P50/P95/P99, error rate, traffic and saturation each have a panel."""
    exprs = "\n".join(expressions())
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(tenantrag_http_request_duration" in exprs
    assert 'status=~"5.."' in exprs
    assert "sum by (route) (rate(tenantrag_http_requests_total" in exprs
    assert "tenantrag_http_requests_in_flight" in exprs


def test_every_custom_metric_is_charted() -> None:
    """Each of the service's own metrics appears in at least one panel."""
    used = set().union(*(tenantrag_metric_names(e) for e in expressions()))
    assert CUSTOM_METRICS - used == set()


def test_dashboard_queries_only_metrics_that_exist() -> None:
    """Every metric queried is exported by the service or is Prometheus's or cAdvisor's own."""
    selected = set().union(*(re.findall(r"\b([a-z_:][a-z0-9_:]*)\{", e) for e in expressions()))
    assert selected - exposed_metric_names() - OTHER_METRICS == set()
    assert set().union(*(tenantrag_metric_names(e) for e in expressions())) <= selected


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana's variables replaced by sample values)."""
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": expr.replace("$__rate_interval", "1m").replace("$tenant", ".*"),
        }
        for i, expr in enumerate(expressions())
    ]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = run(tool("promtool"), "check", "rules", tmp_path / "queries.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Panel ids are unique and no two panels share a grid cell."""
    all_panels = dashboard()["panels"]
    assert len({p["id"] for p in all_panels}) == len(all_panels)
    cells: set[tuple[int, int]] = set()
    for panel in all_panels:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_provisioning_matches_the_compose_stack() -> None:
    """The datasources point at compose's services; the provider reads the mounted dashboards."""
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    by_type = {s["type"]: s for s in sources["datasources"]}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["isDefault"] is True
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"./deploy/grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
