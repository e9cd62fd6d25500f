"""Several passes of the load benchmark read as one: medians, with nothing lost or duplicated hidden by them."""

from __future__ import annotations

from typing import Any

from bench.load_passes import combined, combined_results, spread


def a_pass(cpu_ms: float, p99: float, latency_max: float, lost: int = 0, rss: float = 150.0) -> dict[str, Any]:
    """One pass's measure, with the figures the rules treat differently."""
    return {
        "offered_events_per_s": 200,
        "events": 4000,
        "received": 4000 - lost,
        "lost": lost,
        "duplicates": 0,
        "latency_ms": {"p50": 2.0, "p99": p99, "max": latency_max},
        "late": {"over_ms": 50, "share_percent": 0.0, "seconds": 1 if latency_max > 50 else 0},
        "cpu_ms_per_event": {"chargewire": cpu_ms},
        "peak_rss_mb": {"chargewire": rss},
        "wake_reference_us": 100.0,
    }


PASSES = [a_pass(1.7, 6.0, 20.0, rss=151.0), a_pass(1.1, 4.0, 60.0, lost=1), a_pass(1.3, 5.0, 10.0, rss=149.0)]


def test_each_figure_is_the_median_of_its_passes() -> None:
    measure = combined(PASSES)

    assert measure["cpu_ms_per_event"]["chargewire"] == 1.3
    assert measure["latency_ms"]["p99"] == 5.0
    assert measure["offered_events_per_s"] == 200


def test_events_losses_and_late_seconds_are_summed_over_the_passes() -> None:
    measure = combined(PASSES)

    assert (measure["events"], measure["received"], measure["lost"]) == (12000, 11999, 1)
    assert measure["late"]["seconds"] == 1


def test_the_worst_maximum_and_peak_of_any_pass_are_kept() -> None:
    measure = combined(PASSES)

    assert measure["latency_ms"]["max"] == 60.0
    assert measure["peak_rss_mb"]["chargewire"] == 151.0


def test_every_pass_is_kept_and_its_spread_read_back() -> None:
    measure = combined(PASSES)

    assert measure["passes"] == PASSES
    assert spread(measure, ("cpu_ms_per_event", "chargewire")) == (1.1, 1.7)


def test_one_pass_is_its_own_measure_without_a_spread() -> None:
    [only] = PASSES[:1]

    assert combined([only]) is only
    assert spread(only, ("cpu_ms_per_event", "chargewire")) is None


def test_results_are_combined_measure_by_measure() -> None:
    first = {"sqlite": {"serve": {"single": {"200": PASSES[0]}}}}
    second = {"sqlite": {"serve": {"single": {"200": PASSES[1]}}}}

    measure = combined_results([first, second])["sqlite"]["serve"]["single"]["200"]

    assert measure["cpu_ms_per_event"]["chargewire"] == 1.4
    assert measure["lost"] == 1
    assert measure["offered_events_per_s"] == 200
    assert isinstance(measure["offered_events_per_s"], int)
