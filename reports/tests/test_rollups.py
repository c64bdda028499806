"""The rollup tables: what each write path adds, squashing, rebuilding, and the time zone of a day."""

from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, OpenRouterRequestCost
from chatbot.openrouter import Generation, OpenRouterClient
from chatbot.services import chat_turn_send, request_cost_reconcile, request_cost_record
from chatbot.tests.fake_openrouter import FakeOpenRouter, FakeResponse, chat_completion_body
from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from reports import raw_selectors, selectors
from reports.models import (
    ActiveUserHistogram,
    ChatbotDailyUsage,
    ModelDailyUsage,
    UserDailyUsage,
    UserTotalUsage,
    UserYearlyActivity,
)
from reports.periods import ALL_TIME, Period
from reports.raw_selectors import ChatbotEconomicsRow, ChatbotSessionsRow, UserCostRow, UserFreeUsageRow
from reports.rollups import (
    TRIGGERS,
    rollup_triggers_install,
    rollup_triggers_missing,
    rollup_triggers_time_zone,
    rollup_triggers_uninstall,
    rollups_after_migrate,
    rollups_rebuild,
    rollups_squash,
)

pytestmark = pytest.mark.django_db

NEW_YORK = "America/New_York"
# 03:30 UTC on 1 February is 22:30 on 31 January in New York (EST, UTC-5).
LATE_JANUARY_IN_NEW_YORK = datetime(2026, 2, 1, 3, 30, tzinfo=UTC)


@pytest.fixture
def new_york(settings):
    """Run in New York time, with the rollup triggers installed for it (rolled back with the test)."""
    settings.TIME_ZONE = NEW_YORK
    rollups_rebuild()


def rollup(model, **filters) -> dict:
    """Return the sums of a rollup table's rows matching ``filters``, as a reader would group them."""
    fields = [f.name for f in model._meta.concrete_fields if f.name.endswith(("_count", "_tokens", "_usd"))]
    return model.objects.filter(**filters).aggregate(**{name: Sum(name) for name in fields})


def assert_reports_equal_raw() -> None:
    for period in (ALL_TIME, Period(since=date(2026, 1, 31), until=date(2026, 1, 31))):
        for name in ("top_users_by_cost", "top_models_by_usage", "top_free_models", "top_chatbots_by_sessions"):
            assert getattr(selectors, name)(period=period) == getattr(raw_selectors, name)(period=period), name
        for name in ("top_users_by_free_usage", "usage_headline", "chatbot_unit_economics", "daily_usage"):
            assert getattr(selectors, name)(period=period) == getattr(raw_selectors, name)(period=period), name


def test_a_recorded_request_counts_on_its_local_day_for_its_user_model_and_chatbot(new_york):
    user, model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user, created_at=LATE_JANUARY_IN_NEW_YORK)
    request_cost_record(
        user=user,
        ai_model=model,
        session=session,
        prompt_tokens=100,
        completion_tokens=23,
        cost_usd="0.000000000007",
        created_at=LATE_JANUARY_IN_NEW_YORK,
    )

    january_31 = date(2026, 1, 31)
    assert rollup(UserDailyUsage, day=january_31, user=user, is_free=False) == {
        "request_count": 1,
        "total_tokens": 123,  # 100 + 23
        "total_cost_usd": Decimal("0.000000000007"),
    }
    assert rollup(ModelDailyUsage, day=january_31, ai_model=model)["request_count"] == 1
    assert rollup(ChatbotDailyUsage, day=january_31, chatbot=session.chatbot) == {
        "session_count": 1,
        "message_count": 0,
        "request_count": 1,
        "free_request_count": 0,
        "total_cost_usd": Decimal("0.000000000007"),
    }
    # Nothing on 1 February, the UTC date of the same instant.
    assert not UserDailyUsage.objects.filter(day=date(2026, 2, 1)).exists()
    assert selectors.top_users_by_cost(period=Period(since=january_31, until=january_31)) == [
        UserCostRow(
            user_id=user.pk,
            username=user.username,
            total_cost_usd=Decimal("0.000000000007"),
            total_tokens=123,
            request_count=1,
        )
    ]


def test_a_chat_turn_adds_its_two_messages_and_its_request(settings):
    session = ChatSessionFactory(chatbot__ai_model__openrouter_id="vendor/model")
    body = chat_completion_body(
        generation_id="gen-turn",
        model="vendor/model",
        content="Hi!",
        prompt_tokens=31,
        completion_tokens=8,
        cost=Decimal("0.000123456789"),
    )
    with FakeOpenRouter() as fake, OpenRouterClient(api_key="sk-or-v1-test", base_url=fake.base_url) as client:
        fake.enqueue_chat(FakeResponse(body=body))
        chat_turn_send(session=session, content="Hello", client=client)

    assert rollup(ChatbotDailyUsage, chatbot=session.chatbot) == {
        "session_count": 1,
        "message_count": 2,  # the user's message and the reply
        "request_count": 1,
        "free_request_count": 0,
        "total_cost_usd": Decimal("0.000123456789"),
    }
    assert rollup(UserDailyUsage, user=session.user)["total_tokens"] == 39  # 31 + 8
    assert_reports_equal_raw()


def test_reconciling_an_unknown_cost_updates_the_rollups():
    request = request_cost_record(
        user=UserFactory(),
        ai_model=AIModelFactory(),
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0,
        generation_id="gen-late",
        cost_status=OpenRouterRequestCost.CostStatus.UNKNOWN,
    )
    assert rollup(ModelDailyUsage) == {"request_count": 1, "total_tokens": 0, "total_cost_usd": Decimal(0)}

    generation = Generation(
        id="gen-late", model=None, total_cost=Decimal("0.000250000001"), tokens_prompt=40, tokens_completion=2
    )
    request_cost_reconcile(request_cost=request, generation=generation)

    # Still one request; its figures replaced: 40 + 2 tokens, the reconciled cost.
    assert rollup(ModelDailyUsage) == {
        "request_count": 1,
        "total_tokens": 42,
        "total_cost_usd": Decimal("0.000250000001"),
    }
    assert rollup(UserDailyUsage) == {
        "request_count": 1,
        "total_tokens": 42,
        "total_cost_usd": Decimal("0.000250000001"),
    }


def test_a_bulk_import_of_a_thousand_requests_sums_exactly():
    user, model = UserFactory(), AIModelFactory()
    at = datetime(2026, 1, 31, 12, tzinfo=UTC)
    OpenRouterRequestCost.objects.bulk_create(
        OpenRouterRequestCost(
            user=user,
            ai_model=model,
            prompt_tokens=10,
            completion_tokens=5,
            total_tokens=15,
            cost_usd=Decimal("0.000000123"),
            created_at=at,
        )
        for _ in range(1000)
    )

    # 1000 x 0.000000123 = 0.000123 and 1000 x 15 = 15000, in one delta row per table on
    # PostgreSQL (statement-level triggers) and one per request on SQLite (row-level).
    expected = {"request_count": 1000, "total_tokens": 15000, "total_cost_usd": Decimal("0.000123")}
    assert rollup(UserDailyUsage) == expected
    assert rollup(ModelDailyUsage) == expected
    assert ModelDailyUsage.objects.count() == (1 if connection.vendor == "postgresql" else 1000)


def test_flipping_a_model_to_free_moves_its_requests_to_the_free_figures():
    user, model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user)
    RequestCostFactory(user=user, ai_model=model, session=session, prompt_tokens=7, completion_tokens=0)
    RequestCostFactory(user=user, ai_model=model, prompt_tokens=3, completion_tokens=0)
    assert selectors.top_users_by_free_usage() == []

    model.is_free = True
    model.save()

    # Both requests (7 + 3 = 10 tokens) are free now; the one in a session counts as the chatbot's free request.
    assert selectors.top_users_by_free_usage() == [
        UserFreeUsageRow(user_id=user.pk, username=user.username, total_tokens=10, request_count=2)
    ]
    assert rollup(ChatbotDailyUsage, chatbot=session.chatbot)["free_request_count"] == 1

    AIModel.objects.filter(pk=model.pk).update(is_free=False)

    assert selectors.top_users_by_free_usage() == []
    assert rollup(ChatbotDailyUsage, chatbot=session.chatbot)["free_request_count"] == 0
    assert rollup(UserDailyUsage, is_free=False)["request_count"] == 2


def test_moving_a_session_to_another_chatbot_moves_its_messages_and_requests():
    session = ChatSessionFactory()
    ChatMessageFactory.create_batch(3, session=session)
    RequestCostFactory(user=session.user, session=session, cost_usd=Decimal("0.5"))
    other = ChatbotFactory()

    session.chatbot = other
    session.save()

    assert rollup(ChatbotDailyUsage, chatbot=session.chatbot_id) == {
        "session_count": 1,
        "message_count": 3,
        "request_count": 1,
        "free_request_count": 0,
        "total_cost_usd": Decimal("0.5"),
    }
    assert selectors.top_chatbots_by_sessions() == [
        ChatbotSessionsRow(chatbot_id=other.pk, name=other.name, session_count=1, message_count=3)
    ]


def test_deleting_a_chatbot_drops_it_from_the_reports_but_keeps_its_requests_for_users_and_models():
    session = ChatSessionFactory()
    ChatMessageFactory(session=session)
    RequestCostFactory(user=session.user, session=session, cost_usd=Decimal("0.25"))

    # Django sets the request's session to NULL, deletes the message, the session, the chatbot.
    session.chatbot.delete()

    assert rollup(ChatbotDailyUsage) == {
        "session_count": 0,
        "message_count": 0,
        "request_count": 0,
        "free_request_count": 0,
        "total_cost_usd": Decimal(0),
    }
    assert selectors.top_chatbots_by_sessions() == []
    assert selectors.chatbot_unit_economics() == []
    assert rollup(UserDailyUsage)["total_cost_usd"] == Decimal("0.25")
    assert_reports_equal_raw()


def test_deleting_a_user_is_not_blocked_by_rollup_rows_and_removes_them_from_the_reports():
    user = UserFactory()
    RequestCostFactory(user=user)
    ChatSessionFactory(user=user)
    OpenRouterRequestCost.objects.filter(user=user).delete()

    user.delete()

    assert selectors.top_users_by_cost() == []
    assert selectors.top_chatbots_by_sessions() == []
    assert selectors.usage_headline().active_users == 0


def test_all_time_active_users_add_deltas_to_squashed_rows():
    ann, bob, cid, dan = (UserFactory(username=name) for name in ("ann", "bob", "cid", "dan"))
    model = AIModelFactory()
    anns = RequestCostFactory.create_batch(2, user=ann, ai_model=model)
    RequestCostFactory(user=bob, ai_model=model)
    RequestCostFactory(user=dan, ai_model=model)
    rollups_squash()
    # After the squash: ann's requests deleted (deltas sum her row to zero), bob's second request
    # and cid's first are deltas, dan has his squashed row alone.
    OpenRouterRequestCost.objects.filter(pk__in=[request.pk for request in anns]).delete()
    RequestCostFactory(user=bob, ai_model=model)
    RequestCostFactory(user=cid, ai_model=model)
    # (SQLite's row triggers append a delta per row, PostgreSQL's one per statement and user.)
    rows = UserTotalUsage.objects.values_list("user__username", "is_squashed").annotate(requests=Sum("request_count"))
    assert sorted(rows) == [
        ("ann", False, -2),
        ("ann", True, 2),
        ("bob", False, 1),
        ("bob", True, 1),
        ("cid", False, 1),
        ("dan", True, 1),
    ]

    # bob, cid and dan; bob once.
    assert selectors.usage_headline().active_users == 3
    assert raw_selectors.usage_headline().active_users == 3


def test_a_chatbot_whose_requests_cost_nothing_ranks_before_one_without_requests():
    # As the raw report: no requests means no cost (last), not a cost of 0, whatever the sessions.
    with_sessions = ChatbotFactory()
    ChatSessionFactory.create_batch(2, chatbot=with_sessions)
    free = ChatbotFactory(ai_model=AIModelFactory(free=True))
    session = ChatSessionFactory(chatbot=free)
    RequestCostFactory(user=session.user, session=session, ai_model=free.ai_model, cost_usd=Decimal(0))

    rows = selectors.chatbot_unit_economics()

    assert rows == raw_selectors.chatbot_unit_economics()
    assert rows == [
        ChatbotEconomicsRow(
            chatbot_id=free.pk,
            name=free.name,
            session_count=1,
            message_count=0,
            request_count=1,
            free_request_count=1,
            total_cost_usd=Decimal(0),
        ),
        ChatbotEconomicsRow(
            chatbot_id=with_sessions.pk,
            name=with_sessions.name,
            session_count=2,
            message_count=0,
            request_count=0,
            free_request_count=0,
            total_cost_usd=Decimal(0),
        ),
    ]


def test_squash_merges_each_keys_rows_and_drops_keys_that_sum_to_zero():
    user, model = UserFactory(), AIModelFactory()
    at = datetime(2026, 1, 31, 12, tzinfo=UTC)
    for cost in ("0.1", "0.2", "0.3"):
        request_cost_record(
            user=user, ai_model=model, prompt_tokens=1, completion_tokens=0, cost_usd=cost, created_at=at
        )
    # Written and deleted again: a +1 and a -1 delta on 30 January.
    RequestCostFactory(user=user, ai_model=model, created_at=datetime(2026, 1, 30, 12, tzinfo=UTC)).delete()
    assert UserDailyUsage.objects.count() == 5

    result = rollups_squash()

    # Per day table: the 3 deltas of the 31st become 1 row, the 2 of the 30th none; the user's
    # all-time row merges all 5 (+1 +1 +1 +1 -1) into 1.
    # The platform's per-day table too; no session, so nothing for chatbots.
    assert result.rows_merged == {
        "reports_userdailyusage": 5,
        "reports_modeldailyusage": 5,
        "reports_chatbotdailyusage": 0,
        "reports_usertotalusage": 5,
        "reports_modeltotalusage": 5,
        "reports_chatbottotalusage": 0,
        "reports_platformdailyusage": 5,
    }
    assert result.rows_written == {
        "reports_userdailyusage": 1,
        "reports_modeldailyusage": 1,
        "reports_chatbotdailyusage": 0,
        "reports_usertotalusage": 1,
        "reports_modeltotalusage": 1,
        "reports_chatbottotalusage": 0,
        "reports_platformdailyusage": 1,
    }
    assert list(UserDailyUsage.objects.values_list("day", "request_count", "total_cost_usd", "is_squashed")) == [
        (date(2026, 1, 31), 3, Decimal("0.6"), True)  # 0.1 + 0.2 + 0.3
    ]
    assert list(
        UserTotalUsage.objects.values_list(
            "user", "request_count", "total_tokens", "total_cost_usd", "free_request_count", "is_squashed"
        )
    ) == [(user.pk, 3, 3, Decimal("0.6"), 0, True)]
    assert rollups_squash().total_merged == 0


def test_squash_rollups_prints_what_it_merged():
    RequestCostFactory.create_batch(2, user=UserFactory(), ai_model=AIModelFactory())
    out = StringIO()

    call_command("squash_rollups", stdout=out)

    # Two requests of one user and model on one day: 2 rows each in the user and model tables,
    # their all-time tables and the platform's per-day table.
    assert out.getvalue().splitlines() == [
        "reports_userdailyusage: merged 2 rows into 1",
        "reports_modeldailyusage: merged 2 rows into 1",
        "reports_chatbotdailyusage: merged 0 rows into 0",
        "reports_usertotalusage: merged 2 rows into 1",
        "reports_modeltotalusage: merged 2 rows into 1",
        "reports_chatbottotalusage: merged 0 rows into 0",
        "reports_platformdailyusage: merged 2 rows into 1",
        "Merged 10 rows in total.",
        # The user's first request of the day set a bit of the yearly activity.
        "Counted 1 yearly activity rows anew into the active-user histogram.",
    ]


def test_rebuild_rollups_repairs_a_tampered_table_and_reports_each_difference():
    user, model = UserFactory(), AIModelFactory()
    chatbot = ChatbotFactory(ai_model=model)
    for day in (1, 2):
        RequestCostFactory(
            user=user,
            ai_model=model,
            prompt_tokens=10,
            completion_tokens=0,
            cost_usd=Decimal("0.5"),
            created_at=datetime(2026, 3, day, 12, tzinfo=UTC),
        )
    rollups_squash()
    # Tamper: a wrong count, a missing row, a row for a day without usage, a wrong total.
    UserDailyUsage.objects.filter(day=date(2026, 3, 1)).update(request_count=7)
    UserTotalUsage.objects.update(total_cost_usd=Decimal("9"))
    UserYearlyActivity.objects.update(days_03=0b01)  # forgets 2 March
    ModelDailyUsage.objects.filter(day=date(2026, 3, 2)).delete()
    ChatbotDailyUsage.objects.create(
        day=date(2026, 3, 3),
        chatbot=chatbot,
        session_count=1,
        message_count=0,
        request_count=0,
        free_request_count=0,
        total_cost_usd=Decimal(0),
    )
    assert selectors.top_users_by_cost() != raw_selectors.top_users_by_cost()
    out = StringIO()

    call_command("rebuild_rollups", stdout=out)

    assert out.getvalue().splitlines() == [
        "reports_userdailyusage: repaired 0 missing, 1 wrong and 0 superfluous keys.",
        f"  changed (2026-03-01, {user.pk}, False): expected (1, 10, 0.500000000000), stored (7, 10, 0.500000000000)",
        "reports_modeldailyusage: repaired 1 missing, 0 wrong and 0 superfluous keys.",
        f"  added (2026-03-02, {model.pk}): expected (1, 10, 0.500000000000), stored nothing",
        "reports_chatbotdailyusage: repaired 0 missing, 0 wrong and 1 superfluous keys.",
        f"  removed (2026-03-03, {chatbot.pk}): expected nothing, stored (1, 0, 0, 0, 0.000000000000)",
        "reports_usertotalusage: repaired 0 missing, 1 wrong and 0 superfluous keys.",
        f"  changed ({user.pk}): expected (2, 20, 1.000000000000, 0, 0), stored (2, 20, 9.000000000000, 0, 0)",
        "reports_modeltotalusage: matches the raw tables.",
        "reports_chatbottotalusage: matches the raw tables.",
        "reports_platformdailyusage: matches the raw tables.",
        "reports_useryearlyactivity: repaired 0 missing, 1 wrong and 0 superfluous keys.",
        f"  changed ({user.pk}, 2026): expected (0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0), "
        "stored (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
        "reports_activeuserhistogram: matches the yearly activity it counts.",
        "Rebuilt the rollups from the raw tables.",
    ]
    assert selectors.top_users_by_cost() == raw_selectors.top_users_by_cost()
    march_1 = Period(since=date(2026, 3, 1), until=date(2026, 3, 1))
    assert selectors.top_users_by_cost(period=march_1) == raw_selectors.top_users_by_cost(period=march_1)
    assert selectors.top_models_by_usage() == raw_selectors.top_models_by_usage()
    assert selectors.top_chatbots_by_sessions() == raw_selectors.top_chatbots_by_sessions() == []

    out = StringIO()
    call_command("rebuild_rollups", stdout=out)
    assert out.getvalue().splitlines()[-1] == "The rollups matched the raw tables; nothing to repair."


def test_rebuild_rollups_after_a_time_zone_change_moves_the_rows_to_the_new_local_days(
    settings, rollups_keep_their_time_zone
):
    RequestCostFactory(created_at=LATE_JANUARY_IN_NEW_YORK)
    assert list(UserDailyUsage.objects.values_list("day", flat=True)) == [date(2026, 2, 1)]  # in UTC
    settings.TIME_ZONE = NEW_YORK
    out = StringIO()

    call_command("rebuild_rollups", stdout=out)

    assert out.getvalue().splitlines()[0] == f"Triggers now compute days in {NEW_YORK} (were: UTC)."
    assert rollup_triggers_time_zone(connection=connection) == NEW_YORK
    assert list(UserDailyUsage.objects.values_list("day", flat=True)) == [date(2026, 1, 31)]
    # The triggers follow: a new request at the same instant lands on 31 January too.
    RequestCostFactory(created_at=LATE_JANUARY_IN_NEW_YORK)
    assert set(UserDailyUsage.objects.values_list("day", flat=True)) == {date(2026, 1, 31)}


def test_after_migrate_puts_back_missing_triggers_and_counts_what_was_written_without_them():
    rollup_triggers_uninstall(connection=connection)
    RequestCostFactory(cost_usd=Decimal("0.75"))
    assert rollup_triggers_missing(connection=connection) == [spec.name for spec in TRIGGERS]
    assert not UserDailyUsage.objects.exists()

    rollups_after_migrate(using="default")

    assert rollup_triggers_missing(connection=connection) == []
    assert rollup(UserDailyUsage)["total_cost_usd"] == Decimal("0.75")


def test_after_migrate_clears_deltas_a_flush_left_behind():
    # On SQLite a flush deletes table by table in no set order: deltas can outlive their rows.
    UserDailyUsage.objects.create(
        day=date(2026, 1, 1), user_id=1, is_free=False, request_count=-1, total_tokens=0, total_cost_usd=0
    )

    rollups_after_migrate(using="default")

    assert not UserDailyUsage.objects.exists()


def test_installing_the_triggers_for_an_unknown_time_zone_fails_clearly():
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus_Mons'"):
        rollup_triggers_install(connection=connection, time_zone="Mars/Olympus_Mons")


def test_a_message_deleted_by_raw_sql_leaves_the_rollups():
    message = ChatMessageFactory()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ChatMessage._meta.db_table} WHERE id = %s", [message.pk])  # noqa: S608

    assert rollup(ChatbotDailyUsage)["message_count"] == 0
    assert rollup(ChatbotDailyUsage)["session_count"] == 1
    assert Chatbot.objects.count() == 1


# --- Yearly activity --------------------------------------------------------------------------


def activity() -> list[tuple]:
    """Return (username, year, {month: days bitmask} of the months with bits, is_exact) per row."""
    rows = UserYearlyActivity.objects.select_related("user")
    return sorted(
        (
            row.user.username,
            row.year,
            {month: getattr(row, f"days_{month:02}") for month in range(1, 13) if getattr(row, f"days_{month:02}")},
            row.is_exact,
        )
        for row in rows
    )


def active_users(since: date, until: date) -> int:
    period = Period(since=since, until=until)
    headline = selectors.usage_headline(period=period)
    assert headline == raw_selectors.usage_headline(period=period)
    return headline.active_users


def test_yearly_activity_sets_a_bit_per_local_day_with_requests(new_york):
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    model = AIModelFactory()
    # 31 January in New York, twice; 2 February; bob on 1 February (06:00 UTC, 01:00 there) and
    # on 31 December 2025 (04:00 UTC on 1 January is still 2025 there).
    for when in (LATE_JANUARY_IN_NEW_YORK, LATE_JANUARY_IN_NEW_YORK, datetime(2026, 2, 2, 15, tzinfo=UTC)):
        RequestCostFactory(user=ann, ai_model=model, created_at=when)
    RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 2, 1, 6, tzinfo=UTC))
    RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 1, 1, 4, tzinfo=UTC))

    assert activity() == [
        ("ann", 2026, {1: 1 << 30, 2: 1 << 1}, True),  # 31 January: bit 30; 2 February: bit 1
        ("bob", 2025, {12: 1 << 30}, True),
        ("bob", 2026, {2: 1 << 0}, True),
    ]
    assert active_users(date(2026, 1, 31), date(2026, 1, 31)) == 1
    assert active_users(date(2026, 2, 1), date(2026, 2, 1)) == 1
    assert active_users(date(2026, 1, 31), date(2026, 2, 28)) == 2
    assert active_users(date(2026, 2, 3), date(2026, 3, 31)) == 0
    # Across the new year: bob's two rows count once.
    assert active_users(date(2025, 12, 1), date(2026, 2, 28)) == 2
    assert active_users(date(2025, 12, 31), date(2026, 1, 30)) == 1


def test_a_deleted_or_moved_request_leaves_its_row_inexact_until_a_rebuild():
    ann, model = UserFactory(username="ann"), AIModelFactory()
    first = RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    second = RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 2, 12, tzinfo=UTC))
    RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 3, 12, tzinfo=UTC))

    first.delete()
    # Moved from the 2nd to the 10th: the 10th's bit is set, the 2nd's stays, and the row is inexact.
    OpenRouterRequestCost.objects.filter(pk=second.pk).update(created_at=datetime(2026, 3, 10, 12, tzinfo=UTC))

    assert activity() == [("ann", 2026, {3: 0b1000000111}, False)]
    # Read from the days' sums for an inexact row: the 1st and 2nd have no request any more.
    assert active_users(date(2026, 3, 1), date(2026, 3, 2)) == 0
    assert active_users(date(2026, 3, 2), date(2026, 3, 3)) == 1
    assert active_users(date(2026, 3, 10), date(2026, 3, 10)) == 1

    out = StringIO()
    call_command("rebuild_rollups", stdout=out)

    assert out.getvalue().splitlines()[-2:] == [
        "Recomputed 1 yearly activity rows left inexact by deletions.",
        "The rollups matched the raw tables; nothing to repair.",
    ]
    assert activity() == [("ann", 2026, {3: 0b1000000100}, True)]
    assert active_users(date(2026, 3, 1), date(2026, 3, 2)) == 0


def test_a_user_inexact_in_one_year_is_counted_once_by_periods_across_the_new_year():
    ann, bob, model = UserFactory(username="ann"), UserFactory(username="bob"), AIModelFactory()
    deleted = RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2025, 12, 30, 12, tzinfo=UTC))
    RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2025, 12, 31, 12, tzinfo=UTC))
    RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 1, 2, 12, tzinfo=UTC))
    RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 1, 2, 13, tzinfo=UTC))
    deleted.delete()

    assert activity() == [
        ("ann", 2025, {12: 1 << 29 | 1 << 30}, False),
        ("ann", 2026, {1: 1 << 1}, True),
        ("bob", 2026, {1: 1 << 1}, True),
    ]
    # ann's 2025 row is checked against the days' sums: the 30th has no request left.
    assert active_users(date(2025, 12, 30), date(2025, 12, 30)) == 0
    # ann has an inexact row and an exact one in the years this spans: she counts once, from the sums.
    assert active_users(date(2025, 12, 30), date(2026, 1, 2)) == 2
    assert active_users(date(2026, 1, 1), date(2026, 1, 31)) == 2
    # Both periods' active users come from one query that sees both years: 2 on 1-2 January, 1 before.
    period = Period(since=date(2026, 1, 1), until=date(2026, 1, 2))
    comparison = selectors.usage_comparison(period=period)
    assert comparison == raw_selectors.usage_comparison(period=period)
    assert [(row.current, row.previous) for row in comparison if row.key == "active_users"] == [(2, 1)]


def test_a_squash_recomputes_the_rows_deletions_left_inexact():
    ann, bob, model = UserFactory(username="ann"), UserFactory(username="bob"), AIModelFactory()
    first = RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 3, 12, tzinfo=UTC))
    only = RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 3, 2, 12, tzinfo=UTC))
    first.delete()
    only.delete()
    assert activity() == [("ann", 2026, {3: 0b101}, False), ("bob", 2026, {3: 0b10}, False)]
    out = StringIO()

    call_command("squash_rollups", stdout=out)

    # ann keeps the 3rd only; bob, left without requests, loses his row.
    assert out.getvalue().splitlines()[-2:] == [
        "Counted 2 yearly activity rows anew into the active-user histogram.",
        "Recomputed 2 yearly activity rows left inexact by deletions.",
    ]
    assert activity() == [("ann", 2026, {3: 0b100}, True)]
    assert active_users(date(2026, 3, 1), date(2026, 3, 2)) == 0
    assert active_users(date(2026, 3, 1), date(2026, 3, 3)) == 1
    assert rollups_squash().activity_rows_made_exact == 0


def test_a_rebuild_drops_the_row_of_a_user_left_without_requests():
    request = RequestCostFactory(created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    request.delete()
    assert [row[2:] for row in activity()] == [({3: 0b1}, False)]

    assert rollups_rebuild().activity_rows_made_exact == 1

    assert activity() == []


def test_a_cost_update_keeps_the_row_exact():
    request = RequestCostFactory(created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))

    OpenRouterRequestCost.objects.filter(pk=request.pk).update(cost_usd=Decimal("0.5"))

    assert [row[2:] for row in activity()] == [({3: 0b1}, True)]


def histogram() -> list[tuple[int, int, int, int]]:
    """Return the active-user histogram's rows: (year, day, previous day, users)."""
    return sorted(ActiveUserHistogram.objects.values_list("year", "day", "previous_day", "user_count"))


def test_the_histogram_counts_each_user_once_per_range_by_the_day_before_their_first_day_in_it():
    ann, bob, model = UserFactory(username="ann"), UserFactory(username="bob"), AIModelFactory()
    for user, days in ((ann, (1, 5, 31)), (bob, (3,))):
        for day in days:
            RequestCostFactory(user=user, ai_model=model, created_at=datetime(2026, 3, day, 12, tzinfo=UTC))
    # Not counted before a squash: read from the rows themselves.
    assert histogram() == []
    assert active_users(date(2026, 3, 2), date(2026, 3, 5)) == 2

    assert rollups_squash().activity_rows_counted == 2

    # ann: 1 March (none before it that year), 5 March (after the 1st), 31 March (after the 5th); bob: 3 March.
    assert histogram() == [(2026, 301, 0, 1), (2026, 303, 0, 1), (2026, 305, 301, 1), (2026, 331, 305, 1)]
    # 2-5 March: ann on the 5th (her day before was the 1st) and bob on the 3rd; 4-30 March: ann only.
    assert active_users(date(2026, 3, 2), date(2026, 3, 5)) == 2
    assert active_users(date(2026, 3, 4), date(2026, 3, 30)) == 1
    assert active_users(date(2026, 3, 6), date(2026, 3, 30)) == 0
    assert active_users(date(2026, 1, 1), date(2026, 12, 31)) == 2
    assert rollups_squash().activity_rows_counted == 0


def test_readers_correct_the_histogram_with_the_days_set_and_deleted_since_the_squash():
    ann, bob, model = UserFactory(username="ann"), UserFactory(username="bob"), AIModelFactory()
    RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    fifth = RequestCostFactory(user=ann, ai_model=model, created_at=datetime(2026, 3, 5, 12, tzinfo=UTC))
    RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 3, 3, 12, tzinfo=UTC))
    rollups_squash()
    counted = histogram()

    # bob's new day is not counted yet, and ann's deleted one still is: both are corrected for.
    RequestCostFactory(user=bob, ai_model=model, created_at=datetime(2026, 3, 4, 12, tzinfo=UTC))
    fifth.delete()
    assert histogram() == counted
    assert active_users(date(2026, 3, 4), date(2026, 3, 5)) == 1
    assert active_users(date(2026, 3, 2), date(2026, 3, 5)) == 1
    assert active_users(date(2026, 3, 1), date(2026, 3, 5)) == 2

    rollups_squash()

    assert histogram() == [(2026, 301, 0, 1), (2026, 303, 0, 1), (2026, 304, 303, 1)]
    assert active_users(date(2026, 3, 4), date(2026, 3, 5)) == 1
    assert active_users(date(2026, 3, 2), date(2026, 3, 5)) == 1
    assert rollups_rebuild().is_consistent


def test_rebuild_rollups_repairs_a_tampered_histogram():
    RequestCostFactory(user=UserFactory(), created_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    rollups_squash()
    ActiveUserHistogram.objects.update(user_count=5)
    ActiveUserHistogram.objects.create(year=2026, day=302, previous_day=301, user_count=1)
    out = StringIO()

    call_command("rebuild_rollups", stdout=out)

    assert "reports_activeuserhistogram: repaired 0 missing, 1 wrong and 1 superfluous keys." in out.getvalue()
    assert "  changed (2026, 301, 0): expected (1), stored (5)" in out.getvalue()
    assert histogram() == [(2026, 301, 0, 1)]
    assert rollups_rebuild().is_consistent
