"""Summing py-spy's collapsed stacks into self and inclusive time per function."""

from __future__ import annotations

from bench.profile_summary import summarise


def test_summary_counts_the_innermost_frame_as_self_and_every_frame_once_as_inclusive() -> None:
    lines = [
        "run (asyncio/runners.py);handle (api.py);validate (catalog.py) 6\n",
        "run (asyncio/runners.py);handle (api.py) 3\n",
        "run (asyncio/runners.py);recurse (x.py);recurse (x.py) 1\n",
    ]
    summary = summarise(lines)
    assert summary.samples == 10
    assert summary.self_counts == {"validate (catalog.py)": 6, "handle (api.py)": 3, "recurse (x.py)": 1}
    assert summary.inclusive_counts["run (asyncio/runners.py)"] == 10
    assert summary.inclusive_counts["handle (api.py)"] == 9
    assert summary.inclusive_counts["recurse (x.py)"] == 1


def test_summary_skips_lines_that_are_not_stacks_with_a_count() -> None:
    assert summarise(["\n", "no count here\n"]).samples == 0
