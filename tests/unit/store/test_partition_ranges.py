"""The partition a range of ids lies in, from the bounds PostgreSQL writes: a claim names it only when one holds all."""

from __future__ import annotations

from chargewire.store.dialects.postgresql_partitions import partition_holding, partition_ranges

BOUNDS = [
    ("deliveries_history", "FOR VALUES FROM (MINVALUE) TO ('dlv_M')"),
    ("deliveries_p20261207", "FOR VALUES FROM ('dlv_M') TO ('dlv_N')"),
    ("deliveries_default", "DEFAULT"),
]


def test_the_default_partition_has_no_range_and_minvalue_bounds_nothing_below() -> None:
    assert partition_ranges(BOUNDS) == [("deliveries_history", "", "dlv_M"), ("deliveries_p20261207", "dlv_M", "dlv_N")]


def test_ids_are_held_by_one_partition_only_when_all_of_them_lie_in_its_range() -> None:
    ranges = partition_ranges(BOUNDS)

    assert partition_holding(ranges, "dlv_A", "dlv_B") == "deliveries_history"
    assert partition_holding(ranges, "dlv_M", "dlv_MZ") == "deliveries_p20261207"
    # Across two partitions, or past the last range (the default partition's part): none.
    assert partition_holding(ranges, "dlv_A", "dlv_MA") is None
    assert partition_holding(ranges, "dlv_N", "dlv_P") is None
