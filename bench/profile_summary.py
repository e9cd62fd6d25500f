"""Where a process spent its CPU: the top functions of a py-spy `raw` (collapsed stacks) profile.

`python -m bench.load --profile DIR` samples chargewire's processes with `py-spy record --format raw` during
each measure; this prints each file's functions by self time (the innermost frame of a sample) and by
inclusive time (any frame of a sample, counted once per sample), as shares of all samples.
Usage: python -m bench.profile_summary FILE... [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Summary:
    """Samples in all, and per function its self and inclusive sample counts."""

    samples: int
    self_counts: Counter[str]
    inclusive_counts: Counter[str]


def summarise(lines: Iterable[str]) -> Summary:
    """Count the collapsed stacks `frame;frame;...;innermost COUNT` (py-spy's raw format, one per line)."""
    samples = 0
    self_counts: Counter[str] = Counter()
    inclusive_counts: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive_counts[frame] += count
    return Summary(samples, self_counts, inclusive_counts)


def _table(title: str, counts: Counter[str], samples: int, top: int) -> list[str]:
    lines = [f"  {title}"]
    for frame, count in counts.most_common(top):
        lines.append(f"  {count / samples * 100:6.1f}%  {frame}")
    return lines


def report(path: Path, top: int) -> str:
    """The top functions of one profile, by self and by inclusive time."""
    summary = summarise(path.read_text().splitlines())
    if not summary.samples:
        return f"{path}: no samples"
    return "\n".join(
        [
            f"{path}: {summary.samples} samples",
            *_table("self", summary.self_counts, summary.samples, top),
            *_table("inclusive", summary.inclusive_counts, summary.samples, top),
        ]
    )


def main() -> None:
    """Print the summary of each profile named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    for path in options.files:
        print(report(path, options.top))


if __name__ == "__main__":
    main()
