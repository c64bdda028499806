"""Time the write side: concurrent writers of request_cost_record, then one bulk request_costs_import.

Requires Django to be set up against a loaded benchmark database (see ``bench.__main__``); runs
after the read series, so that the reads time the dataset as loaded. The writers are processes,
not threads, so that they run in parallel as separate web workers would (threads would time
Python's global interpreter lock). Writers and import use the dataset's users, models and
sessions, with exact costs like the dataset's.

Every row written carries a generation_id starting with ``WRITE_PREFIX`` and the run's id.
Afterwards exactly those rows are deleted (a QuerySet.delete(): the rollup triggers take their
contributions back out), the rollups are squashed and, on PostgreSQL, the tables vacuumed, so
that the next run finds the dataset as it was loaded. Rows an interrupted run left behind are
deleted first.

With ``without_rollups`` (PostgreSQL only), both series run a second time with the request
table's rollup triggers disabled: the same writes with no rollup kept, the ceiling the rollups
are measured against. Those rows carry ``BARE_WRITE_PREFIX`` and are deleted while the triggers
are still off (so that nothing is taken out of rollups they never entered), before the triggers
are enabled again.
"""

import contextlib
import math
import multiprocessing
import queue
import random
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

WRITE_PREFIX = "bench-write-"
# Rows written with the rollup triggers off (see ``without_rollups``): deleted with them off too.
BARE_WRITE_PREFIX = "bench-bare-write-"
WRITERS = 4
DEFAULT_WRITE_SECONDS = 10.0
DEFAULT_IMPORT_ROWS = 200_000
# As in the dataset: about one request in five is a chat turn in a session, the rest API traffic.
SESSION_SHARE = 0.2
# Users, sessions and calls drawn per run; enough to spread the writes over many rollup keys.
SAMPLE_USERS = 2_000
SAMPLE_SESSIONS = 2_000
CALLS_PER_WRITER = 2_000
# Untimed calls per writer before the timed window: connections opened, caches warm.
WARMUP_CALLS = 20
# Imported rows are spread over the last days, as a backfill of recent history would be.
IMPORT_DAYS = 30
# Seconds a writer process may take to start (import Django, connect) before the run gives up.
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class WriteOptions:
    """What to write, and for how long."""

    seconds: float = DEFAULT_WRITE_SECONDS  # Of the writers' timed window; 0 skips them.
    import_rows: int = DEFAULT_IMPORT_ROWS  # 0 skips the import.
    writers: int = WRITERS
    seed: int = 1
    # Run both series again with the request table's rollup triggers off (PostgreSQL only).
    without_rollups: bool = False


@dataclass
class WriteSeries:
    """One write series: how many rows it wrote in how long, and the latency of each call (writers only)."""

    target: str  # "record" or "import"; "record-without-rollups", "import-without-rollups"
    workers: int
    seconds: float = 0.0
    rows: int = 0
    rate: float | None = None  # Rows per second, summed over the workers.
    samples_ms: list[float] = field(default_factory=list)
    error: str = ""
    note: str = ""

    @property
    def p50(self) -> float | None:
        return _percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float | None:
        return _percentile(self.samples_ms, 95)

    @property
    def failed(self) -> bool:
        return bool(self.error)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["samples_ms"]
        data.update(
            rate=None if self.rate is None else round(self.rate, 1),
            seconds=round(self.seconds, 3),
            p50_ms=None if self.p50 is None else round(self.p50, 3),
            p95_ms=None if self.p95 is None else round(self.p95, 3),
            calls=len(self.samples_ms),
        )
        return data


def _percentile(samples: list[float], rank: float) -> float | None:
    # Nearest rank, as bench.measure.percentile (not imported: the writers' processes need no more).
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Call:
    """The figures of one request_cost_record call; its generation_id is made by the writer."""

    user_id: int
    ai_model_id: int
    session_id: int | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class WritePlan:
    """The dataset's rows the writes refer to."""

    user_ids: list[int]
    # (id, prompt USD per token, completion USD per token)
    models: list[tuple[int, Decimal, Decimal]]
    # (session id, its user's id)
    sessions: list[tuple[int, int]]


def write_plan(*, rng: random.Random) -> WritePlan:
    """Return a sample of the dataset's users, its models with their prices, and a sample of its sessions."""
    from django.contrib.auth import get_user_model

    from ai_models.models import AIModel
    from chatbot.models import ChatSession

    user_ids = list(get_user_model().objects.order_by("pk").values_list("pk", flat=True))
    models = [
        (pk, prompt or Decimal(0), completion or Decimal(0))
        for pk, prompt, completion in AIModel.objects.order_by("pk").values_list(
            "pk", "prompt_price", "completion_price"
        )
    ]
    session_count = ChatSession.objects.count()
    # A window of consecutive ids at a random offset: no ORDER BY random() over a million sessions.
    offset = rng.randrange(max(1, session_count - SAMPLE_SESSIONS + 1))
    sessions = list(ChatSession.objects.order_by("pk").values_list("pk", "user_id")[offset : offset + SAMPLE_SESSIONS])
    if not user_ids or not models:
        raise RuntimeError("The dataset has no users or no AI models to write requests for.")
    return WritePlan(user_ids=rng.sample(user_ids, min(SAMPLE_USERS, len(user_ids))), models=models, sessions=sessions)


def _calls(*, plan: WritePlan, count: int, rng: random.Random) -> list[Call]:
    calls = []
    for _ in range(count):
        if plan.sessions and rng.random() < SESSION_SHARE:
            session_id, user_id = rng.choice(plan.sessions)
        else:
            session_id, user_id = None, rng.choice(plan.user_ids)
        model_id, prompt_price, completion_price = rng.choice(plan.models)
        prompt_tokens = min(32_000, max(1, int(rng.lognormvariate(6.3, 1.1))))
        completion_tokens = min(8_000, max(1, int(rng.lognormvariate(5.3, 0.9))))
        cost = prompt_tokens * prompt_price + completion_tokens * completion_price
        # The dataset's prices are whole picodollars per token; a catalog's finer price is rounded down.
        calls.append(
            Call(
                user_id=user_id,
                ai_model_id=model_id,
                session_id=session_id,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost.quantize(Decimal("1E-12"), rounding="ROUND_DOWN"),
            )
        )
    return calls


def writer_main(
    *,
    number: int,
    prefix: str,
    seconds: float,
    calls: list[Call],
    start: Any,
    results: Any,
) -> None:
    """Call request_cost_record in a loop for ``seconds`` after ``start``; put the count and latencies in ``results``.

    Runs in a process of its own, started with ``spawn``: Django is set up here, from the
    environment the benchmark's process set (bench.__main__.django_setup).
    """
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from ai_models.models import AIModel
        from chatbot.models import ChatSession
        from chatbot.services import request_cost_record

        users = get_user_model().objects.in_bulk({call.user_id for call in calls})
        models = AIModel.objects.in_bulk({call.ai_model_id for call in calls})
        sessions = ChatSession.objects.in_bulk({call.session_id for call in calls if call.session_id})
        arguments = [
            {
                "user": users[call.user_id],
                "ai_model": models[call.ai_model_id],
                "session": sessions[call.session_id] if call.session_id else None,
                "prompt_tokens": call.prompt_tokens,
                "completion_tokens": call.completion_tokens,
                "cost_usd": call.cost_usd,
            }
            for call in calls
        ]
        for index in range(WARMUP_CALLS):
            request_cost_record(generation_id=f"{prefix}w{number}-warmup-{index}", **arguments[index % len(arguments)])
        start.wait(timeout=START_TIMEOUT)
        samples: list[float] = []
        began = time.perf_counter()
        deadline = began + seconds
        count = 0
        while True:
            before = time.perf_counter()
            if before >= deadline:
                break
            request_cost_record(generation_id=f"{prefix}w{number}-{count}", **arguments[count % len(arguments)])
            samples.append((time.perf_counter() - before) * 1000)
            count += 1
        results.put(("done", number, count, time.perf_counter() - began, samples))
    except BaseException as error:
        start.abort()
        results.put(("error", number, f"{type(error).__name__}: {error}", traceback.format_exc()))


def writers_run(
    *,
    options: WriteOptions,
    plan: WritePlan,
    prefix: str,
    rng: random.Random,
    echo: Callable[[str], None],
    target: str = "record",
) -> WriteSeries:
    """Run ``options.writers`` writer processes together for ``options.seconds``; return their total rate."""
    from django.db import connections

    series = WriteSeries(target=target, workers=options.writers, seconds=options.seconds)
    # Nothing open to hand down: each process connects on its own.
    connections.close_all()
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(options.writers + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=writer_main,
            kwargs={
                "number": number,
                "prefix": prefix,
                "seconds": options.seconds,
                "calls": _calls(plan=plan, count=CALLS_PER_WRITER, rng=rng),
                "start": start,
                "results": results,
            },
            name=f"bench-writer-{number}",
        )
        for number in range(options.writers)
    ]
    for process in processes:
        process.start()
    rates, errors = [], []
    # A writer that failed to start breaks the barrier; its error is in the queue.
    with contextlib.suppress(threading.BrokenBarrierError):
        start.wait(timeout=START_TIMEOUT)
    for _ in processes:
        try:
            message = results.get(timeout=START_TIMEOUT + options.seconds + 60)
        except queue.Empty:
            errors.append("a writer did not report back")
            break
        if message[0] == "done":
            _, _, count, elapsed, samples = message
            series.rows += count
            series.samples_ms.extend(samples)
            rates.append(count / elapsed if elapsed else 0.0)
        else:
            errors.append(message[2])
            echo(f"  writer {message[1]} failed:\n{message[3]}")
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()
    if errors:
        series.error = "; ".join(sorted(set(errors)))[:500]
    else:
        series.rate = sum(rates)
    return series


def import_rows(*, plan: WritePlan, count: int, prefix: str, rng: random.Random) -> list[Any]:
    """Return ``count`` rows to import, spread over the last IMPORT_DAYS days."""
    from chatbot.services import RequestCostInput

    now = datetime.now(UTC)
    span = IMPORT_DAYS * 86_400
    return [
        RequestCostInput(
            user_id=call.user_id,
            ai_model_id=call.ai_model_id,
            session_id=call.session_id,
            generation_id=f"{prefix}i{index}",
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cost_usd=call.cost_usd,
            created_at=now - timedelta(seconds=rng.randrange(span)),
        )
        for index, call in enumerate(_calls(plan=plan, count=count, rng=rng))
    ]


def import_run(
    *, options: WriteOptions, plan: WritePlan, prefix: str, rng: random.Random, target: str = "import"
) -> WriteSeries:
    """Import ``options.import_rows`` rows at once through request_costs_import; return its rate."""
    from chatbot.services import request_costs_import

    series = WriteSeries(target=target, workers=1)
    # Built before the clock starts: the series times the import, not the making of its input.
    rows = import_rows(plan=plan, count=options.import_rows, prefix=prefix, rng=rng)
    try:
        started = time.perf_counter()
        result = request_costs_import(rows=rows)
        series.seconds = time.perf_counter() - started
    except Exception as error:
        series.error = f"{type(error).__name__}: {error}"[:500]
        return series
    series.rows = result.inserted
    series.rate = result.inserted / series.seconds if series.seconds else None
    series.note = f"inserted {result.inserted:,}, skipped {result.skipped:,}"
    if result.inserted != len(rows):
        series.error = f"inserted {result.inserted:,} of {len(rows):,} rows"
    return series


def written_rows_exist(*, prefix: str) -> bool:
    """Return whether any request's generation_id starts with ``prefix``."""
    from chatbot.models import OpenRouterRequestCost

    return OpenRouterRequestCost.objects.filter(generation_id__startswith=prefix).exists()


def written_rows_delete(*, prefix: str) -> int:
    """Delete the requests whose generation_id starts with ``prefix``; return how many there were."""
    from chatbot.models import OpenRouterRequestCost

    deleted, _ = OpenRouterRequestCost.objects.filter(generation_id__startswith=prefix).delete()
    return deleted


@contextlib.contextmanager
def request_rollup_triggers_off() -> Iterator[None]:
    """Disable the request table's rollup triggers for the duration, then enable them again (PostgreSQL).

    For the benchmark's own database only: every session's requests go unrolled-up meanwhile.
    """
    from django.db import connection

    from reports.rollups import REQUESTS, TRIGGERS

    names = [spec.name for spec in TRIGGERS if spec.table == REQUESTS]

    def switch(state: str) -> None:
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # Inside a transaction (the tests), the foreign keys' deferred checks are pending
                # events that forbid an ALTER TABLE: run them now, and defer the next ones again.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for name in names:
                cursor.execute(f"ALTER TABLE {REQUESTS} {state} TRIGGER {name}")

    switch("DISABLE")
    try:
        yield
    finally:
        switch("ENABLE")


def _series_run(
    *, options: WriteOptions, plan: WritePlan, prefix: str, rng: random.Random, echo: Callable[[str], None], suffix: str
) -> list[WriteSeries]:
    series = []
    if options.seconds > 0 and options.writers > 0:
        series.append(
            writers_run(options=options, plan=plan, prefix=prefix, rng=rng, echo=echo, target=f"record{suffix}")
        )
        echo(_line(series[-1]))
    if options.import_rows > 0:
        series.append(import_run(options=options, plan=plan, prefix=prefix, rng=rng, target=f"import{suffix}"))
        echo(_line(series[-1]))
    return series


def measure_writes(*, options: WriteOptions, echo: Callable[[str], None] = print) -> tuple[list[WriteSeries], dict]:
    """Run the write series, then delete what they wrote; return the series and what the cleanup did."""
    from django.db import connection

    from reports.rollups import rollups_squash

    rng = random.Random(options.seed)
    # Unique per run, so that the cleanup deletes this run's rows and nothing else.
    run = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}-"
    prefix, bare_prefix = f"{WRITE_PREFIX}{run}", f"{BARE_WRITE_PREFIX}{run}"
    cleanup: dict[str, Any] = {"prefix": prefix}
    without_rollups = options.without_rollups and connection.vendor == "postgresql"
    if options.without_rollups and not without_rollups:
        echo("  the writes without rollups run on PostgreSQL only (SQLite cannot disable a trigger)")
    leftovers = written_rows_delete(prefix=WRITE_PREFIX)
    if connection.vendor == "postgresql" and written_rows_exist(prefix=BARE_WRITE_PREFIX):
        with request_rollup_triggers_off():
            leftovers += written_rows_delete(prefix=BARE_WRITE_PREFIX)
    if leftovers:
        echo(f"  deleted {leftovers:,} rows an earlier, interrupted run wrote")
        cleanup["leftovers_deleted"] = leftovers
    plan = write_plan(rng=rng)
    series: list[WriteSeries] = []
    try:
        series += _series_run(options=options, plan=plan, prefix=prefix, rng=rng, echo=echo, suffix="")
        if without_rollups:
            cleanup["bare_prefix"] = bare_prefix
            with request_rollup_triggers_off():
                try:
                    series += _series_run(
                        options=options, plan=plan, prefix=bare_prefix, rng=rng, echo=echo, suffix="-without-rollups"
                    )
                finally:
                    cleanup["bare_rows_deleted"] = written_rows_delete(prefix=bare_prefix)
    finally:
        started = time.perf_counter()
        cleanup["rows_deleted"] = written_rows_delete(prefix=prefix)
        cleanup["delete_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        squash = rollups_squash()
        cleanup["squash_seconds"] = round(time.perf_counter() - started, 3)
        cleanup["rollup_rows_merged"] = squash.total_merged
        started = time.perf_counter()
        vacuumed = written_tables_vacuum()
        cleanup["vacuum_seconds"] = round(time.perf_counter() - started, 3) if vacuumed else None
        echo(
            f"  cleanup: deleted the {cleanup['rows_deleted']:,} rows written in {cleanup['delete_seconds']:.1f} s, "
            f"squashed the rollups ({squash.total_merged:,} rows merged) in {cleanup['squash_seconds']:.1f} s"
            + (f", vacuumed {', '.join(vacuumed)} in {cleanup['vacuum_seconds']:.1f} s" if vacuumed else "")
        )
    return series, cleanup


def written_tables_vacuum() -> list[str]:
    """VACUUM (ANALYZE) the tables the writes changed, on PostgreSQL; return their names.

    As after the load: the next run's reads should not meet the deleted rows, nor an autovacuum
    of them in the middle of a series. Skipped on SQLite (its deleted pages are simply reused)
    and inside a transaction (as in the tests), where VACUUM cannot run.
    """
    from django.db import connection

    from chatbot.models import OpenRouterRequestCost
    from reports.rollups import ROLLUP_TABLE_NAMES

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return []
    tables = [OpenRouterRequestCost._meta.db_table, *ROLLUP_TABLE_NAMES]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) " + ", ".join(connection.ops.quote_name(table) for table in tables))
    return tables


def _line(series: WriteSeries) -> str:
    if series.error:
        return f"  write  {series.target:<22} [ERR] {series.error[:100]}"
    latency = f"  p50 {series.p50:6.2f} ms  p95 {series.p95:6.2f} ms" if series.samples_ms else ""
    return (
        f"  write  {series.target:<22} {series.workers} x {series.seconds:5.1f} s  {series.rows:>9,} rows  "
        f"{series.rate:>9,.0f} rows/s{latency}"
    )
