"""Server-rendered charts: inline SVG with a data table, no JavaScript and nothing from a CDN.

Every chart is a ``<figure class="cs-chart">`` holding an ``<svg role="img">`` with an ``aria-label`` and a
``<title>`` (what a screen reader says and a mouse shows), followed by ``<details>`` with the same numbers as a
table (the fallback for anyone who cannot see the picture, and for copying figures). Text is escaped here;
callers pass plain strings and numbers. Colours are explicit (a CSS colour each); axes and labels use
``currentColor`` so they follow the page's text colour (the admin's light and dark themes).

    line_chart([Series("Health score", [72, 70, None, 64])], labels=["1 Mar", "8 Mar", "15 Mar", "22 Mar"],
               title="Health score, last 90 days", y_min=0, y_max=100)
    sparkline([3, 4, 2, 8], title="Logins, last 30 days")
    bar_chart([Bar("Healthy", 12, "#2e7d32"), Bar("Critical", 3, "#c62828")], title="Accounts by risk band")
    gauge(35, title="Health score", bands=[(40, "#c62828"), (60, "#e65100"), (80, "#b58900"), (100, "#2e7d32")])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

Number = float | int


@dataclass(frozen=True)
class Series:
    """One line of a line chart: ``values[i]`` belongs to ``labels[i]``; None leaves a gap."""

    name: str
    values: Sequence[Number | None]
    colour: str = "#1f6fb2"


@dataclass(frozen=True)
class Bar:
    label: str
    value: Number
    colour: str = "#1f6fb2"


def number(value: Number | None, unit: str = "") -> str:
    """How a figure is written: whole numbers without decimals, others with one; "-" for none."""
    if value is None:
        return "-"
    value = float(value)
    text = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
    return f"{text}{unit}"


def _coord(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round values covering ``low``..``high`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks, value = [start], start
    while value < high - step * 1e-9:  # up to the first tick at or above ``high``
        value += step
        ticks.append(round(value, 10))
    return ticks


def _figure(svg: SafeString, table: SafeString, title: str, css: str) -> SafeString:
    return format_html(
        '<figure class="cs-chart {}">{}<details class="cs-chart-data"><summary>Data: {}</summary>{}</details></figure>',
        css, svg, title, table,
    )


def _svg_open(width: int, height: int, title: str, summary: str) -> SafeString:
    label = f"{title}. {summary}" if summary else title
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'preserveAspectRatio="xMinYMin meet" focusable="false"><title>{}</title>',
        label, width, height, width, height, label,
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> SafeString:
    head = format_html_join("", "<th scope=\"col\">{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>",
        ((format_html("<th scope=\"row\">{}</th>", row[0])
          + format_html_join("", "<td>{}</td>", ((cell,) for cell in row[1:])),) for row in rows),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


# --- line charts -----------------------------------------------------------------------------------

def _path(points: list[tuple[float, float] | None]) -> str:
    """An SVG path through the points; None breaks the line (a gap in the data)."""
    parts, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_coord(point[0])} {_coord(point[1])}")
        pen_down = True
    return " ".join(parts)


def line_chart(series: Sequence[Series], *, labels: Sequence[str], title: str, y_min: Number | None = None,
               y_max: Number | None = None, unit: str = "", width: int = 640, height: int = 200,
               zones: Sequence[tuple[Number, Number, str]] = (), x_name: str = "Date", summary: str = "") -> SafeString:
    """Lines over shared x ``labels``. ``zones`` shade horizontal bands ``(from, to, colour)`` behind the lines
    (e.g. risk bands of a health score); ``y_min``/``y_max`` fix the scale (else it fits the data)."""
    values = [v for s in series for v in s.values if v is not None]
    low = float(y_min) if y_min is not None else min(values, default=0.0)
    high = float(y_max) if y_max is not None else max(values, default=1.0)
    ticks = nice_ticks(low, high)
    if y_min is None:
        low = ticks[0]
    if y_max is None:
        high = ticks[-1]
    high = high if high > low else low + 1
    left, right, top, bottom = 40, 16, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (min(max(float(v), low), high) - low) / (high - low))

    parts = []
    for start, end, colour in zones:
        y1, y2 = y(end), y(start)
        parts.append(format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="{}" opacity="0.12"/>',
                                 left, _coord(y1), plot_w, _coord(max(y2 - y1, 0)), colour))
    for tick in ticks:
        if low <= tick <= high:
            parts.append(format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.15"/>'
                '<text x="{}" y="{}" text-anchor="end" font-size="10" fill="currentColor">{}</text>',
                left, width - right, _coord(y(tick)), _coord(y(tick)), left - 4, _coord(y(tick) + 3), number(tick)))
    step = max(1, math.ceil(count / 6))
    for i in range(0, len(labels), step):
        anchor = "end" if i == count - 1 and count > 1 else "start" if i == 0 and count > 1 else "middle"
        parts.append(format_html('<text x="{}" y="{}" text-anchor="{}" font-size="10" fill="currentColor">{}</text>',
                                 _coord(x(i)), height - 6, anchor, labels[i]))
    for s in series:
        points = [(x(i), y(v)) if v is not None else None for i, v in enumerate(s.values)]
        parts.append(format_html('<path d="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"/>',
                                 _path(points), s.colour))
        last = next((i for i in range(len(points) - 1, -1, -1) if points[i] is not None), None)
        for i, point in enumerate(points):  # the last value, and any value without a neighbour (no line shows it)
            alone = point is not None and (i == 0 or points[i - 1] is None) and (i == len(points) - 1 or points[i + 1] is None)
            if i == last or alone:
                parts.append(format_html('<circle cx="{}" cy="{}" r="{}" fill="{}"/>', _coord(point[0]), _coord(point[1]),
                                         3 if i == last else 2, s.colour))
    if len(series) > 1:
        parts.append(_legend(series, left, width))
    if not summary and values:
        summary = "; ".join(f"{s.name}: latest {number(_last(s.values), unit)}" for s in series)
    svg = _svg_open(width, height, title, summary) + mark_safe("".join(parts)) + mark_safe("</svg>")
    rows = [[label, *(number(s.values[i] if i < len(s.values) else None, unit) for s in series)]
            for i, label in enumerate(labels)]
    return _figure(svg, _table([x_name, *(s.name for s in series)], rows), title, "cs-chart-line")


def _last(values: Sequence[Number | None]) -> Number | None:
    return next((v for v in reversed(values) if v is not None), None)


def _legend(series: Sequence[Series], left: int, width: int) -> SafeString:
    items, x = [], left + 4
    for s in series:
        items.append(format_html('<rect x="{}" y="2" width="10" height="3" fill="{}"/>'
                                 '<text x="{}" y="8" font-size="10" fill="currentColor">{}</text>', x, s.colour, x + 14,
                                 s.name))
        x += 24 + 6 * len(s.name)
    return mark_safe("".join(items))


def sparkline(values: Sequence[Number | None], *, title: str, labels: Sequence[str] | None = None,
              colour: str = "#1f6fb2", width: int = 120, height: int = 28, unit: str = "") -> SafeString:
    """A small line without axes, for a table cell; the figure still carries its data table."""
    known = [float(v) for v in values if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    high = high if high > low else low + 1
    count = max(len(values), 1)
    points = [((width - 4) * i / max(count - 1, 1) + 2, 2 + (height - 4) * (1 - (float(v) - low) / (high - low)))
              if v is not None else None for i, v in enumerate(values)]
    summary = f"from {number(_first(values), unit)} to {number(_last(values), unit)}" if known else "no data"
    svg = (_svg_open(width, height, title, summary)
           + format_html('<path d="{}" fill="none" stroke="{}" stroke-width="1.5"/></svg>', _path(points), colour))
    labels = labels or [str(i + 1) for i in range(len(values))]
    return _figure(svg, _table(["Point", title], [[label, number(v, unit)] for label, v in zip(labels, values)]), title,
                   "cs-chart-spark")


def _first(values: Sequence[Number | None]) -> Number | None:
    return next((v for v in values if v is not None), None)


# --- bars and gauges -------------------------------------------------------------------------------

def bar_chart(bars: Sequence[Bar], *, title: str, unit: str = "", width: int = 360, height: int = 180,
              x_name: str = "Category", y_name: str = "Value") -> SafeString:
    """Vertical bars with their value above and their label below."""
    top_value = max((float(b.value) for b in bars), default=0.0)
    top_value = nice_ticks(0, top_value or 1)[-1]
    left, right, top, bottom = 8, 8, 16, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / max(len(bars), 1)
    parts = [format_html('<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.3"/>',
                         left, width - right, top + plot_h, top + plot_h)]
    for i, bar in enumerate(bars):
        h = plot_h * float(bar.value) / top_value if top_value else 0
        x = left + slot * i + slot * 0.15
        parts.append(format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" rx="2"><title>{}: {}</title></rect>'
            '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="currentColor">{}</text>'
            '<text x="{}" y="{}" text-anchor="middle" font-size="10" fill="currentColor">{}</text>',
            _coord(x), _coord(top + plot_h - h), _coord(slot * 0.7), _coord(h), bar.colour, bar.label,
            number(bar.value, unit), _coord(x + slot * 0.35), _coord(top + plot_h - h - 4), number(bar.value, unit),
            _coord(x + slot * 0.35), height - 6, bar.label))
    summary = ", ".join(f"{b.label} {number(b.value, unit)}" for b in bars)
    svg = _svg_open(width, height, title, summary) + mark_safe("".join(parts)) + mark_safe("</svg>")
    return _figure(svg, _table([x_name, y_name], [[b.label, number(b.value, unit)] for b in bars]), title,
                   "cs-chart-bar")


def _arc(cx: float, cy: float, r: float, start: float, end: float) -> str:
    """A path along the upper half circle from fraction ``start`` to ``end`` (0 = left, 1 = right)."""
    def point(fraction: float) -> tuple[float, float]:
        angle = math.pi * (1 - fraction)
        return cx + r * math.cos(angle), cy - r * math.sin(angle)

    (x1, y1), (x2, y2) = point(start), point(end)
    return f"M{_coord(x1)} {_coord(y1)} A{_coord(r)} {_coord(r)} 0 0 1 {_coord(x2)} {_coord(y2)}"


def gauge(value: Number | None, *, title: str, maximum: Number = 100, bands: Sequence[tuple[Number, str]] = (),
          label: str = "", width: int = 160, height: int = 96) -> SafeString:
    """A half-circle gauge of ``value`` out of ``maximum``. ``bands`` colour the track: ``(upper bound, colour)``
    in ascending order (e.g. Critical below 40 in red). ``label`` is written under the number (e.g. the band)."""
    cx, cy, r = width / 2, height - 14, min(width / 2 - 10, height - 24)
    parts, start = [], 0.0
    for upper, colour in bands:
        end = min(float(upper) / float(maximum), 1.0)
        if end > start:
            parts.append(format_html('<path d="{}" fill="none" stroke="{}" stroke-width="10" opacity="0.3"/>',
                                     _arc(cx, cy, r, start, end), colour))
        start = end
    if not bands:
        parts.append(format_html('<path d="{}" fill="none" stroke="currentColor" stroke-opacity="0.15" '
                                 'stroke-width="10"/>', _arc(cx, cy, r, 0, 1)))
    shown = None if value is None else min(max(float(value), 0.0), float(maximum))
    colour = next((c for upper, c in bands if shown is not None and shown < float(upper)), bands[-1][1] if bands
                  else "#1f6fb2")
    if shown:
        parts.append(format_html('<path d="{}" fill="none" stroke="{}" stroke-width="10"/>',
                                 _arc(cx, cy, r, 0, shown / float(maximum)), colour))
    parts.append(format_html('<text x="{}" y="{}" text-anchor="middle" font-size="22" font-weight="bold" '
                             'fill="currentColor">{}</text>', _coord(cx), _coord(cy - 4), number(value)))
    if label:
        parts.append(format_html('<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="currentColor">{}'
                                 '</text>', _coord(cx), _coord(cy + 11), label))
    summary = f"{number(value)} out of {number(maximum)}" + (f", {label}" if label else "")
    svg = _svg_open(width, height, title, summary) + mark_safe("".join(parts)) + mark_safe("</svg>")
    rows = [[title, number(value)], ["Maximum", number(maximum)]] + ([["Band", label]] if label else [])
    return _figure(svg, _table(["Measure", "Value"], rows), title, "cs-chart-gauge")


__all__ = ["Bar", "Series", "bar_chart", "gauge", "line_chart", "nice_ticks", "number", "sparkline"]
