"""The pages a browser loads: the console (ES modules, CSS, an icon) and the API docs pages.

Everything here is a static file shipped in the package and served by the service itself, so the
pages work offline and under a CSP that allows no other origin (middleware/security_headers.py).
"""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
CONSOLE_DIR = WEB_DIR / "console"
APIDOCS_DIR = WEB_DIR / "apidocs"
FAVICON = CONSOLE_DIR / "static" / "favicon.svg"
