"""One `bench.load` measure from several passes of it: the figure to read, and every pass kept beside it.

The host's speed moves within minutes (`WakeReference`), so one 20-s measure at a low rate can land in a slow or a
fast phase. Passes of the whole run, one after another, each on fresh processes, give each figure a median that no
single phase sets, and a spread that shows how far one pass can be from it. Nothing is hidden by the median: events,
losses, duplicates, refusals and late seconds are summed over the passes, and each maximum and peak is the largest.
"""

from __future__ import annotations

import statistics
from typing import Any

# Counts over events: every pass's are added, so that one lost event in one pass shows.
SUMMED = frozenset(
    {
        ("events",),
        ("received",),
        ("lost",),
        ("duplicates",),
        ("rejected",),
        ("refused_signatures",),
        ("late", "seconds"),
    }
)
# The worst any pass saw: each latency's maximum, each group's peak RSS.
LARGEST_KEYS = frozenset({"max"})
LARGEST_GROUPS = frozenset({"peak_rss_mb"})


def combined(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """The measure that `passes` (the same measure, run in each pass) make together, with each pass under "passes"."""
    if len(passes) == 1:
        return passes[0]
    merged: dict[str, Any] = _merged(passes, ())
    return merged | {"passes": passes}


def combined_results(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """bench.load's results (backend -> mode -> style -> rate -> measure) of several passes as one, measure by
    measure."""
    first = passes[0]
    if "offered_events_per_s" in first:
        return combined(passes)
    return {key: combined_results([each[key] for each in passes]) for key in first}


def _merged(values: list[Any], path: tuple[str, ...]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        return {key: _merged([value[key] for value in values if key in value], (*path, key)) for key in first}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    if path in SUMMED:
        return sum(values)
    if all(value == first for value in values):
        return first
    if path[-1] in LARGEST_KEYS or path[0] in LARGEST_GROUPS:
        return max(values)
    median = statistics.median(values)
    return median if isinstance(median, int) else round(median, 3)


def spread(measure: dict[str, Any], figure: tuple[str, ...]) -> tuple[float, float] | None:
    """The smallest and largest `figure` (a path into a measure) over the measure's passes; None for one pass."""
    passes = measure.get("passes")
    if not passes:
        return None
    values = [_at(each, figure) for each in passes]
    return min(values), max(values)


def _at(measure: dict[str, Any], figure: tuple[str, ...]) -> float:
    value: Any = measure
    for key in figure:
        value = value[key]
    return float(value)
