"""Per-subscription filters on payload fields, a small MongoDB-like language.

A filter is a JSON object. Each key is either a dotted field path (`chargePointId`, `session.id`) whose value
is a literal (equality) or an object of operators, or a combinator:

    {"chargePointId": {"$in": [101, 102]}, "evseId": {"$exists": true}}
    {"$or": [{"sessionId": {"$gt": 1000}}, {"notification": "BootNotification"}]}

Field operators: `$eq`, `$in`, `$nin`, `$exists`, `$gt`, `$lt`. Combinators: `$and`, `$or` (lists of
filters). All keys of one object must hold (an implicit `$and`). A comparison with a missing field, or
with values of different kinds, does not match.
"""

from __future__ import annotations

from typing import Any

from chargewire.errors import ValidationFailed

FIELD_OPERATORS = ("$eq", "$in", "$nin", "$exists", "$gt", "$lt")
COMBINATORS = ("$and", "$or")
_MAX_DEPTH = 8
_MISSING = object()


def check_filter(spec: object, field: str = "filter") -> None:
    """Raise ValidationFailed naming `filter.<path>` for anything the language does not allow."""
    errors: dict[str, list[str]] = {}
    _check_node(spec, field, errors, depth=0)
    if errors:
        raise ValidationFailed(errors)


def _check_node(spec: object, where: str, errors: dict[str, list[str]], depth: int) -> None:
    if depth > _MAX_DEPTH:
        errors.setdefault(where, []).append(f"Filters may nest at most {_MAX_DEPTH} levels.")
        return
    if not isinstance(spec, dict):
        errors.setdefault(where, []).append("Must be an object of field conditions.")
        return
    for key, value in spec.items():
        path = f"{where}.{key}"
        if key in COMBINATORS:
            if not isinstance(value, list) or not value:
                errors.setdefault(path, []).append(f"{key} takes a non-empty list of filters.")
                continue
            for index, item in enumerate(value):
                _check_node(item, f"{path}.{index}", errors, depth + 1)
        elif key.startswith("$"):
            allowed = ", ".join(COMBINATORS)
            errors.setdefault(path, []).append(f"Unknown combinator {key!r}; allowed at this level: {allowed}.")
        elif isinstance(value, dict):
            _check_operators(value, path, errors)


def _check_operators(spec: dict[str, Any], where: str, errors: dict[str, list[str]]) -> None:
    if not spec:
        errors.setdefault(where, []).append("Needs at least one operator.")
    for operator, operand in spec.items():
        path = f"{where}.{operator}"
        if operator not in FIELD_OPERATORS:
            allowed = ", ".join(FIELD_OPERATORS)
            errors.setdefault(path, []).append(f"Unknown operator {operator!r}; allowed: {allowed}.")
        elif operator in ("$in", "$nin") and not isinstance(operand, list):
            errors.setdefault(path, []).append(f"{operator} takes a list of values.")
        elif operator == "$exists" and not isinstance(operand, bool):
            errors.setdefault(path, []).append("$exists takes true or false.")
        elif operator in ("$gt", "$lt") and (isinstance(operand, bool) or not isinstance(operand, int | float | str)):
            errors.setdefault(path, []).append(f"{operator} takes a number or a string.")


def matches(spec: dict[str, Any] | None, payload: dict[str, Any]) -> bool:
    """True when the payload satisfies the filter (always, for no filter)."""
    if not spec:
        return True
    return all(_matches_entry(key, value, payload) for key, value in spec.items())


def _matches_entry(key: str, condition: Any, payload: dict[str, Any]) -> bool:
    if key == "$and":
        return all(matches(item, payload) for item in condition)
    if key == "$or":
        return any(matches(item, payload) for item in condition)
    actual = _lookup(payload, key)
    if isinstance(condition, dict):
        return all(_apply(operator, operand, actual) for operator, operand in condition.items())
    return _equal(actual, condition)


def _lookup(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _apply(operator: str, operand: Any, actual: Any) -> bool:
    if operator == "$exists":
        return (actual is not _MISSING) is bool(operand)
    if actual is _MISSING:
        return operator == "$nin"
    if operator == "$eq":
        return _equal(actual, operand)
    if operator == "$in":
        return any(_equal(actual, item) for item in operand)
    if operator == "$nin":
        return not any(_equal(actual, item) for item in operand)
    if not _comparable(actual, operand):
        return False
    return bool(actual > operand) if operator == "$gt" else bool(actual < operand)


def _equal(actual: Any, expected: Any) -> bool:
    # JSON has no distinction between true and 1; Python does, and a filter on 1 must not match true.
    return (
        type(actual) is type(expected) and actual == expected if _is_boolish(actual, expected) else actual == expected
    )


def _is_boolish(left: Any, right: Any) -> bool:
    return isinstance(left, bool) or isinstance(right, bool)


def _comparable(actual: Any, operand: Any) -> bool:
    numeric = (int, float)
    if isinstance(actual, bool) or isinstance(operand, bool):
        return False
    return (isinstance(actual, numeric) and isinstance(operand, numeric)) or (
        isinstance(actual, str) and isinstance(operand, str)
    )
