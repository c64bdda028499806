"""Daily trend charts as geometry for inline SVG: stacked paid and free bars, axes, and a table to read them by.

The template only draws what is computed here; the colours come from the admin's CSS variables,
so the charts follow its light and dark themes. Every coordinate is a Decimal rounded to 0.01,
computed from the exact figures (money is never a float, not even on its way to a pixel).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from reports.selectors import DailyUsageRow

# The drawing's own units; the SVG scales to its container's width, so these set proportions and type size.
WIDTH = Decimal(320)
HEIGHT = Decimal(180)
PLOT_LEFT = Decimal(44)
PLOT_RIGHT = Decimal(6)
PLOT_TOP = Decimal(8)
PLOT_BOTTOM = Decimal(24)
PLOT_WIDTH = WIDTH - PLOT_LEFT - PLOT_RIGHT
PLOT_HEIGHT = HEIGHT - PLOT_TOP - PLOT_BOTTOM
# A bar fills this share of its slot; a lone bar stays slim rather than filling the plot.
BAR_SHARE = Decimal("0.72")
MAX_BAR_WIDTH = Decimal(28)
Y_INTERVALS = 4
X_LABELS = 5
# Beyond this many days a bar is a week, beyond the second a month: a bar stays wider than a pixel.
MAX_DAILY_BARS = 92
MAX_WEEKLY_BARS = 105
PIXEL = Decimal("0.01")
TICK_LABEL_X = PLOT_LEFT - Decimal(6)
DATE_LABEL_Y = HEIGHT - Decimal(8)
MONEY_DISPLAY_PLACES = Decimal("0.000001")


def _pixel(value: Decimal) -> Decimal:
    return value.quantize(PIXEL, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ChartBucket:
    """The figures of one bar: a day, a week or a month of the period."""

    since: date
    until: date
    paid: Decimal
    free: Decimal

    @property
    def total(self) -> Decimal:
        return self.paid + self.free


@dataclass(frozen=True)
class ChartBar:
    """One stacked bar: paid at the bottom, free on top, and a column the width of its slot for hovering."""

    slot_x: Decimal
    slot_width: Decimal
    x: Decimal
    width: Decimal
    paid_y: Decimal
    paid_height: Decimal
    free_y: Decimal
    free_height: Decimal
    label: str

    @property
    def svg(self) -> SafeString:
        # Written here rather than in the template: one value to render per bar, not ten numbers
        # each localized (coordinates must stay plain numbers whatever the locale, too). The
        # coordinates are Decimals, whose text needs no escaping; only the label is escaped.
        label = escape(self.label)
        return mark_safe(  # noqa: S308 - every interpolated value is a Decimal or escaped above
            f'<g class="usage-chart-bar" aria-label="{label}"><title>{label}</title>'
            f'<rect class="usage-chart-hit" x="{self.slot_x}" y="{PLOT_TOP}" width="{self.slot_width}" '
            f'height="{PLOT_HEIGHT}"></rect>'
            f'<rect class="usage-chart-paid" x="{self.x}" y="{self.paid_y}" width="{self.width}" '
            f'height="{self.paid_height}"></rect>'
            f'<rect class="usage-chart-free" x="{self.x}" y="{self.free_y}" width="{self.width}" '
            f'height="{self.free_height}"></rect></g>'
        )


@dataclass(frozen=True)
class ChartTick:
    """A horizontal grid line of the value axis, and its label."""

    y: Decimal
    label: str

    @property
    def svg(self) -> SafeString:
        return format_html(
            '<line x1="{}" x2="{}" y1="{y}" y2="{y}"></line>'
            '<text x="{}" y="{y}" text-anchor="end" dominant-baseline="middle">{}</text>',
            str(PLOT_LEFT),
            str(WIDTH - PLOT_RIGHT),
            str(TICK_LABEL_X),
            self.label,
            y=str(self.y),
        )


@dataclass(frozen=True)
class ChartDateLabel:
    """A label under the bars, centred on its bar."""

    x: Decimal
    label: str

    @property
    def svg(self) -> SafeString:
        return format_html(
            '<text x="{}" y="{}" text-anchor="middle">{}</text>', str(self.x), str(DATE_LABEL_Y), self.label
        )


@dataclass(frozen=True)
class ChartTableRow:
    """One row of a chart's text equivalent."""

    label: str
    paid: str
    free: str
    total: str

    @property
    def html(self) -> SafeString:
        # One value to render per row, as the bars' SVG: a chart over a year has a row per week.
        return format_html(
            '<tr><th scope="row" class="usage-report-text">{}</th><td class="usage-report-int">{}</td>'
            '<td class="usage-report-int">{}</td><td class="usage-report-int">{}</td></tr>',
            self.label,
            self.paid,
            self.free,
            self.total,
        )


@dataclass(frozen=True)
class StackedBarChart:
    """A chart of one measure over the period, with everything the template draws and its text equivalent."""

    key: str
    title: str
    bucket: str  # "day", "week" or "month"
    summary: str
    bars: tuple[ChartBar, ...]
    ticks: tuple[ChartTick, ...]
    date_labels: tuple[ChartDateLabel, ...]
    rows: tuple[ChartTableRow, ...]
    export_key: str = "daily_usage"
    width: Decimal = WIDTH
    height: Decimal = HEIGHT
    plot_left: Decimal = PLOT_LEFT
    plot_right: Decimal = WIDTH - PLOT_RIGHT
    plot_top: Decimal = PLOT_TOP
    plot_height: Decimal = PLOT_HEIGHT
    baseline: Decimal = PLOT_TOP + PLOT_HEIGHT
    tick_label_x: Decimal = TICK_LABEL_X
    date_label_y: Decimal = DATE_LABEL_Y

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width} {self.height}"

    # Each part drawn as one value: the template engine's work per item of a loop cost more than
    # the item itself (a chart over a year has 53 bars and as many table rows).
    @property
    def ticks_svg(self) -> SafeString:
        return _joined(tick.svg for tick in self.ticks)

    @property
    def bars_svg(self) -> SafeString:
        return _joined(bar.svg for bar in self.bars)

    @property
    def date_labels_svg(self) -> SafeString:
        return _joined(label.svg for label in self.date_labels)

    @property
    def rows_html(self) -> SafeString:
        return _joined(row.html for row in self.rows)


def _joined(parts: Iterable[SafeString]) -> SafeString:
    """Return safe strings one per line, safe: each is escaped already."""
    return mark_safe("\n".join(parts))  # noqa: S308 - joins only SafeStrings


@dataclass(frozen=True)
class Measure:
    """How to read and write one measure of a DailyUsageRow."""

    key: str
    title: str
    paid: Callable[[DailyUsageRow], Decimal | int]
    free: Callable[[DailyUsageRow], Decimal | int]
    display: Callable[[Decimal], str]
    tick: Callable[[Decimal, Decimal], str]
    noun: str
    whole: bool  # counts: the axis steps by whole numbers


def _grouped(value: Decimal) -> str:
    return f"{value:,}"


def money_text(value: Decimal) -> str:
    """Return a USD amount as the reports show it: 6 decimal places, half-up, thousands grouped."""
    return f"{value.quantize(MONEY_DISPLAY_PLACES, rounding=ROUND_HALF_UP):,}"


def compact_number(value: Decimal) -> str:
    """Return an axis value in few characters: 750, 1.5k, 2M."""
    for threshold, suffix in ((Decimal(10) ** 9, "G"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k")):
        if abs(value) >= threshold:
            return f"{_plain(value / threshold)}{suffix}"
    return _plain(value)


def _plain(value: Decimal) -> str:
    """Return a Decimal without trailing zeros or an exponent: 2.50 -> 2.5, 1E+1 -> 10."""
    text = f"{value.normalize():f}"
    return text


def money_tick(value: Decimal, step: Decimal) -> str:
    """Return a USD axis label with as many decimals as the step needs: $0.025, $1.5k."""
    if value >= 1000:
        return f"${compact_number(value)}"
    places = max(0, -step.normalize().as_tuple().exponent)
    return f"${value.quantize(Decimal(1).scaleb(-places)):f}" if places else f"${value.quantize(Decimal(1)):f}"


def count_tick(value: Decimal, step: Decimal) -> str:
    """Return a count's axis label: 0, 250, 1.5k."""
    return compact_number(value)


MEASURES: dict[str, Measure] = {
    measure.key: measure
    for measure in (
        Measure(
            key="cost",
            title="Cost (USD)",
            paid=lambda row: row.paid_cost_usd,
            free=lambda row: row.free_cost_usd,
            display=money_text,
            tick=money_tick,
            noun="USD",
            whole=False,
        ),
        Measure(
            key="requests",
            title="Requests",
            paid=lambda row: row.paid_requests,
            free=lambda row: row.free_requests,
            display=_grouped,
            tick=count_tick,
            noun="requests",
            whole=True,
        ),
        Measure(
            key="tokens",
            title="Tokens",
            paid=lambda row: row.paid_tokens,
            free=lambda row: row.free_tokens,
            display=_grouped,
            tick=count_tick,
            noun="tokens",
            whole=True,
        ),
    )
}


def bucket_size(days: int) -> str:
    """Return the span of one bar for a period of ``days`` days."""
    if days <= MAX_DAILY_BARS:
        return "day"
    if days <= MAX_WEEKLY_BARS * 7:
        return "week"
    return "month"


def _bucket_start(day: date, *, first: date, bucket: str) -> date:
    if bucket == "week":
        return first + timedelta(days=(day - first).days // 7 * 7)
    if bucket == "month":
        return day.replace(day=1)
    return day


def chart_buckets(*, rows: Sequence[DailyUsageRow], measure: Measure, bucket: str) -> list[ChartBucket]:
    """Return the measure summed per bar: per day, per 7 days from the first, or per calendar month."""
    if not rows:
        return []
    first = rows[0].day
    # [since, until, paid, free] per bar, made into ChartBuckets once summed.
    sums: list[list] = []
    for row in rows:
        start = max(_bucket_start(row.day, first=first, bucket=bucket), first)
        paid, free = measure.paid(row), measure.free(row)
        if sums and sums[-1][0] == start:
            last = sums[-1]
            last[1], last[2], last[3] = row.day, last[2] + paid, last[3] + free
        else:
            sums.append([start, row.day, paid, free])
    return [ChartBucket(since, until, Decimal(paid), Decimal(free)) for since, until, paid, free in sums]


def nice_step(maximum: Decimal, *, whole: bool) -> Decimal:
    """Return a round step (1, 2, 2.5 or 5 times a power of ten) that covers ``maximum`` in about four intervals."""
    if maximum <= 0:
        return Decimal(1)
    raw = maximum / Y_INTERVALS
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        step = magnitude * factor
        if step >= raw:
            break
    if whole:
        # Half a request is no tick: steps of counts are whole, 2.5 becomes 3 only when below 10.
        step = max(Decimal(1), step.to_integral_value(rounding=ROUND_CEILING))
    return step


def _bucket_label(bucket: ChartBucket, size: str) -> str:
    if size == "day":
        return f"{bucket.since:%a} {bucket.since.isoformat()}"
    if size == "month":
        return f"{bucket.since:%B %Y}" + (
            f" ({bucket.since.isoformat()} to {bucket.until.isoformat()})"
            if bucket.since.day != 1 or (bucket.until + timedelta(days=1)).day != 1
            else ""
        )
    return f"{bucket.since.isoformat()} to {bucket.until.isoformat()}"


def _short_date(bucket: ChartBucket, size: str) -> str:
    if size == "month":
        return f"{bucket.since:%b %Y}"
    return f"{bucket.since:%b} {bucket.since.day}"


def stacked_bar_chart(*, rows: Sequence[DailyUsageRow], measure_key: str) -> StackedBarChart:
    """Return the chart of one measure ("cost", "requests" or "tokens") over the days of ``rows``."""
    measure = MEASURES[measure_key]
    size = bucket_size(len(rows))
    buckets = chart_buckets(rows=rows, measure=measure, bucket=size)
    peak = max((bucket.total for bucket in buckets), default=Decimal(0))
    step = nice_step(peak, whole=measure.whole)
    intervals = max(1, int((peak / step).to_integral_value(rounding=ROUND_CEILING))) if peak > 0 else 1
    axis_max = step * intervals
    scale = PLOT_HEIGHT / axis_max
    baseline = PLOT_TOP + PLOT_HEIGHT

    slot = PLOT_WIDTH / max(1, len(buckets))
    width = min(slot * BAR_SHARE, MAX_BAR_WIDTH)
    bars = []
    for index, bucket in enumerate(buckets):
        slot_x = PLOT_LEFT + slot * index
        paid_height = _pixel(bucket.paid * scale)
        free_height = _pixel(bucket.free * scale)
        paid_y = baseline - paid_height
        label = (
            f"{_bucket_label(bucket, size)}: {measure.display(bucket.total)} {measure.noun} "
            f"(paid {measure.display(bucket.paid)}, free {measure.display(bucket.free)})"
        )
        bars.append(
            ChartBar(
                slot_x=_pixel(slot_x),
                slot_width=_pixel(slot),
                x=_pixel(slot_x + (slot - width) / 2),
                width=_pixel(width),
                paid_y=_pixel(paid_y),
                paid_height=paid_height,
                free_y=_pixel(paid_y - free_height),
                free_height=free_height,
                label=label,
            )
        )
    ticks = tuple(
        ChartTick(y=_pixel(baseline - step * index * scale), label=measure.tick(step * index, step))
        for index in range(intervals + 1)
    )
    every = max(1, -(-len(buckets) // X_LABELS))
    date_labels = tuple(
        ChartDateLabel(x=_pixel(PLOT_LEFT + slot * index + slot / 2), label=_short_date(bucket, size))
        for index, bucket in enumerate(buckets)
        if index % every == 0
    )
    table_rows = tuple(
        ChartTableRow(
            label=_bucket_label(bucket, size),
            paid=measure.display(bucket.paid),
            free=measure.display(bucket.free),
            total=measure.display(bucket.total),
        )
        for bucket in buckets
    )
    total = sum((bucket.total for bucket in buckets), Decimal(0))
    summary = f"{measure.display(total)} {measure.noun} in total over {len(rows)} days"
    if peak > 0:
        busiest = next(bucket for bucket in buckets if bucket.total == peak)
        summary += f"; the highest {size} is {_bucket_label(busiest, size)} with {measure.display(peak)}"
    summary += f". One bar per {size}, paid below and free above; the table has every figure."
    return StackedBarChart(
        key=measure.key,
        title=f"{measure.title} per {size}",
        bucket=size,
        summary=summary,
        bars=tuple(bars),
        ticks=ticks,
        date_labels=date_labels,
        rows=table_rows,
    )


def usage_charts(*, rows: Sequence[DailyUsageRow]) -> list[StackedBarChart]:
    """Return the cost, requests and tokens charts of a period's daily usage; none for a period without days."""
    if not rows:
        return []
    return [stacked_bar_chart(rows=rows, measure_key=key) for key in MEASURES]
