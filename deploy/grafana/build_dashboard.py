"""Write deploy/grafana/dashboards/tenantrag.json: golden signals plus tenantrag's own metrics.

Panels are declared as data below, so a change is one line here; tests/deploy checks that the
committed JSON is what this script writes. Run: .venv/bin/python deploy/grafana/build_dashboard.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parent / "dashboards" / "tenantrag.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'job="tenantrag"'
API = f'{JOB},route!~"/health|/ready|/metrics"'  # probes would flatter latency and errors
TENANT = f'{JOB},tenant=~"$tenant"'
RI = "$__rate_interval"
LATENCY = "tenantrag_http_request_duration_seconds_bucket"
REQUESTS = "tenantrag_http_requests_total"
CACHE = "tenantrag_cache_requests_total"
API_5XX = API + ',status=~"5.."'
HIT = '"hit"'


def rate(metric: str, selector: str = JOB) -> str:
    """PromQL for the per-second rate of `metric{selector}` over Grafana's rate interval."""
    return f"rate({metric}{{{selector}}}[{RI}])"


def quantile(q: str, by: str = "le") -> str:
    """PromQL for the q-quantile of API latency."""
    return f"histogram_quantile({q}, sum by ({by}) ({rate(LATENCY, API)}))"


# (title, unit, [(legend, expr)], extra: an optional red threshold line).
Panel = tuple[str, str, list[tuple[str, str]], dict[str, Any]]
ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Golden signals",
        [
            (
                "Traffic (requests/s by route)",
                "reqps",
                [("{{route}}", f"sum by (route) ({rate(REQUESTS, API)})")],
                {},
            ),
            (
                "Error rate (5xx share, target < 1%)",
                "percentunit",
                [
                    (
                        "5xx",
                        f"sum({rate(REQUESTS, API_5XX)}) / sum({rate(REQUESTS, API)})",
                    )
                ],
                {"threshold": 0.01},
            ),
            (
                "Latency P50 / P95 / P99 (target P95 < 2.5 s)",
                "s",
                [("P50", quantile("0.5")), ("P95", quantile("0.95")), ("P99", quantile("0.99"))],
                {"threshold": 2.5},
            ),
            (
                "P95 latency by route",
                "s",
                [("{{route}}", quantile("0.95", "le, route"))],
                {"threshold": 2.5},
            ),
            (
                "Saturation: requests in flight per instance (cap 50)",
                "short",
                [
                    (
                        "{{instance}}",
                        f"sum by (instance) (tenantrag_http_requests_in_flight{{{JOB}}})",
                    )
                ],
                {"threshold": 50},
            ),
            (
                "Saturation: CPU and memory per pod as a share of limits (Kubernetes only)",
                "percentunit",
                [
                    (
                        "CPU {{pod}}",
                        'sum by (pod) (rate(container_cpu_usage_seconds_total{container="api"}'
                        f"[{RI}])) / 2",
                    ),
                    (
                        "memory {{pod}}",
                        'sum by (pod) (container_memory_working_set_bytes{container="api"})'
                        " / (2 * 1024 * 1024 * 1024)",
                    ),
                ],
                {"threshold": 0.8},
            ),
            ("Instances up", "short", [("up", f"sum(up{{{JOB}}})")], {}),
            (
                "Dependencies up (0 = down)",
                "short",
                [("{{dependency}}", f"min by (dependency) (tenantrag_dependency_up{{{JOB}}})")],
                {},
            ),
        ],
    ),
    (
        "Resilience",
        [
            (
                "Circuit breakers (0 closed, 1 half-open, 2 open)",
                "short",
                [
                    (
                        "{{dependency}} {{tenant}}",
                        f"max by (dependency, tenant) (tenantrag_circuit_breaker_state{{{JOB}}})",
                    )
                ],
                {"threshold": 2},
            ),
            (
                "Cache hit ratio",
                "percentunit",
                [
                    (
                        "{{cache}}",
                        f"sum by (cache) ({rate(CACHE, JOB + ',result=' + HIT)})"
                        f" / sum by (cache) ({rate(CACHE)})",
                    )
                ],
                {},
            ),
            (
                "Redis fallback: instances on per-process limits and cache, share of time",
                "short",
                [
                    (
                        "in fallback {{instance}}",
                        f"max by (instance) (tenantrag_redis_fallback{{{JOB}}})",
                    ),
                    (
                        "share of time {{instance}}",
                        f"sum by (instance) ({rate('tenantrag_redis_fallback_seconds_total')})",
                    ),
                ],
                {},
            ),
            (
                "Rate-limited requests/s by tenant",
                "reqps",
                [
                    (
                        "{{tenant}}",
                        f"sum by (tenant) ({rate('tenantrag_rate_limited_total', TENANT)})",
                    )
                ],
                {},
            ),
        ],
    ),
    (
        "Cost and quotas",
        [
            (
                "Cost per tenant (USD/hour)",
                "currencyUSD",
                [
                    (
                        "{{tenant}}",
                        f"sum by (tenant) ({rate('tenantrag_cost_usd_total', TENANT)}) * 3600",
                    )
                ],
                {"threshold": 5},
            ),
            (
                "Cost per API request (USD)",
                "currencyUSD",
                [
                    (
                        "per request",
                        f"sum({rate('tenantrag_cost_usd_total')}) / sum({rate(REQUESTS, API)})",
                    )
                ],
                {},
            ),
            (
                "Cost by type (USD/hour)",
                "currencyUSD",
                [
                    (
                        "{{cost_type}}",
                        f"sum by (cost_type) ({rate('tenantrag_cost_usd_total', TENANT)}) * 3600",
                    )
                ],
                {},
            ),
            (
                "Tokens/s by model and kind",
                "short",
                [
                    (
                        "{{model}} {{kind}}",
                        f"sum by (model, kind) ({rate('tenantrag_tokens_total', TENANT)})",
                    )
                ],
                {},
            ),
            (
                "Quota usage (warn 80%, critical 100%)",
                "percentunit",
                [
                    (
                        "{{tenant}} {{quota}}",
                        f"max by (tenant, quota) (tenantrag_quota_usage_ratio{{{TENANT}}})",
                    )
                ],
                {"threshold": 0.8},
            ),
        ],
    ),
    (
        "Security and retrieval",
        [
            (
                "Cross-tenant leakage attempts (must stay 0)",
                "short",
                [
                    (
                        "{{tenant}}",
                        "sum by (tenant) "
                        f"(increase(tenantrag_cross_tenant_leakage_total{{{TENANT}}}[{RI}]))",
                    )
                ],
                {"threshold": 1},
            ),
            (
                "PII redactions/s by type",
                "short",
                [("{{type}}", f"sum by (type) ({rate('tenantrag_pii_redactions_total')})")],
                {},
            ),
            (
                "Prompt injections/s by tenant, source and action",
                "short",
                [
                    (
                        "{{tenant}} {{source}} {{action}}",
                        "sum by (tenant, source, action) "
                        f"({rate('tenantrag_prompt_injection_total', TENANT)})",
                    )
                ],
                {},
            ),
            (
                "Retrieval score of the top result: median and P10 by mode",
                "short",
                [
                    (
                        "median {{mode}}",
                        "histogram_quantile(0.5, sum by (le, mode) "
                        f"({rate('tenantrag_retrieval_score_bucket')}))",
                    ),
                    (
                        "P10 {{mode}}",
                        "histogram_quantile(0.1, sum by (le, mode) "
                        f"({rate('tenantrag_retrieval_score_bucket')}))",
                    ),
                ],
                {},
            ),
        ],
    ),
]


def timeseries(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    """One Grafana time-series panel, half the dashboard wide."""
    title, unit, targets, extra = panel
    defaults: dict[str, Any] = {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}
    if "threshold" in extra:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [
                {"color": "green", "value": None},
                {"color": "red", "value": extra["threshold"]},
            ],
        }
        defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(targets)
        ],
    }


def variables() -> list[dict[str, Any]]:
    """The datasource picker and the tenant filter."""
    return [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Datasource"},
        {
            "name": "tenant",
            "type": "query",
            "label": "Tenant",
            "datasource": DS,
            "query": {"query": "label_values(tenantrag_cost_usd_total, tenant)", "refId": "T"},
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "sort": 1,
        },
    ]


def dashboard() -> dict[str, Any]:
    """The whole dashboard model."""
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y = panel_id + 1, y + 1
        for i, panel in enumerate(row_panels):
            panels.append(timeseries(panel_id, panel, 12 * (i % 2), y + 8 * (i // 2)))
            panel_id += 1
        y += 8 * ((len(row_panels) + 1) // 2)
    return {
        "uid": "tenantrag-overview",
        "title": "tenantrag overview",
        "description": "Golden signals, resilience, cost, quotas, security and retrieval quality.",
        "tags": ["tenantrag"],
        "timezone": "browser",
        "editable": True,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    """The JSON text the dashboard file should hold."""
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
