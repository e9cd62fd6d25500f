"""`/docs` renders the API documentation in Chromium with no network beyond the service itself."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Route, expect

from chargewire.devtools.postgres import free_port
from tests.conftest import TEST_SECRET_KEY
from tests.support.browser import chromium
from tests.support.processes import running_server


def test_api_docs_render_offline_from_files_the_service_serves(tmp_path: Path) -> None:
    env = {
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
    }
    port = free_port()
    refused: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    with running_server(env, port), chromium() as browser:
        page = browser.new_page()
        page.route("**/*", loopback_only)
        page.goto(f"http://127.0.0.1:{port}/docs")
        expect(page.get_by_text("Publish events").first).to_be_visible(timeout=20_000)
        expect(page.locator(".opblock").first).to_be_visible()
    assert refused == []
