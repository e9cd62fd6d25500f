"""The load benchmark's report: one table row per measure, PostgreSQL's column only where it ran."""

from __future__ import annotations

from typing import Any

from bench.load_report import markdown_table, rows


def measure_factory(rate: int, batch: int, chargewire_ms: float, postgresql_ms: float = 0.0) -> dict[str, Any]:
    """A measure as bench.load records it, with the figures the report reads."""
    return {
        "offered_events_per_s": rate,
        "events_per_request": batch,
        "latency_ms": {"p50": 4.2, "p90": 8.0, "p99": 12.5, "max": 30.1},
        "cpu_ms_per_event": {"chargewire": chargewire_ms, "postgresql": postgresql_ms, "receiver": 0.05},
        "peak_rss_mb": {"chargewire": 150.2},
        "lost": 0,
        "duplicates": 0,
        "load_average_before": 1.5,
        "python_reference_ms": 36.1,
        "wake_reference_us": 92.4,
    }


RESULTS = {
    "sqlite": {
        "serve": {"single": {"50": measure_factory(50, 1, 7.284)}, "batch10": {"50": measure_factory(50, 10, 2)}}
    },
    "postgresql": {"worker": {"single": {"2000": measure_factory(2000, 1, 0.7, 0.25)}}},
}


def test_rows_walk_every_measure_in_the_order_it_ran() -> None:
    assert [(backend, mode, style, rate) for backend, mode, style, rate, _ in rows(RESULTS)] == [
        ("sqlite", "serve", "single", 50),
        ("sqlite", "serve", "batch10", 50),
        ("postgresql", "worker", "single", 2000),
    ]


def test_table_has_a_row_per_measure_with_postgresql_cpu_only_on_postgresql() -> None:
    table = markdown_table(RESULTS).splitlines()

    assert len(table) == 2 + 3
    assert (
        table[2] == "| sqlite | `serve` | 1 | 50 | 4.2 / 12.5 / 30.1 | 7.28 | - | 150.2 | 0 / 0 | 1.5 | 36.1 | 92.4 |"
    )
    assert "| 2,000 | 4.2 / 12.5 / 30.1 | 0.70 | 0.25 |" in table[4]


def test_a_measure_from_before_the_python_reference_shows_a_dash_in_its_column() -> None:
    older = measure_factory(200, 1, 1.5)
    del older["python_reference_ms"]
    del older["wake_reference_us"]

    [row] = markdown_table({"sqlite": {"serve": {"single": {"200": older}}}}).splitlines()[2:]

    assert row.endswith("| 1.5 | - | - |")


def test_a_measure_from_before_the_wake_reference_shows_a_dash_in_its_column() -> None:
    older = measure_factory(200, 1, 1.5)
    del older["wake_reference_us"]

    [row] = markdown_table({"sqlite": {"serve": {"single": {"200": older}}}}).splitlines()[2:]

    assert row.endswith("| 1.5 | 36.1 | - |")


def test_a_measure_of_several_passes_shows_their_cpu_range_beside_the_median() -> None:
    passes = [measure_factory(200, 1, cpu) for cpu in (1.9, 1.2, 1.4)]
    measure = measure_factory(200, 1, 1.4) | {"passes": passes}

    [row] = markdown_table({"sqlite": {"serve": {"single": {"200": measure}}}}).splitlines()[2:]

    assert "| 1.40 (1.20-1.90) | - |" in row
