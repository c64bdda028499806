"""Reporting periods: inclusive date ranges, with day boundaries in settings.TIME_ZONE."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q
from django.utils import timezone


@dataclass(frozen=True)
class Period:
    """An inclusive range of days; an open end means no bound on that side."""

    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"The period starts ({self.since}) after it ends ({self.until}).")

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

    def q(self, field: str = "created_at") -> Q:
        """Return a filter keeping rows whose ``field`` falls in the period."""
        condition = Q()
        if self.start is not None:
            condition &= Q(**{f"{field}__gte": self.start})
        if self.end is not None:
            condition &= Q(**{f"{field}__lt": self.end})
        return condition


ALL_TIME = Period()
