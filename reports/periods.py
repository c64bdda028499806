"""Reporting periods: inclusive date ranges, with day boundaries in settings.TIME_ZONE."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q
from django.utils import timezone

# About ten years: a longer range is a typo, and would make a daily chart of thousands of points.
MAX_PERIOD_DAYS = 3660

PRESETS: dict[str, str] = {
    "today": "Today",
    "last-7-days": "Last 7 days",
    "last-30-days": "Last 30 days",
    "this-month": "This month",
    "last-month": "Last month",
    "all-time": "All time",
}
CUSTOM = "custom"

# Dates a person can mean: far-off years overflow the day arithmetic (9999-12-31 has no next day)
# or the conversion of a midnight to UTC near year 1, which would turn a typo into a server error.
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(9998, 12, 31)

# Query-string names; the admin strips them before Django's changelist reads its lookups.
PERIOD_PARAM = "period"
SINCE_PARAM = "from"
UNTIL_PARAM = "to"
PERIOD_PARAMS = (PERIOD_PARAM, SINCE_PARAM, UNTIL_PARAM)


class PeriodError(ValueError):
    """A period that cannot be reported on, with a message fit to show the user."""


@dataclass(frozen=True)
class Period:
    """An inclusive range of days; an open end means no bound on that side."""

    since: date | None = None
    until: date | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise PeriodError(f"The period starts ({self.since}) after it ends ({self.until}).")
        if self.days is not None and self.days > MAX_PERIOD_DAYS:
            raise PeriodError(f"The period spans {self.days} days; the longest allowed is {MAX_PERIOD_DAYS}.")

    @property
    def start(self) -> datetime | None:
        """Return the first instant of the period, in the current time zone."""
        if self.since is None:
            return None
        return timezone.make_aware(datetime.combine(self.since, time.min))

    @property
    def end(self) -> datetime | None:
        """Return the first instant after the period (exclusive bound)."""
        if self.until is None:
            return None
        return timezone.make_aware(datetime.combine(self.until + timedelta(days=1), time.min))

    @property
    def days(self) -> int | None:
        """Return the number of days in the period, or None when an end is open."""
        if self.since is None or self.until is None:
            return None
        return (self.until - self.since).days + 1

    @property
    def is_all_time(self) -> bool:
        return self.since is None and self.until is None

    @property
    def label(self) -> str:
        """Return a human description, e.g. "Last 30 days (2026-11-05 to 2026-12-04)"."""
        bounds = f"{self.since or 'start'} to {self.until or 'today'}"
        if self.is_all_time:
            return PRESETS["all-time"]
        if self.preset in PRESETS:
            return f"{PRESETS[self.preset]} ({bounds})"
        return bounds

    def q(self, field: str = "created_at") -> Q:
        """Return a filter keeping rows whose ``field`` falls in the period."""
        condition = Q()
        if self.start is not None:
            condition &= Q(**{f"{field}__gte": self.start})
        if self.end is not None:
            condition &= Q(**{f"{field}__lt": self.end})
        return condition

    def previous(self) -> "Period | None":
        """Return the period to compare with: the month before for month presets, else the same length before."""
        if self.days is None:
            return None
        if self.preset in {"this-month", "last-month"}:
            # Compare a month with the month before (1-4 December with 1-4 November), not a sliding window.
            previous_until = self.since - timedelta(days=1)
            previous_since = previous_until.replace(day=1)
            if self.preset == "this-month":
                previous_until = min(previous_until, previous_since + (self.until - self.since))
            return Period(since=previous_since, until=previous_until)
        until = self.since - timedelta(days=1)
        return Period(since=until - timedelta(days=self.days - 1), until=until)

    def as_params(self) -> dict[str, str]:
        """Return the query-string parameters that select this period."""
        if self.preset in PRESETS:
            return {PERIOD_PARAM: self.preset}
        params = {PERIOD_PARAM: CUSTOM}
        if self.since:
            params[SINCE_PARAM] = self.since.isoformat()
        if self.until:
            params[UNTIL_PARAM] = self.until.isoformat()
        return params


ALL_TIME = Period(preset="all-time")


def period_today() -> date:
    """Return today's date in settings.TIME_ZONE."""
    return timezone.localdate()


def period_from_preset(*, preset: str, today: date | None = None) -> Period:
    """Return the period a preset name means, relative to ``today``."""
    today = today or period_today()
    if preset == "today":
        return Period(since=today, until=today, preset=preset)
    if preset == "last-7-days":
        return Period(since=today - timedelta(days=6), until=today, preset=preset)
    if preset == "last-30-days":
        return Period(since=today - timedelta(days=29), until=today, preset=preset)
    if preset == "this-month":
        return Period(since=today.replace(day=1), until=today, preset=preset)
    if preset == "last-month":
        last_day = today.replace(day=1) - timedelta(days=1)
        return Period(since=last_day.replace(day=1), until=last_day, preset=preset)
    if preset == "all-time":
        return ALL_TIME
    choices = ", ".join([*PRESETS, CUSTOM])
    raise PeriodError(f"Unknown period {preset!r}; choose one of: {choices}.")


def date_parse(*, value: str, name: str) -> date:
    """Return the date written as YYYY-MM-DD in ``value``, or raise PeriodError naming ``name``."""
    try:
        parsed = date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{name} must be a date written YYYY-MM-DD, not {value!r}.") from None
    if not EARLIEST_DATE <= parsed <= LATEST_DATE:
        raise PeriodError(f"{name} must be a date between {EARLIEST_DATE} and {LATEST_DATE}, not {value!r}.")
    return parsed


def period_from_params(*, params: Mapping[str, str], today: date | None = None) -> Period:
    """Return the period a query string selects (``period``, ``from``, ``to``); all time by default."""
    preset = (params.get(PERIOD_PARAM) or "").strip()
    since_raw = (params.get(SINCE_PARAM) or "").strip()
    until_raw = (params.get(UNTIL_PARAM) or "").strip()
    if preset and preset != CUSTOM:
        if since_raw or until_raw:
            raise PeriodError(f"Choose either the period {preset!r} or a from/to range, not both.")
        return period_from_preset(preset=preset, today=today)
    if not since_raw and not until_raw:
        if preset == CUSTOM:
            raise PeriodError("A custom period needs a from date, a to date, or both.")
        return ALL_TIME
    since = date_parse(value=since_raw, name="From") if since_raw else None
    until = date_parse(value=until_raw, name="To") if until_raw else None
    return Period(since=since, until=until)
