"""Read side: every figure the admin, the exports and ``usage_report`` show comes from here.

Each report is one function that lets the database aggregate (no Python loop over rows) and
returns frozen dataclasses, so the admin, JSON and tables render the same objects. Ties are
broken by the next measure, then by id ascending, so the order is stable on every database.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from chatbot.models import Chatbot, ChatMessage, OpenRouterRequestCost
from reports.periods import ALL_TIME, Period

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


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, not {limit!r}.")


def top_users_by_cost(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserCostRow]:
    """Return the users with the highest OpenRouter cost in the period."""
    _check_limit(limit)
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


def top_models_by_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ModelUsageRow]:
    """Return the AI models with the most requests in the period."""
    _check_limit(limit)
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


def top_free_models(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[FreeModelUsageRow]:
    """Return the free AI models with the most requests in the period."""
    _check_limit(limit)
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


def average_tokens_per_request(*, period: Period = ALL_TIME) -> Decimal | None:
    """Return the average total tokens per request in the period (2 decimals, half-up), or None."""
    totals = _requests(period=period).aggregate(tokens=Sum("total_tokens"), requests=Count("id"))
    if not totals["requests"]:
        return None
    # The database sums and counts; dividing two exact integers here avoids AVG()'s float on SQLite.
    return (Decimal(totals["tokens"]) / Decimal(totals["requests"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def top_chatbots_by_sessions(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ChatbotSessionsRow]:
    """Return the chatbots with the most sessions in the period, with their sessions' messages."""
    _check_limit(limit)
    # Messages are counted in a correlated subquery: joining sessions and messages in one
    # GROUP BY would multiply the session count by the messages per session.
    messages = (
        ChatMessage.objects.filter(period.q("created_at"), session__chatbot=OuterRef("pk"))
        .order_by()
        .values("session__chatbot")
        .annotate(count=Count("id"))
        .values("count")
    )
    rows = (
        Chatbot.objects.annotate(
            session_count=Count("sessions", filter=period.q("sessions__created_at") or None),
            message_count=Coalesce(Subquery(messages, output_field=IntegerField()), 0),
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


def top_users_by_free_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserFreeUsageRow]:
    """Return the users who used free models most in the period, by tokens."""
    _check_limit(limit)
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
