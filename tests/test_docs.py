"""The docs stay true: the CLI page is current, relative links resolve, settings named exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from scripts.gen_cli_docs import TARGET, render
from tests.api import planned

from tenantrag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)[^`].*?\1", re.DOTALL)
VARIABLE = re.compile(r"TENANTRAG_[A-Z0-9_]*[A-Z0-9](?:__?\*)?")  # `X__*`: a whole group
GROUP = re.compile(r"TENANTRAG_([A-Z0-9_]+?)__[A-Z0-9]")
CONTINUATION = re.compile(r"`(__[A-Z0-9_]*[A-Z0-9])`")


def setting_variables(model: type[BaseModel] = Settings, prefix: str = "TENANTRAG_") -> set[str]:
    """Every environment variable the settings read; nested groups joined with `__`."""
    names = set()
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= setting_variables(annotation, variable + "__")
        else:
            names.add(variable)
    return names


def named_variables(text: str) -> set[str]:
    """TENANTRAG_* names in `text`; a row's `__X` shorthand is expanded to its group's name."""
    found = set(VARIABLE.findall(text))
    for line in text.splitlines():
        group = GROUP.search(line)
        if group is not None:
            found |= {f"TENANTRAG_{group.group(1)}{tail}" for tail in CONTINUATION.findall(line)}
    return found


def relative_links(text: str) -> list[str]:
    """Link targets that point at files of this repository (no scheme, not a bare anchor)."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = [t for t in LINK.findall(prose) if not t.startswith("#")]
    return [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_cli_page_is_current() -> None:
    """docs/cli.md equals what scripts/gen_cli_docs.py generates from the commands' --help."""
    assert TARGET.read_text() == render(), "run .venv/bin/python scripts/gen_cli_docs.py"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link in README.md and docs/*.md names a file or folder that exists."""
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t).exists()]
    assert missing == [], f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_variables_are_settings(page: Path) -> None:
    """Every TENANTRAG_* variable the README and docs name is a field of Settings.

    docs/api.md may name the settings of steps not built yet (tests/api/planned.py); those
    names must go from planned.py the day Settings reads them.
    """
    known = setting_variables()
    assert known.isdisjoint(planned.SETTINGS), "a planned setting exists: drop it from planned.py"
    if page.name == "api.md":
        known |= set(planned.SETTINGS)
    named = named_variables(page.read_text())
    unknown = sorted(
        name
        for name in named
        if not (name in known or name.endswith("*") and any(k.startswith(name[:-1]) for k in known))
        and not name.startswith("TENANTRAG_TEST_")  # the suite's own options (tests/conftest.py)
    )
    assert unknown == [], f"{page.name} names variables Settings does not read: {unknown}"


def test_the_checks_see_what_they_check() -> None:
    """The parsers find links, shorthand names and nested settings, so a pass means something."""
    readme = (ROOT / "README.md").read_text()
    assert "TENANTRAG_LLM__MAX_ATTEMPTS" in named_variables(readme)
    assert "docs/audit.md" in relative_links(readme)
    assert {"TENANTRAG_JWT_SECRET", "TENANTRAG_EMBEDDING__MODEL"} <= setting_variables()
    assert named_variables("`TENANTRAG_COST__*`") == {"TENANTRAG_COST__*"}
    assert relative_links("`[a](x.md)` [b](y.md#part) [c](https://e.org) [d](#top)") == ["y.md"]
    shorthand = named_variables("`TENANTRAG_COST__X`, `__Y`")
    assert shorthand == {"TENANTRAG_COST__X", "TENANTRAG_COST__Y"}
