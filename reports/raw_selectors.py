"""The reports computed from the raw rows: the reference for the rollup-backed ``reports.selectors``.

Each report is one function that lets the database aggregate the raw request, session and
message rows (no Python loop over rows) and returns the frozen dataclasses both modules share.
The pages read ``reports.selectors``; these stay as the definition the property tests check the
rollups against, and as the baseline the benchmark measures. Ties are
broken by the next measure, then by id ascending, so the order is stable on every database.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Aggregate, Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports.periods import ALL_TIME, Period
from reports.routers import reads_reports_database

DEFAULT_LIMIT = 10


@dataclass(frozen=True)
class UserCostRow:
    user_id: int
    username: str
    total_cost_usd: Decimal
    total_tokens: int
    request_count: int


@dataclass(frozen=True)
class ModelUsageRow:
    model_id: int
    openrouter_id: str
    name: str
    usage_count: int
    total_tokens: int
    total_cost_usd: Decimal


@dataclass(frozen=True)
class FreeModelUsageRow:
    model_id: int
    openrouter_id: str
    name: str
    usage_count: int
    total_tokens: int


@dataclass(frozen=True)
class ChatbotSessionsRow:
    chatbot_id: int
    name: str
    session_count: int
    message_count: int


@dataclass(frozen=True)
class UserFreeUsageRow:
    user_id: int
    username: str
    total_tokens: int
    request_count: int


def _requests(*, period: Period, free_only: bool = False):
    requests = OpenRouterRequestCost.objects.filter(period.q("created_at"))
    if free_only:
        requests = requests.filter(ai_model__is_free=True)
    return requests


def check_limit(limit: int) -> None:
    """Raise ValueError unless ``limit`` is a positive integer."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}.")


@reads_reports_database
def top_users_by_cost(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserCostRow]:
    """Return the users with the highest OpenRouter cost in the period."""
    check_limit(limit)
    rows = (
        _requests(period=period)
        .values("user_id", "user__username")
        .annotate(total_cost_usd=Sum("cost_usd"), total_tokens=Sum("total_tokens"), request_count=Count("id"))
        .order_by("-total_cost_usd", "-total_tokens", "user_id")[:limit]
    )
    return [
        UserCostRow(
            user_id=row["user_id"],
            username=row["user__username"],
            total_cost_usd=row["total_cost_usd"],
            total_tokens=row["total_tokens"],
            request_count=row["request_count"],
        )
        for row in rows
    ]


@reads_reports_database
def top_models_by_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ModelUsageRow]:
    """Return the AI models with the most requests in the period."""
    check_limit(limit)
    rows = (
        _requests(period=period)
        .values("ai_model_id", "ai_model__openrouter_id", "ai_model__name")
        .annotate(usage_count=Count("id"), total_tokens=Sum("total_tokens"), total_cost_usd=Sum("cost_usd"))
        .order_by("-usage_count", "-total_tokens", "ai_model_id")[:limit]
    )
    return [
        ModelUsageRow(
            model_id=row["ai_model_id"],
            openrouter_id=row["ai_model__openrouter_id"],
            name=row["ai_model__name"],
            usage_count=row["usage_count"],
            total_tokens=row["total_tokens"],
            total_cost_usd=row["total_cost_usd"],
        )
        for row in rows
    ]


@reads_reports_database
def top_free_models(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[FreeModelUsageRow]:
    """Return the free AI models with the most requests in the period."""
    check_limit(limit)
    rows = (
        _requests(period=period, free_only=True)
        .values("ai_model_id", "ai_model__openrouter_id", "ai_model__name")
        .annotate(usage_count=Count("id"), total_tokens=Sum("total_tokens"))
        .order_by("-usage_count", "-total_tokens", "ai_model_id")[:limit]
    )
    return [
        FreeModelUsageRow(
            model_id=row["ai_model_id"],
            openrouter_id=row["ai_model__openrouter_id"],
            name=row["ai_model__name"],
            usage_count=row["usage_count"],
            total_tokens=row["total_tokens"],
        )
        for row in rows
    ]


@reads_reports_database
def average_tokens_per_request(*, period: Period = ALL_TIME) -> Decimal | None:
    """Return the average total tokens per request in the period (2 decimals, half-up), or None."""
    totals = _requests(period=period).aggregate(tokens=Sum("total_tokens"), requests=Count("id"))
    if not totals["requests"]:
        return None
    # The database sums and counts; dividing two exact integers here avoids AVG()'s float on SQLite.
    return (Decimal(totals["tokens"]) / Decimal(totals["requests"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _per_chatbot(queryset: QuerySet, expression: Aggregate) -> Subquery:
    """Return ``expression`` aggregated over the rows of ``queryset`` that belong to the outer chatbot.

    ``queryset`` names the path to its chatbot ``chatbot_path``. One correlated subquery per
    measure: joining sessions, messages and requests in a single GROUP BY would multiply each
    count by the others (two sessions of 3 and 4 messages would count 14 messages).
    """
    return Subquery(
        queryset.filter(chatbot_path=OuterRef("pk"))
        .order_by()
        .values("chatbot_path")
        .annotate(measure=expression)
        .values("measure")
    )


@reads_reports_database
def top_chatbots_by_sessions(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ChatbotSessionsRow]:
    """Return the chatbots with the most sessions in the period, with their sessions' messages."""
    check_limit(limit)
    sessions = ChatSession.objects.filter(period.q("created_at")).annotate(chatbot_path=F("chatbot_id"))
    messages = ChatMessage.objects.filter(period.q("created_at")).annotate(chatbot_path=F("session__chatbot_id"))
    rows = (
        Chatbot.objects.annotate(
            session_count=Coalesce(_per_chatbot(sessions, Count("id")), 0),
            message_count=Coalesce(_per_chatbot(messages, Count("id")), 0),
        )
        .filter(session_count__gt=0)
        .order_by("-session_count", "-message_count", "id")
        .values("id", "name", "session_count", "message_count")[:limit]
    )
    return [
        ChatbotSessionsRow(
            chatbot_id=row["id"],
            name=row["name"],
            session_count=row["session_count"],
            message_count=row["message_count"],
        )
        for row in rows
    ]


@reads_reports_database
def top_users_by_free_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserFreeUsageRow]:
    """Return the users who used free models most in the period, by tokens."""
    check_limit(limit)
    rows = (
        _requests(period=period, free_only=True)
        .values("user_id", "user__username")
        .annotate(total_tokens=Sum("total_tokens"), request_count=Count("id"))
        .order_by("-total_tokens", "-request_count", "user_id")[:limit]
    )
    return [
        UserFreeUsageRow(
            user_id=row["user_id"],
            username=row["user__username"],
            total_tokens=row["total_tokens"],
            request_count=row["request_count"],
        )
        for row in rows
    ]


__all__ = [
    "ChatbotSessionsRow",
    "FreeModelUsageRow",
    "ModelUsageRow",
    "UserCostRow",
    "UserFreeUsageRow",
    "average_tokens_per_request",
    "top_chatbots_by_sessions",
    "top_free_models",
    "top_models_by_usage",
    "top_users_by_cost",
    "top_users_by_free_usage",
]


# --- Explorer: headline figures, daily trend, chatbot unit economics -------------------------


USD_QUANTUM = Decimal("0.000000000001")


def _usd_divide(amount: Decimal, count: int) -> Decimal | None:
    """Return ``amount / count`` rounded half-up to the stored cost scale, or None when count is 0."""
    if not count:
        return None
    return (amount / count).quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class UsageHeadline:
    total_cost_usd: Decimal
    request_count: int
    total_tokens: int
    active_users: int
    free_request_count: int

    @property
    def average_tokens_per_request(self) -> Decimal | None:
        if not self.request_count:
            return None
        return (Decimal(self.total_tokens) / self.request_count).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    @property
    def free_request_share(self) -> Decimal | None:
        """Return the percentage of requests made to free models (2 decimals), or None."""
        if not self.request_count:
            return None
        return (Decimal(100) * self.free_request_count / self.request_count).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True)
class HeadlineComparison:
    key: str
    label: str
    kind: str  # "money", "int", "decimal" or "percent"
    current: Decimal | int | None
    previous: Decimal | int | None

    @property
    def change_percent(self) -> Decimal | None:
        """Return the change from the previous period in percent (1 decimal), or None when undefined."""
        if self.current is None or self.previous is None or self.previous == 0:
            return None
        return (Decimal(100) * (Decimal(self.current) - Decimal(self.previous)) / Decimal(self.previous)).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True)
class DailyUsageRow:
    day: date
    free_cost_usd: Decimal
    paid_cost_usd: Decimal
    free_requests: int
    paid_requests: int
    free_tokens: int
    paid_tokens: int

    @property
    def total_cost_usd(self) -> Decimal:
        return self.free_cost_usd + self.paid_cost_usd

    @property
    def total_requests(self) -> int:
        return self.free_requests + self.paid_requests

    @property
    def total_tokens(self) -> int:
        return self.free_tokens + self.paid_tokens


@dataclass(frozen=True)
class ChatbotEconomicsRow:
    chatbot_id: int
    name: str
    session_count: int
    message_count: int
    request_count: int
    free_request_count: int
    total_cost_usd: Decimal

    @property
    def cost_per_session(self) -> Decimal | None:
        """Return the cost per session, half-up to the 12 decimal places costs are stored with."""
        return _usd_divide(self.total_cost_usd, self.session_count)

    @property
    def cost_per_message(self) -> Decimal | None:
        """Return the cost per message, half-up to the 12 decimal places costs are stored with."""
        return _usd_divide(self.total_cost_usd, self.message_count)

    @property
    def free_share(self) -> Decimal | None:
        """Return the percentage of this chatbot's requests made to free models (2 decimals), or None."""
        if not self.request_count:
            return None
        return (Decimal(100) * self.free_request_count / self.request_count).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )


# Zero with the stored scale, so an idle day exports as 0.000000000000 like any other cost.
ZERO_USD = Decimal("0.000000000000")
FREE = Q(ai_model__is_free=True)
PAID = Q(ai_model__is_free=False)


@reads_reports_database
def usage_headline(*, period: Period = ALL_TIME) -> UsageHeadline:
    """Return the period's total cost, requests, tokens, active users and free requests."""
    totals = _requests(period=period).aggregate(
        total_cost_usd=Sum("cost_usd"),
        request_count=Count("id"),
        total_tokens=Sum("total_tokens"),
        active_users=Count("user_id", distinct=True),
        free_request_count=Count("id", filter=FREE),
    )
    return UsageHeadline(
        total_cost_usd=totals["total_cost_usd"] or ZERO_USD,
        request_count=totals["request_count"],
        total_tokens=totals["total_tokens"] or 0,
        active_users=totals["active_users"],
        free_request_count=totals["free_request_count"],
    )


HEADLINE_FIGURES = (
    ("total_cost_usd", "Total cost (USD)", "money"),
    ("request_count", "Requests", "int"),
    ("total_tokens", "Tokens", "int"),
    ("active_users", "Active users", "int"),
    ("average_tokens_per_request", "Average tokens per request", "decimal"),
    ("free_request_share", "Free share of requests", "percent"),
)


def headline_comparison(*, current: UsageHeadline, previous: UsageHeadline | None) -> list[HeadlineComparison]:
    """Return each headline figure of ``current`` beside its value in ``previous`` (None: no previous period)."""
    return [
        HeadlineComparison(
            key=key,
            label=label,
            kind=kind,
            current=getattr(current, key),
            previous=getattr(previous, key) if previous else None,
        )
        for key, label, kind in HEADLINE_FIGURES
    ]


@reads_reports_database
def usage_comparison(*, period: Period) -> list[HeadlineComparison]:
    """Return the headline figures of the period beside those of the period before it."""
    previous_period = period.previous()
    return headline_comparison(
        current=usage_headline(period=period),
        previous=usage_headline(period=previous_period) if previous_period else None,
    )


@reads_reports_database
def first_request_date() -> date | None:
    """Return the day of the earliest recorded request, in TIME_ZONE, or None."""
    first = OpenRouterRequestCost.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return timezone.localdate(first) if first else None


def daily_rows_fill(*, since: date, until: date, days: Iterable[dict[str, Any]]) -> list[DailyUsageRow]:
    """Return one DailyUsageRow per day from ``since`` to ``until``, zeros where ``days`` has none."""
    by_day = {row["day"]: row for row in days}
    rows = []
    # A loop over the period's days (at most MAX_PERIOD_DAYS), not over requests: idle days become zeros.
    for offset in range((until - since).days + 1):
        day = since + timedelta(days=offset)
        row = by_day.get(day, {})
        rows.append(
            DailyUsageRow(
                day=day,
                free_cost_usd=row.get("free_cost_usd") or ZERO_USD,
                paid_cost_usd=row.get("paid_cost_usd") or ZERO_USD,
                free_requests=row.get("free_requests") or 0,
                paid_requests=row.get("paid_requests") or 0,
                free_tokens=row.get("free_tokens") or 0,
                paid_tokens=row.get("paid_tokens") or 0,
            )
        )
    return rows


@reads_reports_database
def daily_usage(*, period: Period) -> list[DailyUsageRow]:
    """Return cost, requests and tokens per day of the period, free and paid apart, zero on idle days."""
    since = period.since or first_request_date()
    until = period.until or timezone.localdate()
    if since is None or since > until:
        return []
    # The period's own bounds: an all-time period spans from the first request, possibly longer
    # than a Period may be, and rows outside [since, until] are left out by the loop below.
    days = (
        _requests(period=period)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(
            free_cost_usd=Sum("cost_usd", filter=FREE),
            paid_cost_usd=Sum("cost_usd", filter=PAID),
            free_requests=Count("id", filter=FREE),
            paid_requests=Count("id", filter=PAID),
            free_tokens=Sum("total_tokens", filter=FREE),
            paid_tokens=Sum("total_tokens", filter=PAID),
        )
        .order_by("day")
    )
    return daily_rows_fill(since=since, until=until, days=days)


@reads_reports_database
def chatbot_unit_economics(*, period: Period = ALL_TIME, limit: int | None = None) -> list[ChatbotEconomicsRow]:
    """Return per-chatbot sessions, messages, requests and cost in the period, costliest first."""
    if limit is not None:
        check_limit(limit)

    sessions = ChatSession.objects.filter(period.q("created_at")).annotate(chatbot_path=F("chatbot_id"))
    messages = ChatMessage.objects.filter(period.q("created_at")).annotate(chatbot_path=F("session__chatbot_id"))
    requests = _requests(period=period).annotate(chatbot_path=F("session__chatbot_id"))
    rows = (
        Chatbot.objects.annotate(
            session_count=Coalesce(_per_chatbot(sessions, Count("id")), 0),
            message_count=Coalesce(_per_chatbot(messages, Count("id")), 0),
            request_count=Coalesce(_per_chatbot(requests, Count("id")), 0),
            free_request_count=Coalesce(_per_chatbot(requests, Count("id", filter=FREE)), 0),
            total_cost_usd=_per_chatbot(requests, Sum("cost_usd")),
        )
        .filter(Q(session_count__gt=0) | Q(request_count__gt=0))
        .order_by(F("total_cost_usd").desc(nulls_last=True), "-session_count", "id")
        .values("id", "name", "session_count", "message_count", "request_count", "free_request_count", "total_cost_usd")
    )
    if limit is not None:
        rows = rows[:limit]
    return [
        ChatbotEconomicsRow(
            chatbot_id=row["id"],
            name=row["name"],
            session_count=row["session_count"],
            message_count=row["message_count"],
            request_count=row["request_count"],
            free_request_count=row["free_request_count"],
            total_cost_usd=row["total_cost_usd"] or ZERO_USD,
        )
        for row in rows
    ]
