"""GET /docs (Swagger UI) and GET /redoc (ReDoc), working offline.

FastAPI's own pages load their scripts from a CDN and start them with an inline script; our CSP
(and a network without the CDN) blocks both, so /docs was blank. These pages load the same
bundles from this process (the `fastapi-standalone-docs` package ships Swagger UI and ReDoc with
their licences) and start Swagger UI from a file, so no inline script is needed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse

from tenantrag.errors import NotFound
from tenantrag.web import APIDOCS_DIR, FAVICON

router = APIRouter(include_in_schema=False)
BUNDLES = Path(str(files("fastapi_standalone_docs") / "static"))
# name under /docs/assets/ -> file; nothing outside this table is served.
ASSETS = {
    "swagger-ui.css": BUNDLES / "swagger" / "swagger-ui.css",
    "swagger-ui-bundle.js": BUNDLES / "swagger" / "swagger-ui-bundle.js",
    "swagger-ui.LICENSE": BUNDLES / "swagger" / "LICENSE",
    "redoc.standalone.js": BUNDLES / "redoc" / "redoc.standalone.js",
    "redoc.standalone.js.LICENSE.txt": BUNDLES / "redoc" / "redoc.standalone.js.LICENSE.txt",
    "swagger-init.js": APIDOCS_DIR / "swagger-init.js",
    "docs.css": APIDOCS_DIR / "docs.css",
    "favicon.svg": FAVICON,
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
NO_CACHE = {"Cache-Control": "no-cache"}


def _file(path: Path) -> FileResponse:
    media_type = MEDIA_TYPES.get(path.suffix, "text/plain")
    return FileResponse(path, media_type=media_type, headers=NO_CACHE)


@router.get("/docs")
async def swagger_ui() -> FileResponse:
    """Swagger UI over /openapi.json."""
    return FileResponse(APIDOCS_DIR / "swagger.html", media_type="text/html", headers=NO_CACHE)


@router.get("/redoc")
async def redoc() -> FileResponse:
    """ReDoc over /openapi.json."""
    return FileResponse(APIDOCS_DIR / "redoc.html", media_type="text/html", headers=NO_CACHE)


@router.get("/redoc/logo-mini.svg")
async def redoc_logo() -> FileResponse:
    """ReDoc's sidebar logo: the bundle asks for it beside the page (patched off the CDN)."""
    return _file(BUNDLES / "redoc" / "logo-mini.svg")


@router.get("/docs/assets/{name}")
async def asset(name: str) -> FileResponse:
    """One file of the docs pages, by name."""
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("No such documentation asset.")
    return _file(path)


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc (create FastAPI with docs_url=None, redoc_url=None)."""
    app.include_router(router)
