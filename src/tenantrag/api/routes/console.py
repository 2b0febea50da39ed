"""GET /console: the web console, a page and static ES modules served by the service itself.

The console holds no privilege of its own: its scripts call the same /api endpoints, with the
credential the person typed, through the same gateway (auth, tenant, rate limit, audit, costs).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from tenantrag.web import CONSOLE_DIR

router = APIRouter(include_in_schema=False)
# Revalidate on every load (ETag, so usually a 304): after an upgrade no browser keeps running
# an old module beside a new one.
NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("/console")
async def console() -> FileResponse:
    """The console's one page; its modules come from /console/static/."""
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html", headers=NO_CACHE)


class RevalidatedStaticFiles(StaticFiles):
    """Starlette's static files, each to be revalidated before reuse."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's response, marked to be revalidated (a new release is seen at once)."""
        response = await super().get_response(path, scope)
        response.headers.update(NO_CACHE)
        return response


def install(app: FastAPI) -> None:
    """Serve the console page at /console and its files at /console/static/."""
    app.include_router(router)
    app.mount(
        "/console/static",
        RevalidatedStaticFiles(directory=CONSOLE_DIR / "static"),
        name="console-static",
    )
