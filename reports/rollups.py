"""Keep the rollup tables exact: the triggers that maintain them, squashing, and rebuilding.

This module is the one source of the rollups' SQL: the migration installs the triggers with
``rollup_triggers_install``, ``squash_rollups`` calls ``rollups_squash`` and ``rebuild_rollups``
calls ``rollups_rebuild``.

Each rollup row sums the *contributions* of the current raw rows to its key:

- a request counts for its user (free or paid by its model's current ``is_free``; a request
  whose model does not exist counts as paid) and for its model, on the local day of its
  ``created_at``; and, when its session exists, for that session's chatbot;
- a session counts for its chatbot on its day; a message whose session exists counts for that
  session's chatbot on the message's day.

The per-day tables sum them per entity and day; the all-time tables (per user, model, chatbot)
and the per-day platform table sum the same contributions over fewer keys, so that a report
over all time, or over the whole platform, reads a few rows instead of one per entity per day.

A trigger on a raw table appends, as delta rows, the contributions the changed rows make after
the statement minus those they made before it. A change of a parent (a session's chatbot, a
model's ``is_free``) also moves the contributions of the children that depend on it. Every
delta is written by the database in the statement's own transaction, so every write path
(services, ``bulk_create``, ``QuerySet.update()``/``delete()``, cascades, raw SQL) keeps the
rollups exact, and a rolled back write rolls back its deltas.

PostgreSQL runs statement-level triggers with transition tables, so a bulk insert appends one
delta per key, not one per row. SQLite has row-level triggers only. Its datetimes are UTC text,
and the local day is computed by ``django_datetime_cast_date``, the function Django registers on
every SQLite connection it opens: writes to a SQLite database must go through Django.

The local day uses the time zone stored with the triggers (``reports_rollup_day()`` on
PostgreSQL, the ``reports_rollup_time_zone`` view on SQLite). After a change of
``settings.TIME_ZONE``, ``rollups_rebuild`` stores the new zone and recomputes every row.
"""

# ruff: noqa: S608 - the SQL is built from table and column names defined here, never from input.
import zoneinfo
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ai_models.models import AIModel
from chatbot.models import ChatMessage, ChatSession, OpenRouterRequestCost
from reports.models import (
    MONTHS,
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

REQUESTS = OpenRouterRequestCost._meta.db_table
SESSIONS = ChatSession._meta.db_table
MESSAGES = ChatMessage._meta.db_table
MODELS = AIModel._meta.db_table

# The raw columns each trigger reads: a change to any other column (a title, a role, a failure
# note, a price) cannot change a rollup, and is skipped.
REQUEST_COLUMNS = ("id", "user_id", "ai_model_id", "session_id", "created_at", "total_tokens", "cost_usd")
SESSION_COLUMNS = ("id", "chatbot_id", "created_at")
MESSAGE_COLUMNS = ("id", "session_id", "created_at")
MODEL_COLUMNS = ("id", "is_free")
NULLABLE_COLUMNS = {"session_id"}

PREFIX = "reports_rollup"
PG_DAY_FUNCTION = f"{PREFIX}_day"
PG_TIME_ZONE_FUNCTION = f"{PREFIX}_time_zone"
SQLITE_TIME_ZONE_VIEW = f"{PREFIX}_time_zone"
# Serialises concurrent squashes on PostgreSQL (a rebuild locks the tables instead); any shared constant.
PG_SQUASH_LOCK = 0x726F6C6C7570  # "rollup"
SQUASH_BATCH_KEYS = 10_000
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class RollupTable:
    """A rollup table: its key columns, the measures summed per key, and the contributions it sums."""

    model: type
    keys: tuple[str, ...]
    measures: tuple[str, ...]
    # Whose contributions (see the module's docstring) the table sums: "user", "model" or "chatbot".
    contributions: str
    # The select list that derives the table's columns from those contributions' columns, when
    # the table keeps fewer keys (e.g. a per-user total from the per-user, per-day contributions).
    derived: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.model._meta.db_table

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys + self.measures


USER_TABLE = RollupTable(
    model=UserDailyUsage,
    keys=("day", "user_id", "is_free"),
    measures=("request_count", "total_tokens", "total_cost_usd"),
    contributions="user",
)
MODEL_TABLE = RollupTable(
    model=ModelDailyUsage,
    keys=("day", "ai_model_id"),
    measures=("request_count", "total_tokens", "total_cost_usd"),
    contributions="model",
)
CHATBOT_MEASURES = ("session_count", "message_count", "request_count", "free_request_count", "total_cost_usd")
CHATBOT_TABLE = RollupTable(
    model=ChatbotDailyUsage, keys=("day", "chatbot_id"), measures=CHATBOT_MEASURES, contributions="chatbot"
)
# The all-time and platform-wide tables: the same contributions, summed over fewer keys.
USER_TOTAL_TABLE = RollupTable(
    model=UserTotalUsage,
    keys=("user_id",),
    measures=("request_count", "total_tokens", "total_cost_usd", "free_request_count", "free_total_tokens"),
    contributions="user",
    derived=(
        "user_id",
        "request_count",
        "total_tokens",
        "total_cost_usd",
        "CASE WHEN is_free THEN request_count ELSE 0 END AS free_request_count",
        "CASE WHEN is_free THEN total_tokens ELSE 0 END AS free_total_tokens",
    ),
)
MODEL_TOTAL_TABLE = RollupTable(
    model=ModelTotalUsage,
    keys=("ai_model_id",),
    measures=("request_count", "total_tokens", "total_cost_usd"),
    contributions="model",
    derived=("ai_model_id", "request_count", "total_tokens", "total_cost_usd"),
)
CHATBOT_TOTAL_TABLE = RollupTable(
    model=ChatbotTotalUsage,
    keys=("chatbot_id",),
    measures=CHATBOT_MEASURES,
    contributions="chatbot",
    derived=("chatbot_id", *CHATBOT_MEASURES),
)
PLATFORM_TABLE = RollupTable(
    model=PlatformDailyUsage,
    keys=("day", "is_free"),
    measures=("request_count", "total_tokens", "total_cost_usd"),
    contributions="user",
    derived=("day", "is_free", "request_count", "total_tokens", "total_cost_usd"),
)
ROLLUP_TABLES = (
    USER_TABLE,
    MODEL_TABLE,
    CHATBOT_TABLE,
    USER_TOTAL_TABLE,
    MODEL_TOTAL_TABLE,
    CHATBOT_TOTAL_TABLE,
    PLATFORM_TABLE,
)


# --- The contributions, as SELECTs over a source of raw rows ------------------------------------
#
# ``src`` is a table, a PostgreSQL transition table, or on SQLite a one-row subquery of NEW/OLD;
# ``sign`` is "1" (the rows' contributions now) or "-1" (the ones they made before the change).


def _day(vendor: str, column: str) -> str:
    if vendor == "postgresql":
        return f"{PG_DAY_FUNCTION}({column})"
    return (
        f"django_datetime_cast_date({column}, (SELECT time_zone FROM {SQLITE_TIME_ZONE_VIEW}), "
        f"(SELECT storage_time_zone FROM {SQLITE_TIME_ZONE_VIEW}))"
    )


def _free(column: str) -> str:
    return f"CASE WHEN {column} THEN 1 ELSE 0 END"


def _request_user_rows(vendor: str, src: str, sign: str) -> str:
    return (
        f"SELECT {_day(vendor, 'r.created_at')} AS day, r.user_id AS user_id, "
        f"COALESCE(m.is_free, false) AS is_free, {sign} AS request_count, "
        f"{sign} * r.total_tokens AS total_tokens, {sign} * r.cost_usd AS total_cost_usd "
        f"FROM {src} r LEFT JOIN {MODELS} m ON m.id = r.ai_model_id"
    )


def _request_model_rows(vendor: str, src: str, sign: str) -> str:
    return (
        f"SELECT {_day(vendor, 'r.created_at')} AS day, r.ai_model_id AS ai_model_id, {sign} AS request_count, "
        f"{sign} * r.total_tokens AS total_tokens, {sign} * r.cost_usd AS total_cost_usd FROM {src} r"
    )


def _request_chatbot_rows(vendor: str, src: str, sign: str) -> str:
    return (
        f"SELECT {_day(vendor, 'r.created_at')} AS day, s.chatbot_id AS chatbot_id, 0 AS session_count, "
        f"0 AS message_count, {sign} AS request_count, {sign} * {_free('m.is_free')} AS free_request_count, "
        f"{sign} * r.cost_usd AS total_cost_usd "
        f"FROM {src} r JOIN {SESSIONS} s ON s.id = r.session_id LEFT JOIN {MODELS} m ON m.id = r.ai_model_id"
    )


def _message_chatbot_rows(vendor: str, src: str, sign: str) -> str:
    return (
        f"SELECT {_day(vendor, 'g.created_at')} AS day, s.chatbot_id AS chatbot_id, 0 AS session_count, "
        f"{sign} AS message_count, 0 AS request_count, 0 AS free_request_count, 0 AS total_cost_usd "
        f"FROM {src} g JOIN {SESSIONS} s ON s.id = g.session_id"
    )


def _session_chatbot_rows(vendor: str, src: str, sign: str) -> list[str]:
    """Return a session's own contribution and those of its messages and requests."""
    return [
        f"SELECT {_day(vendor, 's.created_at')} AS day, s.chatbot_id AS chatbot_id, {sign} AS session_count, "
        f"0 AS message_count, 0 AS request_count, 0 AS free_request_count, 0 AS total_cost_usd FROM {src} s",
        f"SELECT {_day(vendor, 'g.created_at')}, s.chatbot_id, 0, {sign}, 0, 0, 0 "
        f"FROM {src} s JOIN {MESSAGES} g ON g.session_id = s.id",
        f"SELECT {_day(vendor, 'r.created_at')}, s.chatbot_id, 0, 0, {sign}, {sign} * {_free('m.is_free')}, "
        f"{sign} * r.cost_usd FROM {src} s JOIN {REQUESTS} r ON r.session_id = s.id "
        f"LEFT JOIN {MODELS} m ON m.id = r.ai_model_id",
    ]


def _free_model_user_rows(vendor: str, src: str, sign: str) -> list[str]:
    """Return the move of a free model's requests into the free bucket (sign 1) or out of it (-1)."""
    moved = (
        f"{_day(vendor, 'r.created_at')} AS day, r.user_id AS user_id, {{is_free}} AS is_free, "
        f"{{sign}} AS request_count, {{sign}} * r.total_tokens AS total_tokens, "
        f"{{sign}} * r.cost_usd AS total_cost_usd "
        f"FROM {src} a JOIN {REQUESTS} r ON r.ai_model_id = a.id WHERE a.is_free"
    )
    opposite = "1" if sign == "-1" else "-1"
    return [
        "SELECT " + moved.format(is_free="true", sign=sign),
        "SELECT " + moved.format(is_free="false", sign=opposite),
    ]


def _free_model_chatbot_rows(vendor: str, src: str, sign: str) -> str:
    return (
        f"SELECT {_day(vendor, 'r.created_at')} AS day, s.chatbot_id AS chatbot_id, 0 AS session_count, "
        f"0 AS message_count, 0 AS request_count, {sign} AS free_request_count, 0 AS total_cost_usd "
        f"FROM {src} a JOIN {REQUESTS} r ON r.ai_model_id = a.id JOIN {SESSIONS} s ON s.id = r.session_id "
        f"WHERE a.is_free"
    )


def _contributions_source(table: RollupTable, parts: list[str] | str) -> str:
    """Return the contributions to ``table`` as a FROM item (``parts``: SELECTs, or a query's name)."""
    source = parts if isinstance(parts, str) else f"({' UNION ALL '.join(parts)})"
    if table.derived:
        source = f"(SELECT {', '.join(table.derived)} FROM {source} c)"
    return source


def _grouped(table: RollupTable, parts: list[str] | str) -> str:
    """Return a SELECT of the contributions' sums per key, leaving out keys whose sums are all zero."""
    keys = ", ".join(table.keys)
    sums = ", ".join(f"SUM({measure}) AS {measure}" for measure in table.measures)
    nonzero = " OR ".join(f"SUM({measure}) <> 0" for measure in table.measures)
    source = _contributions_source(table, parts)
    return f"SELECT {keys}, {sums} FROM {source} contributions GROUP BY {keys} HAVING {nonzero}"


def _ungrouped(table: RollupTable, parts: list[str] | str) -> str:
    """Return a SELECT of the contributions as they are, leaving out all-zero ones (a delta row each)."""
    measures = ", ".join(table.measures)
    nonzero = " OR ".join(f"{measure} <> 0" for measure in table.measures)
    source = _contributions_source(table, parts)
    return f"SELECT {', '.join(table.keys)}, {measures} FROM {source} contributions WHERE {nonzero}"


def _append(table: RollupTable, parts: list[str] | str, *, grouped: bool = True) -> str:
    """Return an INSERT appending the contributions as delta rows: their sums per key, or one each."""
    columns = ", ".join(table.columns)
    deltas = _grouped(table, parts) if grouped else _ungrouped(table, parts)
    return f"INSERT INTO {table.name} ({columns}, is_squashed) SELECT {columns}, false FROM ({deltas}) deltas"


# --- The users' yearly activity (reports.models.UserYearlyActivity) ------------------------------

ACTIVITY = UserYearlyActivity._meta.db_table
HISTOGRAM = ActiveUserHistogram._meta.db_table
# Every table this module keeps: the summed rollups, the yearly activity and its histogram.
ROLLUP_TABLE_NAMES = (*(table.name for table in ROLLUP_TABLES), ACTIVITY, HISTOGRAM)
DAYS = tuple(f"days_{month:02}" for month in MONTHS)
COUNTED = tuple(f"counted_{month:02}" for month in MONTHS)
# A request's move to another user or day changes its activity; other columns do not.
ACTIVITY_COLUMNS = ("id", "user_id", "created_at")


def _date_parts(vendor: str, day: str) -> tuple[str, str, str]:
    """Return SQL for the year, month and day of month (integers) of a date expression."""
    if vendor == "postgresql":
        return tuple(f"extract({part} from {day})::int" for part in ("year", "month", "day"))
    return tuple(f"CAST(substr({day}, {start}, {length}) AS INTEGER)" for start, length in ((1, 4), (6, 2), (9, 2)))


def _bit(vendor: str, day_of_month: str) -> str:
    return f"({'1::bigint' if vendor == 'postgresql' else '1'} << ({day_of_month} - 1))"


def _activity_marks(vendor: str, src: str) -> str:
    """Return a SELECT of (user_id, year, days_01..days_12): the day bits of the requests of ``src``."""
    year, month, day_of_month = _date_parts(vendor, _day(vendor, "r.created_at"))
    bits = (
        f"SELECT DISTINCT r.user_id AS user_id, {year} AS year, {month} AS month, "
        f"{_bit(vendor, day_of_month)} AS bit FROM {src} r"
    )
    return f"SELECT user_id, year, {_month_bits()} FROM ({bits}) bits GROUP BY user_id, year"


def _month_bits() -> str:
    """Return the select list folding rows of distinct (month, bit) into days_01..days_12."""
    # The sum of distinct powers of two is their OR (SQLite has no bitwise aggregate); 0 for a
    # month without rows, and for no rows at all.
    return ", ".join(
        f"CAST(COALESCE(SUM(CASE WHEN month = {number} THEN bit ELSE 0 END), 0) AS BIGINT) AS {column}"
        for number, column in zip(MONTHS, DAYS, strict=True)
    )


def _missing_bits(row: str, marks: str) -> str:
    return " OR ".join(f"({row}.{column} & {marks}.{column}) <> {marks}.{column}" for column in DAYS)


def _activity_marked(vendor: str, src: str, guard: str = "true") -> str:
    """Return the statement setting the day bits of the requests of ``src`` (when ``guard`` holds)."""
    columns = ", ".join(DAYS)
    if vendor == "sqlite":
        # SQLite serialises writers: an upsert that writes only a missing bit is enough.
        merged = ", ".join(f"{column} = {ACTIVITY}.{column} | excluded.{column}" for column in DAYS)
        merged += ", is_counted = false"
        return (
            f"INSERT INTO {ACTIVITY} (user_id, year, {columns}, is_exact) "
            f"SELECT user_id, year, {columns}, 1 FROM ({_activity_marks(vendor, src)}) marks WHERE {guard} "
            f"ON CONFLICT (user_id, year) DO UPDATE SET {merged} WHERE {_missing_bits(ACTIVITY, 'excluded')}"
        )
    # An existing row is written (and locked) only when a bit is missing: once per user and day,
    # so concurrent writers of one user rarely meet. A row another writer is inserting at the
    # same moment is caught by ON CONFLICT, which waits for that writer and adds the bits.
    # A row whose days change is no longer counted as it is by the histogram: the squash counts it again.
    updated = ", ".join(f"{column} = a.{column} | m.{column}" for column in DAYS) + ", is_counted = false"
    merged = ", ".join(f"{column} = a.{column} | EXCLUDED.{column}" for column in DAYS) + ", is_counted = false"
    return (
        f"WITH marks AS ({_activity_marks(vendor, src)}), "
        f"updated AS (UPDATE {ACTIVITY} a SET {updated} FROM marks m "
        f"WHERE a.user_id = m.user_id AND a.year = m.year AND ({_missing_bits('a', 'm')}) RETURNING 1) "
        f"INSERT INTO {ACTIVITY} AS a (user_id, year, {columns}, is_exact) "
        f"SELECT user_id, year, {columns}, true FROM marks m WHERE NOT EXISTS "
        f"(SELECT 1 FROM {ACTIVITY} e WHERE e.user_id = m.user_id AND e.year = m.year) "
        f"ON CONFLICT (user_id, year) DO UPDATE SET {merged}"
    )


def _activity_unmarked(vendor: str, src: str, guard: str = "true") -> str:
    """Return the statement marking inexact the rows of the requests of ``src`` (deleted or moved)."""
    year, _, _ = _date_parts(vendor, _day(vendor, "r.created_at"))
    return (
        f"UPDATE {ACTIVITY} SET is_exact = false WHERE is_exact AND {guard} AND (user_id, year) IN "
        f"(SELECT r.user_id, {year} FROM {src} r)"
    )


def _activity_statements(vendor: str, spec: "TriggerSpec") -> list[str]:
    """Return the statements a request trigger runs for the yearly activity."""
    if spec.table != REQUESTS:
        return []
    if vendor == "postgresql":
        moved = replace(spec, columns=ACTIVITY_COLUMNS)
        old, new = _pg_changed(moved, "old_rows", "new_rows"), _pg_changed(moved, "new_rows", "old_rows")
        guard = "true"
    else:
        old, new = _sqlite_row(spec, "OLD"), _sqlite_row(spec, "NEW")
        guard = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in ACTIVITY_COLUMNS)
    if spec.event == "INSERT":
        return [_activity_marked(vendor, "new_rows" if vendor == "postgresql" else new)]
    if spec.event == "DELETE":
        return [_activity_unmarked(vendor, "old_rows" if vendor == "postgresql" else old)]
    return [_activity_unmarked(vendor, old, f"({guard})"), _activity_marked(vendor, new, f"({guard})")]


def _expected(vendor: str, table: RollupTable) -> str:
    """Return a SELECT of what the table must hold per key, computed from the raw tables."""
    parts = {
        "user": [_request_user_rows(vendor, REQUESTS, "1")],
        "model": [_request_model_rows(vendor, REQUESTS, "1")],
        "chatbot": _session_chatbot_rows(vendor, SESSIONS, "1"),
    }[table.contributions]
    return _grouped(table, parts)


# --- Trigger bodies: (raw table, event) -> the INSERT statements it runs -----------------------


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    table: str
    event: str  # "INSERT", "DELETE" or "UPDATE"
    columns: tuple[str, ...]


TRIGGERS = tuple(
    TriggerSpec(name=f"{PREFIX}_{short}_{event.lower()}", table=table, event=event, columns=columns)
    for short, table, columns in (
        ("request", REQUESTS, REQUEST_COLUMNS),
        ("session", SESSIONS, SESSION_COLUMNS),
        ("message", MESSAGES, MESSAGE_COLUMNS),
        ("model", MODELS, MODEL_COLUMNS),
    )
    for event in ("INSERT", "DELETE", "UPDATE")
)


def _contributions(vendor: str, spec: TriggerSpec, sources: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Return, per kind of contributions ("user", "model", "chatbot"), the SELECTs a trigger appends."""
    if spec.table == REQUESTS:
        parts = {
            "user": [_request_user_rows(vendor, src, sign) for src, sign in sources],
            "model": [_request_model_rows(vendor, src, sign) for src, sign in sources],
            "chatbot": [_request_chatbot_rows(vendor, src, sign) for src, sign in sources],
        }
    elif spec.table == SESSIONS:
        parts = {"chatbot": [part for src, sign in sources for part in _session_chatbot_rows(vendor, src, sign)]}
    elif spec.table == MESSAGES:
        parts = {"chatbot": [_message_chatbot_rows(vendor, src, sign) for src, sign in sources]}
    else:
        parts = {
            "user": [part for src, sign in sources for part in _free_model_user_rows(vendor, src, sign)],
            "chatbot": [_free_model_chatbot_rows(vendor, src, sign) for src, sign in sources],
        }
    return parts


def _statements(vendor: str, spec: TriggerSpec, sources: list[tuple[str, str]]) -> list[str]:
    """Return the INSERTs of a trigger, given its (source, sign) pairs."""
    parts = _contributions(vendor, spec, sources)
    return [_append(table, parts[table.contributions]) for table in ROLLUP_TABLES if table.contributions in parts]


def _pg_statement(spec: TriggerSpec, *, grouped: bool = True) -> str:
    """Return a PostgreSQL trigger's INSERTs as one statement, each kind of contributions computed once.

    One statement instead of one per rollup table: a request's insert pays for one statement's
    start, not seven, and reads its transition table once per kind of contributions. Not
    ``grouped``, it appends a delta row per contribution: as exact, and cheaper when there are
    as few contributions as keys.
    """
    parts = _contributions("postgresql", spec, _pg_sources(spec))
    ctes = [f"{kind}_contributions AS MATERIALIZED ({' UNION ALL '.join(p)})" for kind, p in parts.items()]
    appends = [
        _append(table, f"{table.contributions}_contributions", grouped=grouped)
        for table in ROLLUP_TABLES
        if table.contributions in parts
    ]
    ctes += [f"appended_{number} AS ({append})" for number, append in enumerate(appends[:-1])]
    return f"WITH {', '.join(ctes)} {appends[-1]}"


def _pg_changed(spec: TriggerSpec, rows: str, other: str) -> str:
    """Return the rows of one transition table that have no identical counterpart in the other."""
    same = " AND ".join(
        f"(o.{column} = x.{column} OR (o.{column} IS NULL AND x.{column} IS NULL))"
        if column in NULLABLE_COLUMNS
        else f"o.{column} = x.{column}"
        for column in spec.columns
    )
    return f"(SELECT x.* FROM {rows} x WHERE NOT EXISTS (SELECT 1 FROM {other} o WHERE {same}))"


def _pg_sources(spec: TriggerSpec) -> list[tuple[str, str]]:
    if spec.event == "INSERT":
        return [("new_rows", "1")]
    if spec.event == "DELETE":
        return [("old_rows", "-1")]
    # Rows whose read columns did not change contribute the same before and after: skip them.
    return [(_pg_changed(spec, "old_rows", "new_rows"), "-1"), (_pg_changed(spec, "new_rows", "old_rows"), "1")]


def _sqlite_row(spec: TriggerSpec, pseudo: str) -> str:
    columns = ", ".join(f"{pseudo}.{column} AS {column}" for column in spec.columns)
    return f"(SELECT {columns})"


def _sqlite_sources(spec: TriggerSpec) -> list[tuple[str, str]]:
    if spec.event == "INSERT":
        return [(_sqlite_row(spec, "NEW"), "1")]
    if spec.event == "DELETE":
        return [(_sqlite_row(spec, "OLD"), "-1")]
    return [(_sqlite_row(spec, "OLD"), "-1"), (_sqlite_row(spec, "NEW"), "1")]


def _sqlite_when(spec: TriggerSpec) -> str:
    if spec.table == MODELS and spec.event != "UPDATE":
        return f" WHEN {'NEW' if spec.event == 'INSERT' else 'OLD'}.is_free"
    if spec.event != "UPDATE":
        return ""
    changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in spec.columns)
    return f" WHEN {changed}"


def _time_zone_checked(time_zone: str) -> str:
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"Unknown time zone {time_zone!r}.") from error
    return time_zone


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _time_zone_sql(connection: BaseDatabaseWrapper, time_zone: str) -> list[str]:
    zone = _literal(_time_zone_checked(time_zone))
    if connection.vendor == "postgresql":
        return [
            # IMMUTABLE for a given zone; rollups_rebuild replaces it, and recomputes, when the zone changes.
            f"CREATE OR REPLACE FUNCTION {PG_DAY_FUNCTION}(at timestamptz) RETURNS date "
            f"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (at AT TIME ZONE {zone})::date $$",
            f"CREATE OR REPLACE FUNCTION {PG_TIME_ZONE_FUNCTION}() RETURNS text "
            f"LANGUAGE sql IMMUTABLE AS $$ SELECT {zone}::text $$",
            # Fails now, not in a later write, when PostgreSQL does not know the zone.
            f"SELECT {PG_DAY_FUNCTION}(now())",
        ]
    storage = _literal(connection.timezone_name)
    return [
        f"DROP VIEW IF EXISTS {SQLITE_TIME_ZONE_VIEW}",
        f"CREATE VIEW {SQLITE_TIME_ZONE_VIEW} AS SELECT {zone} AS time_zone, {storage} AS storage_time_zone",
    ]


# A change of a parent that children's contributions depend on (a session's chatbot, a model's
# is_free) moves the children it can see. A child written concurrently in another transaction
# read the parent's old value and is not visible yet: so the parent's trigger first waits for
# the children's writers in flight, and holds back new ones until it commits (they then read
# the new value). Deletes need no lock: the foreign key check of a concurrent child conflicts
# with the delete. SQLite writers are serialised by its database-wide lock already.
PG_PARENT_LOCKS = {
    SESSIONS: ("chatbot_id", (REQUESTS, MESSAGES)),
    MODELS: ("is_free", (REQUESTS, SESSIONS)),
}


def _pg_body(spec: TriggerSpec) -> str:
    lines = []
    if spec.event == "UPDATE" and spec.table in PG_PARENT_LOCKS:
        column, children = PG_PARENT_LOCKS[spec.table]
        lines += [
            "  IF EXISTS (SELECT 1 FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id",
            f"             WHERE n.id IS NULL OR n.{column} <> o.{column}) THEN",
            f"    LOCK TABLE {', '.join(children)} IN SHARE MODE;",
            "  END IF;",
        ]
    if spec.table == REQUESTS and spec.event == "INSERT":
        # Each kind of a request's contributions is one row per request, so one inserted request
        # (every request recorded one at a time) needs no grouping: a third of that statement's time.
        lines += [
            "  IF (SELECT count(*) FROM new_rows) = 1 THEN",
            f"    {_pg_statement(spec, grouped=False)};",
            "  ELSE",
            f"    {_pg_statement(spec)};",
            "  END IF;",
        ]
    else:
        lines.append(f"  {_pg_statement(spec)};")
    lines += [f"  {statement};" for statement in _activity_statements("postgresql", spec)]
    return "\n".join([*lines, "  RETURN NULL;"])


def _functions_sql(connection: BaseDatabaseWrapper) -> list[str]:
    """Return the trigger functions (PostgreSQL; SQLite triggers carry their bodies)."""
    if connection.vendor != "postgresql":
        return []
    return [
        f"CREATE OR REPLACE FUNCTION {spec.name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{_pg_body(spec)}\nEND\n$$"
        for spec in TRIGGERS
    ]


def _create_triggers_sql(connection: BaseDatabaseWrapper, specs: tuple[TriggerSpec, ...] = TRIGGERS) -> list[str]:
    sql = []
    for spec in specs:
        if connection.vendor == "postgresql":
            transitions = {
                "INSERT": "NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows",
                "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            }[spec.event]
            sql += [
                f"DROP TRIGGER IF EXISTS {spec.name} ON {spec.table}",
                f"CREATE TRIGGER {spec.name} AFTER {spec.event} ON {spec.table} REFERENCING {transitions} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {spec.name}()",
            ]
        else:
            statements = _statements("sqlite", spec, _sqlite_sources(spec)) + _activity_statements("sqlite", spec)
            body = "\n".join(f"  {statement};" for statement in statements)
            sql += [
                f"DROP TRIGGER IF EXISTS {spec.name}",
                f"CREATE TRIGGER {spec.name} AFTER {spec.event} ON {spec.table} FOR EACH ROW"
                f"{_sqlite_when(spec)}\nBEGIN\n{body}\nEND",
            ]
    return sql


def _check_vendor(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor not in {"postgresql", "sqlite"}:
        raise NotImplementedError(f"Rollups support PostgreSQL and SQLite, not {connection.vendor}.")


def _execute(connection: BaseDatabaseWrapper, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def rollup_triggers_install(*, connection: BaseDatabaseWrapper, time_zone: str | None = None) -> None:
    """Create (or replace) the rollup triggers, computing days in ``time_zone`` (settings.TIME_ZONE)."""
    _check_vendor(connection)
    with transaction.atomic(using=connection.alias):
        _execute(
            connection,
            _time_zone_sql(connection, time_zone or settings.TIME_ZONE)
            + _functions_sql(connection)
            + _create_triggers_sql(connection),
        )


def rollups_migration_install(*, connection: BaseDatabaseWrapper) -> None:
    """Install the triggers and fill the rollups, from a migration, once every rollup table exists.

    Migrations run this module's current SQL: an early migration leaves the work to the one
    that creates the last rollup table. On SQLite the post_migrate handler installs them instead
    (``rollups_after_migrate``): a later migration that alters a raw table would fail with them.
    """
    if connection.vendor == "sqlite":
        return
    if not set(ROLLUP_TABLE_NAMES) <= set(connection.introspection.table_names()):
        return
    rollup_triggers_install(connection=connection)
    # Rows written before the migration: fill the rollups from them.
    rollups_rebuild(using=connection.alias)


def rollup_triggers_uninstall(*, connection: BaseDatabaseWrapper) -> None:
    """Drop the rollup triggers: the rollup tables stop following the raw tables."""
    _check_vendor(connection)
    if connection.vendor == "postgresql":
        sql = [f"DROP TRIGGER IF EXISTS {spec.name} ON {spec.table}" for spec in TRIGGERS]
        sql += [f"DROP FUNCTION IF EXISTS {spec.name}()" for spec in TRIGGERS]
        sql += [
            f"DROP FUNCTION IF EXISTS {PG_DAY_FUNCTION}(timestamptz)",
            f"DROP FUNCTION IF EXISTS {PG_TIME_ZONE_FUNCTION}()",
        ]
    else:
        sql = [f"DROP TRIGGER IF EXISTS {spec.name}" for spec in TRIGGERS]
        sql += [f"DROP VIEW IF EXISTS {SQLITE_TIME_ZONE_VIEW}"]
    with transaction.atomic(using=connection.alias):
        _execute(connection, sql)


def rollup_triggers_missing(*, connection: BaseDatabaseWrapper) -> list[str]:
    """Return the names of the rollup triggers the database lacks."""
    _check_vendor(connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE %s AND NOT tgisinternal", [f"{PREFIX}_%"])
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s", [f"{PREFIX}_%"])
        present = {name for (name,) in cursor.fetchall()}
    return [spec.name for spec in TRIGGERS if spec.name not in present]


def rollup_triggers_time_zone(*, connection: BaseDatabaseWrapper) -> str | None:
    """Return the time zone the installed triggers compute days in, or None when there is none."""
    _check_vendor(connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{PG_TIME_ZONE_FUNCTION}()"])
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(f"SELECT {PG_TIME_ZONE_FUNCTION}()")
        else:
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = %s", [SQLITE_TIME_ZONE_VIEW])
            if cursor.fetchone() is None:
                return None
            cursor.execute(f"SELECT time_zone FROM {SQLITE_TIME_ZONE_VIEW}")
        return cursor.fetchone()[0]


# --- Squash -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SquashResult:
    """Per rollup table: how many rows were merged, into how many."""

    rows_merged: dict[str, int]
    rows_written: dict[str, int]
    # Yearly activity rows left inexact by deletions, recomputed (see rollups_squash).
    activity_rows_made_exact: int = 0
    # Yearly activity rows whose days changed, counted anew into the active-user histogram.
    activity_rows_counted: int = 0

    @property
    def total_merged(self) -> int:
        return sum(self.rows_merged.values())


@contextmanager
def _sqlite_write_transaction(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Open a transaction that holds SQLite's write lock from its first statement.

    A transaction that reads first and writes later can fail with "database is locked" when
    another connection writes in between; a write as the first statement takes the lock (and
    waits for it) up front, like BEGIN IMMEDIATE.
    """
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {USER_TABLE.name} WHERE id IS NULL")
        yield


def _pg_squash_batch(cursor: Any, table: RollupTable, *, max_id: int, batch_keys: int) -> tuple[int, int, int]:
    keys = ", ".join(table.keys)
    sums = ", ".join(f"SUM({measure})" for measure in table.measures)
    nonzero = " OR ".join(f"SUM({measure}) <> 0" for measure in table.measures)
    join = " AND ".join(f"t.{key} = k.{key}" for key in table.keys)
    # One statement, so no delta can slip in between reading a key's rows and deleting them: the
    # DELETE removes exactly the rows the INSERT sums; deltas committed after its snapshot stay.
    cursor.execute(
        f"""
        WITH batch AS (
            SELECT DISTINCT {keys} FROM {table.name} WHERE NOT is_squashed AND id <= %s LIMIT %s
        ), moved AS (
            DELETE FROM {table.name} t USING batch k WHERE {join} RETURNING t.*
        ), merged AS (
            INSERT INTO {table.name} ({keys}, {", ".join(table.measures)}, is_squashed)
            SELECT {keys}, {sums}, true FROM moved GROUP BY {keys} HAVING {nonzero}
            RETURNING 1
        )
        SELECT (SELECT COUNT(*) FROM batch), (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM merged)
        """,
        [max_id, batch_keys],
    )
    return cursor.fetchone()


def _sqlite_squash(cursor: Any, table: RollupTable) -> tuple[int, int]:
    cursor.execute(f"SELECT MAX(id) FROM {table.name}")
    max_id = cursor.fetchone()[0]
    if max_id is None:
        return 0, 0
    keys = ", ".join(table.keys)
    sums = ", ".join(f"SUM({measure})" for measure in table.measures)
    nonzero = " OR ".join(f"SUM({measure}) <> 0" for measure in table.measures)
    with_deltas = f"({keys}) IN (SELECT {keys} FROM {table.name} WHERE NOT is_squashed AND id <= %s)"
    # The merged rows get ids above max_id, so the DELETE below leaves them alone.
    cursor.execute(
        f"INSERT INTO {table.name} ({keys}, {', '.join(table.measures)}, is_squashed) "
        f"SELECT {keys}, {sums}, true FROM {table.name} WHERE id <= %s AND {with_deltas} "
        f"GROUP BY {keys} HAVING {nonzero}",
        [max_id, max_id],
    )
    written = cursor.rowcount
    cursor.execute(f"DELETE FROM {table.name} WHERE id <= %s AND {with_deltas}", [max_id, max_id])
    return cursor.rowcount, written


def rollups_squash(*, using: str = DEFAULT_DB_ALIAS, batch_keys: int = SQUASH_BATCH_KEYS) -> SquashResult:
    """Merge the rows of each rollup key into one, dropping keys whose sums are all zero.

    Then, if deletions left yearly activity rows inexact, recompute them from the per-user-day
    rollup, as ``rollups_rebuild`` does: the active-user counts read such rows' users from the
    days' sums, which is exact but slower the more there are. The recomputation holds the rollup
    tables against writers until it commits, which takes only as long as those few rows do.
    Last, count the activity rows whose days changed into the active-user histogram (the users
    who made their first request of a day since the last squash), locking only those rows.
    """
    connection = connections[using]
    _check_vendor(connection)
    merged: dict[str, int] = {}
    written: dict[str, int] = {}
    for table in ROLLUP_TABLES:
        merged[table.name] = written[table.name] = 0
        if connection.vendor == "sqlite":
            # A transaction is a database-wide write lock on SQLite: no writer can interleave.
            with _sqlite_write_transaction(connection), connection.cursor() as cursor:
                merged[table.name], written[table.name] = _sqlite_squash(cursor, table)
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(id) FROM {table.name}")
            max_id = cursor.fetchone()[0]
        if max_id is None:
            continue
        # Batches in transactions of their own, up to the deltas present at the start, so that a
        # squash under constant writes ends and never holds one long transaction.
        while True:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_SQUASH_LOCK])
                keys, moved, inserted = _pg_squash_batch(cursor, table, max_id=max_id, batch_keys=batch_keys)
            merged[table.name] += moved
            written[table.name] += inserted
            if keys < batch_keys:
                break
    made_exact = 0
    if _activity_inexact(connection):
        with _rebuild_transaction(connection, lock_raw_tables=False):
            made_exact = _activity_tidy(connection)
    if connection.vendor == "sqlite":
        with _sqlite_write_transaction(connection):
            counted = _activity_count(connection)
    else:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_SQUASH_LOCK])
            counted = _activity_count(connection)
    return SquashResult(
        rows_merged=merged, rows_written=written, activity_rows_made_exact=made_exact, activity_rows_counted=counted
    )


# --- Rebuild ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableDifference:
    """How a rollup table differed from the raw tables: keys missing, wrong and superfluous."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    # A few differing keys, as (kind, key, expected sums, stored sums).
    samples: tuple[tuple[str, tuple, tuple | None, tuple | None], ...] = ()

    @property
    def total(self) -> int:
        return self.added + self.changed + self.removed


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild found and repaired."""

    time_zone: str
    previous_time_zone: str | None
    triggers_installed: list[str]
    differences: dict[str, TableDifference] = field(default_factory=dict)
    rebuilt: bool = False
    # Yearly activity rows left inexact by deletions, recomputed (not an error: see the model).
    activity_rows_made_exact: int = 0

    @property
    def is_consistent(self) -> bool:
        """Return whether the rollups already matched the raw tables."""
        return not self.triggers_installed and all(not diff.total for diff in self.differences.values())


def _differences(connection: BaseDatabaseWrapper, table: RollupTable) -> TableDifference:
    """Compare the table's per-key sums with what the raw tables give, in the current transaction."""
    keys = ", ".join(table.keys)
    measures = table.measures
    expected_sums = ", ".join(f"SUM(e_{m}) AS e_{m}" for m in measures)
    stored_sums = ", ".join(f"SUM(s_{m}) AS s_{m}" for m in measures)
    differs = " OR ".join(f"SUM(e_{m}) <> SUM(s_{m})" for m in measures)
    nonzero = " OR ".join(f"SUM({m}) <> 0" for m in measures)
    expected_columns = ", ".join(f"e_{m}" for m in measures)
    stored_columns = ", ".join(f"s_{m}" for m in measures)
    # No FULL OUTER JOIN (SQLite has it only since 3.39): both sides in one UNION, grouped by key.
    sql = f"""
        WITH both_sides AS (
            SELECT {keys}, 1 AS in_expected, 0 AS in_stored,
                {", ".join(f"{m} AS e_{m}" for m in measures)}, {", ".join(f"0 AS s_{m}" for m in measures)}
            FROM ({_expected(connection.vendor, table)}) expected
            UNION ALL
            SELECT {keys}, 0, 1, {", ".join("0" for _ in measures)}, {", ".join(f"SUM({m})" for m in measures)}
            FROM {table.name} GROUP BY {keys} HAVING {nonzero}
        ), compared AS (
            SELECT {keys}, SUM(in_expected) AS in_expected, SUM(in_stored) AS in_stored, {expected_sums}, {stored_sums}
            FROM both_sides GROUP BY {keys}
            HAVING SUM(in_expected) = 0 OR SUM(in_stored) = 0 OR {differs}
        ), classified AS (
            SELECT CASE WHEN in_stored = 0 THEN 'added' WHEN in_expected = 0 THEN 'removed' ELSE 'changed' END
                AS kind, {keys}, {expected_columns}, {stored_columns}
            FROM compared
        ), numbered AS (
            SELECT classified.*, ROW_NUMBER() OVER (PARTITION BY kind ORDER BY {keys}) AS position,
                COUNT(*) OVER (PARTITION BY kind) AS kind_count
            FROM classified
        )
        SELECT kind, kind_count, {keys}, {expected_columns}, {stored_columns}
        FROM numbered WHERE position <= {SAMPLE_SIZE} ORDER BY kind, {keys}
    """
    fields = {column: table.model._meta.get_field(column.removesuffix("_id")) for column in table.columns}
    counts = {"added": 0, "changed": 0, "removed": 0}
    samples = []
    with connection.cursor() as cursor:
        cursor.execute(sql)
        for kind, count, *values in cursor.fetchall():
            counts[kind] = count
            key_values, sums = values[: len(table.keys)], values[len(table.keys) :]
            key = tuple(
                field_value_from_db(field=fields[k], value=v, connection=connection)
                for k, v in zip(table.keys, key_values, strict=True)
            )
            expected = tuple(
                field_value_from_db(field=fields[m], value=v, connection=connection)
                for m, v in zip(measures, sums[: len(measures)], strict=True)
            )
            stored = tuple(
                field_value_from_db(field=fields[m], value=v, connection=connection)
                for m, v in zip(measures, sums[len(measures) :], strict=True)
            )
            samples.append((kind, key, None if kind == "removed" else expected, None if kind == "added" else stored))
    return TableDifference(samples=tuple(samples), **counts)


def field_value_from_db(*, field: Any, value: Any, connection: BaseDatabaseWrapper) -> Any:
    """Return a value read by raw SQL as ``field`` would give it through the ORM (exact decimals included)."""
    if value is None:
        return None
    if hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, connection)
    return field.to_python(value)


def _replace(connection: BaseDatabaseWrapper, table: RollupTable) -> None:
    columns = ", ".join(table.columns)
    _execute(
        connection,
        [
            f"DELETE FROM {table.name}",
            f"INSERT INTO {table.name} ({columns}, is_squashed) "
            f"SELECT {columns}, true FROM ({_expected(connection.vendor, table)}) expected",
        ],
    )


def _activity_differences(connection: BaseDatabaseWrapper) -> TableDifference:
    """Compare the yearly activity with the raw requests: rows missing, wrong or superfluous.

    An inexact row may keep the bits of days whose requests were deleted (that is its purpose);
    it is wrong only when it lacks the bit of a day that has requests.
    """
    expected = ", ".join(f"{column} AS e_{column}" for column in DAYS)
    stored = ", ".join(f"0 AS s_{column}" for column in DAYS)
    zeros = ", ".join("0" for _ in DAYS)
    sums = ", ".join(
        f"CAST(SUM({side}_{column}) AS BIGINT) AS {side}_{column}" for side in ("e", "s") for column in DAYS
    )
    differs = " OR ".join(f"e_{column} <> s_{column}" for column in DAYS)
    missing = " OR ".join(f"(e_{column} & ~s_{column}) <> 0" for column in DAYS)
    sql = f"""
        WITH both_sides AS (
            SELECT user_id, year, {expected}, {stored}, 1 AS in_e, 0 AS in_s, 1 AS s_exact
            FROM ({_activity_marks(connection.vendor, REQUESTS)}) expected
            UNION ALL
            SELECT user_id, year, {zeros}, {", ".join(DAYS)}, 0, 1, CASE WHEN is_exact THEN 1 ELSE 0 END
            FROM {ACTIVITY}
        ), compared AS (
            SELECT user_id, year, {sums}, SUM(in_e) AS in_e, SUM(in_s) AS in_s, MIN(s_exact) AS s_exact
            FROM both_sides GROUP BY user_id, year
        )
        SELECT CASE WHEN in_s = 0 THEN 'added' WHEN in_e = 0 THEN 'removed' ELSE 'changed' END AS kind,
            user_id, year, {", ".join(f"e_{column}" for column in DAYS)}, {", ".join(f"s_{column}" for column in DAYS)}
        FROM compared
        WHERE in_s = 0 OR (s_exact = 1 AND ({differs})) OR (s_exact = 0 AND ({missing}))
        ORDER BY kind, user_id, year
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return _difference_of(
            (kind, (user_id, year), tuple(days[: len(DAYS)]), tuple(days[len(DAYS) :]))
            for kind, user_id, year, *days in cursor.fetchall()
        )


def _difference_of(rows: Iterable[tuple[str, tuple, tuple, tuple]]) -> TableDifference:
    """Return the difference of (kind, key, expected, stored) rows, ordered by kind: counts and a few samples."""
    counts = {"added": 0, "changed": 0, "removed": 0}
    samples = []
    for kind, key, expected, stored in rows:
        counts[kind] += 1
        if counts[kind] <= SAMPLE_SIZE:
            samples.append((kind, key, None if kind == "removed" else expected, None if kind == "added" else stored))
    return TableDifference(samples=tuple(samples), **counts)


def _activity_inexact(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {ACTIVITY} WHERE NOT is_exact LIMIT 1")
        return cursor.fetchone() is not None


def _activity_replace(connection: BaseDatabaseWrapper) -> None:
    columns = ", ".join(DAYS)
    _execute(
        connection,
        [
            f"DELETE FROM {ACTIVITY}",
            f"INSERT INTO {ACTIVITY} (user_id, year, {columns}, is_exact) "
            f"SELECT user_id, year, {columns}, true FROM ({_activity_marks(connection.vendor, REQUESTS)}) expected",
        ],
    )


def _activity_tidy(connection: BaseDatabaseWrapper) -> int:
    """Recompute the inexact yearly activity rows from the per-user-day rollup; return how many."""
    vendor = connection.vendor
    _, month, day_of_month = _date_parts(vendor, "d.day")
    if vendor == "postgresql":
        year_start, next_year_start = "make_date(a.year, 1, 1)", "make_date(a.year + 1, 1, 1)"
    else:
        year_start, next_year_start = "printf('%04d-01-01', a.year)", "printf('%04d-01-01', a.year + 1)"
    # The days of the row's year whose requests still sum above zero (the rollup is exact, and
    # the caller holds the rollup tables against writers).
    recomputed = (
        f"SELECT {_month_bits()} FROM (SELECT {month} AS month, {_bit(vendor, day_of_month)} AS bit "
        f"FROM {USER_TABLE.name} d WHERE d.user_id = a.user_id AND d.day >= {year_start} "
        f"AND d.day < {next_year_start} GROUP BY d.day HAVING SUM(d.request_count) > 0) active"
    )
    # Their days change, so the histogram counts them again (``_activity_count``), which also
    # deletes the rows left with no day.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ACTIVITY} AS a SET ({', '.join(DAYS)}) = ({recomputed}), is_exact = true, is_counted = false "
            "WHERE NOT a.is_exact"
        )
        return cursor.rowcount


# --- The histogram of active users (reports.models.ActiveUserHistogram) ---------------------------

# The days of a month, to turn its bits into days.
_NUMBERS = f"numbers (n) AS (VALUES {', '.join(f'({day})' for day in range(1, 32))})"


def _histogram_pairs(source: str, columns: tuple[str, ...], users: str) -> str:
    """Return a SELECT of (year, day, previous_day, users): one row per day set in ``columns`` of each ``source`` row.

    Days are numbered as in ActiveUserHistogram (month * 100 + day of month); a row's first day
    has 0 as its previous one. Needs the ``numbers`` of ``_NUMBERS`` in its WITH.
    """
    days = " UNION ALL ".join(
        f"SELECT s.user_id, s.year, {month * 100} + n.n AS day FROM {source} s, numbers n "
        f"WHERE s.{column} <> 0 AND ((s.{column} >> (n.n - 1)) & 1) = 1"
        for month, column in zip(MONTHS, columns, strict=True)
    )
    return (
        f"SELECT year, day, LAG(day, 1, 0) OVER (PARTITION BY user_id, year ORDER BY day) AS previous_day, "
        f"{users} AS users FROM ({days}) days"
    )


def _histogram_delta(source: str) -> str:
    """Return a SELECT of what counting the ``source`` rows' days instead of their counted ones adds per key."""
    return (
        f"SELECT year, day, previous_day, SUM(users) AS users FROM ("
        f"{_histogram_pairs(source, DAYS, '1')} UNION ALL {_histogram_pairs(source, COUNTED, '-1')}) pairs "
        f"GROUP BY year, day, previous_day HAVING SUM(users) <> 0"
    )


def _activity_count(connection: BaseDatabaseWrapper) -> int:
    """Count the exact activity rows not counted as they are into the histogram; return how many.

    The caller holds the squash's lock (PostgreSQL) or the write lock (SQLite). On PostgreSQL
    the rows are locked as they are read, in the one statement that counts them and marks them
    counted, so a writer setting a bit meanwhile waits, and leaves its row uncounted again. A row
    a writer holds is skipped, not waited for (the next squash counts it): a squash waiting on an
    import that waits on the squash would be a deadlock.
    """
    uncounted = (
        f"SELECT id, user_id, year, {', '.join(DAYS + COUNTED)} FROM {ACTIVITY} WHERE NOT is_counted AND is_exact"
    )
    upsert = (
        f"INSERT INTO {HISTOGRAM} AS h (year, day, previous_day, user_count) "
        f"SELECT year, day, previous_day, users FROM delta WHERE true "
        f"ON CONFLICT (year, day, previous_day) DO UPDATE SET user_count = h.user_count + excluded.user_count"
    )

    def no_day(row: str) -> str:
        # A row left with no day (its requests deleted, then recomputed) is deleted, not marked.
        return " AND ".join(f"{row}{column} = 0" for column in DAYS)

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            marked = ", ".join(f"{target} = u.{source}" for target, source in zip(COUNTED, DAYS, strict=True))
            cursor.execute(
                f"WITH {_NUMBERS}, uncounted AS MATERIALIZED ({uncounted} FOR UPDATE SKIP LOCKED), "
                f"delta AS ({_histogram_delta('uncounted')}), merged AS ({upsert}), "
                f"marked AS (UPDATE {ACTIVITY} a SET {marked}, is_counted = true FROM uncounted u "
                f"WHERE a.id = u.id AND NOT ({no_day('u.')}) RETURNING 1), "
                f"emptied AS (DELETE FROM {ACTIVITY} a USING uncounted u "
                f"WHERE a.id = u.id AND {no_day('u.')} RETURNING 1) "
                # ``merged`` runs though nothing reads it, as every data-modifying WITH does.
                "SELECT (SELECT COUNT(*) FROM marked) + (SELECT COUNT(*) FROM emptied)"
            )
            counted = cursor.fetchone()[0]
        else:
            cursor.execute(
                f"WITH {_NUMBERS}, uncounted AS ({uncounted}), delta AS ({_histogram_delta('uncounted')}) {upsert}"
            )
            cursor.execute(f"DELETE FROM {ACTIVITY} WHERE NOT is_counted AND is_exact AND {no_day('')}")
            counted = cursor.rowcount
            marked = ", ".join(f"{target} = {source}" for target, source in zip(COUNTED, DAYS, strict=True))
            cursor.execute(f"UPDATE {ACTIVITY} SET {marked}, is_counted = true WHERE NOT is_counted AND is_exact")
            counted += cursor.rowcount
        # Read through the partial index on them: the histogram keeps a row per day and earlier day.
        cursor.execute(f"DELETE FROM {HISTOGRAM} WHERE user_count = 0")
    return counted


def _histogram_differences(connection: BaseDatabaseWrapper) -> TableDifference:
    """Compare the histogram with the activity rows' counted days: keys missing, wrong or superfluous."""
    sql = f"""
        WITH {_NUMBERS}, expected AS (
            SELECT year, day, previous_day, SUM(users) AS users
            FROM ({_histogram_pairs(ACTIVITY, COUNTED, "1")}) pairs GROUP BY year, day, previous_day
        ), both_sides AS (
            SELECT year, day, previous_day, users AS e_users, 0 AS s_users, 1 AS in_e, 0 AS in_s FROM expected
            UNION ALL
            SELECT year, day, previous_day, 0, user_count, 0, 1 FROM {HISTOGRAM} WHERE user_count <> 0
        )
        SELECT CASE WHEN SUM(in_s) = 0 THEN 'added' WHEN SUM(in_e) = 0 THEN 'removed' ELSE 'changed' END AS kind,
            year, day, previous_day, CAST(SUM(e_users) AS BIGINT), CAST(SUM(s_users) AS BIGINT)
        FROM both_sides GROUP BY year, day, previous_day
        HAVING SUM(in_e) = 0 OR SUM(in_s) = 0 OR SUM(e_users) <> SUM(s_users)
        ORDER BY kind, year, day, previous_day
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return _difference_of(
            (kind, (year, day, previous_day), (expected,), (stored,))
            for kind, year, day, previous_day, expected, stored in cursor.fetchall()
        )


def _histogram_replace(connection: BaseDatabaseWrapper) -> None:
    """Count every exact activity row afresh."""
    zeros = ", ".join(f"{column} = 0" for column in COUNTED)
    _execute(connection, [f"DELETE FROM {HISTOGRAM}", f"UPDATE {ACTIVITY} SET {zeros}, is_counted = false"])
    _activity_count(connection)


def _all_differences(connection: BaseDatabaseWrapper) -> dict[str, TableDifference]:
    differences = {table.name: _differences(connection, table) for table in ROLLUP_TABLES}
    differences[ACTIVITY] = _activity_differences(connection)
    differences[HISTOGRAM] = _histogram_differences(connection)
    return differences


def rollups_rebuild(*, using: str = DEFAULT_DB_ALIAS, force: bool = False) -> RebuildResult:
    """Recompute every rollup from the raw tables; return the differences it repaired.

    On PostgreSQL, outside a transaction, the rollups are first compared with the raw tables in
    one snapshot, without blocking anyone. Only when they differ (or ``force``, or a trigger is
    missing, or the triggers compute days in another zone than TIME_ZONE) are the rollup tables
    locked against writes, compared again and rewritten, in one transaction, with the triggers
    (re)installed for the current TIME_ZONE. Readers keep reading the old rows meanwhile.
    """
    connection = connections[using]
    _check_vendor(connection)
    time_zone = _time_zone_checked(settings.TIME_ZONE)
    previous_time_zone = rollup_triggers_time_zone(connection=connection)
    missing = rollup_triggers_missing(connection=connection)
    needs_install = bool(missing) or previous_time_zone != time_zone
    if connection.vendor == "postgresql" and not (needs_install or force or connection.in_atomic_block):
        # Triggers write the deltas in the writes' own transactions, so one snapshot sees the raw
        # rows and the rollups agree; REPEATABLE READ runs every statement in that snapshot.
        with transaction.atomic(using=using):
            _execute(connection, ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"])
            differences = _all_differences(connection)
            inexact = _activity_inexact(connection)
        if all(not diff.total for diff in differences.values()) and not inexact:
            return RebuildResult(
                time_zone=time_zone,
                previous_time_zone=previous_time_zone,
                triggers_installed=[],
                differences=differences,
            )
    with _rebuild_transaction(connection, lock_raw_tables=bool(missing)):
        if needs_install:
            # Before comparing, so that the comparison computes days in the new zone.
            specs = tuple(spec for spec in TRIGGERS if spec.name in missing)
            _execute(
                connection,
                _time_zone_sql(connection, time_zone)
                + _functions_sql(connection)
                + _create_triggers_sql(connection, specs),
            )
        differences = _all_differences(connection)
        rebuilt = force or any(diff.total for diff in differences.values())
        made_exact = 0
        if rebuilt:
            for table in ROLLUP_TABLES:
                _replace(connection, table)
            _activity_replace(connection)
            _histogram_replace(connection)
        else:
            made_exact = _activity_tidy(connection)
            _activity_count(connection)
    return RebuildResult(
        time_zone=time_zone,
        previous_time_zone=previous_time_zone,
        triggers_installed=sorted(missing),
        differences=differences,
        rebuilt=rebuilt,
        activity_rows_made_exact=made_exact,
    )


@contextmanager
def _rebuild_transaction(connection: BaseDatabaseWrapper, *, lock_raw_tables: bool) -> Iterator[None]:
    """Open a transaction in which no other write can append deltas until it commits."""
    if connection.vendor == "sqlite":
        with _sqlite_write_transaction(connection):
            yield
        return
    with transaction.atomic(using=connection.alias):
        statements = []
        if lock_raw_tables:
            # Creating a trigger locks its table; take the raw tables before the rollups, so that a
            # writer holding a raw table while waiting for a rollup table cannot deadlock with us.
            statements.append(f"LOCK TABLE {MODELS}, {SESSIONS}, {MESSAGES}, {REQUESTS} IN SHARE ROW EXCLUSIVE MODE")
        # Writers that appended deltas are waited for; later ones wait for the commit, then append
        # theirs on top of the rebuilt rows. Readers carry on, on the old rows, until the commit.
        tables = ", ".join(ROLLUP_TABLE_NAMES)
        statements.append(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        _execute(connection, statements)
        yield


def rollups_before_migrate(*, using: str, plan: list | None) -> None:
    """Drop the SQLite triggers before migrations run; ``rollups_after_migrate`` puts them back.

    SQLite alters a table by copying it into a new one, dropping the old and renaming the copy,
    and refuses the rename while a trigger of another table names the dropped one.
    """
    connection = connections[using]
    if connection.vendor == "sqlite" and plan:
        rollup_triggers_uninstall(connection=connection)


def rollups_after_migrate(*, using: str) -> None:
    """Repair the rollups after ``migrate`` or ``flush`` (both end with the post_migrate signal).

    Triggers that are missing (on SQLite: always after migrations ran) are installed and the
    rollups recomputed, which also covers rows written while they were missing. And a flush (as
    between transactional tests) empties the tables in no particular order, so on SQLite the
    deltas of raw rows deleted after the rollup tables can outlive it.
    """
    connection = connections[using]
    if connection.vendor not in {"postgresql", "sqlite"}:
        return
    tables = set(connection.introspection.table_names())
    if not set(ROLLUP_TABLE_NAMES) <= tables:
        return
    if rollup_triggers_missing(connection=connection):
        rollups_rebuild(using=using)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join(f"SELECT 1 FROM (SELECT 1 FROM {t} LIMIT 1) x" for t in (REQUESTS, SESSIONS, MESSAGES))
        )
        raw_empty = cursor.fetchone() is None
    if raw_empty:
        with transaction.atomic(using=using):
            _execute(connection, [f"DELETE FROM {name}" for name in ROLLUP_TABLE_NAMES])
