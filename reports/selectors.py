"""Read side: every figure the admin, the exports and ``usage_report`` show comes from here.

Each report is one function reading the per-day rollup tables of ``reports.models`` (kept exact
in the same transaction as every write, see ``reports.rollups``) and returning the frozen
dataclasses of ``reports.raw_selectors``, so the admin, JSON and CSV render the same objects.
``reports.raw_selectors`` computes the same reports from the raw rows: it is the reference the
property tests compare these with, exactly, for random data, periods and writes. Each reads a per-day rollup of
``reports.models``: rows of the period's days, grouped by key, so a squashed row and fresh
deltas sum alike. A key whose requests (or sessions) sum to zero in the period was only ever
written and deleted again, and is left out like an entity with no requests.
"""

# ruff: noqa: S608 - _with_entities wraps the ORM's own SQL; names come from the models, values are parameters.
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import BigIntegerField, Case, F, Model, Q, QuerySet, Sum, When
from django.db.models.functions import Cast
from django.utils import timezone

from ai_models.models import AIModel
from chatbot.models import Chatbot
from reports.models import ChatbotDailyUsage, ModelDailyUsage, UserDailyUsage
from reports.periods import ALL_TIME, Period
from reports.raw_selectors import (
    DEFAULT_LIMIT,
    ZERO_USD,
    ChatbotEconomicsRow,
    ChatbotSessionsRow,
    DailyUsageRow,
    FreeModelUsageRow,
    HeadlineComparison,
    ModelUsageRow,
    UsageHeadline,
    UserCostRow,
    UserFreeUsageRow,
    check_limit,
    daily_rows_fill,
    headline_comparison,
)
from reports.rollups import field_value_from_db
from reports.routers import reads_reports_database

User = get_user_model()
FREE_MODEL = Q(ai_model__is_free=True)
PAID_MODEL = Q(ai_model__is_free=False)


def _days(period: Period) -> Q:
    """Return a filter keeping the rollup rows of the period's days (local days, as in the rollups)."""
    condition = Q()
    if period.since is not None:
        condition &= Q(day__gte=period.since)
    if period.until is not None:
        condition &= Q(day__lte=period.until)
    return condition


def _count(field: str, **extra: Q) -> Cast:
    # SUM of a bigint is a numeric on PostgreSQL: cast back so that counts are ints everywhere.
    return Cast(Sum(field, **extra), output_field=BigIntegerField())


def _with_entities(
    top: QuerySet, *, key: str, entity: type[Model], columns: tuple[str, ...], order: str
) -> list[dict[str, Any]]:
    """Return the rows of an aggregated (and limited) queryset, each with columns of its entity.

    ``top`` groups rollup rows by the entity's id alone; the entity (user, model, chatbot) is
    joined to the rows it returns. Grouping by the entity's names as well, as
    ``values("user_id", "user__username")`` does, joins every rollup row to its entity and sorts
    on text before grouping, which costs several times more on a big platform. The inner join
    leaves out an entity that no longer exists, as the raw reports do. ``order`` repeats the
    queryset's ordering over the aggregates' names (the subquery's order is not kept by a join).
    """
    query = top.query
    sql, params = query.sql_with_params()
    aggregates = list(query.annotation_select)
    select = ", ".join([f"top.{key}", *(f"top.{name}" for name in aggregates), *(f"e.{c}" for c in columns)])
    connection = connections[top.db]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM ({sql}) top JOIN {entity._meta.db_table} e ON e.id = top.{key} ORDER BY {order}",
            params,
        )
        rows = cursor.fetchall()
    fields = [query.annotation_select[name].output_field for name in aggregates]
    results = []
    for entity_id, *values in rows:
        sums = values[: len(aggregates)]
        # As the ORM would convert them: exact decimals from SQLite's scaled integers, ints from numerics.
        row = {
            name: field_value_from_db(field=field, value=value, connection=connection)
            for name, field, value in zip(aggregates, fields, sums, strict=True)
        }
        row.update(zip(columns, values[len(aggregates) :], strict=True))
        row["id"] = entity_id
        results.append(row)
    return results


@reads_reports_database
def top_users_by_cost(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserCostRow]:
    """Return the users with the highest OpenRouter cost in the period."""
    check_limit(limit)
    top = (
        UserDailyUsage.objects.filter(_days(period))
        .values("user_id")
        .annotate(cost=Sum("total_cost_usd"), tokens=_count("total_tokens"), requests=_count("request_count"))
        .filter(requests__gt=0)
        .order_by("-cost", "-tokens", "user_id")[:limit]
    )
    rows = _with_entities(
        top, key="user_id", entity=User, columns=("username",), order="cost DESC, tokens DESC, user_id"
    )
    return [
        UserCostRow(
            user_id=row["id"],
            username=row["username"],
            total_cost_usd=row["cost"],
            total_tokens=row["tokens"],
            request_count=row["requests"],
        )
        for row in rows
    ]


def _top_models(*, period: Period, free_only: bool, limit: int) -> list[dict[str, Any]]:
    rows = ModelDailyUsage.objects.filter(_days(period))
    if free_only:
        rows = rows.filter(FREE_MODEL)
    top = (
        rows.values("ai_model_id")
        .annotate(requests=_count("request_count"), tokens=_count("total_tokens"), cost=Sum("total_cost_usd"))
        .filter(requests__gt=0)
        .order_by("-requests", "-tokens", "ai_model_id")[:limit]
    )
    return _with_entities(
        top,
        key="ai_model_id",
        entity=AIModel,
        columns=("openrouter_id", "name"),
        order="requests DESC, tokens DESC, ai_model_id",
    )


@reads_reports_database
def top_models_by_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ModelUsageRow]:
    """Return the AI models with the most requests in the period."""
    check_limit(limit)
    return [
        ModelUsageRow(
            model_id=row["id"],
            openrouter_id=row["openrouter_id"],
            name=row["name"],
            usage_count=row["requests"],
            total_tokens=row["tokens"],
            total_cost_usd=row["cost"],
        )
        for row in _top_models(period=period, free_only=False, limit=limit)
    ]


@reads_reports_database
def top_free_models(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[FreeModelUsageRow]:
    """Return the free AI models with the most requests in the period."""
    check_limit(limit)
    return [
        FreeModelUsageRow(
            model_id=row["id"],
            openrouter_id=row["openrouter_id"],
            name=row["name"],
            usage_count=row["requests"],
            total_tokens=row["tokens"],
        )
        for row in _top_models(period=period, free_only=True, limit=limit)
    ]


@reads_reports_database
def average_tokens_per_request(*, period: Period = ALL_TIME) -> Decimal | None:
    """Return the average total tokens per request in the period (2 decimals, half-up), or None."""
    totals = ModelDailyUsage.objects.filter(_days(period)).aggregate(
        tokens=_count("total_tokens"), requests=_count("request_count")
    )
    if not totals["requests"]:
        return None
    return (Decimal(totals["tokens"]) / Decimal(totals["requests"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@reads_reports_database
def top_chatbots_by_sessions(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[ChatbotSessionsRow]:
    """Return the chatbots with the most sessions in the period, with their sessions' messages."""
    check_limit(limit)
    top = (
        ChatbotDailyUsage.objects.filter(_days(period))
        .values("chatbot_id")
        .annotate(sessions=_count("session_count"), messages=_count("message_count"))
        .filter(sessions__gt=0)
        .order_by("-sessions", "-messages", "chatbot_id")[:limit]
    )
    rows = _with_entities(
        top, key="chatbot_id", entity=Chatbot, columns=("name",), order="sessions DESC, messages DESC, chatbot_id"
    )
    return [
        ChatbotSessionsRow(
            chatbot_id=row["id"], name=row["name"], session_count=row["sessions"], message_count=row["messages"]
        )
        for row in rows
    ]


@reads_reports_database
def top_users_by_free_usage(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserFreeUsageRow]:
    """Return the users who used free models most in the period, by tokens."""
    check_limit(limit)
    top = (
        UserDailyUsage.objects.filter(_days(period), is_free=True)
        .values("user_id")
        .annotate(tokens=_count("total_tokens"), requests=_count("request_count"))
        .filter(requests__gt=0)
        .order_by("-tokens", "-requests", "user_id")[:limit]
    )
    rows = _with_entities(
        top, key="user_id", entity=User, columns=("username",), order="tokens DESC, requests DESC, user_id"
    )
    return [
        UserFreeUsageRow(
            user_id=row["id"], username=row["username"], total_tokens=row["tokens"], request_count=row["requests"]
        )
        for row in rows
    ]


@reads_reports_database
def usage_headline(*, period: Period = ALL_TIME) -> UsageHeadline:
    """Return the period's total cost, requests, tokens, active users and free requests."""
    # The totals from the per-model rollup, far smaller than the per-user one.
    totals = ModelDailyUsage.objects.filter(_days(period)).aggregate(
        cost=Sum("total_cost_usd"),
        requests=_count("request_count"),
        tokens=_count("total_tokens"),
        free_requests=_count("request_count", filter=FREE_MODEL),
    )
    # A user whose requests in the period sum to zero (written, then deleted) is not active.
    active_users = (
        UserDailyUsage.objects.filter(_days(period))
        .values("user_id")
        .annotate(requests=Sum("request_count"))
        .filter(requests__gt=0)
        .count()
    )
    return UsageHeadline(
        total_cost_usd=totals["cost"] or ZERO_USD,
        request_count=totals["requests"] or 0,
        total_tokens=totals["tokens"] or 0,
        active_users=active_users,
        free_request_count=totals["free_requests"] or 0,
    )


@reads_reports_database
def usage_comparison(*, period: Period) -> list[HeadlineComparison]:
    """Return the headline figures of the period beside those of the period before it."""
    previous_period = period.previous()
    return headline_comparison(
        current=usage_headline(period=period),
        previous=usage_headline(period=previous_period) if previous_period else None,
    )


def first_request_date() -> date | None:
    """Return the day of the earliest recorded request, in TIME_ZONE, or None."""
    return (
        ModelDailyUsage.objects.values("day")
        .annotate(requests=_count("request_count"))
        .filter(requests__gt=0)
        .order_by("day")
        .values_list("day", flat=True)
        .first()
    )


@reads_reports_database
def daily_usage(*, period: Period) -> list[DailyUsageRow]:
    """Return cost, requests and tokens per day of the period, free and paid apart, zero on idle days."""
    since = period.since or first_request_date()
    until = period.until or timezone.localdate()
    if since is None or since > until:
        return []
    days = (
        ModelDailyUsage.objects.filter(_days(period))
        .values("day")
        .annotate(
            free_cost_usd=Sum("total_cost_usd", filter=FREE_MODEL),
            paid_cost_usd=Sum("total_cost_usd", filter=PAID_MODEL),
            free_requests=_count("request_count", filter=FREE_MODEL),
            paid_requests=_count("request_count", filter=PAID_MODEL),
            free_tokens=_count("total_tokens", filter=FREE_MODEL),
            paid_tokens=_count("total_tokens", filter=PAID_MODEL),
        )
        .order_by("day")
    )
    return daily_rows_fill(since=since, until=until, days=days)


@reads_reports_database
def chatbot_unit_economics(*, period: Period = ALL_TIME, limit: int | None = None) -> list[ChatbotEconomicsRow]:
    """Return per-chatbot sessions, messages, requests and cost in the period, costliest first."""
    if limit is not None:
        check_limit(limit)
    # As the raw selector: a chatbot without requests in the period has no cost (NULL, last),
    # which sorts after one whose requests cost 0.
    top = (
        ChatbotDailyUsage.objects.filter(_days(period))
        .values("chatbot_id")
        .annotate(
            sessions=_count("session_count"),
            messages=_count("message_count"),
            requests=_count("request_count"),
            free_requests=_count("free_request_count"),
            cost=Sum("total_cost_usd"),
        )
        .filter(Q(sessions__gt=0) | Q(requests__gt=0))
        .order_by(Case(When(requests__gt=0, then=F("cost"))).desc(nulls_last=True), "-sessions", "chatbot_id")
    )
    if limit is not None:
        top = top[:limit]
    rows = _with_entities(
        top,
        key="chatbot_id",
        entity=Chatbot,
        columns=("name",),
        order="CASE WHEN requests > 0 THEN cost END DESC NULLS LAST, sessions DESC, chatbot_id",
    )
    return [
        ChatbotEconomicsRow(
            chatbot_id=row["id"],
            name=row["name"],
            session_count=row["sessions"],
            message_count=row["messages"],
            request_count=row["requests"],
            free_request_count=row["free_requests"],
            total_cost_usd=row["cost"] if row["requests"] else ZERO_USD,
        )
        for row in rows
    ]


__all__ = [
    "average_tokens_per_request",
    "chatbot_unit_economics",
    "daily_usage",
    "first_request_date",
    "top_chatbots_by_sessions",
    "top_free_models",
    "top_models_by_usage",
    "top_users_by_cost",
    "top_users_by_free_usage",
    "usage_comparison",
    "usage_headline",
]
