import queue
import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from bench.measure import markdown_table, targets_check, writes_table
from bench.writes import (
    BARE_WRITE_PREFIX,
    WARMUP_CALLS,
    WRITE_PREFIX,
    Call,
    WriteOptions,
    WritePlan,
    WriteSeries,
    _calls,
    measure_writes,
    request_rollup_triggers_off,
    write_plan,
    writer_main,
)
from chatbot.models import OpenRouterRequestCost
from core.factories import AIModelFactory, ChatSessionFactory, RequestCostFactory, UserFactory
from reports import raw_selectors, selectors
from reports.rollups import rollups_rebuild


def test_write_targets_are_checked_on_postgresql_only():
    writes = [
        WriteSeries(target="record", workers=4, seconds=10.0, rows=15_000, rate=1_500.0),
        WriteSeries(target="import", workers=1, seconds=2.5, rows=200_000, rate=80_000.0),
    ]

    checks = targets_check(vendor="postgresql", results=[], ratio_rows=[], writes=writes)

    assert checks == [
        {"write": "record", "target": 2_000.0, "met": False, "misses": ["1,500 < 2,000 requests/s"]},
        {"write": "import", "target": 50_000.0, "met": True, "misses": []},
    ]
    assert targets_check(vendor="sqlite", results=[], ratio_rows=[], writes=writes) == []


def test_the_writes_without_rollups_are_measured_but_checked_against_no_target():
    writes = [
        WriteSeries(target="record", workers=4, seconds=10.0, rows=15_000, rate=1_500.0),
        WriteSeries(target="record-without-rollups", workers=4, seconds=10.0, rows=21_000, rate=2_100.0),
        WriteSeries(target="import-without-rollups", workers=1, seconds=7.0, rows=200_000, rate=27_000.0),
    ]

    checks = targets_check(vendor="postgresql", results=[], ratio_rows=[], writes=writes)

    assert [check["write"] for check in checks] == ["record"]
    assert writes_table(writes).splitlines()[-1].split()[:5] == [
        "import-without-rollups",
        "1",
        "7.0",
        "200,000",
        "27,000",
    ]


def test_a_failed_write_series_misses_its_target_with_its_error():
    failed = WriteSeries(target="record", workers=4, seconds=10.0, error="OperationalError: database is locked")

    (check,) = targets_check(vendor="postgresql", results=[], ratio_rows=[], writes=[failed])

    assert check["met"] is False
    assert check["misses"] == ["OperationalError: database is locked"]


def test_write_series_are_tabled_and_in_the_markdown():
    series = WriteSeries(target="record", workers=4, seconds=10.0, rows=20_000, rate=2_000.0, samples_ms=[1.0, 3.0])

    assert writes_table([series]).splitlines()[-1].split() == ["record", "4", "10.0", "20,000", "2,000", "1.0", "3.0"]
    assert markdown_table([], [], [series]).splitlines()[-1] == "| record | 4 | 10.0 | 20,000 | 2,000 | 1.0 | 3.0 |"
    assert series.as_dict()["calls"] == 2


def test_planned_calls_cost_exactly_their_tokens_at_their_models_prices():
    plan = WritePlan(
        user_ids=[1, 2],
        models=[(7, Decimal("0.000000075"), Decimal("0.0000003")), (8, Decimal(0), Decimal(0))],
        sessions=[(30, 2)],
    )

    calls = _calls(plan=plan, count=500, rng=random.Random(3))

    prices = {model_id: (prompt, completion) for model_id, prompt, completion in plan.models}
    for call in calls:
        prompt, completion = prices[call.ai_model_id]
        assert call.cost_usd == call.prompt_tokens * prompt + call.completion_tokens * completion
        assert call.session_id is None or (call.session_id, call.user_id) == (30, 2)
    assert 50 < sum(call.session_id is not None for call in calls) < 150  # about one in five


@pytest.mark.django_db
def test_a_writer_records_through_its_window_and_reports_each_call():
    user, model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user)
    calls = [
        Call(user.pk, model.pk, session_id=None, prompt_tokens=3, completion_tokens=1, cost_usd=Decimal("4E-12")),
        Call(user.pk, model.pk, session_id=session.pk, prompt_tokens=5, completion_tokens=2, cost_usd=Decimal("0.1")),
    ]
    results: queue.Queue = queue.Queue()

    writer_main(
        number=0, prefix="bench-write-t-", seconds=0.2, calls=calls, start=threading.Barrier(1), results=results
    )

    kind, number, count, elapsed, samples = results.get_nowait()
    assert (kind, number) == ("done", 0)
    assert count == len(samples) > 0
    assert elapsed >= 0.2
    written = OpenRouterRequestCost.objects.filter(generation_id__startswith="bench-write-t-")
    assert written.count() == WARMUP_CALLS + count
    assert written.filter(session=session).count() == (WARMUP_CALLS + count) // 2


@pytest.mark.django_db
def test_the_writes_leave_the_dataset_as_they_found_it():
    users, models = UserFactory.create_batch(3), AIModelFactory.create_batch(2)
    ChatSessionFactory(user=users[0])
    for user in users:
        RequestCostFactory(user=user, ai_model=models[0], cost_usd=Decimal("0.25"))
    # A row an interrupted run left behind.
    RequestCostFactory(user=users[1], ai_model=models[1], generation_id=f"{WRITE_PREFIX}20260101T000000-dead-i1")
    before = list(OpenRouterRequestCost.objects.exclude(generation_id__startswith=WRITE_PREFIX).values())
    lines: list[str] = []

    series, cleanup = measure_writes(options=WriteOptions(seconds=0, import_rows=300), echo=lines.append)

    (imported,) = series
    assert (imported.target, imported.rows, imported.error) == ("import", 300, "")
    assert imported.rate > 0
    assert cleanup["leftovers_deleted"] == 1
    assert cleanup["rows_deleted"] == 300
    assert list(OpenRouterRequestCost.objects.values()) == before
    assert selectors.top_users_by_cost() == raw_selectors.top_users_by_cost()
    assert rollups_rebuild().is_consistent


@pytest.mark.django_db
def test_the_plan_samples_the_datasets_users_models_and_sessions():
    users = UserFactory.create_batch(5)
    model = AIModelFactory(prompt_price=Decimal("0.000000075"), completion_price=None)
    session = ChatSessionFactory(user=users[0])

    plan = write_plan(rng=random.Random(1))

    assert sorted(plan.user_ids) == sorted(user.pk for user in [*users, session.chatbot.owner])
    assert (model.pk, Decimal("0.000000075"), Decimal(0)) in plan.models
    assert plan.sessions == [(session.pk, users[0].pk)]


def _trigger_states() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [OpenRouterRequestCost._meta.db_table],
        )
        return dict(cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="Only PostgreSQL can disable a trigger.")
@pytest.mark.django_db
def test_the_writes_without_rollups_keep_no_rollup_and_leave_the_dataset_and_its_rollups_as_they_were():
    users, model = UserFactory.create_batch(3), AIModelFactory()
    for user in users:
        RequestCostFactory(user=user, ai_model=model, cost_usd=Decimal("0.25"))
    # A row an interrupted run wrote with the triggers off: it never entered the rollups.
    with request_rollup_triggers_off():
        RequestCostFactory(user=users[0], ai_model=model, generation_id=f"{BARE_WRITE_PREFIX}20260101T000000-dead-i1")
    assert selectors.top_users_by_cost() != raw_selectors.top_users_by_cost()  # its request is counted raw only
    before = list(OpenRouterRequestCost.objects.exclude(generation_id__startswith=BARE_WRITE_PREFIX).values())
    rollups_before = selectors.top_users_by_cost()
    lines: list[str] = []

    series, cleanup = measure_writes(
        options=WriteOptions(seconds=0, import_rows=300, without_rollups=True), echo=lines.append
    )

    assert [(s.target, s.rows, s.error) for s in series] == [("import", 300, ""), ("import-without-rollups", 300, "")]
    assert cleanup["leftovers_deleted"] == 1
    assert (cleanup["rows_deleted"], cleanup["bare_rows_deleted"]) == (300, 300)
    assert list(OpenRouterRequestCost.objects.values()) == before
    # The 300 rows written with the triggers off were in no rollup, and deleting them took nothing out.
    assert selectors.top_users_by_cost() == rollups_before == raw_selectors.top_users_by_cost()
    assert rollups_rebuild().is_consistent
    assert set(_trigger_states().values()) == {"O"}  # every rollup trigger enabled again


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite cannot disable a trigger; PostgreSQL is above.")
@pytest.mark.django_db
def test_the_writes_without_rollups_are_skipped_on_sqlite_with_a_message():
    UserFactory(), AIModelFactory()
    lines: list[str] = []

    series, _ = measure_writes(options=WriteOptions(seconds=0, import_rows=10, without_rollups=True), echo=lines.append)

    assert [s.target for s in series] == ["import"]
    assert any("PostgreSQL only" in line for line in lines)
