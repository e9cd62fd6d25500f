"""Imports point one way: the packages below the services never import the services or anything above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chargewire

PACKAGE = Path(chargewire.__file__).parent
LOWER = ("catalog", "channels", "dispatch", "filters", "kafka", "store")
UPPER = ("chargewire.services", "chargewire.api", "chargewire.backoffice", "chargewire.cli", "chargewire.runtime")


def _imported(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
    return imported


@pytest.mark.parametrize("package", LOWER)
def test_a_package_below_the_services_imports_nothing_above_it(package: str) -> None:
    upward = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in _imported(path)
        if name.startswith(UPPER)
    }
    assert upward == set()
