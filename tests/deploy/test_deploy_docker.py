"""The image: hadolint-clean, torch-free at runtime, and running commands the CLI really has."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tests.deploy.deploy_support import DEPLOY, ROOT, run, settings_env_names, tool

pytestmark = pytest.mark.integration  # builds and runs the image

DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_REQUIREMENTS = DEPLOY / "requirements-runtime.txt"
EXPORT_ONLY = {"torch", "sentence-transformers", "onnx", "transformers"}
MODEL_DIR = "/opt/tenantrag/models"


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
    """name -> version for each `name==version` line of a requirements file."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
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


def test_runtime_requirements_are_the_generated_closure() -> None:
    """requirements-runtime.txt is exactly what deploy/requirements_runtime.py prints today."""
    result = run(tool("python"), DEPLOY / "requirements_runtime.py")
    assert result.returncode == 0, result.stderr
    assert RUNTIME_REQUIREMENTS.read_text() == result.stdout, (
        "run .venv/bin/python deploy/requirements_runtime.py > deploy/requirements-runtime.txt"
    )


def test_runtime_requirements_pin_pyproject_without_torch() -> None:
    """Every pyproject dependency but the export-only ones is pinned the same; torch is absent."""
    runtime = pins(RUNTIME_REQUIREMENTS)
    assert EXPORT_ONLY.isdisjoint(runtime)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name not in EXPORT_ONLY:
            assert runtime.get(name) == str(requirement.specifier).lstrip("="), name


def test_torch_is_installed_only_in_the_builder_from_the_cpu_index() -> None:
    """torch comes from PyTorch's CPU index in the builder stage and never in the runtime stage."""
    builder = [arg for keyword, arg in instructions()[: -len(runtime_stage())] if keyword == "RUN"]
    assert any("download.pytorch.org/whl/cpu torch==2.13.0" in run_ for run_ in builder)
    runtime = " ".join(arg for keyword, arg in runtime_stage() if keyword == "RUN")
    assert "torch" not in runtime
    assert "--no-deps -r /tmp/requirements-runtime.txt" in runtime


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


# Run inside a child interpreter that behaves like the runtime image: any module from an installed
# distribution that requirements-runtime.txt does not list fails to import.
_RUNTIME_PROBE = """
import importlib, importlib.abc, importlib.metadata as md, pkgutil, sys
from pathlib import Path
from packaging.utils import canonicalize_name

listed = {"tenantrag"} | {
    canonicalize_name(line.split("==")[0])
    for line in Path(sys.argv[1]).read_text().splitlines() if line and not line.startswith("#")
}
absent = {
    module: dists for module, dists in md.packages_distributions().items()
    if not {canonicalize_name(d) for d in dists} & listed
}

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in absent:
            raise ModuleNotFoundError(f"NOT-IN-IMAGE {name} ({absent[top]})", name=name)
        return None

sys.meta_path.insert(0, NotInImage())
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
prepared = prepare_model(Path(sys.argv[2]))
assert prepared == Path(sys.argv[3]), prepared
assert "torch" not in sys.modules
print("ok")
"""


def test_service_imports_and_finds_its_model_without_export_only_packages(model_dir: Path) -> None:
    """With only the runtime requirements importable, every module loads and the model is found."""
    result = run(
        tool("python"), "-c", _RUNTIME_PROBE, RUNTIME_REQUIREMENTS, model_dir.parent, model_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_install_tools_is_idempotent() -> None:
    """scripts/install-tools.sh is valid bash and does nothing when promtool is already there."""
    tool("promtool")
    script = ROOT / "scripts" / "install-tools.sh"
    assert run("bash", "-n", script).returncode == 0
    result = run("bash", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("promtool present")
