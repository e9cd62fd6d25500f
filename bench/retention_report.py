"""What `bench.retention` shows: a Markdown table for docs/benchmarks.md and an SVG figure beside its JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from statistics import mean
from typing import Any

from bench.common import RESULTS_DIR
from bench.svg_chart import COLOURS, Panel, Series, render

PLOT_PATH = RESULTS_DIR / "retention.svg"
SHOWN_DAYS = (1, 2, 5, 10, 20, 29, 30, 31, 32, 35, 40, 45)
STEADY_FROM = 31  # the first day whose expiry run has a whole day to remove


def steady_figures(days: list[dict[str, Any]]) -> dict[str, float]:
    """Day 1's publish and delivery rates beside the means of the days from STEADY_FROM on; the best day of the
    first ten beside the best from STEADY_FROM on (on a shared machine the best day is the least disturbed);
    and how much the database grew over the steady days (the last day's size over STEADY_FROM's: 1.0 is level)."""
    steady = [day for day in days if day["day"] >= STEADY_FROM]
    first = days[0]
    if not steady:
        return {"publish_eps_day1": first["publish_eps"], "delivery_ps_day1": first["delivery_ps"]}
    early = days[:10]
    return {
        "publish_eps_day1": first["publish_eps"],
        "publish_eps_steady": round(mean(day["publish_eps"] for day in steady), 1),
        "publish_eps_best_early": max(day["publish_eps"] for day in early),
        "publish_eps_best_steady": max(day["publish_eps"] for day in steady),
        "delivery_ps_day1": first["delivery_ps"],
        "delivery_ps_steady": round(mean(day["delivery_ps"] for day in steady), 1),
        "delivery_ps_best_early": max(day["delivery_ps"] for day in early),
        "delivery_ps_best_steady": max(day["delivery_ps"] for day in steady),
        "expiry_s_steady": round(mean(day["expiry_s"] for day in steady), 2),
        "expire_s_steady": round(mean(day["expire_s"] for day in steady), 2),
        "growth_steady": round(steady[-1]["size_bytes"] / steady[0]["size_bytes"], 3),
    }


def markdown_table(stores: dict[str, Any]) -> str:
    """One row per store and shown day: size, rows kept, rates, the expiry run's time and what it removed."""
    lines = [
        "| store | day | database MiB | events kept | deliveries kept | publish events/s | deliveries/s "
        "| expiry run s (before measuring) | rows removed (events + deliveries + attempts) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, store in stores.items():
        for day in store["days"]:
            if day["day"] not in SHOWN_DAYS and day is not store["days"][-1]:
                continue
            removed = sum(day["removed"].get(table, 0) for table in ("events", "deliveries", "attempts"))
            lines.append(
                f"| {backend} | {day['day']} | {day['size_bytes'] / 2**20:,.1f} | {day['rows']['events']:,} "
                f"| {day['rows']['deliveries']:,} | {day['publish_eps']:,.0f} | {day['delivery_ps']:,.0f} "
                f"| {day['expiry_s']:.2f} ({day['expire_s']:.2f}) | {removed:,} |"
            )
    return "\n".join(lines)


def _series(stores: dict[str, Any], figure: str, scale: float = 1.0) -> tuple[Series, ...]:
    return tuple(
        Series(
            backend,
            tuple((float(day["day"]), day[figure] * scale) for day in store["days"]),
            COLOURS[number % len(COLOURS)],
        )
        for number, (backend, store) in enumerate(stores.items())
    )


def _expiry_series(stores: dict[str, Any]) -> tuple[Series, ...]:
    whole = _series(stores, "expiry_s")
    before = tuple(
        replace(line, label=f"{line.label}, before measuring", dashed=True) for line in _series(stores, "expire_s")
    )
    return whole + before


def write_plot(stores: dict[str, Any], caption: str) -> None:
    """Write bench/results/retention.svg: size, publish rate and expiry time against the simulated day."""
    panels = [
        Panel("database size", "simulated day", "MiB", _series(stores, "size_bytes", 1 / 2**20), linear_x=True),
        Panel("publish rate", "simulated day", "events/s", _series(stores, "publish_eps"), linear_x=True),
        Panel("delivery rate (claim + record)", "simulated day", "deliveries/s", _series(stores, "delivery_ps"), True),
        Panel("expiry run (whole; before measuring)", "simulated day", "s", _expiry_series(stores), linear_x=True),
    ]
    PLOT_PATH.write_text(render(panels, caption))


def write_report(path: Path) -> None:
    """Print the table and the steady figures of a result file, and write its figure."""
    result = json.loads(path.read_text())
    stores = result["stores"]
    caption = (
        f"{result['events_per_day']:,} events a day ({result['scale']:.1%} of 40 events/s), two subscriptions, "
        "30-day retention; expiry dashed: before measuring; y logarithmic. "
        f"Data: bench/results/retention.json, commit {result['git_commit']}"
    )
    write_plot(stores, caption)
    print(markdown_table(stores))
    for backend, store in stores.items():
        print(backend, steady_figures(store["days"]))


if __name__ == "__main__":
    write_report(RESULTS_DIR / "retention.json")
