"""Tests of the explorer's selectors: headline figures, their comparison, daily usage and chatbot unit economics."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.factories import AIModelFactory, RequestCostFactory, UserFactory
from reports.periods import ALL_TIME, Period
from reports.selectors import (
    ChatbotEconomicsRow,
    DailyUsageRow,
    HeadlineComparison,
    UsageHeadline,
    chatbot_unit_economics,
    daily_usage,
    first_request_date,
    usage_comparison,
    usage_headline,
)
from reports.tests.explorer_data import PERIOD, PREVIOUS, add_session, at, build_explorer

pytestmark = pytest.mark.django_db


@pytest.fixture
def utc(settings) -> None:
    settings.TIME_ZONE = "UTC"


@pytest.fixture
def explorer(utc):
    return build_explorer()


# --- Headline figures --------------------------------------------------------------------------


def test_usage_headline_sums_the_period(explorer) -> None:
    headline = usage_headline(period=PERIOD)

    # See explorer_data: 0.25 + 0.125 + 0.000000000003 + 1.000000000001; r1..r5; alice, bob, carol; r2, r4 free.
    assert headline == UsageHeadline(
        total_cost_usd=Decimal("1.375000000004"),
        request_count=5,
        total_tokens=4000,
        active_users=3,
        free_request_count=2,
    )
    assert type(headline.total_cost_usd) is Decimal
    assert headline.average_tokens_per_request == Decimal("800.00")  # 4000 / 5
    assert headline.free_request_share == Decimal("40.00")  # 2 / 5


def test_usage_headline_of_the_previous_period(explorer) -> None:
    headline = usage_headline(period=PREVIOUS)

    # "before" (alice, free, 100 tokens) and r0 (dave, paid, 1000 tokens, 9 USD, its last microsecond).
    assert headline == UsageHeadline(Decimal("9"), 2, 1100, 2, 1)
    assert headline.average_tokens_per_request == Decimal("550.00")
    assert headline.free_request_share == Decimal("50.00")


def test_usage_headline_of_an_empty_period_is_zero_with_no_average_or_share(explorer) -> None:
    headline = usage_headline(period=Period(since=date(2023, 1, 1), until=date(2023, 1, 31)))

    assert headline == UsageHeadline(Decimal("0"), 0, 0, 0, 0)
    assert headline.average_tokens_per_request is None
    assert headline.free_request_share is None


def test_usage_headline_all_time(explorer) -> None:
    headline = usage_headline(period=ALL_TIME)

    # All 8 requests: 1.375000000004 + 9 + 0 + 5 USD; 4000 + 1100 + 7 tokens; alice, bob, carol, dave; 3 free.
    assert headline == UsageHeadline(Decimal("15.375000000004"), 8, 5107, 4, 3)
    assert headline.average_tokens_per_request == Decimal("638.38")  # 5107 / 8 = 638.375, half-up
    assert headline.free_request_share == Decimal("37.50")  # 3 / 8


def test_usage_headline_is_two_queries(explorer, django_assert_num_queries) -> None:
    # The totals from the platform's rollup, the active users from the yearly activity.
    with django_assert_num_queries(2):
        usage_headline(period=PERIOD)


# --- Comparison --------------------------------------------------------------------------------


def test_usage_comparison_against_the_period_before(explorer) -> None:
    comparison = usage_comparison(period=PERIOD)

    assert [(item.key, item.current, item.previous, item.change_percent) for item in comparison] == [
        # (1.375000000004 - 9) / 9 = -0.847222… -> -84.7 %
        ("total_cost_usd", Decimal("1.375000000004"), Decimal("9"), Decimal("-84.7")),
        ("request_count", 5, 2, Decimal("150.0")),  # (5 - 2) / 2
        ("total_tokens", 4000, 1100, Decimal("263.6")),  # 2900 / 1100 = 2.63636…
        ("active_users", 3, 2, Decimal("50.0")),
        ("average_tokens_per_request", Decimal("800.00"), Decimal("550.00"), Decimal("45.5")),  # 250 / 550 = 0.4545…
        ("free_request_share", Decimal("40.00"), Decimal("50.00"), Decimal("-20.0")),
    ]
    assert [item.label for item in comparison] == [
        "Total cost (USD)",
        "Requests",
        "Tokens",
        "Active users",
        "Average tokens per request",
        "Free share of requests",
    ]
    assert [item.kind for item in comparison] == ["money", "int", "int", "int", "decimal", "percent"]


def test_usage_comparison_of_all_time_has_no_previous_figures(explorer, django_assert_num_queries) -> None:
    with django_assert_num_queries(2):
        comparison = usage_comparison(period=ALL_TIME)

    assert [item.previous for item in comparison] == [None] * 6
    assert [item.change_percent for item in comparison] == [None] * 6
    assert comparison[1].current == 8


def test_usage_comparison_is_three_queries(explorer, django_assert_num_queries) -> None:
    # The totals of each period, and the active users of both in one scan.
    with django_assert_num_queries(3):
        usage_comparison(period=PERIOD)


def test_this_month_is_compared_with_the_same_days_of_the_month_before(utc) -> None:
    user, model = UserFactory(), AIModelFactory()
    # 1-4 March against 1-4 February: the 5th of February is left out.
    for when, cost in (
        (datetime(2024, 3, 4, 12, tzinfo=UTC), "3"),
        (datetime(2024, 2, 4, 12, tzinfo=UTC), "2"),
        (datetime(2024, 2, 5, 12, tzinfo=UTC), "100"),
    ):
        RequestCostFactory(user=user, ai_model=model, cost_usd=Decimal(cost), created_at=when)

    (cost, *_) = usage_comparison(period=Period(since=date(2024, 3, 1), until=date(2024, 3, 4), preset="this-month"))

    assert (cost.current, cost.previous, cost.change_percent) == (Decimal("3"), Decimal("2"), Decimal("50.0"))


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        (Decimal("5"), Decimal("0"), None),  # nothing before: no percentage
        (Decimal("0"), Decimal("0"), None),
        (None, Decimal("10"), None),  # no average in the period
        (Decimal("10"), None, None),
        (Decimal("0"), Decimal("10"), Decimal("-100.0")),
        (1, 3, Decimal("-66.7")),  # -2 / 3 = -0.6666…, half-up
        (Decimal("1.0005"), Decimal("1"), Decimal("0.1")),  # 0.05 % rounds half-up to 0.1
    ],
)
def test_change_percent(current, previous, expected) -> None:
    assert HeadlineComparison("k", "K", "int", current, previous).change_percent == expected


# --- Daily usage -------------------------------------------------------------------------------


def test_daily_usage_splits_free_and_paid_per_day_with_zeros_on_idle_days(explorer) -> None:
    rows = daily_usage(period=PERIOD)

    zero = Decimal("0")
    assert rows == [
        # r1 paid (1000 tokens, 0.25), r2 free (300 tokens) in its last microsecond.
        DailyUsageRow(date(2024, 1, 30), zero, Decimal("0.25"), 1, 1, 300, 1000),
        # Nobody on the 31st: a day of zeros, not a gap.
        DailyUsageRow(date(2024, 1, 31), zero, zero, 0, 0, 0, 0),
        # After the month boundary: r3 paid at midnight (500, 0.125), r4 free (200, a 3e-12 fee).
        DailyUsageRow(date(2024, 2, 1), Decimal("0.000000000003"), Decimal("0.125"), 1, 1, 200, 500),
        DailyUsageRow(date(2024, 2, 2), zero, Decimal("1.000000000001"), 0, 1, 0, 2000),
    ]
    assert all(type(row.free_cost_usd) is Decimal and type(row.paid_cost_usd) is Decimal for row in rows)
    # The days add up to the headline figures.
    assert sum((row.total_cost_usd for row in rows), Decimal(0)) == Decimal("1.375000000004")
    assert sum(row.total_requests for row in rows) == 5
    assert sum(row.total_tokens for row in rows) == 4000


def test_daily_usage_is_one_query_for_a_bounded_period(explorer, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        daily_usage(period=PERIOD)


def test_daily_usage_of_a_period_without_requests_is_all_zeros(explorer) -> None:
    rows = daily_usage(period=Period(since=date(2023, 12, 30), until=date(2024, 1, 2)))

    assert [row.day for row in rows] == [date(2023, 12, 30), date(2023, 12, 31), date(2024, 1, 1), date(2024, 1, 2)]
    assert {(row.total_cost_usd, row.total_requests, row.total_tokens) for row in rows} == {(Decimal(0), 0, 0)}


def test_daily_usage_cuts_days_at_midnight_in_the_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    user, paid = UserFactory(), AIModelFactory()
    # 2024-03-10 starts at 05:00 UTC in New York (EST, UTC-5) and ends at 04:00 UTC on the 11th (EDT).
    for when, tokens in (
        (datetime(2024, 3, 10, 4, 59, 59, tzinfo=UTC), 1),  # 23:59:59 on the 9th
        (datetime(2024, 3, 10, 5, 0, tzinfo=UTC), 10),  # midnight on the 10th
        (datetime(2024, 3, 11, 3, 59, 59, tzinfo=UTC), 100),  # 23:59:59 EDT on the 10th
        (datetime(2024, 3, 11, 4, 0, tzinfo=UTC), 1000),  # midnight on the 11th
    ):
        RequestCostFactory(user=user, ai_model=paid, prompt_tokens=tokens, completion_tokens=0, created_at=when)

    rows = daily_usage(period=Period(since=date(2024, 3, 9), until=date(2024, 3, 11)))

    assert [(row.day, row.paid_tokens, row.paid_requests) for row in rows] == [
        (date(2024, 3, 9), 1, 1),
        (date(2024, 3, 10), 110, 2),  # 10 + 100
        (date(2024, 3, 11), 1000, 1),
    ]


def test_daily_usage_of_all_time_runs_from_the_first_request_to_today(utc, django_assert_num_queries) -> None:
    today = timezone.localdate()
    user, free = UserFactory(), AIModelFactory(free=True)
    RequestCostFactory(
        user=user, ai_model=free, prompt_tokens=40, completion_tokens=2, created_at=timezone.now() - timedelta(days=2)
    )

    with django_assert_num_queries(2):  # the first request's day, then the days
        rows = daily_usage(period=ALL_TIME)

    assert [row.day for row in rows] == [today - timedelta(days=2), today - timedelta(days=1), today]
    assert [row.free_tokens for row in rows] == [42, 0, 0]


def test_daily_usage_of_all_time_longer_than_a_period_may_be(utc) -> None:
    # Eleven years of history: more than MAX_PERIOD_DAYS, still a chart, not an error.
    user, paid = UserFactory(), AIModelFactory()
    RequestCostFactory(user=user, ai_model=paid, created_at=timezone.now() - timedelta(days=11 * 366))

    rows = daily_usage(period=ALL_TIME)

    assert len(rows) == (timezone.localdate() - rows[0].day).days + 1 > 4000
    assert rows[0].paid_requests == 1


def test_daily_usage_of_an_empty_database_is_empty(utc) -> None:
    assert daily_usage(period=ALL_TIME) == []
    # A bounded period still has its days.
    assert len(daily_usage(period=PERIOD)) == 4


def test_first_request_date_is_the_local_day_of_the_earliest_request(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    assert first_request_date() is None
    user, model = UserFactory(), AIModelFactory()
    RequestCostFactory(user=user, ai_model=model, created_at=datetime(2024, 5, 2, 12, tzinfo=UTC))
    # 03:00 UTC on 1 May is 23:00 on 30 April in New York.
    RequestCostFactory(user=user, ai_model=model, created_at=datetime(2024, 5, 1, 3, tzinfo=UTC))

    assert first_request_date() == date(2024, 4, 30)


# --- Chatbot unit economics --------------------------------------------------------------------


def test_chatbot_unit_economics_counts_each_measure_without_fan_out(explorer) -> None:
    rows = chatbot_unit_economics(period=PERIOD)

    assert rows == [
        # Helpdesk: s1, s2 (s0 is before); 3 + 2 messages (s1's fourth is after); r1, r3, r5 cost
        # 0.25 + 0.125 + 1.000000000001. Joined in one GROUP BY these would multiply each other.
        ChatbotEconomicsRow(explorer.helpdesk.pk, "Helpdesk", 2, 5, 3, 0, Decimal("1.375000000001")),
        # Tutor: s3 with 4 messages; r2, free, at no cost. r4 has no session, so no chatbot.
        ChatbotEconomicsRow(explorer.tutor.pk, "Tutor", 1, 4, 1, 1, Decimal("0")),
    ]
    helpdesk, tutor = rows
    assert type(helpdesk.total_cost_usd) is Decimal
    # Per unit, half-up to the 12 places costs are stored with: 1.375000000001 / 2 = 0.6875000000005
    # -> 0.687500000001; 1.375000000001 / 5 = 0.2750000000002 -> 0.275000000000.
    assert helpdesk.cost_per_session == Decimal("0.687500000001")
    assert helpdesk.cost_per_message == Decimal("0.275000000000")
    assert helpdesk.free_share == Decimal("0.00")
    assert (tutor.cost_per_session, tutor.cost_per_message, tutor.free_share) == (
        Decimal("0"),
        Decimal("0"),
        Decimal("100.00"),
    )


def test_chatbot_unit_economics_all_time(explorer) -> None:
    rows = chatbot_unit_economics()

    # Helpdesk adds s0 (1 message) and r0 (9 USD), and s1's late message: 3 sessions, 1 + 4 + 2 = 7 messages.
    assert [(row.name, row.session_count, row.message_count, row.request_count) for row in rows] == [
        ("Helpdesk", 3, 7, 4),
        ("Tutor", 1, 4, 1),
    ]
    assert rows[0].total_cost_usd == Decimal("10.375000000001")


def test_chatbot_unit_economics_of_a_single_day(explorer) -> None:
    # 2024-01-29: s0 (1 message) and r0 (9 USD), nothing of the 30th.
    rows = chatbot_unit_economics(period=Period(since=date(2024, 1, 29), until=date(2024, 1, 29)))

    assert rows == [ChatbotEconomicsRow(explorer.helpdesk.pk, "Helpdesk", 1, 1, 1, 0, Decimal("9"))]


def test_chatbot_unit_economics_leaves_out_a_chatbot_with_only_a_message_in_the_period(explorer) -> None:
    # 2024-02-03: s1's late message, and the "after" request, which has no session.
    assert chatbot_unit_economics(period=Period(since=date(2024, 2, 3), until=date(2024, 2, 3))) == []


def test_chatbot_unit_economics_lists_sessions_without_requests_at_zero_cost(explorer) -> None:
    add_session(chatbot=explorer.idle, user=explorer.carol, when=at(2024, 1, 31, 9), messages=2)

    rows = chatbot_unit_economics(period=Period(since=date(2024, 1, 31), until=date(2024, 1, 31)))

    assert rows == [ChatbotEconomicsRow(explorer.idle.pk, "Idle", 1, 2, 0, 0, Decimal("0"))]
    assert (rows[0].cost_per_session, rows[0].cost_per_message, rows[0].free_share) == (
        Decimal("0"),
        Decimal("0"),
        None,
    )


def test_chatbot_unit_economics_without_sessions_or_requests_gives_none_per_unit(explorer) -> None:
    row = ChatbotEconomicsRow(1, "Empty", 0, 0, 0, 0, Decimal("0"))

    assert (row.cost_per_session, row.cost_per_message, row.free_share) == (None, None, None)


def test_chatbot_unit_economics_honours_a_limit_and_is_one_query(explorer, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        rows = chatbot_unit_economics(period=PERIOD, limit=1)

    assert [row.name for row in rows] == ["Helpdesk"]
    with pytest.raises(ValueError, match="limit"):
        chatbot_unit_economics(limit=0)
