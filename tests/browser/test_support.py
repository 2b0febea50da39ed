"""The browser tests' set-up refuses to run quietly without Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.browser import support


def test_missing_chromium_is_a_failure_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No /usr/bin/chromium: an error naming `make tools`, never a skip."""
    monkeypatch.setattr(support, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(RuntimeError, match=r"make tools"):
        support.launch_options(tmp_path / "profile")


def test_chromium_runs_headless_on_a_quiet_profile(tmp_path: Path) -> None:
    """The launch options: Debian's binary, headless, no sandbox, no calls home, a fresh folder."""
    options = support.launch_options(tmp_path / "profile")
    assert options["executable_path"] == "/usr/bin/chromium"
    assert options["user_data_dir"] == str(tmp_path / "profile")
    assert options["headless"] is True
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ):
        assert flag in options["args"]
