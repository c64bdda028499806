"""Tests of the daily trend charts' geometry: scales, stacking, zero days, buckets and the text equivalent."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from reports.charts import (
    HEIGHT,
    PLOT_HEIGHT,
    PLOT_LEFT,
    PLOT_TOP,
    PLOT_WIDTH,
    bucket_size,
    compact_number,
    money_tick,
    nice_step,
    stacked_bar_chart,
    usage_charts,
)
from reports.selectors import DailyUsageRow

ZERO = Decimal("0")
BASELINE = PLOT_TOP + PLOT_HEIGHT  # 8 + 148 = 156


def day(
    when: date,
    *,
    paid_cost: str = "0",
    free_cost: str = "0",
    paid_requests: int = 0,
    free_requests: int = 0,
    paid_tokens: int = 0,
    free_tokens: int = 0,
) -> DailyUsageRow:
    return DailyUsageRow(
        when, Decimal(free_cost), Decimal(paid_cost), free_requests, paid_requests, free_tokens, paid_tokens
    )


# Four days across the end of January, the 31st idle.
ROWS = [
    day(date(2024, 1, 30), paid_cost="0.25", paid_requests=1, free_requests=1, paid_tokens=1000, free_tokens=300),
    day(date(2024, 1, 31)),
    day(date(2024, 2, 1), paid_cost="0.125", paid_requests=1, free_requests=1, paid_tokens=500, free_tokens=200),
    day(date(2024, 2, 2), paid_cost="1.000000000001", paid_requests=1, paid_tokens=2000),
]


def test_plot_area_is_what_the_constants_say() -> None:
    # 320 wide: 44 for the axis labels, 6 on the right; 180 high: 8 above, 24 for the dates.
    assert (PLOT_LEFT, PLOT_WIDTH, PLOT_TOP, PLOT_HEIGHT, HEIGHT) == (44, 270, 8, 148, 180)


@pytest.mark.parametrize(
    ("maximum", "whole", "step"),
    [
        (Decimal("1.000000000001"), False, Decimal("0.5")),  # 0.25 a quarter: 0.5 is the first round step above
        (Decimal("40"), True, Decimal("10")),
        (Decimal("41"), True, Decimal("20")),  # 10.25 a quarter: 20
        (Decimal("2"), True, Decimal("1")),  # 0.5 is no step for a count
        (Decimal("7"), True, Decimal("2")),  # 1.75 -> 2
        (Decimal("9"), True, Decimal("3")),  # 2.25 -> 2.5, a count's step is whole: 3
        (Decimal("0.0003"), False, Decimal("0.0001")),  # 0.000075 -> 0.0001
        (Decimal("0"), False, Decimal("1")),
        (Decimal("1000000"), True, Decimal("250000")),
    ],
)
def test_nice_step(maximum, whole, step) -> None:
    assert nice_step(maximum, whole=whole) == step


def test_requests_chart_stacks_paid_below_free_with_idle_days_at_zero_height() -> None:
    chart = stacked_bar_chart(rows=ROWS, measure_key="requests")

    # Peak 2 requests a day: a whole step of 1, axis 0-2, so 148 / 2 = 74 units a request.
    assert [tick.label for tick in chart.ticks] == ["0", "1", "2"]
    assert [tick.y for tick in chart.ticks] == [Decimal("156.00"), Decimal("82.00"), Decimal("8.00")]
    # 4 slots of 270 / 4 = 67.5; bars 28 wide (0.72 * 67.5 = 48.6, capped), centred: 44 + (67.5 - 28) / 2.
    assert [bar.x for bar in chart.bars] == [Decimal("63.75"), Decimal("131.25"), Decimal("198.75"), Decimal("266.25")]
    assert {bar.width for bar in chart.bars} == {Decimal("28.00")}
    first, idle, third, fourth = chart.bars
    # 1 paid at the bottom (74 high, from 82 to 156), 1 free on top (from 8 to 82).
    assert (first.paid_y, first.paid_height, first.free_y, first.free_height) == (82, 74, 8, 74)
    # No usage on the 31st: the bar is there, zero high, on the baseline; not a gap.
    assert (idle.paid_y, idle.paid_height, idle.free_y, idle.free_height) == (BASELINE, 0, BASELINE, 0)
    assert (fourth.paid_height, fourth.free_height) == (74, 0)
    assert idle.label == "Wed 2024-01-31: 0 requests (paid 0, free 0)"
    assert first.label == "Tue 2024-01-30: 2 requests (paid 1, free 1)"
    assert (third.slot_x, third.slot_width) == (Decimal("179.00"), Decimal("67.50"))  # 44 + 2 * 67.5


def test_a_bars_svg_holds_its_coordinates_and_escapes_its_label() -> None:
    first = stacked_bar_chart(rows=ROWS, measure_key="requests").bars[0]

    label = "Tue 2024-01-30: 2 requests (paid 1, free 1)"
    assert first.svg == (
        f'<g class="usage-chart-bar" aria-label="{label}"><title>{label}</title>'
        '<rect class="usage-chart-hit" x="44.00" y="8" width="67.50" height="148"></rect>'
        '<rect class="usage-chart-paid" x="63.75" y="82.00" width="28.00" height="74.00"></rect>'
        '<rect class="usage-chart-free" x="63.75" y="8.00" width="28.00" height="74.00"></rect></g>'
    )
    hostile = replace(first, label='<script>"&')
    assert "<title>&lt;script&gt;&quot;&amp;</title>" in hostile.svg
    assert 'aria-label="&lt;script&gt;&quot;&amp;"' in hostile.svg


def test_cost_chart_scales_exact_amounts_and_labels_the_axis_in_dollars() -> None:
    chart = stacked_bar_chart(rows=ROWS, measure_key="cost")

    # Peak 1.000000000001: step 0.5, three intervals to cover it (0, 0.5, 1.0, 1.5).
    assert [tick.label for tick in chart.ticks] == ["$0.0", "$0.5", "$1.0", "$1.5"]
    # 0.25 USD of a 1.5 axis over 148 units: 24.666… -> 24.67; 1.000000000001 -> 98.67.
    assert [bar.paid_height for bar in chart.bars] == [
        Decimal("24.67"),
        Decimal("0.00"),
        Decimal("12.33"),
        Decimal("98.67"),
    ]
    assert all(type(bar.paid_height) is Decimal for bar in chart.bars)
    # The table keeps every figure, to 6 places as the reports show money.
    assert [(row.label, row.paid, row.free, row.total) for row in chart.rows] == [
        ("Tue 2024-01-30", "0.250000", "0.000000", "0.250000"),
        ("Wed 2024-01-31", "0.000000", "0.000000", "0.000000"),
        ("Thu 2024-02-01", "0.125000", "0.000000", "0.125000"),
        ("Fri 2024-02-02", "1.000000", "0.000000", "1.000000"),
    ]
    assert chart.title == "Cost (USD) per day"
    assert chart.summary == (
        "1.375000 USD in total over 4 days; the highest day is Fri 2024-02-02 with 1.000000. "
        "One bar per day, paid below and free above; the table has every figure."
    )


def test_tokens_chart_labels_thousands_compactly() -> None:
    chart = stacked_bar_chart(rows=ROWS, measure_key="tokens")

    # Peak 2000: step 500, axis 0-2000.
    assert [tick.label for tick in chart.ticks] == ["0", "500", "1k", "1.5k", "2k"]
    assert [row.total for row in chart.rows] == ["1,300", "0", "700", "2,000"]


def test_a_period_of_idle_days_draws_flat_bars_on_a_unit_axis() -> None:
    rows = [day(date(2024, 1, 1) + timedelta(days=offset)) for offset in range(3)]

    chart = stacked_bar_chart(rows=rows, measure_key="cost")

    assert [tick.label for tick in chart.ticks] == ["$0", "$1"]
    assert {(bar.paid_height, bar.free_height) for bar in chart.bars} == {(0, 0)}
    assert chart.summary.startswith("0.000000 USD in total over 3 days. One bar per day")


def test_date_labels_are_spread_under_the_bars() -> None:
    rows = [day(date(2024, 1, 20) + timedelta(days=offset)) for offset in range(30)]

    chart = stacked_bar_chart(rows=rows, measure_key="requests")

    # 30 bars, at most 5 labels: every 6th, centred on its bar (slot 9 wide).
    assert [label.label for label in chart.date_labels] == ["Jan 20", "Jan 26", "Feb 1", "Feb 7", "Feb 13"]
    assert chart.date_labels[0].x == Decimal("48.50")  # 44 + 9 / 2


@pytest.mark.parametrize(("days", "size"), [(1, "day"), (92, "day"), (93, "week"), (735, "week"), (736, "month")])
def test_bucket_size(days, size) -> None:
    assert bucket_size(days) == size


def test_long_periods_are_summed_per_week_from_the_first_day() -> None:
    # 100 days from Monday 2024-01-01, one paid request a day and a free one on the last.
    rows = [day(date(2024, 1, 1) + timedelta(days=offset), paid_requests=1) for offset in range(100)]
    rows[-1] = day(rows[-1].day, paid_requests=1, free_requests=5)

    chart = stacked_bar_chart(rows=rows, measure_key="requests")

    # 14 full weeks of 7 requests, then 2 days (2024-04-08, -09): 2 paid + 5 free.
    assert chart.bucket == "week"
    assert chart.title == "Requests per week"
    assert len(chart.bars) == 15
    assert chart.rows[0].label == "2024-01-01 to 2024-01-07"
    assert (chart.rows[0].paid, chart.rows[0].total) == ("7", "7")
    assert (chart.rows[-1].label, chart.rows[-1].paid, chart.rows[-1].free) == ("2024-04-08 to 2024-04-09", "2", "5")
    assert sum(int(row.total) for row in chart.rows) == 105  # 100 + 5


def test_very_long_periods_are_summed_per_calendar_month() -> None:
    # From 2022-01-15 for 800 days, to 2024-03-24: months from a partial January to a partial March.
    first = date(2022, 1, 15)
    rows = [day(first + timedelta(days=offset), paid_cost="0.000001") for offset in range(800)]

    chart = stacked_bar_chart(rows=rows, measure_key="cost")

    assert chart.bucket == "month"
    assert len(chart.bars) == 27  # Jan 2022 ... Mar 2024
    assert chart.rows[0].label == "January 2022 (2022-01-15 to 2022-01-31)"
    assert chart.rows[0].paid == "0.000017"  # 17 days
    assert (chart.rows[1].label, chart.rows[1].paid) == ("February 2022", "0.000028")
    assert chart.rows[-1].label == "March 2024 (2024-03-01 to 2024-03-24)"
    assert [label.label for label in chart.date_labels][:2] == ["Jan 2022", "Jul 2022"]


def test_one_bar_stays_slim() -> None:
    (chart, *_) = usage_charts(rows=[day(date(2024, 1, 1), paid_cost="1")])

    (bar,) = chart.bars
    assert bar.width == 28
    assert bar.x == Decimal("165.00")  # 44 + (270 - 28) / 2


def test_usage_charts_draw_cost_requests_and_tokens_or_nothing() -> None:
    assert [chart.key for chart in usage_charts(rows=ROWS)] == ["cost", "requests", "tokens"]
    assert usage_charts(rows=[]) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0"), "0"),
        (Decimal("750"), "750"),
        (Decimal("1500"), "1.5k"),
        (Decimal("250000"), "250k"),
        (Decimal("2000000"), "2M"),
        (Decimal("1250000000"), "1.25G"),
    ],
)
def test_compact_number(value, text) -> None:
    assert compact_number(value) == text


@pytest.mark.parametrize(
    ("value", "step", "text"),
    [
        (Decimal("0.05"), Decimal("0.025"), "$0.050"),
        (Decimal("10"), Decimal("5"), "$10"),
        (Decimal("20"), Decimal("10"), "$20"),
        (Decimal("2500"), Decimal("2500"), "$2.5k"),
    ],
)
def test_money_tick(value, step, text) -> None:
    assert money_tick(value, step) == text


def test_a_chart_draws_each_part_as_one_value_of_its_items() -> None:
    chart = stacked_bar_chart(rows=ROWS, measure_key="requests")

    assert chart.bars_svg == "\n".join(bar.svg for bar in chart.bars)
    assert chart.ticks_svg == "\n".join(tick.svg for tick in chart.ticks)
    assert chart.date_labels_svg == "\n".join(label.svg for label in chart.date_labels)
    assert chart.rows_html.splitlines()[0] == (
        '<tr><th scope="row" class="usage-report-text">Tue 2024-01-30</th><td class="usage-report-int">1</td>'
        '<td class="usage-report-int">1</td><td class="usage-report-int">2</td></tr>'
    )
    assert len(chart.rows_html.splitlines()) == len(chart.rows)
    hostile = replace(chart.rows[0], label='<script>"&')
    assert '<th scope="row" class="usage-report-text">&lt;script&gt;&quot;&amp;</th>' in hostile.html
