"""One module writes the `deliveries` table: every INSERT, UPDATE and DELETE on it lives in `store/delivery_writes`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import chargewire

PACKAGE = Path(chargewire.__file__).parent
OWNER = PACKAGE / "store" / "delivery_writes.py"
# Schema changes are the migrations' own; they are not writes of delivery rows.
MIGRATIONS = PACKAGE / "store" / "migrations"
TABLE = "deliveries"
# Calls that write the table passed to them: SQLAlchemy's statements, the bulk inserts and the guarded writes.
_WRITING_CALLS = {"insert", "update", "delete", "insert_rows", "insert_columns", "ColumnInsert", "RowInsert"}
_METHODS = {"insert", "update", "delete"}
_WRITING_SQL = re.compile(rf"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+{TABLE}\b", re.IGNORECASE)


def _names_table(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == TABLE) or (isinstance(node, ast.Attribute) and node.attr == TABLE)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _writes_table(call: ast.Call) -> bool:
    """`insert(deliveries)` and the like, or `deliveries.insert()`."""
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    if _called_name(call) in _WRITING_CALLS and any(_names_table(argument) for argument in arguments):
        return True
    return isinstance(call.func, ast.Attribute) and call.func.attr in _METHODS and _names_table(call.func.value)


def deliveries_writes(source: str) -> list[int]:
    """The lines of `source` that write the `deliveries` table."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source)) if _writes(node))


def _writes(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return _writes_table(node)
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(_WRITING_SQL.search(node.value))


def test_only_the_owner_module_writes_the_deliveries_table() -> None:
    elsewhere = {
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != OWNER and MIGRATIONS not in path.parents
        for line in deliveries_writes(path.read_text())
    }
    assert elsewhere == set()


def test_the_owner_check_finds_statements_bulk_inserts_guarded_writes_and_sql_text_on_deliveries() -> None:
    source = """
update(deliveries).values(status="failed")
delete(tables.deliveries)
deliveries.insert()
insert_columns(connection, deliveries, COLUMNS, values)
ColumnInsert(deliveries, COLUMNS, values)
text("UPDATE deliveries SET status = 'failed'")
select(deliveries).where(deliveries.c.id == update_id)
update(subscriptions)
"""
    assert deliveries_writes(source) == [2, 3, 4, 5, 6, 7]
