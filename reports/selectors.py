"""Read side: every figure the admin, the exports and ``usage_report`` show comes from here.

Each report is one function reading the rollup tables of ``reports.models`` (kept exact in the
same transaction as every write, see ``reports.rollups``) and returning the frozen dataclasses
of ``reports.raw_selectors``, so the admin, JSON and CSV render the same objects.
``reports.raw_selectors`` computes the same reports from the raw rows: it is the reference the
property tests compare these with, exactly, for random data, periods and writes.

A report over all time reads an all-time table (one row per user, model or chatbot); over a
period, the per-day table's rows of the period's days; platform-wide figures, the platform's
two rows a day. Rows are always grouped by key, so a squashed row and fresh deltas sum alike.
The top-user reports over a period read only the users that can rank (``_top_users``). A key
whose requests (or sessions) sum to zero in the period was only ever written and deleted
again, and is left out like an entity with no requests.
"""

# ruff: noqa: S608 - _with_entities wraps the ORM's own SQL; names come from the models, values are parameters.
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import BigIntegerField, Case, F, Model, Q, QuerySet, Sum, When
from django.db.models.functions import Cast
from django.utils import timezone

from ai_models.models import AIModel
from chatbot.models import Chatbot
from reports.models import (
    ActiveUserHistogram,
    ChatbotDailyUsage,
    ChatbotTotalUsage,
    ModelDailyUsage,
    ModelTotalUsage,
    PlatformDailyUsage,
    UserDailyUsage,
    UserTotalUsage,
    UserYearlyActivity,
)
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


def _days(period: Period) -> Q:
    """Return a filter keeping the rollup rows of the period's days (local days, as in the rollups)."""
    condition = Q()
    if period.since is not None:
        condition &= Q(day__gte=period.since)
    if period.until is not None:
        condition &= Q(day__lte=period.until)
    return condition


def _rows(*, period: Period, daily: type[Model], total: type[Model]) -> QuerySet:
    """Return the rollup rows a period's report sums: the all-time table's, or the period's days'."""
    if period.is_all_time:
        return total.objects.all()
    return daily.objects.filter(_days(period))


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


# The pruning of the top-user reports (``_top_users``): the first round reads the squashed users
# of highest bound (at least PRUNING_FIRST_CANDIDATES, and PRUNING_CANDIDATES_PER_ROW per row
# asked for); a second round, when needed, every user whose bound reaches the first round's last
# row, unless more than PRUNING_MAX_CANDIDATES do: then it aggregates every user instead. That
# happens over a short period (a day's figures are far below the all-time ones that bound them),
# whose few rows per user make aggregating them all cheap (at 10M requests, "today" took 268 ms
# in growing rounds of 256 to 16,384 users, and 24 ms aggregating them all).
PRUNING_FIRST_CANDIDATES = 128
PRUNING_CANDIDATES_PER_ROW = 4
PRUNING_MAX_CANDIDATES = 4_096


def _top_users(
    *, period: Period, limit: int, top: Callable[[QuerySet], QuerySet], bound: str, order: str
) -> list[dict[str, Any]]:
    """Return the top ``limit`` rows of a per-user report, reading only the users that can rank.

    ``top(rows)`` aggregates per-user rollup rows (UserTotalUsage for all time, UserDailyUsage
    for a period) into the report's ordered, limited rows; its first ordering is on the figure
    that ``bound`` (a column of UserTotalUsage) sums over all time. No request adds a negative
    amount, so a user's all-time sum bounds that user's figure in any period from above; users
    with fresh deltas (whose squashed row may understate them) are always read. The first round
    reads the users of highest squashed bound: when its last row ranks strictly above the bound
    of the first user left out, nobody left out can rank. Otherwise that last row's figure is a
    floor the final last row reaches, and the second round reads every user whose bound reaches
    it, so that nobody left out can rank either. Past PRUNING_MAX_CANDIDATES users, or when the
    first round found fewer than ``limit`` rows, it aggregates every user.
    """
    rows = _rows(period=period, daily=UserDailyUsage, total=UserTotalUsage)
    primary = order.split()[0]

    def ranked(chosen: QuerySet) -> list[dict[str, Any]]:
        return _with_entities(top(chosen), key="user_id", entity=User, columns=("username",), order=order)

    def of(candidates: set[int]) -> QuerySet:
        # A list of ids, not a subquery: the database then reads just these users' rows by index.
        return rows.filter(user_id__in=sorted(candidates))

    size = min(max(PRUNING_FIRST_CANDIDATES, PRUNING_CANDIDATES_PER_ROW * limit), PRUNING_MAX_CANDIDATES)
    candidates, next_bound = _ranked_users(bound=bound, size=size)
    if not candidates:
        return []  # no user has a rollup row
    result = ranked(of(candidates))
    if next_bound is None or (len(result) == limit and result[-1][primary] > next_bound):
        return result
    if len(result) == limit:
        candidates, next_bound = _ranked_users(bound=bound, size=PRUNING_MAX_CANDIDATES, floor=result[-1][primary])
        if next_bound is None:  # no more than PRUNING_MAX_CANDIDATES reach the floor
            return ranked(of(candidates))
    return ranked(rows)


def _ranked_users(*, bound: str, size: int, floor: Any = None) -> tuple[set[int], Any]:
    """Return the users that can rank by ``bound``, and the bound of the first squashed user left out, or None.

    They are the ``size`` squashed users of highest ``bound`` (with ``floor``: every one whose
    bound is at least ``floor``, plus the next one if more than ``size`` do), and every user with
    fresh deltas.
    """
    table = UserTotalUsage._meta.db_table
    field = UserTotalUsage._meta.get_field(bound)
    connection = connections[UserTotalUsage.objects.db]
    at_least, params = "", []
    if floor is not None:
        at_least, params = f" AND {bound} >= %s", [field.get_db_prep_value(floor, connection=connection)]
    with connection.cursor() as cursor:
        # One round trip; the first part walks the squashed rows' index on ``bound``.
        cursor.execute(
            f"SELECT user_id, {bound}, 1 FROM (SELECT user_id, {bound} FROM {table} WHERE is_squashed{at_least} "
            f"ORDER BY {bound} DESC, user_id LIMIT %s) ranked "
            # The second column is unused there; MIN() just keeps the column's type for the UNION.
            f"UNION ALL SELECT user_id, MIN({bound}), 0 FROM {table} WHERE NOT is_squashed GROUP BY user_id",
            [*params, size + 1],
        )
        fetched = cursor.fetchall()
    ranked = [(user_id, value) for user_id, value, is_ranked in fetched if is_ranked]
    with_deltas = {user_id for user_id, _, is_ranked in fetched if not is_ranked}
    next_bound = (
        field_value_from_db(field=field, value=ranked[size][1], connection=connection) if len(ranked) > size else None
    )
    return {user_id for user_id, _ in ranked[:size]} | with_deltas, next_bound


@reads_reports_database
def top_users_by_cost(*, period: Period = ALL_TIME, limit: int = DEFAULT_LIMIT) -> list[UserCostRow]:
    """Return the users with the highest OpenRouter cost in the period."""
    check_limit(limit)

    def top(rows: QuerySet) -> QuerySet:
        return (
            rows.values("user_id")
            .annotate(cost=Sum("total_cost_usd"), tokens=_count("total_tokens"), requests=_count("request_count"))
            .filter(requests__gt=0)
            .order_by("-cost", "-tokens", "user_id")[:limit]
        )

    rows = _top_users(
        period=period, limit=limit, top=top, bound="total_cost_usd", order="cost DESC, tokens DESC, user_id"
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
    rows = _rows(period=period, daily=ModelDailyUsage, total=ModelTotalUsage)
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
    totals = PlatformDailyUsage.objects.filter(_days(period)).aggregate(
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
        _rows(period=period, daily=ChatbotDailyUsage, total=ChatbotTotalUsage)
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
    all_time = period.is_all_time
    # All time: the free part of each user's total; a period: the free rows of each day.
    tokens, requests = ("free_total_tokens", "free_request_count") if all_time else ("total_tokens", "request_count")

    def top(rows: QuerySet) -> QuerySet:
        if not all_time:
            rows = rows.filter(is_free=True)
        return (
            rows.values("user_id")
            .annotate(tokens=_count(tokens), requests=_count(requests))
            .filter(requests__gt=0)
            .order_by("-tokens", "-requests", "user_id")[:limit]
        )

    rows = _top_users(
        period=period, limit=limit, top=top, bound="free_total_tokens", order="tokens DESC, requests DESC, user_id"
    )
    return [
        UserFreeUsageRow(
            user_id=row["id"], username=row["username"], total_tokens=row["tokens"], request_count=row["requests"]
        )
        for row in rows
    ]


def _usage_headlines(*, periods: list[Period]) -> list[UsageHeadline]:
    """Return the headline figures of each period, counting the active users of them all in one scan."""
    bounded = [period for period in periods if period.since is not None and period.until is not None]
    active_between = dict(
        zip(bounded, _active_users_between(ranges=[(period.since, period.until) for period in bounded]), strict=True)
    )
    headlines = []
    for period in periods:
        # The totals from the platform's two rows a day.
        totals = PlatformDailyUsage.objects.filter(_days(period)).aggregate(
            cost=Sum("total_cost_usd"),
            requests=_count("request_count"),
            tokens=_count("total_tokens"),
            free_requests=_count("request_count", filter=Q(is_free=True)),
        )
        # A user whose requests in the period sum to zero (written, then deleted) is not active.
        if period.is_all_time:
            active_users = _active_users_all_time()
        elif period in active_between:
            active_users = active_between[period]
        else:
            # Open-ended (only from the command line): every day of the per-user rollup on that side.
            active_users = (
                UserDailyUsage.objects.filter(_days(period))
                .values("user_id")
                .annotate(requests=Sum("request_count"))
                .filter(requests__gt=0)
                .count()
            )
        headlines.append(
            UsageHeadline(
                total_cost_usd=totals["cost"] or ZERO_USD,
                request_count=totals["requests"] or 0,
                total_tokens=totals["tokens"] or 0,
                active_users=active_users,
                free_request_count=totals["free_requests"] or 0,
            )
        )
    return headlines


def request_count(*, period: Period = ALL_TIME) -> int:
    """Return how many requests were made in the period, from the platform's two rows a day.

    Exact, like COUNT(*) over the period's requests, in a few rows. Not routed to the reports
    database: the request list counts with it, and reads the primary.
    """
    return PlatformDailyUsage.objects.filter(_days(period)).aggregate(requests=_count("request_count"))["requests"] or 0


def session_count(*, period: Period = ALL_TIME) -> int:
    """Return how many chat sessions were started in the period, from the chatbots' rollup rows.

    Exact, like COUNT(*) over the period's sessions; read from the primary, as ``request_count``.
    """
    return _chatbots_sum(period=period, measure="session_count")


def message_count(*, period: Period = ALL_TIME) -> int:
    """Return how many chat messages were written in the period, from the chatbots' rollup rows.

    Exact, like COUNT(*) over the period's messages: every message is in a session of a chatbot,
    and counts on its own day. Read from the primary, as ``request_count``.
    """
    return _chatbots_sum(period=period, measure="message_count")


def _chatbots_sum(*, period: Period, measure: str) -> int:
    """Return the sum of a count of the chatbots' rollup rows over the period."""
    rows = _rows(period=period, daily=ChatbotDailyUsage, total=ChatbotTotalUsage)
    return rows.aggregate(total=_count(measure))["total"] or 0


@reads_reports_database
def usage_headline(*, period: Period = ALL_TIME) -> UsageHeadline:
    """Return the period's total cost, requests, tokens, active users and free requests."""
    return _usage_headlines(periods=[period])[0]


def _month_masks(*, since: date, until: date) -> list[tuple[date, int]]:
    """Return each month the days span, with the bits of its days within them (bit d-1 for day d)."""
    masks = []
    month = since.replace(day=1)
    while month <= until:
        following = (month + timedelta(days=32)).replace(day=1)
        first, last = max(since, month), min(until, following - timedelta(days=1))
        masks.append((month, ((1 << last.day) - 1) ^ ((1 << (first.day - 1)) - 1)))
        month = following
    return masks


def _inexact_users_active(*, years: str) -> str:
    """Return a scalar subquery: the users of inexact yearly rows (``years``) with requests between two days.

    Its two parameters are the first and last day. Those users' bits may name days whose requests
    were deleted, so they are checked against the per-user, per-day sums instead.
    """
    activity, daily = UserYearlyActivity._meta.db_table, UserDailyUsage._meta.db_table
    return (
        f"(SELECT COUNT(*) FROM (SELECT user_id FROM {daily} WHERE day >= %s AND day <= %s "
        f"AND user_id IN (SELECT user_id FROM {activity} WHERE NOT is_exact AND {years}) "
        f"GROUP BY user_id HAVING SUM(request_count) > 0) checked)"
    )


def _histogram_day(day: date) -> int:
    """Return a day as ActiveUserHistogram numbers it."""
    return day.month * 100 + day.day


def _active_users_between(*, ranges: list[tuple[date, date]]) -> list[int]:
    """Return how many users made requests between each pair of days, in one query."""
    if not ranges:
        return []
    if all(since.year == until.year for since, until in ranges):
        return _active_users_within_years(ranges=ranges)
    return _active_users_across_years(ranges=ranges)


def _active_users_within_years(*, ranges: list[tuple[date, date]]) -> list[int]:
    """Return how many users made requests between each pair of days of one year, from the active-user histogram.

    The histogram counts each user active in a range once, on their first active day in it (see
    ActiveUserHistogram), as of the days it counts for each yearly activity row. The rows it does
    not count as they are (days set since the last squash, or inexact) are few: their counted
    days are taken out, and their current days counted instead; an inexact row's user is checked
    against the per-user-per-day sums, as in ``_active_users_across_years``.
    """
    activity, histogram = UserYearlyActivity._meta.db_table, ActiveUserHistogram._meta.db_table
    counts, parameters = [], []
    for since, until in ranges:
        year, first, last = since.year, _histogram_day(since), _histogram_day(until)
        masks = _month_masks(since=since, until=until)
        # Bits are compared with literal masks: they are integers the code computed.
        days_hit, counted_hit = (
            " OR ".join(f"({prefix}_{month.month:02} & {mask}) <> 0" for month, mask in masks)
            for prefix in ("days", "counted")
        )
        counts.append(
            f"(SELECT CAST(COALESCE(SUM(user_count), 0) AS BIGINT) FROM {histogram} "
            f"WHERE year = {year} AND day >= {first} AND day <= {last} AND previous_day < {first})"
        )
        # The same condition as the partial index on the rows not counted as they are.
        counts.append(
            f"(SELECT COUNT(*) FILTER (WHERE is_exact AND ({days_hit})) - COUNT(*) FILTER (WHERE {counted_hit}) "
            f"FROM {activity} WHERE year = {year} AND (NOT is_counted OR NOT is_exact))"
        )
        counts.append(_inexact_users_active(years=f"year = {year}"))
        parameters += [since, until]
    with connections[UserYearlyActivity.objects.db].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(counts)}", parameters)
        row = cursor.fetchone()
    return [sum(row[index : index + 3]) for index in range(0, len(row), 3)]


def _active_users_across_years(*, ranges: list[tuple[date, date]]) -> list[int]:
    """Return how many users made requests between each pair of days, one pair spanning years, in one query.

    The users are split in two: those with an inexact row (requests deleted since the last
    squash or rebuild) are checked against the per-user-per-day sums; all the others have exact
    rows, whose bits say exactly on which days they made requests. Within one year a user has one
    row, counted by its bits or checked, never both. When a range spans years, a user with an
    inexact row in any year the ranges touch is checked, and none of that user's rows counted.
    """
    activity = UserYearlyActivity._meta.db_table

    def in_years(years: Iterable[int]) -> str:
        return f"year IN ({', '.join(str(year) for year in sorted(years))})"

    touched = {year for since, until in ranges for year in range(since.year, until.year + 1)}
    counts, parameters = [], []
    for since, until in ranges:
        # Bits are compared with literal masks: they are integers the code computed.
        hit = " OR ".join(
            f"(year = {month.year} AND days_{month.month:02} & {mask} <> 0)"
            for month, mask in _month_masks(since=since, until=until)
        )
        # Within one year a user has one row; across years, a row each.
        counted = "*" if since.year == until.year else "DISTINCT user_id"
        counts.append(f"COUNT({counted}) FILTER (WHERE {hit})")
        counts.append(_inexact_users_active(years=in_years(touched)))
        parameters += [since, until]
    query = (
        f"SELECT {', '.join(counts)} FROM {activity} exact WHERE is_exact AND {in_years(touched)} "
        f"AND NOT EXISTS (SELECT 1 FROM {activity} inexact WHERE NOT inexact.is_exact "
        f"AND inexact.{in_years(touched)} AND inexact.user_id = exact.user_id)"
    )
    with connections[UserYearlyActivity.objects.db].cursor() as cursor:
        cursor.execute(query, parameters)
        row = cursor.fetchone()
    return [row[index] + row[index + 1] for index in range(0, len(row), 2)]


def _active_users_all_time() -> int:
    """Return how many users have requests, from their all-time rows."""
    table = UserTotalUsage._meta.db_table
    with_deltas = f"SELECT user_id FROM {table} WHERE NOT is_squashed"
    # A user has at most one squashed row. Those whose squashed row counts requests (one cheap
    # scan), less those of them with deltas, plus the users with deltas whose rows sum to
    # requests: the deltas are few, and read by index. An anti-join of the squashed rows against
    # the deltas gives the same count but costs twice the scan.
    with connections[UserTotalUsage.objects.db].cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {table} WHERE is_squashed AND request_count > 0) "
            f"- (SELECT COUNT(*) FROM {table} WHERE is_squashed AND request_count > 0 AND user_id IN ({with_deltas})) "
            f"+ (SELECT COUNT(*) FROM (SELECT user_id FROM {table} WHERE user_id IN ({with_deltas}) "
            f"GROUP BY user_id HAVING SUM(request_count) > 0) active)"
        )
        return cursor.fetchone()[0]


@reads_reports_database
def usage_comparison(*, period: Period) -> list[HeadlineComparison]:
    """Return the headline figures of the period beside those of the period before it."""
    previous_period = period.previous()
    headlines = _usage_headlines(periods=[period, previous_period] if previous_period else [period])
    return headline_comparison(current=headlines[0], previous=headlines[1] if previous_period else None)


def first_request_date() -> date | None:
    """Return the day of the earliest recorded request, in TIME_ZONE, or None."""
    return (
        PlatformDailyUsage.objects.values("day")
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
    free, paid = Q(is_free=True), Q(is_free=False)
    days = (
        PlatformDailyUsage.objects.filter(_days(period))
        .values("day")
        .annotate(
            free_cost_usd=Sum("total_cost_usd", filter=free),
            paid_cost_usd=Sum("total_cost_usd", filter=paid),
            free_requests=_count("request_count", filter=free),
            paid_requests=_count("request_count", filter=paid),
            free_tokens=_count("total_tokens", filter=free),
            paid_tokens=_count("total_tokens", filter=paid),
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
        _rows(period=period, daily=ChatbotDailyUsage, total=ChatbotTotalUsage)
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
    "request_count",
    "session_count",
    "top_chatbots_by_sessions",
    "top_free_models",
    "top_models_by_usage",
    "top_users_by_cost",
    "top_users_by_free_usage",
    "usage_comparison",
    "usage_headline",
]
