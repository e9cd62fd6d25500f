"""Headless Chromium for page tests: the Debian package's browser driven by Playwright, never a downloaded one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu"]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; fails (never skips) when the Debian `chromium` package is missing."""
    if not CHROMIUM.exists():
        raise AssertionError(
            f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (scripts/ensure-test-services does)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
