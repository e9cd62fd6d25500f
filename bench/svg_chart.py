"""Line charts as plain SVG text, logarithmic axes (or a linear x): a benchmark's figure, no plotting library."""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

PANEL_WIDTH, PANEL_HEIGHT = 460, 320
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 60, 20, 30, 45
LEGEND_LINE_HEIGHT = 16
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
DASH = "6 3"


@dataclass(frozen=True)
class Series:
    """One line: its legend label, (x, y) points, colour and style; points with y <= 0 are left out (log axes)."""

    label: str
    points: tuple[tuple[float, float], ...]
    colour: str
    dashed: bool = False

    def stroke(self) -> str:
        """The SVG stroke attributes of this line."""
        dash = f' stroke-dasharray="{DASH}"' if self.dashed else ""
        return f'stroke="{self.colour}" stroke-width="2"{dash}'


@dataclass(frozen=True)
class Panel:
    """One chart: a title, axis labels and lines sharing log-scaled axes (x linear when `linear_x`)."""

    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    linear_x: bool = False


def log_ticks(low: float, high: float) -> list[float]:
    """The 1-2-5 values of each decade that fall within [low, high]."""
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


def log_scale(value: float, low: float, high: float, start: float, end: float) -> float:
    """Where `value` falls between `start` and `end` on a log axis running from `low` to `high`."""
    if high <= low:
        return (start + end) / 2
    share = (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))
    return start + share * (end - start)


def linear_scale(value: float, low: float, high: float, start: float, end: float) -> float:
    """Where `value` falls between `start` and `end` on a linear axis running from `low` to `high`."""
    if high <= low:
        return (start + end) / 2
    return start + (value - low) / (high - low) * (end - start)


def _label(value: float) -> str:
    return f"{value:g}"


def _bounds(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))


def _panel(panel: Panel, left: float, top: float) -> list[str]:
    points = [point for series in panel.series for point in series.points if point[1] > 0]
    if not points:
        return []
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = _bounds([y for _, y in points])
    x0, x1 = left + MARGIN_LEFT, left + PANEL_WIDTH - MARGIN_RIGHT
    y0, y1 = top + PANEL_HEIGHT - MARGIN_BOTTOM, top + MARGIN_TOP
    x_scale = linear_scale if panel.linear_x else log_scale
    parts = [
        f'<text x="{(x0 + x1) / 2}" y="{top + 18}" text-anchor="middle" font-weight="bold">'
        f"{escape(panel.title)}</text>",
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#888"/>',
        f'<text x="{(x0 + x1) / 2}" y="{y0 + 35}" text-anchor="middle">{escape(panel.x_label)}</text>',
        f'<text transform="translate({left + 15},{(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(panel.y_label)}</text>",
    ]
    for tick in log_ticks(y_low, y_high):
        y = log_scale(tick, y_low, y_high, y0, y1)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    x_values = sorted({x for x, _ in points})
    # A linear axis of many points (days) labels about ten of them.
    for x_value in x_values[:: max(1, len(x_values) // 10)] if panel.linear_x else x_values:
        x = x_scale(x_value, x_low, x_high, x0, x1)
        parts.append(f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle">{_label(x_value)}</text>')
    for series in panel.series:
        coordinates = " ".join(
            f"{x_scale(x, x_low, x_high, x0, x1):.1f},{log_scale(y, y_low, y_high, y0, y1):.1f}"
            for x, y in series.points
            if y > 0
        )
        parts.append(f'<polyline points="{coordinates}" fill="none" {series.stroke()}/>')
    return parts


def _legend(series: tuple[Series, ...], top: float) -> list[str]:
    parts = []
    for number, line in enumerate(series):
        y = top + number * LEGEND_LINE_HEIGHT
        parts.append(f'<line x1="{MARGIN_LEFT}" y1="{y}" x2="{MARGIN_LEFT + 30}" y2="{y}" {line.stroke()}/>')
        parts.append(f'<text x="{MARGIN_LEFT + 38}" y="{y + 4}">{escape(line.label)}</text>')
    return parts


def render(panels: list[Panel], caption: str) -> str:
    """An SVG document: the panels side by side, the first panel's series as the legend, a caption below."""
    legend = panels[0].series if panels else ()
    width = PANEL_WIDTH * max(len(panels), 1)
    legend_top = PANEL_HEIGHT + 10
    height = legend_top + LEGEND_LINE_HEIGHT * (len(legend) + 1) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for number, panel in enumerate(panels):
        parts.extend(_panel(panel, number * PANEL_WIDTH, 0))
    parts.extend(_legend(legend, legend_top))
    caption_y = legend_top + LEGEND_LINE_HEIGHT * len(legend) + 8
    parts.append(f'<text x="{MARGIN_LEFT}" y="{caption_y}" fill="#555">{escape(caption)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
