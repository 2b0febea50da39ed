"""Deployment test helpers: the offline checkers, a small kustomize, compose interpolation."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
VENV_BIN = Path(sys.executable).parent
# Namespaced kinds we ship; kustomize sets `namespace` on these and leaves the rest alone.
CLUSTER_SCOPED = {"Namespace"}
Doc = dict[str, Any]


def tool(name: str) -> str:
    """The path of a checker, failing (not skipping) the test with the fix when it is missing."""
    for candidate in (VENV_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    hint = "run scripts/install-tools.sh" if name == "promtool" else "pip install -e '.[dev]'"
    pytest.fail(f"{name} is not installed; {hint}")


def run(
    *args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command and return its result; never raises on a non-zero exit.

    With `env`, the child sees only those variables (plus PATH), so nothing leaks in from ours.
    """
    child_env = None if env is None else {"PATH": os.environ.get("PATH", ""), **env}
    return subprocess.run(  # noqa: S603  # fixed argument lists built by the tests
        [str(a) for a in args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load_docs(path: Path) -> list[Doc]:
    """Every non-empty YAML document in a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _generated_secret(spec: Doc, folder: Path, env_files: dict[str, Path]) -> Doc:
    data: dict[str, str] = {}
    for name in spec.get("envs", []):
        source = env_files.get(name, folder / name)
        for line in source.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": spec.get("type", "Opaque"),
        "metadata": {"name": spec["name"]},
        "data": data,
    }


def _set_images(node: Any, images: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and value.split(":")[0] in images:
                node[key] = images[value.split(":")[0]]
            else:
                _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def render_kustomization(folder: Path, env_files: dict[str, Path] | None = None) -> list[Doc]:
    """The resources a kustomization builds: resources, secretGenerator, namespace, labels, images.

    That is the subset of kustomize these manifests use (hash suffixes aside); `env_files` maps a
    generator's env file to a stand-in, so the example secrets render without a real secrets.env.
    """
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = [doc for name in spec.get("resources", []) for doc in load_docs(folder / name)]
    docs += [_generated_secret(g, folder, env_files or {}) for g in spec.get("secretGenerator", [])]
    images = {
        i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in spec.get("images", [])
    }
    extra_labels: dict[str, str] = {}
    for entry in spec.get("labels", []):
        extra_labels |= entry["pairs"]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "namespace" in spec and doc["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = spec["namespace"]
        meta["labels"] = {**meta.get("labels", {}), **extra_labels}
        _set_images(doc, images)
    return docs


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping nested anywhere in `node`."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    """The one document of `kind` called `name`."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def settings_env_names() -> set[str]:
    """Every TENANTRAG_* variable Settings reads, nested groups joined by `__`."""
    from pydantic import BaseModel

    from tenantrag.settings import Settings

    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        names.add(f"TENANTRAG_{field.upper()}")
        group = info.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names |= {f"TENANTRAG_{field.upper()}__{sub.upper()}" for sub in group.model_fields}
    return names


_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])((?:[^{}]|\{[^{}]*\})*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's substitution: ${V}, ${V:-default}, ${V-default}, ${V:?err}, ${V?err}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, colon, op, arg = match.groups()
        value = env.get(name)
        missing = value is None or (colon == ":" and value == "")
        if op == "?" and missing:
            raise KeyError(f"{name}: {arg}")
        if op == "-" and missing:
            return interpolate(arg, env)
        return value or ""

    return _VARIABLE.sub(replace, text)


def compose_variables(text: str) -> set[str]:
    """The names of every ${...} variable a compose file refers to."""
    return {m.group(1) for m in _VARIABLE.finditer(text) if m.group(1)}


def exposed_metric_names() -> set[str]:
    """The sample names the service exposes, read from the registry of its metrics module."""
    from prometheus_client import REGISTRY

    import tenantrag.observability.metrics  # noqa: F401  # registers the service's metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("tenantrag_")
        for suffix in suffixes.get(family.type, [""])
    }


def tenantrag_metric_names(promql: str) -> set[str]:
    """The tenantrag_* metric names a PromQL expression mentions."""
    return set(re.findall(r"\btenantrag_[a-z0-9_]+\b", promql))
