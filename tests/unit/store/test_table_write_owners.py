"""One module writes each table: every INSERT, UPDATE and DELETE on a table lives in its owner (decision 0008)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import chargewire
from chargewire.store.tables import metadata

PACKAGE = Path(chargewire.__file__).parent
# Schema changes are the migrations' own; they are not writes of rows.
MIGRATIONS = PACKAGE / "store" / "migrations"
# Every table, with the module (or modules, each for its own columns) that writes it.
OWNERS: dict[str, set[str]] = {
    "api_tokens": {"store/token_store.py"},
    "events": {"store/event_store.py"},
    "event_sequence": {"store/event_log.py"},
    "subscriptions": {"store/subscription_store.py", "store/subscription_health_writes.py"},
    "subscription_events": {"store/subscription_store.py"},
    "deliveries": {"store/delivery_writes.py"},
    "attempts": {"store/attempt_writes.py"},
    "attempt_batches": {"store/attempt_writes.py"},
    "kafka_streams": {"kafka/stream_lifecycle.py", "kafka/stream_store.py"},
    "stream_pauses": {"kafka/stream_lifecycle.py"},
    "users": {"store/user_store.py"},
    "worker_heartbeats": {"store/worker_store.py"},
    "backoffice_sessions": {"store/session_store.py"},
    "expiry_runs": {"store/retention.py"},
    "idempotency_keys": {"store/idempotency_store.py"},
    "ocpp_charge_points": {"store/ocpp_registry_store.py"},
    "ocpp_evses": {"store/ocpp_registry_store.py"},
    "ocpp_sessions": {"store/ocpp_registry_store.py"},
    "ocpp_counters": {"store/ocpp_registry_store.py"},
}
# Modules that write whatever table they are handed, and no table by name: the bulk inserts and the dialects run
# what an owner built; PostgreSQL's partition upkeep moves whole days of rows (decision 0008, "What stays elsewhere").
TABLE_AGNOSTIC = {
    "store/bulk_insert.py",
    "store/dialects/conflicts.py",
    "store/dialects/postgresql.py",
    "store/dialects/postgresql_partitions.py",
    "store/dialects/postgresql_publish.py",
    "store/dialects/sqlite.py",
}
TABLES = frozenset(metadata.tables)
UNKNOWN = "a table passed in"
# Calls that write the table passed to them: SQLAlchemy's statements, the bulk inserts and the guarded writes.
_STATEMENTS = {"insert", "update", "delete"}
_WRITING_CALLS = {*_STATEMENTS, "insert_rows", "insert_columns", "insert_on_conflict", "ColumnInsert", "RowInsert"}
_WRITING_SQL = re.compile(
    rf"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY)\s+({'|'.join(sorted(TABLES))})\b", re.IGNORECASE
)


Aliases = dict[str, frozenset[str]]


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _tables_of(node: ast.expr, aliases: Aliases) -> frozenset[str]:
    """The tables `node` names: a table, `tables.<table>`, a name bound to tables, or a tuple of these; not
    `runtime.subscriptions`."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, frozenset())
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "tables":
        return aliases.get(node.attr, frozenset())
    if isinstance(node, (ast.Tuple, ast.List)):
        return frozenset().union(*(_tables_of(element, aliases) for element in node.elts))
    return frozenset()


def _bindings(node: ast.AST) -> list[tuple[ast.expr, ast.expr]]:
    """(target, value) of each name an assignment or a `for` binds, tuples taken apart pairwise."""
    if isinstance(node, ast.Assign):
        pairs = [(target, node.value) for target in node.targets]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        pairs = [(node.target, node.value)]
    elif isinstance(node, ast.For):
        pairs = [(node.target, node.iter)]
    else:
        return []
    unpacked: list[tuple[ast.expr, ast.expr]] = []
    for target, value in pairs:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            unpacked.extend(zip(target.elts, value.elts, strict=False))
        else:
            unpacked.append((target, value))
    return unpacked


def _aliases(tree: ast.Module) -> Aliases:
    """Each name the module binds to tables (`_points = ocpp_charge_points`, `for table in REGISTRY_TABLES`)."""
    aliases = {table: frozenset({table}) for table in TABLES}
    # Twice: a name may be bound from another that is bound further down the walk.
    for _ in range(2):
        for node in ast.walk(tree):
            for target, value in _bindings(node):
                tables = _tables_of(value, aliases)
                if isinstance(target, ast.Name) and tables:
                    aliases[target.id] = tables
    return aliases


def _written(call: ast.Call, aliases: Aliases) -> frozenset[str]:
    """The tables `call` writes: `insert(deliveries)` and the like, or `deliveries.insert()`; UNKNOWN for a
    statement on a table held in a variable it cannot follow (`delete(table)`)."""
    called = _name(call.func)
    if isinstance(call.func, ast.Attribute) and called in _STATEMENTS:
        tables = _tables_of(call.func.value, aliases)
        if tables:
            return tables
    if called not in _WRITING_CALLS:
        return frozenset()
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    named = frozenset().union(*(_tables_of(argument, aliases) for argument in arguments))
    bare_statement = isinstance(call.func, ast.Name) and called in _STATEMENTS
    if not named and call.args and (bare_statement or called not in _STATEMENTS):
        return frozenset({UNKNOWN})
    return named


def table_writes(source: str) -> dict[str, list[int]]:
    """The lines of `source` that write each table."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            tables = _written(node, aliases)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            tables = frozenset(match.lower() for match in _WRITING_SQL.findall(node.value))
        else:
            continue
        for table in tables:
            found.setdefault(table, []).append(node.lineno)
    return {table: sorted(lines) for table, lines in found.items()}


def _writes_outside_owners() -> set[str]:
    elsewhere: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if MIGRATIONS in path.parents:
            continue
        for table, lines in table_writes(path.read_text()).items():
            if module not in OWNERS.get(table, TABLE_AGNOSTIC if table == UNKNOWN else set()):
                elsewhere.update(f"{module}:{line} writes {table}" for line in lines)
    return elsewhere


def test_every_table_has_an_owner_module() -> None:
    assert set(OWNERS) == TABLES


def test_each_table_is_written_only_by_its_owner_module() -> None:
    assert _writes_outside_owners() == set()


def test_the_owner_check_finds_statements_bulk_inserts_guarded_writes_and_sql_text_on_a_table() -> None:
    source = """
update(deliveries).values(status="failed")
delete(tables.attempts)
deliveries.insert()
insert_columns(connection, deliveries, COLUMNS, values)
ColumnInsert(deliveries, COLUMNS, values)
text("UPDATE subscriptions SET failing_since = NULL")
select(deliveries).where(deliveries.c.id == update_id)
_points = ocpp_charge_points
dialect.insert_on_conflict(_points, ["tap", "identity"])
delete(table).where(table.c.id.in_(ids))
for registry_table in (ocpp_evses, ocpp_sessions): insert(registry_table)
headers.update(extra)
runtime.subscriptions.delete(caller, subscription_id)
"""
    assert table_writes(source) == {
        "deliveries": [2, 4, 5, 6],
        "attempts": [3],
        "subscriptions": [7],
        "ocpp_charge_points": [10],
        UNKNOWN: [11],
        "ocpp_evses": [12],
        "ocpp_sessions": [12],
    }
