"""Tests of reports.periods.Period: inclusive days, bounded in settings.TIME_ZONE."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db.models import Q

from reports.periods import ALL_TIME, Period


def test_since_after_until_raises() -> None:
    with pytest.raises(ValueError, match="after it ends"):
        Period(since=date(2024, 3, 2), until=date(2024, 3, 1))


def test_a_single_day_is_a_valid_period() -> None:
    period = Period(since=date(2024, 3, 1), until=date(2024, 3, 1))

    assert period.end - period.start == timedelta(days=1)


def test_open_ends_have_no_bound() -> None:
    assert (ALL_TIME.start, ALL_TIME.end) == (None, None)
    assert Period(since=date(2024, 1, 1)).end is None
    assert Period(until=date(2024, 1, 1)).start is None
    assert ALL_TIME.q() == Q()


def test_bounds_are_midnights_in_utc_by_default(settings) -> None:
    settings.TIME_ZONE = "UTC"

    period = Period(since=date(2024, 1, 1), until=date(2024, 1, 31))

    assert period.start == datetime(2024, 1, 1, tzinfo=UTC)
    # Exclusive end: the first instant after the 31st.
    assert period.end == datetime(2024, 2, 1, tzinfo=UTC)


def test_bounds_are_aware_midnights_in_the_current_time_zone(settings) -> None:
    settings.TIME_ZONE = "America/New_York"

    # New York moves to daylight time on 2024-03-10: that day lasts 23 hours.
    period = Period(since=date(2024, 3, 10), until=date(2024, 3, 10))

    assert period.start.tzinfo is not None
    assert str(period.start.tzinfo) == "America/New_York"
    assert (period.start.hour, period.start.minute, period.start.utcoffset()) == (0, 0, timedelta(hours=-5))
    assert (period.end.hour, period.end.minute, period.end.utcoffset()) == (0, 0, timedelta(hours=-4))
    # 00:00 EST = 05:00 UTC; 00:00 EDT the next day = 04:00 UTC.
    assert period.start == datetime(2024, 3, 10, 5, 0, tzinfo=UTC)
    assert period.end == datetime(2024, 3, 11, 4, 0, tzinfo=UTC)
    # Python subtracts two datetimes of one zone by wall clock (24 h); in UTC the day is 23 h.
    assert period.end.astimezone(UTC) - period.start.astimezone(UTC) == timedelta(hours=23)


def test_the_day_clocks_go_back_lasts_25_hours(settings) -> None:
    settings.TIME_ZONE = "America/New_York"

    period = Period(since=date(2024, 11, 3), until=date(2024, 11, 3))

    # 00:00 EDT = 04:00 UTC; 00:00 EST the next day = 05:00 UTC.
    assert period.start == datetime(2024, 11, 3, 4, 0, tzinfo=UTC)
    assert period.end == datetime(2024, 11, 4, 5, 0, tzinfo=UTC)


def test_a_day_without_a_midnight_starts_at_its_first_instant(settings) -> None:
    settings.TIME_ZONE = "America/Santiago"

    # Santiago's clocks jump from 00:00 (-04) to 01:00 (-03) on 2024-09-08: midnight never
    # happens, and the day starts at 01:00 -03, which is 04:00 UTC.
    period = Period(since=date(2024, 9, 8), until=date(2024, 9, 8))

    # Python never finds a wall time inside a gap equal to a datetime of another zone, so
    # compare the UTC instants, which is what the database receives.
    assert period.start.astimezone(UTC) == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)
    assert period.end.astimezone(UTC) == datetime(2024, 9, 9, 3, 0, tzinfo=UTC)  # 00:00 -03


def test_q_filters_the_named_field_with_inclusive_start_and_exclusive_end(settings) -> None:
    settings.TIME_ZONE = "America/New_York"
    period = Period(since=date(2024, 6, 1), until=date(2024, 6, 30))

    # June is daylight time (UTC-4) throughout.
    assert period.q("sessions__created_at") == Q(sessions__created_at__gte=datetime(2024, 6, 1, 4, tzinfo=UTC)) & Q(
        sessions__created_at__lt=datetime(2024, 7, 1, 4, tzinfo=UTC)
    )
    assert Period(since=date(2024, 6, 1)).q() == Q(created_at__gte=datetime(2024, 6, 1, 4, tzinfo=UTC))
    assert Period(until=date(2024, 6, 30)).q() == Q(created_at__lt=datetime(2024, 7, 1, 4, tzinfo=UTC))


def test_period_is_immutable() -> None:
    period = Period(since=date(2024, 1, 1))

    with pytest.raises(AttributeError):
        period.since = date(2025, 1, 1)
