"""Concurrent writers on PostgreSQL: the rollups lose no increment, whatever runs beside them.

Each thread has its own database connection and commits for real (``transactional_db``). SQLite
is left out: it lets one writer at a time into the whole database, so there is no concurrency to
get wrong there.
"""

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from ai_models.models import AIModel
from chatbot.models import ChatSession, OpenRouterRequestCost
from chatbot.services import request_cost_record
from core.factories import AIModelFactory, ChatbotFactory, ChatSessionFactory, UserFactory
from reports import raw_selectors, selectors
from reports.models import ActiveUserHistogram, UserDailyUsage, UserYearlyActivity
from reports.periods import ALL_TIME, Period
from reports.raw_selectors import UserCostRow
from reports.rollups import rollups_rebuild, rollups_squash

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="SQLite admits one writer at a time to the whole database: there are no concurrent writers.",
    ),
]

WRITERS = 4
REQUESTS_PER_WRITER = 60
DAY = datetime(2026, 1, 31, 12, tzinfo=UTC)


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Run each target in a thread of its own (own connection), and re-raise the first failure."""
    errors: list[BaseException] = []

    def wrapped(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # handed back to the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapped, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def test_concurrent_writers_and_squashes_lose_no_increment():
    user, model = UserFactory(), AIModelFactory()
    start = threading.Barrier(WRITERS + 1)
    writers_done = threading.Event()
    squashes: list[int] = []

    def writer(number: int) -> Callable[[], None]:
        def write() -> None:
            start.wait()
            for index in range(REQUESTS_PER_WRITER):
                request_cost_record(
                    user=user,
                    ai_model=model,
                    prompt_tokens=10,
                    completion_tokens=5,
                    cost_usd="0.000000123",
                    generation_id=f"gen-{number}-{index}",
                    created_at=DAY + timedelta(seconds=index),
                )

        return write

    def squasher() -> None:
        start.wait()
        while not writers_done.is_set():
            squashes.append(rollups_squash().total_merged)

    def writers() -> None:
        try:
            run_threads([writer(number) for number in range(WRITERS)])
        finally:
            writers_done.set()

    run_threads([writers, squasher])
    rollups_squash()

    # 4 x 60 = 240 requests of 10 + 5 tokens and 0.000000123 USD: 3600 tokens, 0.00002952 USD.
    assert selectors.top_users_by_cost() == [
        UserCostRow(
            user_id=user.pk,
            username=user.username,
            total_cost_usd=Decimal("0.00002952"),
            total_tokens=3600,
            request_count=240,
        )
    ]
    assert selectors.top_users_by_cost() == raw_selectors.top_users_by_cost()
    # Squashes ran while the writers wrote, and merged what they found.
    assert len(squashes) > 1 and sum(squashes) > 0
    assert list(UserDailyUsage.objects.values_list("day", "request_count", "is_squashed")) == [
        (date(2026, 1, 31), 240, True)
    ]


def test_concurrent_writers_stay_exact_while_a_model_flips_free_and_a_session_changes_chatbot():
    user, model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user, created_at=DAY)
    chatbots = [session.chatbot, ChatbotFactory()]
    start = threading.Barrier(WRITERS + 2)
    writers_done = threading.Event()
    flips: list[int] = []

    def writer(number: int) -> Callable[[], None]:
        def write() -> None:
            start.wait()
            for index in range(REQUESTS_PER_WRITER):
                request_cost_record(
                    user=user,
                    ai_model=model,
                    # Half the requests in the session whose chatbot keeps changing.
                    session=session if index % 2 else None,
                    prompt_tokens=index,
                    completion_tokens=number,
                    cost_usd="0.000000001",
                    created_at=DAY + timedelta(minutes=index),
                )

        return write

    def flipper() -> None:
        start.wait()
        while not writers_done.is_set():
            AIModel.objects.filter(pk=model.pk).update(is_free=len(flips) % 2 == 0)
            flips.append(1)

    def mover() -> None:
        start.wait()
        moves = 0
        while not writers_done.is_set():
            moves += 1
            ChatSession.objects.filter(pk=session.pk).update(chatbot=chatbots[moves % 2])

    def writers() -> None:
        try:
            run_threads([writer(number) for number in range(WRITERS)])
        finally:
            writers_done.set()

    run_threads([writers, flipper, mover])

    assert len(flips) > 1
    for period in (ALL_TIME, Period(since=date(2026, 1, 31), until=date(2026, 1, 31))):
        for name in (
            "top_users_by_cost",
            "top_users_by_free_usage",
            "top_models_by_usage",
            "top_free_models",
            "top_chatbots_by_sessions",
            "chatbot_unit_economics",
            "usage_headline",
        ):
            assert getattr(selectors, name)(period=period) == getattr(raw_selectors, name)(period=period), name
    # 240 requests, half of them in the session, all of one model: free or paid as it ended up.
    headline = selectors.usage_headline()
    assert (headline.request_count, headline.free_request_count) == (240, 240 if flips and len(flips) % 2 else 0)
    (economics,) = selectors.chatbot_unit_economics()
    assert (economics.request_count, economics.session_count) == (120, 1)
    assert rollups_rebuild().is_consistent


def first_requests_beside(*, users: list, model: AIModel, days: list[datetime], other: Callable) -> None:
    """Have WRITERS threads give each user a request on each day, each from its own first day, beside ``other``.

    The writers race to create each user's yearly activity row and to set each day's bit.
    ``other`` starts with them, in a thread of its own, given an event set once they are done.
    """
    start = threading.Barrier(WRITERS + 1)
    writers_done = threading.Event()

    def writer(number: int) -> Callable[[], None]:
        def write() -> None:
            start.wait()
            for index, day in enumerate(days[number:] + days[:number]):
                for user in users:
                    request_cost_record(
                        user=user,
                        ai_model=model,
                        prompt_tokens=1,
                        completion_tokens=0,
                        cost_usd="0",
                        generation_id=f"gen-{number}-{index}-{user.pk}",
                        created_at=day,
                    )

        return write

    def writers() -> None:
        try:
            run_threads([writer(number) for number in range(WRITERS)])
        finally:
            writers_done.set()

    def beside() -> None:
        start.wait()
        other(writers_done)

    run_threads([writers, beside])


def test_concurrent_first_requests_and_deletions_keep_the_monthly_activity_exact():
    # Every writer writes a request for each user on each of 8 days, in its own order; a deleter
    # removes what it finds of the third user's 5 February meanwhile.
    users, model = UserFactory.create_batch(3), AIModelFactory()
    days = [datetime(2026, 2, day, 12, tzinfo=UTC) for day in range(1, 9)]

    def deleter(writers_done: threading.Event) -> None:
        while not writers_done.is_set():
            OpenRouterRequestCost.objects.filter(user=users[2], created_at=days[4]).delete()
        OpenRouterRequestCost.objects.filter(user=users[2], created_at=days[4]).delete()

    first_requests_beside(users=users, model=model, days=days, other=deleter)

    # Each day has all three users but the 5th, which has two: read from the bits, and (the
    # third user's row is inexact after the deletions) from the days' sums.
    for number, day in enumerate(days, start=1):
        period = Period(since=day.date(), until=day.date())
        assert selectors.usage_headline(period=period).active_users == (2 if number == 5 else 3)
        assert selectors.usage_headline(period=period) == raw_selectors.usage_headline(period=period)
    assert UserYearlyActivity.objects.get(user=users[2]).is_exact is False
    # No bit was lost; the rebuild then recomputes the inexact row without 5 February.
    result = rollups_rebuild()
    assert result.is_consistent and result.activity_rows_made_exact == 1
    assert sorted(UserYearlyActivity.objects.values_list("days_02", "is_exact")) == [
        (0b11101111, True),
        (0b11111111, True),
        (0b11111111, True),
    ]


def test_squashes_beside_first_requests_count_every_users_days_into_the_histogram():
    # Writers give each user a request on each of 8 days, in their own orders, while a squasher
    # counts the rows whose days change into the active-user histogram, again and again.
    users, model = UserFactory.create_batch(3), AIModelFactory()
    days = [datetime(2026, 2, day, 12, tzinfo=UTC) for day in range(1, 9)]

    def squasher(writers_done: threading.Event) -> None:
        while not writers_done.is_set():
            rollups_squash()

    first_requests_beside(users=users, model=model, days=days, other=squasher)
    rollups_squash()

    assert not UserYearlyActivity.objects.filter(is_counted=False).exists()
    for since, until in [(1, 1), (2, 5), (5, 8), (1, 8)]:
        period = Period(since=date(2026, 2, since), until=date(2026, 2, until))
        assert selectors.usage_headline(period=period).active_users == 3
        assert selectors.usage_headline(period=period) == raw_selectors.usage_headline(period=period)
    # Each user: 1 February with no day before it, then each next day after the one before.
    expected = [(2026, 201, 0, 3)] + [(2026, 200 + day, 199 + day, 3) for day in range(2, 9)]
    assert sorted(ActiveUserHistogram.objects.values_list("year", "day", "previous_day", "user_count")) == expected
    assert rollups_rebuild().is_consistent


def test_a_squash_skips_the_activity_row_a_writer_holds_and_the_next_one_counts_it():
    user, model = UserFactory(), AIModelFactory()
    written, squashed = threading.Event(), threading.Event()

    def writer() -> None:
        # A transaction that sets the user's bit for 2 February and holds the row until the squash ran.
        with transaction.atomic():
            request_cost_record(
                user=user,
                ai_model=model,
                prompt_tokens=1,
                completion_tokens=0,
                cost_usd="0",
                created_at=datetime(2026, 2, 2, 12, tzinfo=UTC),
            )
            written.set()
            assert squashed.wait(timeout=60), "the squash waited for the writer"

    def squasher() -> None:
        assert written.wait(timeout=60)
        rollups_squash()
        squashed.set()

    request_cost_record(
        user=user,
        ai_model=model,
        prompt_tokens=1,
        completion_tokens=0,
        cost_usd="0",
        created_at=datetime(2026, 2, 1, 12, tzinfo=UTC),
    )
    run_threads([writer, squasher])

    # Skipped: still not counted, and read from its days.
    assert UserYearlyActivity.objects.get(user=user).is_counted is False
    period = Period(since=date(2026, 2, 2), until=date(2026, 2, 2))
    assert selectors.usage_headline(period=period).active_users == 1
    assert rollups_squash().activity_rows_counted == 1
    assert sorted(ActiveUserHistogram.objects.values_list("day", "previous_day", "user_count")) == [
        (201, 0, 1),
        (202, 201, 1),
    ]
    assert selectors.usage_headline(period=period) == raw_selectors.usage_headline(period=period)
