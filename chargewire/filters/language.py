"""Per-subscription filters on payload fields, a small MongoDB-like language.

A filter is a JSON object. Each key is either a dotted field path (`chargePointId`, `session.id`) whose value
is a literal (equality) or an object of operators, or a combinator:

    {"chargePointId": {"$in": [101, 102]}, "evseId": {"$exists": true}}
    {"$or": [{"sessionId": {"$gt": 1000}}, {"notification": "BootNotification"}]}

Field operators: `$eq`, `$in`, `$nin`, `$exists`, `$gt`, `$lt`. Combinators: `$and`, `$or` (lists of
filters). All keys of one object must hold (an implicit `$and`). A comparison with a missing field, or
with values of different kinds, does not match.

A filter is compiled once (`compile_filter`) into a predicate: `$in` and `$nin` become set lookups, so a
subscription's filter costs the same per event whether it lists ten values or ten thousand. `FilterLimits`
bounds what one subscription may store (size and values per list), so one tenant cannot make every publish slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from chargewire.errors import ValidationFailed

Predicate = Callable[[dict[str, Any]], bool]

FIELD_OPERATORS = ("$eq", "$in", "$nin", "$exists", "$gt", "$lt")
COMBINATORS = ("$and", "$or")
_MAX_DEPTH = 8
_MISSING = object()


@dataclass(frozen=True, slots=True)
class FilterLimits:
    """How large one subscription's filter may be: its JSON size, and the values of one `$in` or `$nin`."""

    max_bytes: int = 256 * 1024
    max_values: int = 10_000

    def check(self, spec: dict[str, Any] | None, field: str = "filter") -> None:
        """Raise ValidationFailed naming the field when `spec` is over a limit."""
        if spec is None:
            return
        size = len(orjson.dumps(spec))
        if size > self.max_bytes:
            raise ValidationFailed({field: [f"A filter may take at most {self.max_bytes} bytes as JSON; got {size}."]})
        errors: dict[str, list[str]] = {}
        self._check_lists(spec, field, errors)
        if errors:
            raise ValidationFailed(errors)

    def _check_lists(self, node: object, where: str, errors: dict[str, list[str]]) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                self._check_lists(item, f"{where}[{index}]", errors)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            path = f"{where}.{key}"
            if key in ("$in", "$nin") and isinstance(value, list) and len(value) > self.max_values:
                errors.setdefault(path, []).append(f"{key} takes at most {self.max_values} values; got {len(value)}.")
            else:
                self._check_lists(value, path, errors)


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
    """True when the payload satisfies the filter (always, for no filter); compiles it each call."""
    return compile_filter(spec)(payload)


def compile_filter(spec: dict[str, Any] | None) -> Predicate:
    """The filter as a predicate on payloads (true for every payload when there is no filter)."""
    if not spec:
        return _always
    tests = [_compile_entry(key, value) for key, value in spec.items()]
    return tests[0] if len(tests) == 1 else _all_of(tests)


def _always(_: dict[str, Any]) -> bool:
    return True


def _all_of(tests: list[Predicate]) -> Predicate:
    return lambda payload: all(test(payload) for test in tests)


def _compile_entry(key: str, condition: Any) -> Predicate:
    if key == "$and":
        return _all_of([compile_filter(item) for item in condition])
    if key == "$or":
        options = [compile_filter(item) for item in condition]
        return lambda payload: any(option(payload) for option in options)
    path = tuple(key.split("."))
    if not isinstance(condition, dict):
        return lambda payload: _equal(_lookup(payload, path), condition)
    checks = [_compile_operator(operator, operand) for operator, operand in condition.items()]
    if len(checks) == 1:
        [check] = checks
        return lambda payload: check(_lookup(payload, path))
    return lambda payload: _all_hold(checks, _lookup(payload, path))


def _all_hold(checks: list[Callable[[Any], bool]], actual: Any) -> bool:
    return all(check(actual) for check in checks)


def _lookup(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _compile_operator(operator: str, operand: Any) -> Callable[[Any], bool]:
    if operator == "$exists":
        return lambda actual: (actual is not _MISSING) is bool(operand)
    if operator in ("$in", "$nin"):
        member = _membership(operand)
        if operator == "$in":
            return lambda actual: actual is not _MISSING and member(actual)
        return lambda actual: actual is _MISSING or not member(actual)
    if operator == "$eq":
        return lambda actual: actual is not _MISSING and _equal(actual, operand)
    if operator == "$gt":
        return lambda actual: _comparable(actual, operand) and bool(actual > operand)
    return lambda actual: _comparable(actual, operand) and bool(actual < operand)


def _membership(values: list[Any]) -> Callable[[Any], bool]:
    """Whether a value equals one of `values` (as `_equal` says): a set lookup, a scan only for lists and objects."""
    keys = {_key(value) for value in values if not isinstance(value, list | dict)}
    containers = [value for value in values if isinstance(value, list | dict)]

    def member(actual: Any) -> bool:
        if isinstance(actual, list | dict):
            return any(_equal(actual, value) for value in containers)
        return _key(actual) in keys

    return member


def _key(value: Any) -> tuple[str, Any]:
    """A hashable key under which values are equal exactly when `_equal` says so (true is not 1; 1 is 1.0)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


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
