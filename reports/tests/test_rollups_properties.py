"""Property tests: every rollup-backed report equals its raw aggregation, whatever the data and writes.

Hypothesis builds a small platform (users, models some of them free, chatbots, sessions,
messages, requests) with ``created_at`` spread over a week around a month's end, then applies
random later writes through every path the rollup triggers must follow: the services,
``bulk_create``, ``QuerySet.update()``/``delete()``, ``Model.save()``/``delete()`` with Django's
cascades, raw SQL, a model's ``is_free`` flipped, a squash at any point. Then each function of
``reports.selectors`` must return exactly what its namesake in ``reports.raw_selectors``
(the raw aggregation, the reference) returns, for random periods (open-ended and all time too)
and limits. Each example runs in a savepoint rolled back at its end.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from chatbot.services import request_cost_record
from reports import raw_selectors, selectors
from reports.periods import ALL_TIME, Period
from reports.rollups import rollups_rebuild, rollups_squash

pytestmark = pytest.mark.django_db

ZONE_CASES = [
    pytest.param(("UTC", date(2026, 1, 31)), id="utc-january-end"),
    # Paris moves to summer time on 2026-03-29 (a 23-hour day), two days before the month ends.
    pytest.param(("Europe/Paris", date(2026, 3, 30)), id="paris-summer-time-and-march-end"),
]
SPREAD_DAYS = 3
# Each example draws its requests' figures from a palette of one or two of these, so that ties
# (broken by the next measure, then by id) are common.
TOKEN_CHOICES = [0, 1, 2, 10]
COST_CHOICES = [Decimal(cost) for cost in ("0", "0.000000000001", "0.1", "0.2", "0.3", "1.000000000001")]

LIMITED = [
    "top_users_by_cost",
    "top_models_by_usage",
    "top_free_models",
    "top_chatbots_by_sessions",
    "top_users_by_free_usage",
]
UNLIMITED = ["average_tokens_per_request", "usage_headline", "daily_usage", "usage_comparison"]

EXAMPLES = hypothesis_settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(params=ZONE_CASES)
def centre(request, settings) -> date:
    """Set TIME_ZONE and install the rollup triggers for it; return the day the data centres on."""
    zone, day = request.param
    settings.TIME_ZONE = zone
    # Rolled back with the test's transaction, like the data.
    rollups_rebuild()
    return day


class Platform:
    """Draws a platform's rows and later writes from Hypothesis, straight into the database."""

    def __init__(self, data: st.DataObject, centre: date) -> None:
        self.data = data
        self.centre = centre
        palette = st.lists(st.sampled_from(TOKEN_CHOICES), min_size=1, max_size=2, unique=True)
        self.tokens = st.sampled_from(data.draw(palette, label="token palette"))
        costs = st.lists(st.sampled_from(COST_CHOICES), min_size=1, max_size=2, unique=True)
        self.costs = st.sampled_from(data.draw(costs, label="cost palette"))
        self.serial = 0
        midnights = [
            timezone.make_aware(datetime.combine(centre + timedelta(days=offset), time.min))
            for offset in range(-SPREAD_DAYS, SPREAD_DAYS + 2)
        ]
        # Local midnights and the instants either side of them, where a wrong day shows.
        edges = [moment + timedelta(microseconds=delta) for moment in midnights for delta in (-1, 0, 1)]
        noon = datetime.combine(centre, time(12), tzinfo=UTC)
        seconds = SPREAD_DAYS * 86_400
        self.instants = st.one_of(
            st.sampled_from(edges),
            st.integers(-seconds, seconds).map(lambda offset: noon + timedelta(seconds=offset)),
        )

    def draw(self, strategy, label: str):
        return self.data.draw(strategy, label=label)

    def pick(self, model, label: str, **filters):
        """Return a drawn existing row of ``model``, or None when there is none."""
        pks = list(model.objects.filter(**filters).order_by("pk").values_list("pk", flat=True))
        if not pks:
            return None
        return model.objects.get(pk=self.draw(st.sampled_from(pks), label))

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    # --- Rows ---

    def users(self, count: int) -> None:
        User.objects.bulk_create([User(username=self.name("user")) for _ in range(count)])

    def models(self, count: int) -> None:
        AIModel.objects.bulk_create(
            [
                AIModel(openrouter_id=self.name("vendor/model-"), name=self.name("Model "), is_free=free)
                for free in self.draw(st.lists(st.booleans(), min_size=count, max_size=count), "free models")
            ]
        )

    def chatbots(self, count: int) -> None:
        Chatbot.objects.bulk_create(
            [Chatbot(name=self.name("Chatbot "), ai_model=self.pick(AIModel, "chatbot model")) for _ in range(count)]
        )

    def session(self) -> ChatSession:
        return ChatSession(
            user=self.pick(User, "session user"),
            chatbot=self.pick(Chatbot, "session chatbot"),
            created_at=self.draw(self.instants, "session created_at"),
        )

    def message(self) -> ChatMessage | None:
        session = self.pick(ChatSession, "message session")
        if session is None:
            return None
        return ChatMessage(
            session=session, role="user", content="hello", created_at=self.draw(self.instants, "message created_at")
        )

    def request(self) -> OpenRouterRequestCost:
        prompt, completion = self.draw(self.tokens, "prompt tokens"), self.draw(self.tokens, "completion tokens")
        # Any session, even another user's: the database allows it, and the rollups must follow.
        session = self.pick(ChatSession, "request session") if self.draw(st.booleans(), "in a session") else None
        return OpenRouterRequestCost(
            user=self.pick(User, "request user"),
            ai_model=self.pick(AIModel, "request model"),
            session=session,
            generation_id=self.name("gen-"),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cost_usd=self.draw(self.costs, "cost"),
            created_at=self.draw(self.instants, "request created_at"),
        )

    def populate(self) -> None:
        self.users(self.draw(st.integers(1, 4), "users"))
        self.models(self.draw(st.integers(1, 4), "models"))
        self.chatbots(self.draw(st.integers(1, 3), "chatbots"))
        ChatSession.objects.bulk_create([self.session() for _ in range(self.draw(st.integers(0, 5), "sessions"))])
        messages = [self.message() for _ in range(self.draw(st.integers(0, 8), "messages"))]
        ChatMessage.objects.bulk_create([message for message in messages if message])
        OpenRouterRequestCost.objects.bulk_create(
            [self.request() for _ in range(self.draw(st.integers(0, 12), "requests"))]
        )

    # --- Later writes, one per method; each does nothing when it has nothing to act on ---

    def write_record_request(self) -> None:
        user = self.pick(User, "user")
        session = self.pick(ChatSession, "session", user=user) if self.draw(st.booleans(), "in a session") else None
        request_cost_record(
            user=user,
            ai_model=self.pick(AIModel, "model"),
            session=session,
            prompt_tokens=self.draw(self.tokens, "prompt tokens"),
            completion_tokens=self.draw(self.tokens, "completion tokens"),
            cost_usd=str(self.draw(self.costs, "cost")),
            created_at=self.draw(self.instants, "created_at"),
        )

    def write_bulk_requests(self) -> None:
        OpenRouterRequestCost.objects.bulk_create([self.request() for _ in range(self.draw(st.integers(1, 4), "n"))])

    def write_delete_request(self) -> None:
        if request := self.pick(OpenRouterRequestCost, "request"):
            request.delete()

    def write_delete_requests_of_user(self) -> None:
        OpenRouterRequestCost.objects.filter(user=self.pick(User, "user")).delete()

    def write_update_figures(self) -> None:
        prompt, completion = self.draw(self.tokens, "prompt tokens"), self.draw(self.tokens, "completion tokens")
        OpenRouterRequestCost.objects.filter(user=self.pick(User, "user")).update(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cost_usd=self.draw(self.costs, "cost"),
        )

    def write_reconcile(self) -> None:
        # As request_cost_reconcile: a row's cost and tokens filled in by save(update_fields=...).
        if request := self.pick(OpenRouterRequestCost, "request"):
            request.cost_usd = self.draw(self.costs, "cost")
            request.prompt_tokens = self.draw(self.tokens, "prompt tokens")
            request.total_tokens = request.prompt_tokens + request.completion_tokens
            request.save(update_fields=["cost_usd", "prompt_tokens", "total_tokens"])

    def write_move_request(self) -> None:
        if request := self.pick(OpenRouterRequestCost, "request"):
            request.user = self.pick(User, "new user")
            request.ai_model = self.pick(AIModel, "new model")
            request.session = self.pick(ChatSession, "new session") if self.draw(st.booleans(), "session") else None
            request.created_at = self.draw(self.instants, "new created_at")
            request.save()

    def write_sessions(self) -> None:
        ChatSession.objects.bulk_create([self.session() for _ in range(self.draw(st.integers(1, 2), "n"))])

    def write_messages(self) -> None:
        messages = [self.message() for _ in range(self.draw(st.integers(1, 3), "n"))]
        ChatMessage.objects.bulk_create([message for message in messages if message])

    def write_delete_session(self) -> None:
        # Django sets the requests' session to NULL and deletes the messages, then the session.
        if session := self.pick(ChatSession, "session"):
            session.delete()

    def write_move_session(self) -> None:
        if session := self.pick(ChatSession, "session"):
            ChatSession.objects.filter(pk=session.pk).update(
                chatbot=self.pick(Chatbot, "new chatbot"), created_at=self.draw(self.instants, "new created_at")
            )

    def write_move_message(self) -> None:
        if message := self.pick(ChatMessage, "message"):
            message.session = self.pick(ChatSession, "new session")
            message.created_at = self.draw(self.instants, "new created_at")
            message.save()

    def write_delete_message_in_sql(self) -> None:
        if message := self.pick(ChatMessage, "message"):
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {ChatMessage._meta.db_table} WHERE id = %s", [message.pk])  # noqa: S608

    def write_delete_user(self) -> None:
        # Requests protect their user: an operator deletes them first, then the user and its sessions.
        if User.objects.count() > 1:
            user = self.pick(User, "user")
            OpenRouterRequestCost.objects.filter(user=user).delete()
            user.delete()

    def write_delete_chatbot(self) -> None:
        if Chatbot.objects.count() > 1:
            self.pick(Chatbot, "chatbot").delete()

    def write_flip_free(self) -> None:
        model = self.pick(AIModel, "model")
        model.is_free = not model.is_free
        model.save()

    def write_set_free_in_bulk(self) -> None:
        AIModel.objects.filter(pk__in=[self.pick(AIModel, "model").pk, self.pick(AIModel, "model").pk]).update(
            is_free=self.draw(st.booleans(), "free")
        )

    def write_new_entities(self) -> None:
        self.users(1)
        self.models(1)
        self.chatbots(1)

    def write_squash(self) -> None:
        rollups_squash()

    def writes(self) -> list[str]:
        return sorted(name for name in dir(self) if name.startswith("write_"))


def _bounds(since: date | None, until: date | None) -> Period:
    if since and until and since > until:
        since, until = until, since
    return Period(since=since, until=until)


def reports_compare(*, data: st.DataObject, centre: date) -> None:
    """Assert that every rollup selector returns exactly what the raw one does."""
    near = st.dates(centre - timedelta(days=SPREAD_DAYS + 1), centre + timedelta(days=SPREAD_DAYS + 1))
    day = st.one_of(st.none(), near)
    drawn = data.draw(st.lists(st.tuples(day, day), min_size=1, max_size=3), label="periods")
    bounded = data.draw(st.tuples(near, near), label="bounded period")
    for period in [ALL_TIME, *(_bounds(*bounds) for bounds in drawn)]:
        limit = data.draw(st.integers(1, 4), label="limit")
        calls = [(name, {"period": period}) for name in LIMITED + UNLIMITED if name != "usage_comparison"]
        calls += [(name, {"period": period, "limit": limit}) for name in LIMITED]
        calls += [
            ("chatbot_unit_economics", {"period": period}),
            ("chatbot_unit_economics", {"period": period, "limit": limit}),
        ]
        for name, kwargs in calls:
            expected = getattr(raw_selectors, name)(**kwargs)
            actual = getattr(selectors, name)(**kwargs)
            # repr too: Decimal('0.3') == Decimal('0.300000000000'), but the exports would differ.
            assert (actual, repr(actual)) == (expected, repr(expected)), f"{name}({kwargs})"
        # The big lists' exact counts, against COUNT(*) of the rows themselves.
        for count, model in (
            (selectors.request_count, OpenRouterRequestCost),
            (selectors.session_count, ChatSession),
            (selectors.message_count, ChatMessage),
        ):
            expected = model.objects.filter(period.q("created_at")).count()
            assert count(period=period) == expected, f"{count.__name__}({period})"
    comparison_period = _bounds(*bounded)
    assert selectors.usage_comparison(period=comparison_period) == raw_selectors.usage_comparison(
        period=comparison_period
    )
    assert selectors.first_request_date() == raw_selectors.first_request_date()


@contextmanager
def pruning(*, first: int | None, most: int | None) -> Iterator[None]:
    """Run the top-user reports' pruning with other round sizes (None: as configured)."""
    if first is None:
        yield
        return
    with (
        mock.patch.object(selectors, "PRUNING_FIRST_CANDIDATES", first),
        mock.patch.object(selectors, "PRUNING_CANDIDATES_PER_ROW", 1),
        mock.patch.object(selectors, "PRUNING_MAX_CANDIDATES", most),
    ):
        yield


@EXAMPLES
@given(data=st.data())
def test_rollup_reports_equal_the_raw_reports_after_random_writes(centre, data):
    with transaction.atomic():
        platform = Platform(data, centre)
        platform.populate()
        writes = platform.writes()
        for _ in range(data.draw(st.integers(0, 10), label="write count")):
            getattr(platform, data.draw(st.sampled_from(writes), label="write"))()
        # Read fresh deltas, squashed rows, or (after a squash mid-way) squashed rows and deltas.
        if data.draw(st.booleans(), label="squash before reading"):
            rollups_squash()
        # The top-user reports' pruning as configured, or in rounds of 1, 4, 16... users (so that
        # it stops early, or goes on, on a small platform), or giving up after the first round.
        first, most = data.draw(
            st.sampled_from([(None, None), (1, selectors.PRUNING_MAX_CANDIDATES), (1, 1)]), label="pruning"
        )
        with pruning(first=first, most=most):
            reports_compare(data=data, centre=centre)
        # The triggers' running sums also equal a recomputation from the raw rows, key by key.
        assert rollups_rebuild().is_consistent
        transaction.set_rollback(True)
