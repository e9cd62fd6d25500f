"""The report of a chaos run: a Markdown table per store, and the whole result as JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine
from tests.chaos.invariants import RECOVERY_TARGET_S, PhaseFigures

_HEADER = (
    "| fault | accepted | deliveries | delivered | failed | unaccounted | duplicates | resumed s | recovery s |"
    " publish answers | died |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
)


@dataclasses.dataclass
class StoreResult:
    """One store's run: the figures per fault and the invariants it broke."""

    store: str
    profile: str
    figures: list[PhaseFigures]
    violations: list[str]
    seconds: float


def table(result: StoreResult) -> str:
    """The Markdown table of one store's run, followed by its broken invariants."""
    lines = [f"**{result.store}** ({result.profile} run, {result.seconds:.0f} s)", "", _HEADER]
    lines += [_row(figure) for figure in result.figures]
    lines.append("")
    if result.violations:
        lines += ["Broken invariants:", "", *[f"- {violation}" for violation in result.violations]]
    else:
        lines.append("Every invariant held.")
    return "\n".join(lines)


def _row(figure: PhaseFigures) -> str:
    unaccounted = figure.pending + figure.missing + figure.lost
    answers = ", ".join(f"{status}: {count}" for status, count in sorted(figure.publish_answers.items()))
    cells = [
        figure.fault,
        figure.accepted,
        figure.deliveries,
        figure.delivered,
        figure.failed,
        unaccounted,
        figure.duplicates,
        _recovery(figure.resumed_s, figure),
        _recovery(figure.recovery_s, figure),
        f"{answers} (slowest {figure.slowest_publish_s} s)",
        ", ".join(figure.died) or "-",
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _recovery(seconds: float | None, figure: PhaseFigures) -> str:
    if seconds is None:
        return "-" if figure.fault.startswith("baseline") else "never"
    notes = [
        *(["over target"] if seconds > RECOVERY_TARGET_S else []),
        *(["the next fault struck first"] if figure.quiet_s is not None and seconds > figure.quiet_s else []),
    ]
    return f"{seconds:.1f}" + (f" ({'; '.join(notes)})" if notes else "")


def write_json(path: Path, results: list[StoreResult], command: str) -> None:
    """Save every store's result with date, machine, commit and the command that ran."""
    document: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "git_commit": _git_commit(),
        "machine": machine(),
        "recovery_target_s": RECOVERY_TARGET_S,
        "stores": [dataclasses.asdict(result) for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"
