"""Write deploy/k8s/prometheusrule.yaml: the alert groups of alerts.yml wrapped in a PrometheusRule.

alerts.yml is the source (promtool checks and unit-tests it); the Operator's resource must carry
exactly the same groups. Run after editing alerts.yml:

    .venv/bin/python deploy/prometheus/sync_prometheusrule.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE / "alerts.yml"
TARGET = HERE.parent / "k8s" / "prometheusrule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/alerts.yml by deploy/prometheus/sync_prometheusrule.py;\n"
    "# edit alerts.yml and rerun the script. tests/deploy checks that the groups are identical.\n"
)


class _BlockDumper(yaml.SafeDumper):
    """A dumper that writes multi-line strings (PromQL) as `|` blocks, as alerts.yml does."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule resource holding `groups`."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "tenantrag",
            "labels": {
                "app.kubernetes.io/name": "tenantrag",
                # kube-prometheus-stack's default ruleSelector; match your Prometheus's.
                "release": "kube-prometheus-stack",
            },
        },
        "spec": {"groups": groups},
    }


def render() -> str:
    """The text prometheusrule.yaml should have."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    body = yaml.dump(
        prometheus_rule(groups), Dumper=_BlockDumper, sort_keys=False, width=200, allow_unicode=True
    )
    return HEADER + body


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
