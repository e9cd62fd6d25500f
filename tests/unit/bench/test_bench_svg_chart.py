"""The SVG line chart of the load benchmark: log ticks, log scale, a well-formed document."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench.svg_chart import Panel, Series, linear_scale, log_scale, log_ticks, render


def test_log_ticks_are_the_one_two_five_values_within_the_range() -> None:
    assert log_ticks(40, 2500) == [50, 100, 200, 500, 1000, 2000]


def test_log_scale_places_a_decade_midpoint_halfway() -> None:
    assert log_scale(10, 1, 100, 0, 200) == pytest.approx(100)
    assert log_scale(1, 1, 100, 0, 200) == pytest.approx(0)
    assert log_scale(100, 1, 100, 300, 100) == pytest.approx(100)


def test_log_scale_of_a_single_value_range_is_the_middle() -> None:
    assert log_scale(5, 5, 5, 0, 100) == 50


def test_render_draws_one_polyline_per_series_and_leaves_out_non_positive_points() -> None:
    series = (
        Series("sqlite, serve, single", ((50, 8.0), (200, 30.0), (800, 0.0)), "#123456"),
        Series("sqlite, serve, batch10", ((50, 4.0), (200, 12.0)), "#123456", dashed=True),
    )
    document = ET.fromstring(render([Panel("p99", "events/s", "ms", series)], "caption"))  # noqa: S314 (our own text)
    lines = document.findall("{http://www.w3.org/2000/svg}polyline")
    assert [len(line.attrib["points"].split()) for line in lines] == [2, 2]
    assert "stroke-dasharray" in lines[1].attrib


def test_linear_scale_places_the_middle_value_halfway() -> None:
    assert linear_scale(25, 10, 40, 0, 300) == pytest.approx(150)
    assert linear_scale(7, 7, 7, 0, 100) == 50
