"""Tests of chatbot.services.request_costs_import: many requests at once, all or none."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import ChatSession, OpenRouterRequestCost
from chatbot.services import RequestCostImportResult, RequestCostInput, request_cost_record, request_costs_import
from core.factories import AIModelFactory, ChatbotFactory, ChatSessionFactory, UserFactory
from reports import raw_selectors, selectors
from reports.periods import ALL_TIME, Period
from reports.raw_selectors import ModelUsageRow, UserCostRow
from reports.rollups import rollups_rebuild

pytestmark = pytest.mark.django_db

MARCH_1 = datetime(2026, 3, 1, 10, tzinfo=UTC)
REPORTS = (
    "top_users_by_cost",
    "top_models_by_usage",
    "top_free_models",
    "top_chatbots_by_sessions",
    "top_users_by_free_usage",
    "usage_headline",
    "chatbot_unit_economics",
    "daily_usage",
)


def assert_rollups_match_the_raw_rows(*periods: Period) -> None:
    """Assert the reports read from the rollups equal the raw aggregation, and a rebuild finds nothing to repair."""
    for period in (ALL_TIME, *periods):
        for name in REPORTS:
            assert getattr(selectors, name)(period=period) == getattr(raw_selectors, name)(period=period), name
    rebuild = rollups_rebuild()
    assert rebuild.is_consistent, rebuild.differences


def row(user: User, ai_model: AIModel, **overrides) -> RequestCostInput:
    """Return a row with plausible figures, overridden by the test."""
    values = {
        "user_id": user.pk,
        "ai_model_id": ai_model.pk,
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "cost_usd": "0.000132",
        "created_at": MARCH_1,
    }
    values.update(overrides)
    return RequestCostInput(**values)


def error_messages(excinfo: pytest.ExceptionInfo) -> list[str]:
    return excinfo.value.messages


@pytest.fixture
def alice() -> User:
    return UserFactory(username="alice")


@pytest.fixture
def bob() -> User:
    return UserFactory(username="bob")


@pytest.fixture
def paid() -> AIModel:
    return AIModelFactory(openrouter_id="openai/gpt-4o", name="GPT-4o")


@pytest.fixture
def free() -> AIModel:
    return AIModelFactory(openrouter_id="meta-llama/llama-3.3-70b-instruct:free", name="Llama", free=True)


def test_imports_every_row_with_the_hand_computed_figures(alice: User, bob: User, paid: AIModel, free: AIModel):
    session = ChatSessionFactory(user=alice, chatbot=ChatbotFactory(ai_model=paid), created_at=MARCH_1)
    new_york = timezone(timedelta(hours=-5))
    rows = [
        row(
            alice,
            paid,
            session_id=session.pk,
            generation_id="gen-1",
            prompt_tokens=1000,
            completion_tokens=500,
            cost_usd="0.0075",
        ),
        # 23:30 in New York on 1 March is 04:30 UTC on 2 March.
        row(
            alice,
            paid,
            generation_id="gen-2",
            prompt_tokens=200,
            completion_tokens=100,
            cost_usd=Decimal("0.0015"),
            created_at=datetime(2026, 3, 1, 23, 30, tzinfo=new_york),
        ),
        row(bob, free, prompt_tokens=50, completion_tokens=50, cost_usd=0),
        row(bob, paid, generation_id="gen-4", prompt_tokens=10, completion_tokens=0, cost_usd="0.1"),
        row(bob, paid, generation_id="gen-5", prompt_tokens=10, completion_tokens=0, cost_usd="0.2"),
    ]

    result = request_costs_import(rows=rows)

    assert result == RequestCostImportResult(inserted=5, skipped=0)
    stored = list(
        OpenRouterRequestCost.objects.order_by("id").values_list(
            "user__username", "session_id", "generation_id", "total_tokens", "cost_usd", "cost_status", "created_at"
        )
    )
    assert stored == [
        ("alice", session.pk, "gen-1", 1500, Decimal("0.0075"), "billed", MARCH_1),
        ("alice", None, "gen-2", 300, Decimal("0.0015"), "billed", datetime(2026, 3, 2, 4, 30, tzinfo=UTC)),
        ("bob", None, None, 100, Decimal("0"), "billed", MARCH_1),
        ("bob", None, "gen-4", 10, Decimal("0.1"), "billed", MARCH_1),
        ("bob", None, "gen-5", 10, Decimal("0.2"), "billed", MARCH_1),
    ]
    # bob: 0.1 + 0.2 = 0.3 exactly (+ 0 for the free request), 10 + 10 + 100 tokens;
    # alice: 0.0075 + 0.0015 = 0.009, 1500 + 300 tokens.
    assert selectors.top_users_by_cost() == [
        UserCostRow(user_id=bob.pk, username="bob", total_cost_usd=Decimal("0.3"), total_tokens=120, request_count=3),
        UserCostRow(
            user_id=alice.pk, username="alice", total_cost_usd=Decimal("0.009"), total_tokens=1800, request_count=2
        ),
    ]
    assert selectors.top_models_by_usage() == [
        ModelUsageRow(
            model_id=paid.pk,
            openrouter_id="openai/gpt-4o",
            name="GPT-4o",
            usage_count=4,
            total_tokens=1820,  # 1500 + 300 + 10 + 10
            total_cost_usd=Decimal("0.309"),  # 0.0075 + 0.0015 + 0.1 + 0.2
        ),
        ModelUsageRow(
            model_id=free.pk,
            openrouter_id=free.openrouter_id,
            name="Llama",
            usage_count=1,
            total_tokens=100,
            total_cost_usd=Decimal("0"),
        ),
    ]
    march_2 = Period(since=date(2026, 3, 2), until=date(2026, 3, 2))
    assert selectors.usage_headline(period=march_2).request_count == 1  # gen-2, by its UTC day
    assert_rollups_match_the_raw_rows(march_2)


def test_a_tenth_plus_two_tenths_and_single_picodollars_stay_exact(alice: User, paid: AIModel):
    rows = [row(alice, paid, cost_usd=cost) for cost in ("0.1", "0.2", "0.000000000001", Decimal("1E-12"))]

    request_costs_import(rows=rows)

    (top,) = selectors.top_users_by_cost()
    assert top.total_cost_usd == Decimal("0.300000000002")  # 0.1 + 0.2 + 2 x 10^-12
    assert_rollups_match_the_raw_rows()


def test_importing_the_same_rows_again_stores_nothing_more(alice: User, bob: User, paid: AIModel):
    rows = [row(user, paid, generation_id=f"gen-{user.username}-{n}") for user in (alice, bob) for n in range(3)]
    request_costs_import(rows=rows)
    before = raw_selectors.top_users_by_cost()

    again = request_costs_import(rows=rows)

    assert again == RequestCostImportResult(inserted=0, skipped=6)
    assert OpenRouterRequestCost.objects.count() == 6
    assert selectors.top_users_by_cost() == before
    assert_rollups_match_the_raw_rows()


def test_a_generation_id_stored_already_or_repeated_keeps_the_first_figures(alice: User, paid: AIModel):
    recorded = request_cost_record(
        user=alice, ai_model=paid, prompt_tokens=1, completion_tokens=0, cost_usd="0.5", generation_id="gen-known"
    )
    rows = [
        row(alice, paid, generation_id="gen-known", prompt_tokens=999),
        row(alice, paid, generation_id="gen-twice", prompt_tokens=7, cost_usd="0.7"),
        row(alice, paid, generation_id="gen-twice", prompt_tokens=8, cost_usd="0.8"),
        row(alice, paid, generation_id=None),
        row(alice, paid, generation_id=None),
    ]

    result = request_costs_import(rows=rows)

    assert result == RequestCostImportResult(inserted=3, skipped=2)
    assert OpenRouterRequestCost.objects.get(generation_id="gen-known").pk == recorded.pk
    assert OpenRouterRequestCost.objects.get(generation_id="gen-known").prompt_tokens == 1
    assert OpenRouterRequestCost.objects.get(generation_id="gen-twice").cost_usd == Decimal("0.7")
    assert OpenRouterRequestCost.objects.filter(generation_id__isnull=True).count() == 2
    assert_rollups_match_the_raw_rows()


def test_a_batch_holding_a_stored_generation_id_skips_it_and_the_other_batches_go_straight_in(
    alice: User, bob: User, paid: AIModel, monkeypatch
):
    monkeypatch.setattr("chatbot.services.IMPORT_BATCH_ROWS", 2)
    request_cost_record(
        user=alice, ai_model=paid, prompt_tokens=1, completion_tokens=0, cost_usd="0.5", generation_id="gen-stored"
    )
    rows = [
        row(alice, paid, generation_id="gen-a", prompt_tokens=10, cost_usd="0.1"),
        row(bob, paid, generation_id="gen-b", prompt_tokens=20, cost_usd="0.2"),
        # The second batch: one row stored already, one new.
        row(bob, paid, generation_id="gen-stored", prompt_tokens=999, cost_usd="9"),
        row(alice, paid, generation_id="gen-c", prompt_tokens=30, cost_usd="0.3"),
        row(bob, paid, generation_id=None, prompt_tokens=40, cost_usd="0.4"),
    ]

    with CaptureQueriesContext(connection) as captured:
        result = request_costs_import(rows=rows)

    assert result == RequestCostImportResult(inserted=4, skipped=1)
    stored = OpenRouterRequestCost.objects.get(generation_id="gen-stored")
    assert (stored.user, stored.prompt_tokens, stored.cost_usd) == (alice, 1, Decimal("0.5"))
    assert sorted(
        OpenRouterRequestCost.objects.exclude(generation_id="gen-stored").values_list("prompt_tokens", flat=True)
    ) == [10, 20, 30, 40]
    # Alice: 0.5 + 0.1 + 0.3; Bob: 0.2 + 0.4.
    assert [(r.user_id, r.total_cost_usd) for r in selectors.top_users_by_cost()] == [
        (alice.pk, Decimal("0.9")),
        (bob.pk, Decimal("0.6")),
    ]
    assert_rollups_match_the_raw_rows()
    if connection.vendor == "postgresql":
        copied_into = [
            query["sql"].split()[1] for query in captured.captured_queries if query["sql"].startswith("COPY")
        ]
        table = connection.ops.quote_name(OpenRouterRequestCost._meta.db_table)
        # The second batch's COPY fails on the stored generation_id, then goes through the temporary table.
        assert copied_into == [table, table, "request_cost_import", table]


def test_unknown_costs_are_imported_for_reconciliation(alice: User, paid: AIModel):
    unknown = OpenRouterRequestCost.CostStatus.UNKNOWN

    request_costs_import(rows=[row(alice, paid, cost_usd=0, generation_id="gen-late", cost_status=unknown)])

    assert OpenRouterRequestCost.objects.get().cost_status == "unknown"


def test_rows_without_created_at_are_stamped_with_the_import_time(alice: User, paid: AIModel):
    before = datetime.now(UTC)

    request_costs_import(rows=[row(alice, paid, created_at=None), row(alice, paid, created_at=None)])

    stamps = set(OpenRouterRequestCost.objects.values_list("created_at", flat=True))
    assert len(stamps) == 1
    assert before <= stamps.pop() <= datetime.now(UTC)


def test_no_rows_is_an_empty_import():
    assert request_costs_import(rows=[]) == RequestCostImportResult(inserted=0, skipped=0)
    assert request_costs_import(rows=iter(())) == RequestCostImportResult(inserted=0, skipped=0)


# --- Bad rows: named, and nothing stored -----------------------------------------------------------


def test_bad_rows_are_named_and_nothing_is_stored(alice: User, bob: User, paid: AIModel):
    session_of_bob = ChatSessionFactory(user=bob)
    rows = [
        row(alice, paid, generation_id="gen-fine"),
        row(alice, paid, cost_usd=0.1),
        row(alice, paid, prompt_tokens=-1, cost_usd="-0.5"),
        row(alice, paid, created_at=datetime(2026, 3, 1, 12)),
        row(alice, paid, session_id=session_of_bob.pk),
        row(alice, paid, generation_id="g" * 256),
        row(alice, paid, cost_status="refunded"),
        row(alice, paid, prompt_tokens=2**63),
    ]
    largest = connection.ops.integer_field_range("PositiveIntegerField")[1]

    with pytest.raises(ValidationError) as excinfo:
        request_costs_import(rows=rows)

    assert error_messages(excinfo) == [
        "7 of 8 rows are invalid; nothing was imported.",
        "Row 2: cost_usd: Cost must be a Decimal, str or int, not float.",
        "Row 3: prompt_tokens: prompt_tokens cannot be negative.",
        "Row 3: cost_usd: Cost cannot be negative.",
        "Row 4: created_at: created_at must be timezone-aware.",
        "Row 5: session_id: The session must be a saved session of the same user.",
        "Row 6: generation_id: Ensure this value has at most 255 characters (it has 256).",
        "Row 7: cost_status: cost_status must be one of billed, unknown, reconciled.",
        # 2**31 - 1 on PostgreSQL (integer), 2**63 - 1 on SQLite.
        f"Row 8: prompt_tokens: Ensure this value is less than or equal to {largest}.",
        f"Row 8: total_tokens: Ensure this value is less than or equal to {largest}.",
    ]
    assert not OpenRouterRequestCost.objects.exists()
    assert_rollups_match_the_raw_rows()


def test_unknown_references_are_named_with_the_rows_other_errors(alice: User, paid: AIModel):
    gone_user, gone_model = UserFactory(), AIModelFactory()
    gone_session = ChatSessionFactory(user=alice)
    ids = gone_user.pk, gone_model.pk, gone_session.pk
    User.objects.filter(pk=gone_user.pk).delete()
    AIModel.objects.filter(pk=gone_model.pk).delete()
    ChatSession.objects.filter(pk=gone_session.pk).delete()
    rows = [
        RequestCostInput(
            user_id=ids[0], ai_model_id=paid.pk, prompt_tokens=1, completion_tokens=1, cost_usd="-1", created_at=MARCH_1
        ),
        row(alice, paid, ai_model_id=ids[1]),
        row(alice, paid, session_id=ids[2]),
        row(alice, paid, user_id="1", ai_model_id=True),
        "not a row",
    ]

    with pytest.raises(ValidationError) as excinfo:
        request_costs_import(rows=rows)

    assert error_messages(excinfo) == [
        "5 of 5 rows are invalid; nothing was imported.",
        "Row 1: cost_usd: Cost cannot be negative.",
        "Row 1: user_id: Unknown user: it must be a saved user.",
        "Row 2: ai_model_id: Unknown AI model: it must be a saved AI model.",
        f"Row 3: session_id: chat session instance with id {ids[2]} is not a valid choice.",
        "Row 4: user_id: Unknown user: it must be a saved user.",
        "Row 4: ai_model_id: Unknown AI model: it must be a saved AI model.",
        "Row 5: row: Expected a RequestCostInput, not str.",
    ]
    assert not OpenRouterRequestCost.objects.exists()


def test_a_bad_row_in_a_later_batch_rolls_the_earlier_batches_back(alice: User, paid: AIModel, monkeypatch):
    monkeypatch.setattr("chatbot.services.IMPORT_BATCH_ROWS", 10)
    rows = [row(alice, paid, generation_id=f"gen-{n}") for n in range(35)]
    rows[31] = row(alice, paid, cost_usd="lots")

    with pytest.raises(ValidationError) as excinfo:
        request_costs_import(rows=rows)

    assert error_messages(excinfo) == [
        "1 of 35 rows are invalid; nothing was imported.",
        "Row 32: cost_usd: 'lots' is not a number.",
    ]
    assert not OpenRouterRequestCost.objects.exists()
    assert_rollups_match_the_raw_rows()


def test_past_twenty_invalid_rows_the_rest_are_counted(alice: User, paid: AIModel, monkeypatch):
    monkeypatch.setattr("chatbot.services.IMPORT_BATCH_ROWS", 7)
    rows = [row(alice, paid, completion_tokens=-n) for n in range(1, 31)]

    with pytest.raises(ValidationError) as excinfo:
        request_costs_import(rows=rows)

    messages = error_messages(excinfo)
    assert messages[0] == "30 of 30 rows are invalid; nothing was imported."
    negative = "completion_tokens: completion_tokens cannot be negative."
    assert messages[1:21] == [f"Row {n}: {negative}" for n in range(1, 21)]
    assert messages[21:] == ["...and 10 more invalid rows."]


def test_in_a_callers_transaction_a_failed_import_leaves_it_usable(alice: User, paid: AIModel):
    with transaction.atomic():
        request_costs_import(rows=[row(alice, paid, generation_id="gen-first")])
        with pytest.raises(ValidationError):
            request_costs_import(rows=[row(alice, paid, cost_usd="-1")])
        # A second import in the same transaction (its temporary table is gone again).
        result = request_costs_import(rows=[row(alice, paid, generation_id="gen-second")])

    assert result.inserted == 1
    assert sorted(OpenRouterRequestCost.objects.values_list("generation_id", flat=True)) == ["gen-first", "gen-second"]
    assert_rollups_match_the_raw_rows()


def test_quoted_and_formula_like_text_is_stored_as_written(alice: User, paid: AIModel):
    odd = ['=HYPERLINK("http://example.com","x")', "tab\there", "line\nbreak", "back\\slash", "quote'\"", "ünï"]

    request_costs_import(rows=[row(alice, paid, generation_id=text) for text in odd])

    assert sorted(OpenRouterRequestCost.objects.values_list("generation_id", flat=True)) == sorted(odd)


@pytest.mark.django_db(transaction=True)
def test_an_import_takes_a_few_queries_however_many_rows(django_assert_max_num_queries, monkeypatch):
    users, models = UserFactory.create_batch(3), AIModelFactory.create_batch(2)
    sessions = [ChatSessionFactory(user=user) for user in users]
    rows = [
        row(users[n % 3], models[n % 2], session_id=sessions[n % 3].pk if n % 4 == 0 else None, generation_id=f"g{n}")
        for n in range(2_000)
    ]

    # BEGIN; the users, the models and the sessions; the write (on PostgreSQL a temporary table,
    # COPY, one INSERT and DROP; on SQLite executemany); COMMIT.
    with django_assert_max_num_queries(9):
        result = request_costs_import(rows=rows)

    assert result.inserted == 2_000
    assert_rollups_match_the_raw_rows()
