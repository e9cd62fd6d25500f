"""Percentiles estimated from histogram buckets, as the overview's latency figures are."""

from __future__ import annotations

import pytest

from chargewire.services.overview import percentile

BOUNDS = (0.1, 1.0, 10.0)


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile(BOUNDS, [0, 0, 0, 0], 0.5) is None


def test_the_percentile_is_interpolated_inside_its_bucket() -> None:
    assert percentile(BOUNDS, [0, 10, 0, 0], 0.5) == pytest.approx(0.55)
    assert percentile(BOUNDS, [50, 50, 0, 0], 0.5) == pytest.approx(0.1)
    assert percentile(BOUNDS, [50, 50, 0, 0], 0.99) == pytest.approx(0.982)


def test_values_past_the_last_bound_answer_that_bound() -> None:
    assert percentile(BOUNDS, [0, 0, 0, 5], 0.99) == 10.0
