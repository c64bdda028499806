"""Load a synthetic platform into the benchmark database, fast: COPY on PostgreSQL, executemany on SQLite.

Both loaders run in one transaction, so a failed load leaves no half dataset behind (and no
metadata row, so the next run loads again). Secondary indexes and foreign keys are dropped
for the load and recreated from their own definitions afterwards, which also checks every
foreign key and unique index against the loaded rows; check constraints stay on throughout.
Requires Django to be set up against the benchmark database (see ``bench.__main__``).
"""

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.database import METADATA_TABLE, BenchDatabase
from bench.dataset import (
    CATALOG_TABLES,
    DAILY_TABLES,
    MONEY_PLACES,
    SECONDS_PER_DAY,
    TABLES,
    DayBatch,
    PlatformGenerator,
    Scale,
)

# Management commands run after every load, timed as part of it: e.g. one that fills rollup tables
# from the raw rows, so that the loaded dataset looks like one written through the services.
# Here: merge the deltas the triggers appended batch by batch, as the periodic squash does on a
# live platform (readers would otherwise sum up to one delta row per batch and key).
POST_LOAD_COMMANDS: tuple[str, ...] = ("squash_rollups",)
# SQLite runs triggers row by row, which would make its load many times slower: the SQLite loader
# drops the triggers of the tables it loads (as it drops their indexes) and puts them back after,
# and these commands then bring what the triggers maintain up to date, set by set.
SQLITE_POST_LOAD_COMMANDS: tuple[str, ...] = ("rebuild_rollups",)
# Daily rows are written in batches of about this many requests (plus their sessions and messages).
BATCH_REQUESTS = 200_000
COPY_NULL = "\\N"
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True)
class TablePlan:
    """How one model's rows are written: its table, the generated columns, and constants for the rest."""

    label: str
    db_table: str
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    decimal_places: dict[str, int]
    extra_columns: tuple[str, ...]
    extra_values: tuple[Any, ...]

    @property
    def all_columns(self) -> tuple[str, ...]:
        return self.columns + self.extra_columns


@dataclass
class LoadResult:
    """What a load wrote and how fast."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def requests_per_second(self) -> float:
        return self.counts.get("chatbot.OpenRouterRequestCost", 0) / self.total_seconds if self.total_seconds else 0.0

    @property
    def rows_per_second(self) -> float:
        return sum(self.counts.values()) / self.total_seconds if self.total_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
            "total_seconds": round(self.total_seconds, 3),
            "requests_per_second": round(self.requests_per_second),
            "rows_per_second": round(self.rows_per_second),
        }


def table_plans() -> dict[str, TablePlan]:
    """Return how to write each generated table, from the models and the migrated database's columns."""
    from django.apps import apps
    from django.db import connection
    from django.db.models import DateField, DateTimeField

    plans = {}
    with connection.cursor() as cursor:
        for label, spec in TABLES.items():
            model = apps.get_model(label)
            db_table = model._meta.db_table
            db_columns = {info.name for info in connection.introspection.get_table_description(cursor, db_table)}
            columns = tuple(name for name, _ in spec)
            missing = [name for name in columns if name not in db_columns]
            if missing:
                raise RuntimeError(f"{db_table} has no column {', '.join(missing)}: update TABLES in bench/dataset.py.")
            decimal_places = {}
            for name, kind in spec:
                if kind == "money":
                    places = _field_by_column(model, name).decimal_places
                    if places < MONEY_PLACES:
                        raise RuntimeError(f"{db_table}.{name} keeps {places} decimal places; the data needs 12.")
                    decimal_places[name] = places
            extra_columns, extra_values = [], []
            # Columns the generator does not know (a field added since) get the field's default.
            for model_field in model._meta.concrete_fields:
                if model_field.column in columns or model_field.column not in db_columns:
                    continue
                value = model_field.get_default()
                if value is None and not model_field.null:
                    if not isinstance(model_field, DateField | DateTimeField):
                        raise RuntimeError(
                            f"{db_table}.{model_field.column} is required and has no default: "
                            "generate it in TABLES in bench/dataset.py."
                        )
                    value = datetime.now(UTC) if isinstance(model_field, DateTimeField) else date.today()
                extra_columns.append(model_field.column)
                extra_values.append(model_field.get_db_prep_save(value, connection))
            plans[label] = TablePlan(
                label=label,
                db_table=db_table,
                columns=columns,
                kinds=tuple(kind for _, kind in spec),
                decimal_places=decimal_places,
                extra_columns=tuple(extra_columns),
                extra_values=tuple(extra_values),
            )
    return plans


def _field_by_column(model: Any, column: str) -> Any:
    for model_field in model._meta.concrete_fields:
        if model_field.column == column:
            return model_field
    raise RuntimeError(f"{model.__name__} has no field stored in {column}.")


def _batches(days: Iterable[DayBatch]) -> Iterator[dict[str, list[tuple]]]:
    pending: dict[str, list[tuple]] = {label: [] for label in DAILY_TABLES}
    for day in days:
        for label in DAILY_TABLES:
            pending[label].extend(day.rows[label])
        if len(pending["chatbot.OpenRouterRequestCost"]) >= BATCH_REQUESTS:
            yield pending
            pending = {label: [] for label in DAILY_TABLES}
    if any(pending.values()):
        yield pending


def _day_prefixes(generator: PlatformGenerator) -> list[str]:
    return [f"{generator.first_day + timedelta(days=offset)} " for offset in range(generator.scale.days)]


def _times_of_day(suffix: str) -> list[str]:
    return [f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}{suffix}" for second in range(86_400)]


def _metadata(
    *, database: BenchDatabase, scale: Scale, generator: PlatformGenerator, result: LoadResult, migrations: list[str]
) -> str:
    return json.dumps(
        {
            "scale": scale.as_dict(),
            "migrations": migrations,
            "vendor": database.vendor,
            "first_day": generator.first_day.isoformat(),
            "end": generator.end.isoformat(),
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load": result.as_dict(),
        }
    )


class _Progress:
    """Report loaded requests at every tenth of the total."""

    def __init__(self, *, total: int, echo: Callable[[str], None]) -> None:
        self.total, self.echo, self.next_tenth = total, echo, 1

    def report(self, done: int) -> None:
        if done * 10 >= self.next_tenth * self.total:
            self.echo(f"  ... {done:,} requests")
            self.next_tenth = done * 10 // self.total + 1


class _Phases:
    """Time consecutive phases of a load into ``result.seconds``."""

    def __init__(self, result: LoadResult, *, echo: Callable[[str], None]) -> None:
        self.result = result
        self.echo = echo
        self.name: str | None = None
        self.started = 0.0

    def start(self, name: str) -> None:
        self.stop()
        self.name, self.started = name, time.perf_counter()

    def stop(self) -> None:
        if self.name is not None:
            elapsed = time.perf_counter() - self.started
            self.result.seconds[self.name] = self.result.seconds.get(self.name, 0.0) + elapsed
            self.echo(f"  {self.name}: {elapsed:.1f} s")
            self.name = None


# --- PostgreSQL: COPY ------------------------------------------------------------------------


def _copy_value(value: Any) -> str:
    if value is None:
        return COPY_NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).translate(COPY_ESCAPES)


def _copy_converters(plan: TablePlan, *, prefixes: list[str], times: list[str]) -> list[Callable[[Any], str]]:
    def timestamp(value: int) -> str:
        day, second = divmod(value, SECONDS_PER_DAY)
        return prefixes[day] + times[second]

    def money(units: int) -> str:
        whole, fraction = divmod(units, 10**MONEY_PLACES)
        return f"{whole}.{fraction:0{MONEY_PLACES}d}"

    converters = {
        "int": str,
        "int?": lambda value: COPY_NULL if value is None else str(value),
        "text": lambda value: value.translate(COPY_ESCAPES),
        "bool": lambda value: "t" if value else "f",
        "ts": timestamp,
        "money": money,
    }
    return [converters[kind] for kind in plan.kinds]


def _copy_rows(cursor: Any, plan: TablePlan, rows: list[tuple], converters: list[Callable[[Any], str]]) -> None:
    if not rows:
        return
    tail = "".join("\t" + _copy_value(value) for value in plan.extra_values) + "\n"
    columns = ", ".join(f'"{name}"' for name in plan.all_columns)
    # FREEZE: the table was truncated in this transaction, so rows are written frozen and all-visible.
    with cursor.copy(f'COPY "{plan.db_table}" ({columns}) FROM STDIN (FREEZE)') as copy:
        for start in range(0, len(rows), 50_000):
            copy.write(
                "".join(
                    [
                        "\t".join([convert(value) for convert, value in zip(converters, row, strict=True)]) + tail
                        for row in rows[start : start + 50_000]
                    ]
                )
            )


def _postgres_secondary(cursor: Any, tables: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Return the plain indexes (name, definition) and foreign keys (table, name, definition) of ``tables``."""
    indexes = cursor.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (
              SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
          )
        ORDER BY 1
        """,
        [tables],
    ).fetchall()
    foreign_keys = cursor.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])
        ORDER BY 1, 2
        """,
        [tables],
    ).fetchall()
    return indexes, foreign_keys


def postgres_load(
    *,
    database: BenchDatabase,
    scale: Scale,
    end: datetime,
    migrations: list[str],
    echo: Callable[[str], None] = print,
) -> LoadResult:
    """Load ``scale`` into the (migrated, empty) PostgreSQL benchmark database with COPY."""
    import psycopg
    from django.db import connection as django_connection

    plans = table_plans()
    django_connection.close()
    generator = PlatformGenerator(scale=scale, end=end)
    prefixes, times = _day_prefixes(generator), _times_of_day("+00")
    converters = {label: _copy_converters(plan, prefixes=prefixes, times=times) for label, plan in plans.items()}
    tables = [plan.db_table for plan in plans.values()]
    result = LoadResult(counts=dict.fromkeys(plans, 0))
    phases = _Phases(result, echo=echo)
    progress = _Progress(total=scale.rows, echo=echo)

    with psycopg.connect(database.psycopg_conninfo()) as connection, connection.cursor() as cursor:
        phases.start("prepare")
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in tables) + " RESTART IDENTITY CASCADE")
        indexes, foreign_keys = _postgres_secondary(cursor, tables)
        for table, name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")

        phases.start("copy")
        catalog = generator.catalog()
        for label in CATALOG_TABLES:
            _copy_rows(cursor, plans[label], catalog[label], converters[label])
            result.counts[label] += len(catalog[label])
        for batch in _batches(generator.days()):
            for label in DAILY_TABLES:
                _copy_rows(cursor, plans[label], batch[label], converters[label])
                result.counts[label] += len(batch[label])
            progress.report(result.counts["chatbot.OpenRouterRequestCost"])

        phases.start("indexes")
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for plan in plans.values():
            if result.counts[plan.label]:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [plan.db_table, result.counts[plan.label]]
                )
        phases.start("verify")
        _verify_counts(cursor, plans, result)
        phases.stop()
        cursor.execute(
            f"INSERT INTO {METADATA_TABLE} (key, value) VALUES ('dataset', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [_metadata(database=database, scale=scale, generator=generator, result=result, migrations=migrations)],
        )
        connection.commit()

    with psycopg.connect(database.psycopg_conninfo(), autocommit=True) as connection:
        phases.start("analyze")
        # VACUUM too: it is cheap on frozen pages, and leaves nothing for autovacuum to do mid-measurement.
        connection.execute("VACUUM (ANALYZE) " + ", ".join(f'"{table}"' for table in tables))
        phases.stop()
        connection.execute(
            f"UPDATE {METADATA_TABLE} SET value = %s WHERE key = 'dataset'",
            [_metadata(database=database, scale=scale, generator=generator, result=result, migrations=migrations)],
        )
    return result


def _verify_counts(cursor: Any, plans: dict[str, TablePlan], result: LoadResult) -> None:
    for label, plan in plans.items():
        (count,) = cursor.execute(f'SELECT count(*) FROM "{plan.db_table}"').fetchone()
        if count != result.counts[label]:
            raise RuntimeError(f"{plan.db_table} holds {count} rows after loading {result.counts[label]}.")


# --- SQLite: executemany -----------------------------------------------------------------------


def _sqlite_converters(plan: TablePlan, *, prefixes: list[str], times: list[str]) -> list[tuple[int, Callable]]:
    def timestamp(value: int) -> str:
        day, second = divmod(value, SECONDS_PER_DAY)
        return prefixes[day] + times[second]

    converters = []
    for index, (name, kind) in enumerate(zip(plan.columns, plan.kinds, strict=True)):
        if kind == "ts":
            converters.append((index, timestamp))
        elif kind == "bool":
            converters.append((index, int))
        elif kind == "money":
            # ExactDecimalField keeps integer units of 10**-decimal_places on SQLite.
            factor = 10 ** (plan.decimal_places[name] - MONEY_PLACES)
            converters.append((index, lambda units, factor=factor: units * factor))
    return converters


def _sqlite_insert(connection: sqlite3.Connection, plan: TablePlan, rows: list[tuple], converters: list) -> None:
    if not rows:
        return
    columns = ", ".join(f'"{name}"' for name in plan.all_columns)
    placeholders = ", ".join("?" * len(plan.all_columns))
    extra = plan.extra_values

    def parameters() -> Iterator[tuple]:
        for row in rows:
            values = list(row)
            for index, convert in converters:
                values[index] = convert(values[index])
            yield (*values, *extra)

    connection.executemany(f'INSERT INTO "{plan.db_table}" ({columns}) VALUES ({placeholders})', parameters())


def sqlite_load(
    *,
    database: BenchDatabase,
    scale: Scale,
    end: datetime,
    migrations: list[str],
    echo: Callable[[str], None] = print,
) -> LoadResult:
    """Load ``scale`` into the (migrated, empty) SQLite benchmark database with executemany."""
    from django.db import connection as django_connection

    plans = table_plans()
    generator = PlatformGenerator(scale=scale, end=end)
    prefixes, times = _day_prefixes(generator), _times_of_day("")
    converters = {label: _sqlite_converters(plan, prefixes=prefixes, times=times) for label, plan in plans.items()}
    tables = [plan.db_table for plan in plans.values()]
    result = LoadResult(counts=dict.fromkeys(plans, 0))
    phases = _Phases(result, echo=echo)
    progress = _Progress(total=scale.rows, echo=echo)

    # Django's own sqlite3 connection (in autocommit mode): it has the SQL functions Django
    # registers, which triggers on the tables (e.g. the rollups') may call.
    django_connection.ensure_connection()
    connection: sqlite3.Connection = django_connection.connection
    try:
        phases.start("prepare")
        # No fsync and a journal in memory: a crash mid-load loses only a file the next run recreates.
        for pragma in (
            "journal_mode = MEMORY",
            "synchronous = OFF",
            "cache_size = -262144",
            "temp_store = MEMORY",
            "foreign_keys = OFF",
        ):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute("BEGIN")
        marks = ", ".join("?" * len(tables))
        indexes = connection.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
            tables,
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        triggers = connection.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({marks})", tables
        ).fetchall()
        for name, _ in triggers:
            connection.execute(f'DROP TRIGGER "{name}"')

        phases.start("insert")
        catalog = generator.catalog()
        for label in CATALOG_TABLES:
            _sqlite_insert(connection, plans[label], catalog[label], converters[label])
            result.counts[label] += len(catalog[label])
        for batch in _batches(generator.days()):
            for label in DAILY_TABLES:
                _sqlite_insert(connection, plans[label], batch[label], converters[label])
                result.counts[label] += len(batch[label])
            progress.report(result.counts["chatbot.OpenRouterRequestCost"])

        phases.start("indexes")
        for _, definition in indexes + triggers:
            connection.execute(definition)
        phases.start("verify")
        for label, plan in plans.items():
            (count,) = connection.execute(f'SELECT count(*) FROM "{plan.db_table}"').fetchone()
            if count != result.counts[label]:
                raise RuntimeError(f"{plan.db_table} holds {count} rows after loading {result.counts[label]}.")
        violations = connection.execute("PRAGMA foreign_key_check").fetchmany(5)
        if violations:
            raise RuntimeError(f"Foreign keys broken after the load: {violations}")
        phases.stop()
        connection.execute(
            f"INSERT OR REPLACE INTO {METADATA_TABLE} (key, value) VALUES ('dataset', ?)",
            [_metadata(database=database, scale=scale, generator=generator, result=result, migrations=migrations)],
        )
        connection.execute("COMMIT")
        phases.start("analyze")
        connection.execute("ANALYZE")
        phases.stop()
        connection.execute(
            f"UPDATE {METADATA_TABLE} SET value = ? WHERE key = 'dataset'",
            [_metadata(database=database, scale=scale, generator=generator, result=result, migrations=migrations)],
        )
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        django_connection.close()
    return result


def dataset_load(
    *,
    database: BenchDatabase,
    scale: Scale,
    migrations: list[str],
    end: datetime | None = None,
    echo: Callable[[str], None] = print,
) -> LoadResult:
    """Load a synthetic platform of ``scale`` into the migrated, empty benchmark database."""
    from django.core.management import call_command

    end = end or datetime.now(UTC)
    loader = postgres_load if database.vendor == "postgresql" else sqlite_load
    result = loader(database=database, scale=scale, end=end, migrations=migrations, echo=echo)
    commands = (SQLITE_POST_LOAD_COMMANDS if database.vendor == "sqlite" else ()) + POST_LOAD_COMMANDS
    for command in commands:
        started = time.perf_counter()
        call_command(command)
        result.seconds[command] = time.perf_counter() - started
        echo(f"  {command}: {result.seconds[command]:.1f} s")
    started = time.perf_counter()
    _rollups_vacuum(vendor=database.vendor)
    result.seconds["vacuum rollups"] = time.perf_counter() - started
    echo(f"  vacuum rollups: {result.seconds['vacuum rollups']:.1f} s")
    return result


def _rollups_vacuum(*, vendor: str) -> None:
    """Compact and analyze the rollup tables, laid out by day as a platform that squashes every few minutes keeps them.

    The load appends a delta row per batch and key, up to a year of them before its one squash,
    which leaves many times the live rows dead: a live platform never gathers that many between
    two squashes. The squash also writes its merged rows in no particular order, where a live
    platform's rows of one day sit together (they are written that day and squashed minutes
    later, into the pages its deltas left). On PostgreSQL, CLUSTER rewrites each per-day table in
    the order of its day index (a period's rows then fill a few pages rather than one page each)
    and VACUUM FULL the others; the plain VACUUM after them sets the visibility map that the
    readers' index-only scans need. SQLite: ANALYZE only.
    """
    from django.db import connection

    from reports.rollups import ROLLUP_TABLE_NAMES, ROLLUP_TABLES

    quote = connection.ops.quote_name
    day_indexes = {
        table.name: index.name
        for table in ROLLUP_TABLES
        for index in table.model._meta.indexes
        if table.keys[0] == "day" and index.fields[:1] == ["day"]
    }
    others = ", ".join(quote(table) for table in ROLLUP_TABLE_NAMES if table not in day_indexes)
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            for table, index in day_indexes.items():
                cursor.execute(f"CLUSTER {quote(table)} USING {quote(index)}")
            cursor.execute(f"VACUUM (FULL) {others}")
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(quote(table) for table in ROLLUP_TABLE_NAMES)}")
        else:
            cursor.execute("ANALYZE")


__all__ = [
    "POST_LOAD_COMMANDS",
    "SQLITE_POST_LOAD_COMMANDS",
    "LoadResult",
    "dataset_load",
    "postgres_load",
    "sqlite_load",
    "table_plans",
]
