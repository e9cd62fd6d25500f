"""`/docs`: Swagger UI for the OpenAPI document, served from the `swagger-ui-bundle-v2` package, never a CDN.

FastAPI's own `/docs` page loads Swagger UI from a CDN and is blank without internet; this one serves the
files the pinned package installs, so the documentation works wherever the service runs.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
_ASSETS_PATH = "/docs-assets"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and its files at /docs-assets, for the app's OpenAPI document."""
    app.mount(_ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def docs_page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: API documentation",
            swagger_js_url=f"{_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS_PATH}/favicon-32x32.png",
        )

    app.add_api_route(DOCS_PATH, docs_page, include_in_schema=False)
