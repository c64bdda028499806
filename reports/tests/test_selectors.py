"""Tests of the six report selectors, with figures computed by hand in the comments."""

from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from reports import raw_selectors, selectors
from reports.periods import ALL_TIME, Period
from reports.rollups import rollups_squash
from reports.selectors import (
    ChatbotSessionsRow,
    FreeModelUsageRow,
    ModelUsageRow,
    UserCostRow,
    UserFreeUsageRow,
    average_tokens_per_request,
    top_chatbots_by_sessions,
    top_free_models,
    top_models_by_usage,
    top_users_by_cost,
    top_users_by_free_usage,
)

pytestmark = pytest.mark.django_db

LIMITED_SELECTORS = [
    top_users_by_cost,
    top_models_by_usage,
    top_free_models,
    top_chatbots_by_sessions,
    top_users_by_free_usage,
]

# The period tests run in New York: 2024-03-10 to 2024-03-12 there is 05:00 UTC on the 10th
# (EST, UTC-5) up to 04:00 UTC on the 13th (EDT, UTC-4, after the switch on the 10th).
PERIOD = Period(since=date(2024, 3, 10), until=date(2024, 3, 12))
START = datetime(2024, 3, 10, 5, 0, tzinfo=UTC)
END = datetime(2024, 3, 13, 4, 0, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
# Just outside, just inside, just inside, just outside. Under UTC day boundaries the first would
# count and the third would not, so these rows also catch a period read in the wrong zone.
BEFORE_START, AT_START, BEFORE_END, AT_END = START - ONE_MICROSECOND, START, END - ONE_MICROSECOND, END
# One weight per instant: any subset of the four sums to a different figure.
WEIGHTS = {BEFORE_START: 1000, AT_START: 100, BEFORE_END: 10, AT_END: 1}
PERIOD_CASES = [
    pytest.param(PERIOD, 110, 2, id="since-and-until"),  # 100 + 10
    pytest.param(Period(since=date(2024, 3, 10)), 111, 3, id="since-only"),  # 100 + 10 + 1
    pytest.param(Period(until=date(2024, 3, 12)), 1110, 3, id="until-only"),  # 1000 + 100 + 10
    pytest.param(ALL_TIME, 1111, 4, id="all-time"),
]


@pytest.fixture
def new_york(settings) -> None:
    settings.TIME_ZONE = "America/New_York"


def add_request(
    *, user: User, ai_model: AIModel, tokens: int, cost: str = "0", at: datetime | None = None
) -> OpenRouterRequestCost:
    """Store one request of ``tokens`` total tokens, split between prompt and completion."""
    completion = tokens // 4
    extra = {"created_at": at} if at else {}
    return RequestCostFactory(
        user=user,
        ai_model=ai_model,
        prompt_tokens=tokens - completion,
        completion_tokens=completion,
        cost_usd=Decimal(cost),
        **extra,
    )


def add_session(*, chatbot: Chatbot, messages: int = 0, at: datetime | None = None) -> ChatSession:
    """Store one session of ``chatbot`` with ``messages`` messages written when it started."""
    extra = {"created_at": at} if at else {}
    session = ChatSessionFactory(chatbot=chatbot, user=chatbot.owner, **extra)
    ChatMessageFactory.create_batch(messages, session=session, created_at=session.created_at)
    return session


# --- Shared behaviour --------------------------------------------------------------------


@pytest.mark.parametrize("selector", LIMITED_SELECTORS)
def test_empty_database_gives_an_empty_list(selector) -> None:
    assert selector() == []
    assert selector(period=PERIOD, limit=3) == []


def test_empty_database_has_no_average() -> None:
    assert average_tokens_per_request() is None
    assert average_tokens_per_request(period=PERIOD) is None


@pytest.mark.parametrize("selector", LIMITED_SELECTORS)
@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "3", None])
def test_a_limit_that_is_not_a_positive_integer_is_refused(selector, limit) -> None:
    with pytest.raises(ValueError, match="limit"):
        selector(limit=limit)


@pytest.mark.parametrize("selector", [*LIMITED_SELECTORS, average_tokens_per_request])
def test_each_report_is_one_query(selector, django_assert_num_queries) -> None:
    owner = UserFactory()
    add_request(user=owner, ai_model=AIModelFactory(free=True), tokens=10)
    add_request(user=owner, ai_model=AIModelFactory(), tokens=20, cost="0.5")
    add_session(chatbot=ChatbotFactory(owner=owner), messages=2)

    arguments = {"period": Period(since=date(2000, 1, 1))}
    if selector is not average_tokens_per_request:
        arguments["limit"] = 5

    # A top-user report reads first the bound of the users its pruning leaves out (here none).
    with django_assert_num_queries(2 if selector in (top_users_by_cost, top_users_by_free_usage) else 1):
        result = selector(**arguments)

    assert result  # the query found the rows above


def test_rows_are_frozen() -> None:
    add_request(user=UserFactory(), ai_model=AIModelFactory(), tokens=10, cost="1")

    (row,) = top_users_by_cost()

    with pytest.raises(FrozenInstanceError):
        row.total_cost_usd = Decimal("0")


# --- Top Users by OpenRouter Cost ----------------------------------------------------------


def test_top_users_by_cost_orders_by_total_cost() -> None:
    model = AIModelFactory()
    alice, bob, carol = (UserFactory(username=name) for name in ("alice", "bob", "carol"))
    UserFactory(username="idle")  # no request: not listed
    add_request(user=alice, ai_model=model, tokens=100, cost="0.5")
    add_request(user=alice, ai_model=model, tokens=100, cost="0.25")
    add_request(user=bob, ai_model=model, tokens=10, cost="1.0")
    for _ in range(3):
        add_request(user=carol, ai_model=model, tokens=1000, cost="0.1")

    # By tokens or requests the order would be carol, alice, bob; by cost it is bob, alice, carol.
    assert top_users_by_cost() == [
        UserCostRow(user_id=bob.pk, username="bob", total_cost_usd=Decimal("1.0"), total_tokens=10, request_count=1),
        # 0.5 + 0.25 = 0.75; 100 + 100 = 200
        UserCostRow(alice.pk, "alice", total_cost_usd=Decimal("0.75"), total_tokens=200, request_count=2),
        # 3 * 0.1 = 0.3; 3 * 1000 = 3000
        UserCostRow(carol.pk, "carol", total_cost_usd=Decimal("0.3"), total_tokens=3000, request_count=3),
    ]


def test_top_users_by_cost_breaks_a_cost_tie_by_tokens() -> None:
    model = AIModelFactory()
    dave = UserFactory(username="dave")
    erin = UserFactory(username="erin")
    # dave: 0.1 + 0.2 = 0.3 exactly (a float sum, 0.30000000000000004, would put him first).
    add_request(user=dave, ai_model=model, tokens=50, cost="0.1")
    add_request(user=dave, ai_model=model, tokens=50, cost="0.2")
    add_request(user=erin, ai_model=model, tokens=200, cost="0.3")

    # Equal cost, so erin's 200 tokens beat dave's 50 + 50 = 100 despite his lower id.
    assert top_users_by_cost() == [
        UserCostRow(erin.pk, "erin", total_cost_usd=Decimal("0.3"), total_tokens=200, request_count=1),
        UserCostRow(dave.pk, "dave", total_cost_usd=Decimal("0.3"), total_tokens=100, request_count=2),
    ]


def test_top_users_by_cost_breaks_a_full_tie_by_id() -> None:
    model = AIModelFactory()
    zoe = UserFactory(username="zoe")
    adam = UserFactory(username="adam")
    # adam's request is stored first, and his name sorts first: only the id puts zoe ahead.
    add_request(user=adam, ai_model=model, tokens=100, cost="0.5")
    add_request(user=zoe, ai_model=model, tokens=100, cost="0.5")

    assert zoe.pk < adam.pk
    assert [row.username for row in top_users_by_cost()] == ["zoe", "adam"]


def test_top_users_by_cost_lists_ten_by_default_and_honours_a_limit() -> None:
    model = AIModelFactory()
    users = [UserFactory(username=f"u{i:02}") for i in range(1, 13)]
    for i, user in enumerate(users, start=1):
        add_request(user=user, ai_model=model, tokens=10, cost=f"0.{i:02}")

    # u12 costs 0.12, u11 0.11 ... u03 0.03: the ten costliest; u01 and u02 fall off.
    assert [row.username for row in top_users_by_cost()] == [f"u{i:02}" for i in range(12, 2, -1)]
    assert [row.total_cost_usd for row in top_users_by_cost(limit=3)] == [
        Decimal("0.12"),
        Decimal("0.11"),
        Decimal("0.10"),
    ]
    assert len(top_users_by_cost(limit=50)) == 12


def test_top_users_by_cost_lists_a_user_of_free_models_only_at_zero() -> None:
    paying = UserFactory(username="paying")
    freeloader = UserFactory(username="freeloader")
    add_request(user=paying, ai_model=AIModelFactory(), tokens=10, cost="0.000000000001")
    add_request(user=freeloader, ai_model=AIModelFactory(free=True), tokens=5000)

    assert top_users_by_cost() == [
        UserCostRow(paying.pk, "paying", total_cost_usd=Decimal("0.000000000001"), total_tokens=10, request_count=1),
        UserCostRow(freeloader.pk, "freeloader", total_cost_usd=Decimal("0"), total_tokens=5000, request_count=1),
    ]


def test_top_users_by_cost_sums_money_exactly() -> None:
    model = AIModelFactory()
    rich = UserFactory(username="rich")
    tiny = UserFactory(username="tiny")
    add_request(user=rich, ai_model=model, tokens=1, cost="1000000")
    add_request(user=rich, ai_model=model, tokens=1, cost="0.000000000001")
    for _ in range(3):
        add_request(user=tiny, ai_model=model, tokens=1, cost="0.000000000001")

    rows = top_users_by_cost()

    # 1000000 + 0.000000000001 needs 19 significant digits: a float keeps about 16.
    assert [row.total_cost_usd for row in rows] == [Decimal("1000000.000000000001"), Decimal("0.000000000003")]
    assert all(type(row.total_cost_usd) is Decimal for row in rows)


@pytest.mark.parametrize(("period", "tokens", "requests"), PERIOD_CASES)
def test_top_users_by_cost_counts_only_requests_in_the_period(new_york, period, tokens, requests) -> None:
    model = AIModelFactory()
    user = UserFactory(username="user")
    for at, weight in WEIGHTS.items():
        # cost = tokens / 10000, so the cost follows the same subset as the tokens.
        add_request(user=user, ai_model=model, tokens=weight, cost=str(Decimal(weight) / 10000), at=at)

    assert top_users_by_cost(period=period) == [
        UserCostRow(
            user.pk, "user", total_cost_usd=Decimal(tokens) / 10000, total_tokens=tokens, request_count=requests
        )
    ]


def test_top_users_by_cost_leaves_out_users_active_only_outside_the_period(new_york) -> None:
    model = AIModelFactory()
    inside = UserFactory(username="inside")
    outside = UserFactory(username="outside")
    add_request(user=inside, ai_model=model, tokens=1, cost="0.01", at=AT_START)
    add_request(user=outside, ai_model=model, tokens=1, cost="9", at=BEFORE_START)
    add_request(user=outside, ai_model=model, tokens=1, cost="9", at=AT_END)

    assert [row.username for row in top_users_by_cost(period=PERIOD)] == ["inside"]


def test_a_day_without_a_midnight_is_bounded_at_its_first_instant(settings) -> None:
    settings.TIME_ZONE = "America/Santiago"
    model = AIModelFactory()
    user = UserFactory(username="user")
    # Santiago's 2024-09-08 runs from 01:00 -03 (04:00 UTC; 00:00 never happens) to 00:00 -03
    # on the 9th (03:00 UTC).
    start, end = datetime(2024, 9, 8, 4, 0, tzinfo=UTC), datetime(2024, 9, 9, 3, 0, tzinfo=UTC)
    for at, weight in ((start - ONE_MICROSECOND, 1000), (start, 100), (end - ONE_MICROSECOND, 10), (end, 1)):
        add_request(user=user, ai_model=model, tokens=weight, at=at)

    (row,) = top_users_by_cost(period=Period(since=date(2024, 9, 8), until=date(2024, 9, 8)))

    assert (row.total_tokens, row.request_count) == (110, 2)  # 100 + 10


# --- Top AI Models by Usage ----------------------------------------------------------------


def test_top_models_by_usage_orders_by_request_count_and_includes_free_models() -> None:
    user = UserFactory()
    big = AIModelFactory()
    busy = AIModelFactory()
    free = AIModelFactory(free=True)
    AIModelFactory()  # never used: not listed
    add_request(user=user, ai_model=big, tokens=5000, cost="5")
    for _ in range(3):
        add_request(user=user, ai_model=busy, tokens=10, cost="0.001")
    for _ in range(2):
        add_request(user=user, ai_model=free, tokens=100)

    # By tokens or cost the order would be big first; by requests it is busy (3), free (2), big (1).
    assert top_models_by_usage() == [
        # 3 * 10 = 30 tokens; 3 * 0.001 = 0.003
        ModelUsageRow(
            busy.pk, busy.openrouter_id, busy.name, usage_count=3, total_tokens=30, total_cost_usd=Decimal("0.003")
        ),
        ModelUsageRow(
            free.pk, free.openrouter_id, free.name, usage_count=2, total_tokens=200, total_cost_usd=Decimal("0")
        ),
        ModelUsageRow(
            big.pk, big.openrouter_id, big.name, usage_count=1, total_tokens=5000, total_cost_usd=Decimal("5")
        ),
    ]


def test_top_models_by_usage_breaks_a_count_tie_by_tokens() -> None:
    user = UserFactory()
    light = AIModelFactory()
    heavy = AIModelFactory()
    add_request(user=user, ai_model=light, tokens=10, cost="1")
    add_request(user=user, ai_model=light, tokens=10, cost="1")
    add_request(user=user, ai_model=heavy, tokens=100)
    add_request(user=user, ai_model=heavy, tokens=1)

    # Two requests each; heavy has 100 + 1 = 101 tokens, light 10 + 10 = 20 (and more cost).
    assert [(row.model_id, row.total_tokens) for row in top_models_by_usage()] == [(heavy.pk, 101), (light.pk, 20)]


def test_top_models_by_usage_breaks_a_full_tie_by_id() -> None:
    user = UserFactory()
    first = AIModelFactory(openrouter_id="zeta/model", name="Zeta")
    second = AIModelFactory(openrouter_id="alpha/model", name="Alpha")
    add_request(user=user, ai_model=second, tokens=50, cost="0.5")
    add_request(user=user, ai_model=first, tokens=50, cost="0.5")

    assert first.pk < second.pk
    assert [row.model_id for row in top_models_by_usage()] == [first.pk, second.pk]


def test_top_models_by_usage_lists_ten_by_default_and_honours_a_limit() -> None:
    user = UserFactory()
    models = [AIModelFactory() for _ in range(12)]
    for count, model in enumerate(models, start=1):
        for _ in range(count):
            add_request(user=user, ai_model=model, tokens=1)

    # Model k has k requests: the ten busiest are models 12 down to 3.
    assert [row.usage_count for row in top_models_by_usage()] == list(range(12, 2, -1))
    assert [row.model_id for row in top_models_by_usage(limit=2)] == [models[11].pk, models[10].pk]


@pytest.mark.parametrize(("period", "tokens", "requests"), PERIOD_CASES)
def test_top_models_by_usage_counts_only_requests_in_the_period(new_york, period, tokens, requests) -> None:
    user = UserFactory()
    model = AIModelFactory()
    for at, weight in WEIGHTS.items():
        add_request(user=user, ai_model=model, tokens=weight, cost=str(Decimal(weight) / 10000), at=at)

    assert top_models_by_usage(period=period) == [
        ModelUsageRow(
            model.pk,
            model.openrouter_id,
            model.name,
            usage_count=requests,
            total_tokens=tokens,
            total_cost_usd=Decimal(tokens) / 10000,
        )
    ]


# --- Top Free AI Models Usage --------------------------------------------------------------


def test_top_free_models_ignores_paid_models() -> None:
    user = UserFactory()
    paid = AIModelFactory()
    # Free by price and by name, but not flagged free: "free" means AIModel.is_free.
    lookalike = AIModelFactory(openrouter_id="acme/lookalike:free", prompt_price=0, completion_price=0)
    few = AIModelFactory(free=True)
    many = AIModelFactory(free=True, openrouter_id="acme/flagged-free")
    AIModelFactory(free=True)  # free but never used: not listed
    for _ in range(10):
        add_request(user=user, ai_model=paid, tokens=1000, cost="1")
        add_request(user=user, ai_model=lookalike, tokens=1000)
    for _ in range(2):
        add_request(user=user, ai_model=few, tokens=10)
    for _ in range(3):
        add_request(user=user, ai_model=many, tokens=1)

    assert top_free_models() == [
        FreeModelUsageRow(many.pk, "acme/flagged-free", many.name, usage_count=3, total_tokens=3),  # 3 * 1
        FreeModelUsageRow(few.pk, few.openrouter_id, few.name, usage_count=2, total_tokens=20),  # 2 * 10
    ]


def test_top_free_models_breaks_a_count_tie_by_tokens_then_by_id() -> None:
    user = UserFactory()
    tied_first, tied_second, light, heavy = (AIModelFactory(free=True) for _ in range(4))
    add_request(user=user, ai_model=light, tokens=30)
    add_request(user=user, ai_model=light, tokens=30)
    add_request(user=user, ai_model=heavy, tokens=100)
    add_request(user=user, ai_model=heavy, tokens=1)
    add_request(user=user, ai_model=tied_second, tokens=5)
    add_request(user=user, ai_model=tied_first, tokens=5)

    # Two requests: heavy (101 tokens) before light (60). One request of 5 tokens: by id.
    assert [row.model_id for row in top_free_models()] == [heavy.pk, light.pk, tied_first.pk, tied_second.pk]


def test_top_free_models_lists_ten_by_default_and_honours_a_limit() -> None:
    user = UserFactory()
    models = [AIModelFactory(free=True) for _ in range(12)]
    for tokens, model in enumerate(models, start=1):
        add_request(user=user, ai_model=model, tokens=tokens)

    # One request each, so tokens decide: 12 down to 3.
    assert [row.total_tokens for row in top_free_models()] == list(range(12, 2, -1))
    assert [row.total_tokens for row in top_free_models(limit=4)] == [12, 11, 10, 9]


@pytest.mark.parametrize(("period", "tokens", "requests"), PERIOD_CASES)
def test_top_free_models_counts_only_requests_in_the_period(new_york, period, tokens, requests) -> None:
    user = UserFactory()
    model = AIModelFactory(free=True)
    for at, weight in WEIGHTS.items():
        add_request(user=user, ai_model=model, tokens=weight, at=at)

    assert top_free_models(period=period) == [
        FreeModelUsageRow(model.pk, model.openrouter_id, model.name, usage_count=requests, total_tokens=tokens)
    ]


# --- Average Token Usage -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        # 7 * 100 + 101 = 801 over 8 requests = 100.125: half-up gives 100.13 (half-even 100.12).
        pytest.param([100] * 7 + [101], "100.13", id="100.125"),
        # 7 * 2 + 7 = 21 over 8 = 2.625: half-up gives 2.63 (half-even 2.62).
        pytest.param([2] * 7 + [7], "2.63", id="2.625"),
        # 7 * 1 + 4 = 11 over 8 = 1.375: 1.38 either way (8 is even).
        pytest.param([1] * 7 + [4], "1.38", id="1.375"),
        # 1 + 1 + 2 = 4 over 3 = 1.333...: 1.33.
        pytest.param([1, 1, 2], "1.33", id="thirds-down"),
        # 1 + 2 + 2 = 5 over 3 = 1.666...: 1.67.
        pytest.param([1, 2, 2], "1.67", id="thirds-up"),
        # 100 + 200 = 300 over 2 = 150: still two places.
        pytest.param([100, 200], "150.00", id="whole"),
        pytest.param([0], "0.00", id="zero-tokens"),
    ],
)
def test_average_tokens_per_request_rounds_half_up_to_two_places(tokens: list[int], expected: str) -> None:
    user = UserFactory()
    model = AIModelFactory()
    for count in tokens:
        add_request(user=user, ai_model=model, tokens=count)

    average = average_tokens_per_request()

    assert type(average) is Decimal
    assert str(average) == expected


def test_average_tokens_per_request_counts_free_and_paid_models() -> None:
    user = UserFactory()
    add_request(user=user, ai_model=AIModelFactory(), tokens=10, cost="1")
    add_request(user=user, ai_model=AIModelFactory(free=True), tokens=25)

    # (10 + 25) / 2 = 17.5
    assert average_tokens_per_request() == Decimal("17.50")


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        pytest.param(PERIOD, "55.00", id="since-and-until"),  # (100 + 10) / 2
        pytest.param(Period(since=date(2024, 3, 10)), "37.00", id="since-only"),  # (100 + 10 + 1) / 3
        pytest.param(Period(until=date(2024, 3, 12)), "370.00", id="until-only"),  # (1000 + 100 + 10) / 3
        pytest.param(ALL_TIME, "277.75", id="all-time"),  # 1111 / 4
    ],
)
def test_average_tokens_per_request_uses_only_requests_in_the_period(new_york, period, expected) -> None:
    user = UserFactory()
    model = AIModelFactory()
    for at, weight in WEIGHTS.items():
        add_request(user=user, ai_model=model, tokens=weight, at=at)

    assert str(average_tokens_per_request(period=period)) == expected


def test_average_tokens_per_request_is_none_when_the_period_has_no_request(new_york) -> None:
    add_request(user=UserFactory(), ai_model=AIModelFactory(), tokens=10, at=BEFORE_START)
    add_request(user=UserFactory(), ai_model=AIModelFactory(), tokens=10, at=AT_END)

    assert average_tokens_per_request(period=PERIOD) is None


# --- Top Chatbots by Session Count ---------------------------------------------------------


def test_top_chatbots_by_sessions_counts_sessions_and_messages_without_fan_out() -> None:
    owner = UserFactory()
    two_busy = ChatbotFactory(owner=owner, name="Two busy sessions")
    two_silent = ChatbotFactory(owner=owner, name="Two silent sessions")
    one_chatty = ChatbotFactory(owner=owner, name="One chatty session")
    ChatbotFactory(owner=owner, name="Unused")  # no session: not listed
    add_session(chatbot=two_busy, messages=3)
    add_session(chatbot=two_busy, messages=4)
    add_session(chatbot=two_silent)
    add_session(chatbot=two_silent)
    add_session(chatbot=one_chatty, messages=10)

    # One GROUP BY over sessions joined to messages would count two_busy's 3 + 4 = 7 joined rows
    # as 7 sessions; an inner join to messages would drop two_silent, which has none.
    assert top_chatbots_by_sessions() == [
        ChatbotSessionsRow(two_busy.pk, "Two busy sessions", session_count=2, message_count=7),  # 3 + 4
        ChatbotSessionsRow(two_silent.pk, "Two silent sessions", session_count=2, message_count=0),
        ChatbotSessionsRow(one_chatty.pk, "One chatty session", session_count=1, message_count=10),
    ]


def test_top_chatbots_by_sessions_breaks_a_full_tie_by_id() -> None:
    owner = UserFactory()
    first = ChatbotFactory(owner=owner, name="Zed")
    second = ChatbotFactory(owner=owner, name="Abe")
    add_session(chatbot=second, messages=1)
    add_session(chatbot=first, messages=1)

    assert first.pk < second.pk
    assert [row.chatbot_id for row in top_chatbots_by_sessions()] == [first.pk, second.pk]


def test_top_chatbots_by_sessions_lists_ten_by_default_and_honours_a_limit() -> None:
    owner = UserFactory()
    chatbots = [ChatbotFactory(owner=owner) for _ in range(12)]
    for sessions, chatbot in enumerate(chatbots, start=1):
        for _ in range(sessions):
            add_session(chatbot=chatbot)

    # Chatbot k has k sessions: the ten busiest have 12 down to 3.
    assert [row.session_count for row in top_chatbots_by_sessions()] == list(range(12, 2, -1))
    assert [row.chatbot_id for row in top_chatbots_by_sessions(limit=1)] == [chatbots[11].pk]


@pytest.mark.parametrize(
    ("period", "sessions", "messages"),
    [
        # One session per instant with 8, 4, 2 and 1 messages (outside, inside, inside, outside).
        pytest.param(PERIOD, 2, 6, id="since-and-until"),  # 4 + 2
        pytest.param(Period(since=date(2024, 3, 10)), 3, 7, id="since-only"),  # 4 + 2 + 1
        pytest.param(Period(until=date(2024, 3, 12)), 3, 14, id="until-only"),  # 8 + 4 + 2
        pytest.param(ALL_TIME, 4, 15, id="all-time"),
    ],
)
def test_top_chatbots_by_sessions_counts_only_sessions_and_messages_in_the_period(
    new_york, period, sessions, messages
) -> None:
    chatbot = ChatbotFactory(name="Bot")
    for at, count in ((BEFORE_START, 8), (AT_START, 4), (BEFORE_END, 2), (AT_END, 1)):
        add_session(chatbot=chatbot, messages=count, at=at)

    assert top_chatbots_by_sessions(period=period) == [
        ChatbotSessionsRow(chatbot.pk, "Bot", session_count=sessions, message_count=messages)
    ]


def test_top_chatbots_by_sessions_counts_messages_by_their_own_date(new_york) -> None:
    chatbot = ChatbotFactory(name="Bot")
    ChatbotFactory(name="Old")
    inside = add_session(chatbot=chatbot, messages=1, at=AT_START)
    ChatMessageFactory.create_batch(2, session=inside, created_at=AT_END)  # after the period: not counted
    before = add_session(chatbot=chatbot, at=BEFORE_START)
    ChatMessageFactory(session=before, created_at=BEFORE_END)  # in the period: counted

    # One session started in the period. Messages written in it: the inside session's first
    # and the earlier session's last, 1 + 1 = 2 (by their sessions' dates it would be 1 + 2 = 3).
    assert top_chatbots_by_sessions(period=PERIOD) == [
        ChatbotSessionsRow(chatbot.pk, "Bot", session_count=1, message_count=2)
    ]


@pytest.mark.parametrize(
    ("period", "messages"),
    [
        # Messages written at each instant: 8, 4, 2 and 1 (outside, inside, inside, outside).
        pytest.param(PERIOD, 6, id="since-and-until"),
        pytest.param(Period(since=date(2024, 3, 10)), 7, id="since-only"),
        pytest.param(Period(until=date(2024, 3, 12)), 14, id="until-only"),
        pytest.param(ALL_TIME, 15, id="all-time"),
    ],
)
def test_message_count_counts_the_messages_written_in_the_period(new_york, period, messages) -> None:
    # Every message in one session started before the period, of one chatbot or another: each
    # counts on its own date, whatever its session's or chatbot.
    early = add_session(chatbot=ChatbotFactory(), at=BEFORE_START)
    other = add_session(chatbot=ChatbotFactory(), at=BEFORE_START)
    written = ((early, BEFORE_START, 8), (other, AT_START, 4), (early, BEFORE_END, 2), (other, AT_END, 1))
    for session, at, count in written:
        ChatMessageFactory.create_batch(count, session=session, created_at=at)
    rollups_squash()
    ChatMessageFactory(session=early, created_at=AT_START).delete()  # a delta that cancels out

    assert selectors.message_count(period=period) == messages
    assert ChatMessage.objects.filter(period.q("created_at")).count() == messages


def test_top_chatbots_by_sessions_leaves_out_chatbots_without_a_session_in_the_period(new_york) -> None:
    owner = UserFactory()
    active = ChatbotFactory(owner=owner, name="Active")
    stale = ChatbotFactory(owner=owner, name="Stale")
    add_session(chatbot=active, at=BEFORE_END)
    # stale's only session precedes the period, though a message in it falls inside.
    old = add_session(chatbot=stale, messages=5, at=BEFORE_START)
    ChatMessageFactory(session=old, created_at=AT_START)

    assert [row.name for row in top_chatbots_by_sessions(period=PERIOD)] == ["Active"]


# --- Top Users by Free Model Usage ---------------------------------------------------------


def test_top_users_by_free_usage_orders_by_tokens_and_ignores_paid_models() -> None:
    free = AIModelFactory(free=True)
    paid = AIModelFactory()
    first, second, third = (UserFactory(username=name) for name in ("first", "second", "third"))
    whale = UserFactory(username="whale")
    payer = UserFactory(username="payer")
    add_request(user=first, ai_model=free, tokens=500)
    for _ in range(5):
        add_request(user=third, ai_model=free, tokens=60)
    add_request(user=second, ai_model=free, tokens=200)
    add_request(user=second, ai_model=free, tokens=200)
    # The whale's million paid tokens do not count: only its 10 free ones.
    add_request(user=whale, ai_model=paid, tokens=1_000_000, cost="10")
    add_request(user=whale, ai_model=free, tokens=10)
    add_request(user=payer, ai_model=paid, tokens=5000, cost="1")  # paid only: not listed

    # By requests the order would be third (5), second (2), first (1); by tokens it is
    # first (500), second (200 + 200 = 400), third (5 * 60 = 300), whale (10).
    assert top_users_by_free_usage() == [
        UserFreeUsageRow(first.pk, "first", total_tokens=500, request_count=1),
        UserFreeUsageRow(second.pk, "second", total_tokens=400, request_count=2),
        UserFreeUsageRow(third.pk, "third", total_tokens=300, request_count=5),
        UserFreeUsageRow(whale.pk, "whale", total_tokens=10, request_count=1),
    ]


def test_top_users_by_free_usage_breaks_a_token_tie_by_requests_then_by_id() -> None:
    free = AIModelFactory(free=True)
    one_request, two_requests, tied_first, tied_second = (
        UserFactory(username=name) for name in ("one", "two", "tied-z", "tied-a")
    )
    add_request(user=one_request, ai_model=free, tokens=100)
    add_request(user=two_requests, ai_model=free, tokens=50)
    add_request(user=two_requests, ai_model=free, tokens=50)
    add_request(user=tied_second, ai_model=free, tokens=7)
    add_request(user=tied_first, ai_model=free, tokens=7)

    # 100 tokens each: two requests (50 + 50) beat one, despite the higher id; then 7 tokens
    # and one request each, so the lower id comes first.
    assert [row.username for row in top_users_by_free_usage()] == ["two", "one", "tied-z", "tied-a"]


def test_top_users_by_free_usage_lists_ten_by_default_and_honours_a_limit() -> None:
    free = AIModelFactory(free=True)
    users = [UserFactory(username=f"u{i:02}") for i in range(1, 13)]
    for tokens, user in enumerate(users, start=1):
        add_request(user=user, ai_model=free, tokens=tokens)

    assert [row.username for row in top_users_by_free_usage()] == [f"u{i:02}" for i in range(12, 2, -1)]
    assert [row.total_tokens for row in top_users_by_free_usage(limit=2)] == [12, 11]


@pytest.mark.parametrize(("period", "tokens", "requests"), PERIOD_CASES)
def test_top_users_by_free_usage_counts_only_requests_in_the_period(new_york, period, tokens, requests) -> None:
    user = UserFactory(username="user")
    free = AIModelFactory(free=True)
    for at, weight in WEIGHTS.items():
        add_request(user=user, ai_model=free, tokens=weight, at=at)

    assert top_users_by_free_usage(period=period) == [
        UserFreeUsageRow(user.pk, "user", total_tokens=tokens, request_count=requests)
    ]


# --- The top-user reports' pruning -----------------------------------------------------------
#
# Users are read in decreasing order of their squashed all-time figure, which bounds any
# period's: first the users of highest bound (here one per row asked for, instead of 128), then,
# if that cannot settle the ranking, every user whose bound reaches the first round's last row.
# Each round is two queries: the users, then their rows.

WINDOW = Period(since=date(2026, 6, 1), until=date(2026, 6, 30))
IN_WINDOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
BEFORE_WINDOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


@pytest.fixture
def small_rounds(monkeypatch):
    monkeypatch.setattr(selectors, "PRUNING_FIRST_CANDIDATES", 1)
    monkeypatch.setattr(selectors, "PRUNING_CANDIDATES_PER_ROW", 1)


@pytest.fixture
def rounds(monkeypatch) -> list[set[int]]:
    """Record the ids of the users each round of the pruning reads."""
    read: list[set[int]] = []
    ranked_users = selectors._ranked_users

    def recording(**kwargs):
        users, next_bound = ranked_users(**kwargs)
        read.append(set(users))
        return users, next_bound

    monkeypatch.setattr(selectors, "_ranked_users", recording)
    return read


def spend(user: User, *, before: str = "0", within: str = "0", model: AIModel | None = None) -> None:
    """Give ``user`` requests costing ``before`` ahead of WINDOW and ``within`` in it (one token per USD cent)."""
    model = model or AIModelFactory()
    for cost, at in ((before, BEFORE_WINDOW), (within, IN_WINDOW)):
        if Decimal(cost):
            add_request(user=user, ai_model=model, tokens=int(Decimal(cost) * 100), cost=cost, at=at)


def ids(*users: User) -> set[int]:
    return {user.pk for user in users}


def cost_rows(rows: list[UserCostRow]) -> list[tuple[str, Decimal]]:
    return [(row.username, row.total_cost_usd) for row in rows]


def test_pruning_stops_once_nobody_left_out_can_rank(small_rounds, django_assert_num_queries) -> None:
    heavy, second, light = (UserFactory(username=name) for name in ("heavy", "second", "light"))
    spend(heavy, before="40", within="60")  # all time 100
    spend(second, before="10", within="40")  # all time 50
    spend(light, within="1")
    rollups_squash()

    # Round 1 reads heavy (60 in June); the next user's all-time 50 cannot beat it.
    with django_assert_num_queries(2):
        rows = top_users_by_cost(period=WINDOW, limit=1)

    assert cost_rows(rows) == [("heavy", Decimal(60))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=1)


def test_second_round_reads_every_user_whose_bound_reaches_the_first_rounds_last_row(
    small_rounds, rounds, django_assert_num_queries
) -> None:
    old, steady, newcomer, idle, dormant = (
        UserFactory(username=name) for name in ("old", "steady", "newcomer", "idle", "dormant")
    )
    spend(old, before="100", within="1")  # all time 101
    spend(steady, before="50", within="2")  # 52
    spend(newcomer, within="3")  # 3
    spend(idle, before="10")  # 10, nothing in June
    spend(dormant, before="0.5")  # 0.5: below any June figure that can rank
    rollups_squash()

    # Round 1 (old, steady) gives rows of 2 and 1, the last below the next bound (idle's 10);
    # round 2 reads every user whose bound is at least 1, which leaves dormant out.
    with django_assert_num_queries(4):
        rows = top_users_by_cost(period=WINDOW, limit=2)

    assert rounds == [ids(old, steady), ids(old, steady, newcomer, idle)]
    assert cost_rows(rows) == [("newcomer", Decimal(3)), ("steady", Decimal(2))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=2)


def test_second_round_reads_a_user_whose_bound_equals_the_first_rounds_last_row(small_rounds, rounds) -> None:
    model = AIModelFactory()
    leader, runner, newcomer = (UserFactory(username=name) for name in ("leader", "runner", "newcomer"))
    spend(leader, before="90", within="10", model=model)  # all time 100
    spend(runner, before="57", within="3", model=model)  # 60, and 300 tokens in June
    # All time 3, all of it in June, as runner's June: more tokens break the tie in its favour.
    add_request(user=newcomer, ai_model=model, tokens=500, cost="3", at=IN_WINDOW)
    rollups_squash()

    rows = top_users_by_cost(period=WINDOW, limit=2)

    # Round 1's last row (runner, 3) is not above newcomer's bound (3): round 2 must read newcomer.
    assert rounds == [ids(leader, runner), ids(leader, runner, newcomer)]
    assert cost_rows(rows) == [("leader", Decimal(10)), ("newcomer", Decimal(3))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=2)


def test_second_round_as_shipped(rounds, django_assert_num_queries) -> None:
    # Every one of 1,100 users spent 100 before the window, and 12 of them 1 to 12 in it, which
    # puts those 12 in the first round (the 128 highest bounds): its 10th row (3) is below the
    # bound of whoever is left out (100), and every user's bound reaches 3. The second round reads
    # them all by id.
    model = AIModelFactory()
    users = User.objects.bulk_create([User(username=f"user{number:04}") for number in range(1_100)])
    spent = [
        RequestCostFactory.build(user=user, ai_model=model, cost_usd=Decimal(100), created_at=BEFORE_WINDOW)
        for user in users
    ]
    spent += [
        RequestCostFactory.build(user=user, ai_model=model, cost_usd=Decimal(cost), created_at=IN_WINDOW)
        for cost, user in enumerate(users[100:112], start=1)
    ]
    OpenRouterRequestCost.objects.bulk_create(spent)
    rollups_squash()

    with django_assert_num_queries(2 + 2):
        rows = top_users_by_cost(period=WINDOW, limit=10)

    assert [len(users) for users in rounds] == [128, 1_100]
    assert [row.total_cost_usd for row in rows] == [Decimal(cost) for cost in range(12, 2, -1)]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=10)


def test_pruning_aggregates_everyone_when_too_many_users_reach_the_first_rounds_last_row(
    small_rounds, monkeypatch, rounds, django_assert_num_queries
) -> None:
    monkeypatch.setattr(selectors, "PRUNING_MAX_CANDIDATES", 2)
    first, second, riser, idle = (UserFactory(username=name) for name in ("first", "second", "riser", "idle"))
    spend(first, before="95", within="5")  # 100
    spend(second, before="46", within="4")  # 50
    spend(riser, before="10", within="6")  # 16
    spend(idle, before="8")  # 8
    rollups_squash()

    # Round 1 (first, second): rows of 5 and 4, below riser's bound, 16. Three users reach 4, more
    # than 2: one query over every user's rows, not a round of them.
    with django_assert_num_queries(2 + 1 + 1):
        rows = top_users_by_cost(period=WINDOW, limit=2)

    assert rounds == [ids(first, second), ids(first, second)]
    assert cost_rows(rows) == [("riser", Decimal(6)), ("first", Decimal(5))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=2)


def test_pruning_aggregates_everyone_when_the_first_round_finds_too_few_rows(
    small_rounds, rounds, django_assert_num_queries
) -> None:
    old, idle, newcomer = (UserFactory(username=name) for name in ("old", "idle", "newcomer"))
    spend(old, before="100", within="1")
    spend(idle, before="10")
    spend(newcomer, within="3")
    rollups_squash()

    # Round 1 (old, idle) finds one row for two asked: anyone active in June may rank, so one
    # query over every user.
    with django_assert_num_queries(3):
        rows = top_users_by_cost(period=WINDOW, limit=2)

    assert rounds == [ids(old, idle)]
    assert cost_rows(rows) == [("newcomer", Decimal(3)), ("old", Decimal(1))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=2)


def test_users_with_fresh_deltas_are_always_candidates(small_rounds, django_assert_num_queries) -> None:
    heavy, second, late = (UserFactory(username=name) for name in ("heavy", "second", "late"))
    spend(heavy, before="40", within="60")
    spend(second, before="10", within="40")
    rollups_squash()
    # After the squash: late's 200 is a delta only, and heavy's June requests are deleted (a
    # negative delta), so heavy's squashed 100 overstates what heavy now has.
    spend(late, within="200")
    OpenRouterRequestCost.objects.filter(user=heavy, created_at=IN_WINDOW).delete()

    with django_assert_num_queries(2):
        rows = top_users_by_cost(period=WINDOW, limit=2)
    all_time = top_users_by_cost(limit=3)

    assert cost_rows(rows) == [("late", Decimal(200)), ("second", Decimal(40))]
    assert rows == raw_selectors.top_users_by_cost(period=WINDOW, limit=2)
    assert cost_rows(all_time) == [("late", Decimal(200)), ("second", Decimal(50)), ("heavy", Decimal(40))]
    assert all_time == raw_selectors.top_users_by_cost(limit=3)


def test_free_usage_pruning_is_bounded_by_free_tokens_only(small_rounds) -> None:
    free, paid = AIModelFactory(free=True), AIModelFactory()
    big_spender, free_rider, casual = (UserFactory(username=name) for name in ("big_spender", "free_rider", "casual"))
    spend(big_spender, before="90", within="90", model=paid)  # no free tokens at all
    spend(free_rider, before="5", within="0.5", model=free)  # 550 free tokens, 50 in June
    spend(casual, within="0.2", model=free)  # 20 free tokens, in June
    rollups_squash()

    rows = top_users_by_free_usage(period=WINDOW, limit=2)

    assert [(row.username, row.total_tokens, row.request_count) for row in rows] == [
        ("free_rider", 50, 1),
        ("casual", 20, 1),
    ]
    assert rows == raw_selectors.top_users_by_free_usage(period=WINDOW, limit=2)
