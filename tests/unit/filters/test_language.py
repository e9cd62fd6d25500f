"""Subscription filters: what they match, and how a bad filter is refused with the path named."""

from __future__ import annotations

from typing import Any

import pytest

from chargewire.errors import ValidationFailed
from chargewire.filters.language import FilterLimits, check_filter, compile_filter, matches

PAYLOAD: dict[str, Any] = {
    "notification": "SessionUpdateNotification",
    "chargePointId": 101,
    "session": {"id": "s-9", "energy": 1200.5, "status": "active"},
    "flag": True,
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, True),
        ({}, True),
        ({"chargePointId": 101}, True),
        ({"chargePointId": 102}, False),
        ({"chargePointId": {"$in": [100, 101]}}, True),
        ({"chargePointId": {"$nin": [100, 101]}}, False),
        ({"session.status": {"$eq": "active"}}, True),
        ({"session.energy": {"$gt": 1000}}, True),
        ({"session.energy": {"$lt": 1000}}, False),
        ({"session.id": {"$exists": True}}, True),
        ({"session.missing": {"$exists": False}}, True),
        ({"session.missing": {"$nin": [1]}}, True),
        ({"session.missing": {"$gt": 1}}, False),
        ({"chargePointId": {"$gt": "100"}}, False),
        ({"flag": 1}, False),
        ({"flag": True}, True),
        ({"$or": [{"chargePointId": 5}, {"session.status": "active"}]}, True),
        ({"$and": [{"chargePointId": 101}, {"session.status": "ended"}]}, False),
        ({"chargePointId": 101, "session.status": "ended"}, False),
    ],
)
def test_filter_matches_payload(spec: dict[str, Any] | None, expected: bool) -> None:
    assert matches(spec, PAYLOAD) is expected


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"chargePointId": {"$regex": "1.*"}}, "filter.chargePointId.$regex"),
        ({"chargePointId": {"$in": 101}}, "filter.chargePointId.$in"),
        ({"evseId": {"$exists": "yes"}}, "filter.evseId.$exists"),
        ({"evseId": {"$gt": [1]}}, "filter.evseId.$gt"),
        ({"$not": {"evseId": 1}}, "filter.$not"),
        ({"$or": []}, "filter.$or"),
        ({"$or": [{"a": {"$bad": 1}}]}, "filter.$or.0.a.$bad"),
        ({"evseId": {}}, "filter.evseId"),
        ("chargePointId == 1", "filter"),
    ],
)
def test_invalid_filter_is_refused_naming_the_path(spec: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as failure:
        check_filter(spec)
    assert field in failure.value.errors


def test_valid_filter_passes_the_check() -> None:
    check_filter({"$or": [{"chargePointId": {"$in": [1, 2]}}, {"session.energy": {"$gt": 10, "$lt": 20}}]})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"flag": {"$in": [1, 2]}}, False),
        ({"flag": {"$in": [True]}}, True),
        ({"chargePointId": {"$in": [True, 7]}}, False),
        ({"chargePointId": {"$in": [101.0]}}, True),
        ({"session": {"$in": [{"id": "s-9", "energy": 1200.5, "status": "active"}]}}, True),
        ({"session.id": {"$nin": [["s-9"], "s-8"]}}, True),
        ({"session.id": {"$in": [None, "s-9"]}}, True),
    ],
)
def test_compiled_in_and_nin_keep_json_equality_when_values_are_a_set(spec: dict[str, Any], expected: bool) -> None:
    assert compile_filter(spec)(PAYLOAD) is expected


def test_filter_limits_name_the_list_with_too_many_values() -> None:
    spec = {"$or": [{"chargePointId": {"$in": list(range(11))}}]}
    with pytest.raises(ValidationFailed) as refused:
        FilterLimits(max_values=10).check(spec)
    assert refused.value.errors == {"filter.$or[0].chargePointId.$in": ["$in takes at most 10 values; got 11."]}


def test_filter_limits_refuse_a_filter_over_its_size_naming_the_filter() -> None:
    with pytest.raises(ValidationFailed) as refused:
        FilterLimits(max_bytes=256).check({"chargePointId": {"$in": ["x" * 40] * 8}})
    assert list(refused.value.errors) == ["filter"]
