"""What `bench.load` shows: a Markdown table for docs/benchmarks.md and an SVG figure beside its JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.common import RESULTS_DIR
from bench.load_passes import spread
from bench.svg_chart import COLOURS, Panel, Series, render

MODE_LABELS = {"serve": "`serve`", "worker": "`serve --no-worker` + 1 `worker`"}
PLOT_PATH = RESULTS_DIR / "load.svg"


def rows(results: dict[str, Any]) -> Iterator[tuple[str, str, str, int, dict[str, Any]]]:
    """(backend, mode, publishing style, rate, measure) for every measure, in the order they ran."""
    for backend, modes in results.items():
        for mode, styles in modes.items():
            for style, rates in styles.items():
                for rate, measure in rates.items():
                    yield backend, mode, style, int(rate), measure


def _latency(measure: dict[str, Any]) -> str:
    latency = measure.get("latency_ms") or {}
    return f"{latency.get('p50', '?')} / {latency.get('p99', '?')} / {latency.get('max', '?')}"


def _cpu(measure: dict[str, Any]) -> str:
    """chargewire's CPU ms per event; over several passes, their median and (in brackets) their range."""
    median = f"{measure['cpu_ms_per_event']['chargewire']:.2f}"
    extremes = spread(measure, ("cpu_ms_per_event", "chargewire"))
    return median if extremes is None else f"{median} ({extremes[0]:.2f}-{extremes[1]:.2f})"


def markdown_table(results: dict[str, Any]) -> str:
    """One row per store, configuration, publishing style and rate."""
    lines = [
        "| store | configuration | events per request | events/s | p50 / p99 / max ms | "
        "CPU ms per event: chargewire | PostgreSQL | peak RSS MB: chargewire | lost / duplicates | load before | "
        "Python reference ms | wake reference µs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, mode, _style, rate, measure in rows(results):
        cpu = measure["cpu_ms_per_event"]
        postgresql = f"{cpu['postgresql']:.2f}" if backend == "postgresql" else "-"
        lines.append(
            f"| {backend} | {MODE_LABELS[mode]} | {measure['events_per_request']} | {rate:,} | {_latency(measure)} | "
            f"{_cpu(measure)} | {postgresql} | {measure['peak_rss_mb'].get('chargewire', '?')} | "
            f"{measure['lost']} / {measure['duplicates']} | {measure['load_average_before']} | "
            f"{measure.get('python_reference_ms', '-')} | {measure.get('wake_reference_us') or '-'} |"
        )
    return "\n".join(lines)


def _series(results: dict[str, Any], figure: str) -> tuple[Series, ...]:
    lines: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for backend, mode, style, rate, measure in rows(results):
        value = (
            measure["latency_ms"].get("p99", 0.0)
            if figure == "p99"
            else sum(measure["cpu_ms_per_event"][group] for group in ("chargewire", "postgresql"))
        )
        lines.setdefault((backend, mode, style), []).append((rate, value))
    configurations = sorted({(backend, mode) for backend, mode, _ in lines})
    return tuple(
        Series(
            f"{backend}, {mode}, {style}",
            tuple(points),
            COLOURS[configurations.index((backend, mode)) % len(COLOURS)],
            dashed=style != "single",
        )
        for (backend, mode, style), points in lines.items()
    )


def write_plot(results: dict[str, Any]) -> None:
    """Write bench/results/load.svg: p99 latency and CPU per event against the offered rate."""
    panels = [
        Panel("publish-to-receipt p99", "offered events/s", "ms", _series(results, "p99")),
        Panel("CPU per event (chargewire + PostgreSQL)", "offered events/s", "ms", _series(results, "cpu")),
    ]
    caption = "solid: one event per request; dashed: ten. Both axes logarithmic. Data: bench/results/load.json"
    PLOT_PATH.write_text(render(panels, caption))
