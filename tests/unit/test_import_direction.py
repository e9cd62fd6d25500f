"""Imports point one way: the packages below the services never import the services or anything above them, and
the API and the back office, side by side under the web module, never import each other or what assembles them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chargewire

PACKAGE = Path(chargewire.__file__).parent
LOWER = ("catalog", "channels", "dispatch", "filters", "kafka", "store")
UPPER = (
    "chargewire.services",
    "chargewire.api",
    "chargewire.backoffice",
    "chargewire.cli",
    "chargewire.runtime",
    "chargewire.web",
)
# Each web-facing package, and what it must not import: its sibling, and what assembles or runs the two.
WEB_SIDES = {
    "api": ("chargewire.backoffice", "chargewire.web", "chargewire.cli"),
    "backoffice": ("chargewire.api", "chargewire.web", "chargewire.cli"),
}


def _imported(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
    return imported


def _imports_of(package: str, forbidden: tuple[str, ...]) -> set[str]:
    return {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in _imported(path)
        if name.startswith(forbidden)
    }


@pytest.mark.parametrize("package", LOWER)
def test_a_package_below_the_services_imports_nothing_above_it(package: str) -> None:
    assert _imports_of(package, UPPER) == set()


@pytest.mark.parametrize("package", sorted(WEB_SIDES))
def test_the_api_and_the_back_office_import_neither_each_other_nor_the_web_module(package: str) -> None:
    assert _imports_of(package, WEB_SIDES[package]) == set()
