"""Tests of chatbot.services.request_cost_record, the write side of every cost report."""

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, connections, transaction

from accounts.models import User
from ai_models.models import AIModel
from chatbot import services
from chatbot.models import ChatSession, OpenRouterRequestCost
from chatbot.services import _request_cost_insert, _request_cost_lookup, _RequestCostLookup, request_cost_record
from core.factories import AIModelFactory, ChatSessionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> User:
    return UserFactory()


@pytest.fixture
def ai_model() -> AIModel:
    return AIModelFactory()


def record(**overrides) -> OpenRouterRequestCost:
    """Record a request with plausible figures, overridden by the test."""
    arguments = {"prompt_tokens": 120, "completion_tokens": 80, "cost_usd": Decimal("0.000132")}
    arguments.update(overrides)
    return request_cost_record(**arguments)


def test_stores_the_request_with_total_tokens_as_the_sum(user: User, ai_model: AIModel) -> None:
    session = ChatSessionFactory(user=user)
    created_at = datetime(2024, 5, 17, 13, 45, 30, 123456, tzinfo=UTC)

    returned = request_cost_record(
        user=user,
        ai_model=ai_model,
        prompt_tokens=1234,
        completion_tokens=567,
        cost_usd=Decimal("0.001234567891"),
        session=session,
        generation_id="gen-abc",
        created_at=created_at,
    )

    stored = OpenRouterRequestCost.objects.get()
    assert stored.pk == returned.pk
    assert stored.user == user
    assert stored.ai_model == ai_model
    assert stored.session == session
    assert stored.generation_id == "gen-abc"
    assert (stored.prompt_tokens, stored.completion_tokens) == (1234, 567)
    assert stored.total_tokens == 1801  # 1234 + 567
    assert stored.cost_usd == Decimal("0.001234567891")
    assert stored.created_at == created_at


def test_zero_tokens_and_zero_cost_are_accepted(user: User, ai_model: AIModel) -> None:
    stored = record(user=user, ai_model=ai_model, prompt_tokens=0, completion_tokens=0, cost_usd=0)

    stored.refresh_from_db()
    assert (stored.total_tokens, stored.cost_usd) == (0, Decimal("0"))


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        (Decimal("0.000000123"), Decimal("0.000000123")),
        ("0.000132", Decimal("0.000132")),
        (" 0.5 ", Decimal("0.5")),
        ("1E-12", Decimal("0.000000000001")),
        (3, Decimal("3")),
    ],
    ids=["decimal", "str", "str-with-spaces", "str-exponent", "int"],
)
def test_cost_accepts_decimal_str_and_int(user: User, ai_model: AIModel, cost, expected: Decimal) -> None:
    returned = record(user=user, ai_model=ai_model, cost_usd=cost)

    stored = OpenRouterRequestCost.objects.get()
    assert type(returned.cost_usd) is Decimal
    assert returned.cost_usd == expected
    assert type(stored.cost_usd) is Decimal
    assert stored.cost_usd == expected


@pytest.mark.parametrize(
    "cost",
    [0.1, 1.0, True, None, "abc", "", "NaN", "Infinity", "-0.01", -1, Decimal("-0.000000000001"), "0.0000000000001"],
    ids=[
        "float",
        "whole-float",
        "bool",
        "none",
        "not-a-number",
        "empty",
        "nan",
        "infinity",
        "negative-str",
        "negative-int",
        "negative-decimal",
        "thirteen-places",
    ],
)
def test_bad_cost_is_rejected_and_nothing_stored(user: User, ai_model: AIModel, cost) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, cost_usd=cost)

    assert "cost_usd" in excinfo.value.message_dict
    assert not OpenRouterRequestCost.objects.exists()


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens"])
@pytest.mark.parametrize("value", [-1, 1.5, "10", None, True], ids=["negative", "float", "str", "none", "bool"])
def test_bad_tokens_are_rejected_and_nothing_stored(user: User, ai_model: AIModel, field: str, value) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, **{field: value})

    assert field in excinfo.value.message_dict
    assert not OpenRouterRequestCost.objects.exists()


def test_every_bad_argument_is_reported_at_once(user: User, ai_model: AIModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=User(username="ghost"), ai_model=ai_model, prompt_tokens=-5, cost_usd="-1")

    assert set(excinfo.value.message_dict) == {"user", "prompt_tokens", "cost_usd"}
    assert not OpenRouterRequestCost.objects.exists()


def test_unsaved_user_is_rejected(ai_model: AIModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=User(username="never-saved"), ai_model=ai_model)

    assert list(excinfo.value.message_dict) == ["user"]
    assert not OpenRouterRequestCost.objects.exists()


def test_deleted_user_is_rejected(ai_model: AIModel) -> None:
    deleted = UserFactory()
    # Delete through the queryset so the instance keeps its stale pk, like a user deleted elsewhere.
    User.objects.filter(pk=deleted.pk).delete()

    with pytest.raises(ValidationError) as excinfo:
        record(user=deleted, ai_model=ai_model)

    assert list(excinfo.value.message_dict) == ["user"]
    assert not OpenRouterRequestCost.objects.exists()


def test_user_deleted_through_its_instance_is_rejected(ai_model: AIModel) -> None:
    deleted = UserFactory()
    deleted.delete()

    with pytest.raises(ValidationError) as excinfo:
        record(user=deleted, ai_model=ai_model)

    assert list(excinfo.value.message_dict) == ["user"]
    assert not OpenRouterRequestCost.objects.exists()


def test_something_else_than_a_user_is_rejected(ai_model: AIModel) -> None:
    model_as_user = AIModelFactory()

    with pytest.raises(ValidationError) as excinfo:
        record(user=model_as_user, ai_model=ai_model)

    assert list(excinfo.value.message_dict) == ["user"]
    assert not OpenRouterRequestCost.objects.exists()


def test_unsaved_model_is_rejected(user: User) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=AIModel(openrouter_id="acme/unsaved", name="Unsaved"))

    assert list(excinfo.value.message_dict) == ["ai_model"]
    assert not OpenRouterRequestCost.objects.exists()


def test_deleted_model_is_rejected(user: User) -> None:
    deleted = AIModelFactory()
    AIModel.objects.filter(pk=deleted.pk).delete()

    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=deleted)

    assert list(excinfo.value.message_dict) == ["ai_model"]
    assert not OpenRouterRequestCost.objects.exists()


def test_session_of_another_user_is_rejected(user: User, ai_model: AIModel) -> None:
    someone_elses = ChatSessionFactory(user=UserFactory())

    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, session=someone_elses)

    assert list(excinfo.value.message_dict) == ["session"]
    assert not OpenRouterRequestCost.objects.exists()


def test_unsaved_session_is_rejected(user: User, ai_model: AIModel) -> None:
    unsaved = ChatSessionFactory.build(user=user, chatbot=ChatSessionFactory().chatbot)

    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, session=unsaved)

    assert list(excinfo.value.message_dict) == ["session"]
    assert not OpenRouterRequestCost.objects.exists()


def test_same_generation_id_is_stored_once_and_returns_the_original(user: User, ai_model: AIModel) -> None:
    original = record(user=user, ai_model=ai_model, generation_id="gen-1", prompt_tokens=10, completion_tokens=5)

    again = record(
        user=UserFactory(),
        ai_model=AIModelFactory(),
        generation_id="gen-1",
        prompt_tokens=999,
        completion_tokens=999,
        cost_usd="9.99",
    )

    assert OpenRouterRequestCost.objects.count() == 1
    assert again.pk == original.pk
    # The second call's figures are ignored: the first record stands.
    assert (again.user_id, again.ai_model_id) == (user.pk, ai_model.pk)
    assert (again.prompt_tokens, again.completion_tokens, again.total_tokens) == (10, 5, 15)
    assert again.cost_usd == Decimal("0.000132")


def lookup_missing_the_stored_row(**arguments) -> _RequestCostLookup:
    """Look up as the service does, blind to the request already stored under the generation_id."""
    return dataclasses.replace(_request_cost_lookup(**arguments), stored_id=None)


ON_POSTGRESQL = pytest.mark.skipif(connection.vendor != "postgresql", reason="One statement on PostgreSQL only.")


@pytest.fixture
def two_queries():
    """Make request_cost_record take its two-query path (a look-up, then the INSERT) on PostgreSQL too."""
    with mock.patch("chatbot.services._request_cost_record_at_once", return_value=None):
        yield


def statement_with_look_up(select: str):
    """Patch the one-statement path's look-up into ``select`` over the real one's columns (u, m, s, stored), once."""
    real_lookup_sql = services._lookup_sql
    calls = []

    def lookup_sql(**arguments) -> str:
        calls.append(arguments)
        real = real_lookup_sql(**arguments)
        # The test's own fixed select list around the service's SQL.
        return f"SELECT {select} FROM ({real}) real_lookup (u, m, s, stored)" if len(calls) == 1 else real  # noqa: S608

    return mock.patch.multiple(
        "chatbot.services",
        _lookup_sql=mock.Mock(side_effect=lookup_sql),
        # Uncached, so that it builds its SQL with the patched look-up.
        _record_at_once_sql=services._record_at_once_sql.__wrapped__,
    )


def test_same_generation_id_written_concurrently_returns_the_stored_row(
    user: User, ai_model: AIModel, two_queries
) -> None:
    original = record(user=user, ai_model=ai_model, generation_id="gen-race")

    # Hide the stored row from the look-up, as when another writer commits it in between: the
    # insert then hits the unique constraint, which must end in the stored row, not an error.
    with (
        mock.patch("chatbot.services._request_cost_lookup", side_effect=lookup_missing_the_stored_row),
        mock.patch("chatbot.services._request_cost_insert", side_effect=_request_cost_insert) as insert_spy,
    ):
        again = record(user=user, ai_model=ai_model, generation_id="gen-race", prompt_tokens=1)

    insert_spy.assert_called_once()  # the insert was tried, and refused by the database
    assert again.pk == original.pk
    assert OpenRouterRequestCost.objects.count() == 1
    # The surrounding transaction is still usable after the failed insert.
    assert OpenRouterRequestCost.objects.get().prompt_tokens == 120


@ON_POSTGRESQL
def test_in_one_statement_a_generation_id_written_concurrently_returns_the_stored_row(
    user: User, ai_model: AIModel
) -> None:
    original = record(user=user, ai_model=ai_model, generation_id="gen-race")

    # The statement's look-up blind to the stored row: its INSERT skips the conflicting row.
    with statement_with_look_up("u, m, s, NULL::bigint"):
        again = record(user=user, ai_model=ai_model, generation_id="gen-race", prompt_tokens=1)

    assert again.pk == original.pk
    assert OpenRouterRequestCost.objects.count() == 1
    assert OpenRouterRequestCost.objects.get().prompt_tokens == 120


def test_missing_generation_id_is_allowed_many_times(user: User, ai_model: AIModel) -> None:
    first = record(user=user, ai_model=ai_model, generation_id=None)
    second = record(user=user, ai_model=ai_model, generation_id=None)
    third = record(user=user, ai_model=ai_model)

    assert len({first.pk, second.pk, third.pk}) == 3
    assert OpenRouterRequestCost.objects.filter(generation_id__isnull=True).count() == 3


@pytest.mark.parametrize("generation_id", ["", "   ", 42], ids=["empty", "blank", "int"])
def test_blank_or_non_string_generation_id_is_rejected(user: User, ai_model: AIModel, generation_id) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, generation_id=generation_id)

    assert list(excinfo.value.message_dict) == ["generation_id"]
    assert not OpenRouterRequestCost.objects.exists()


def test_created_at_can_be_set_for_history(user: User, ai_model: AIModel) -> None:
    created_at = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)

    record(user=user, ai_model=ai_model, created_at=created_at)

    assert OpenRouterRequestCost.objects.get().created_at == created_at


def test_created_at_defaults_to_now(user: User, ai_model: AIModel) -> None:
    frozen = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    with mock.patch("django.utils.timezone.now", return_value=frozen):
        record(user=user, ai_model=ai_model)

    assert OpenRouterRequestCost.objects.get().created_at == frozen


def test_naive_created_at_is_rejected(user: User, ai_model: AIModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, created_at=datetime(2024, 1, 1, 12, 0))

    assert list(excinfo.value.message_dict) == ["created_at"]
    assert not OpenRouterRequestCost.objects.exists()


def test_a_deleted_session_is_rejected_as_full_clean_would(user: User, ai_model: AIModel) -> None:
    session = ChatSessionFactory(user=user)
    ChatSession.objects.filter(pk=session.pk).delete()

    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, session=session)

    # Django's own message for a foreign key to a row that does not exist.
    message = f"chat session instance with id {session.pk} is not a valid choice."
    assert excinfo.value.message_dict == {"session": [message]}
    assert not OpenRouterRequestCost.objects.exists()


def test_a_column_limit_is_reported_in_full_cleans_words(user: User, ai_model: AIModel) -> None:
    with pytest.raises(ValidationError) as excinfo:
        record(user=user, ai_model=ai_model, generation_id="g" * 256, cost_usd="123456789")

    assert excinfo.value.message_dict == {
        "generation_id": ["Ensure this value has at most 255 characters (it has 256)."],
        "cost_usd": ["Ensure that there are no more than 8 digits before the decimal point."],
    }
    assert not OpenRouterRequestCost.objects.exists()


# --- Round trips ---------------------------------------------------------------------------------


def test_inside_a_transaction_a_request_takes_a_look_up_and_a_savepointed_insert(
    user: User, ai_model: AIModel, django_assert_num_queries
) -> None:
    session = ChatSessionFactory(user=user)
    at_once = connection.vendor == "postgresql"

    # PostgreSQL: SAVEPOINT, the look-up (user, model, session, generation_id at once) and the
    # INSERT in one statement, RELEASE SAVEPOINT. SQLite: the look-up, then the INSERT in a savepoint.
    with django_assert_num_queries(3 if at_once else 4) as captured:
        record(user=user, ai_model=ai_model, session=session, generation_id="gen-counted")

    queries = [query["sql"] for query in captured.captured_queries]
    if at_once:
        savepoint, statement, release = queries
        assert statement.startswith("WITH lookup") and "INSERT INTO" in statement
    else:
        look_up, savepoint, insert, release = queries
        assert look_up.startswith("SELECT EXISTS")
        assert insert.startswith("INSERT INTO")
    assert savepoint.startswith("SAVEPOINT")
    assert release.startswith("RELEASE SAVEPOINT")


def test_a_known_generation_id_takes_the_look_up_and_a_fetch_and_writes_nothing(
    user: User, ai_model: AIModel, django_assert_num_queries
) -> None:
    stored = record(user=user, ai_model=ai_model, generation_id="gen-known")

    # The look-up, then the stored row; on PostgreSQL the look-up is the statement (with the
    # INSERT it skips), in a savepoint inside this test's transaction.
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 2):
        again = record(user=user, ai_model=ai_model, generation_id="gen-known")

    assert again.pk == stored.pk
    assert OpenRouterRequestCost.objects.count() == 1


def test_bad_input_is_refused_after_the_look_up_alone(user: User, ai_model: AIModel, django_assert_num_queries) -> None:
    with django_assert_num_queries(1), pytest.raises(ValidationError):
        record(user=user, ai_model=AIModel(pk=ai_model.pk + 1000, openrouter_id="gone/model"), cost_usd="-1")


def test_a_missing_reference_with_valid_figures_is_refused_by_the_look_up_alone(
    user: User, ai_model: AIModel, django_assert_num_queries
) -> None:
    gone = AIModel(pk=ai_model.pk + 1000, openrouter_id="gone/model")

    # PostgreSQL: the statement (whose INSERT the look-up skips), in a savepoint inside this
    # test's transaction; SQLite: the look-up.
    with (
        django_assert_num_queries(3 if connection.vendor == "postgresql" else 1),
        pytest.raises(ValidationError) as excinfo,
    ):
        record(user=user, ai_model=gone)

    assert excinfo.value.message_dict == {"ai_model": ["Unknown AI model: it must be a saved AI model."]}
    assert not OpenRouterRequestCost.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_alone_a_request_is_a_look_up_and_an_insert_without_a_transaction(django_assert_num_queries) -> None:
    user, ai_model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user)
    at_once = connection.vendor == "postgresql"

    with (
        django_assert_num_queries(1 if at_once else 2) as captured,
        mock.patch.object(connection, "set_autocommit", wraps=connection.set_autocommit) as set_autocommit,
    ):
        stored = record(user=user, ai_model=ai_model, session=session, generation_id="gen-alone")

    # No BEGIN or COMMIT (atomic() would turn autocommit off and on again) and no savepoint.
    set_autocommit.assert_not_called()
    assert [query["sql"].split()[0] for query in captured.captured_queries] == (
        ["WITH"] if at_once else ["SELECT", "INSERT"]
    )
    assert OpenRouterRequestCost.objects.get().pk == stored.pk


def _recording_statements_prepared() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH lookup %%'")
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL")
@pytest.mark.parametrize(("threshold", "prepared"), [(5, True), (None, False)])
def test_the_recording_statement_is_prepared_on_a_connection_that_runs_it_often(
    user: User, ai_model: AIModel, threshold: int | None, prepared: bool
) -> None:
    connection.ensure_connection()
    previous = connection.connection.prepare_threshold
    # As DATABASE_PREPARED_STATEMENTS sets it; the server's list is the connection's own.
    connection.connection.prepare_threshold = threshold
    try:
        with connection.cursor() as cursor:
            # psycopg sees the command and forgets the statements it had prepared too.
            cursor.execute("DEALLOCATE ALL")
        session = ChatSessionFactory(user=user)
        # Ids, sessions and generation ids of either kind: the values bind apart from the SQL.
        for number in range(8):
            record(user=user, ai_model=ai_model, session=session, generation_id=f"gen-prepared-{number}")
            record(user=user, ai_model=ai_model, prompt_tokens=100_000, cost_usd="1.5")
        assert (_recording_statements_prepared() > 0) is prepared
    finally:
        connection.connection.prepare_threshold = previous
    assert OpenRouterRequestCost.objects.filter(session=session).count() == 8
    assert OpenRouterRequestCost.objects.filter(session=None, prompt_tokens=100_000).count() == 8


# --- A referenced row deleted between the look-up and the INSERT ------------------------------------


def lookup_made_before_a_deletion() -> Callable[..., _RequestCostLookup]:
    """Return the service's look-up, reporting every referenced row as there the first time (before a delete)."""
    calls = []

    def look_up(**arguments) -> _RequestCostLookup:
        found = _request_cost_lookup(**arguments)
        calls.append(found)
        if len(calls) > 1:
            return found
        return dataclasses.replace(found, user_exists=True, ai_model_exists=True, session_exists=True)

    return look_up


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deleted", ["user", "ai_model", "session"])
@pytest.mark.parametrize("path", ["two queries", pytest.param("one statement", marks=ON_POSTGRESQL)])
def test_a_row_deleted_before_the_insert_is_the_same_clear_error(deleted: str, path: str) -> None:
    if path == "two queries":
        at_once = mock.patch("chatbot.services._request_cost_record_at_once", return_value=None)
    else:
        at_once = mock.patch(
            "chatbot.services._request_cost_record_at_once", wraps=services._request_cost_record_at_once
        )
    with at_once:
        _record_after_a_deletion(deleted=deleted, path=path)


def _record_after_a_deletion(*, deleted: str, path: str) -> None:
    user, ai_model = UserFactory(), AIModelFactory()
    session = ChatSessionFactory(user=user) if deleted == "session" else None
    arguments = {"user": user, "ai_model": ai_model, "session": session, "generation_id": "gen-deleted"}
    # Deleted by a plain DELETE, as another process would: the instances keep their pks.
    type(arguments[deleted]).objects.filter(pk=arguments[deleted].pk)._raw_delete(using="default")
    expected = {
        "user": ["Unknown user: it must be a saved user."],
        "ai_model": ["Unknown AI model: it must be a saved AI model."],
        "session": [f"chat session instance with id {getattr(session, 'pk', None)} is not a valid choice."],
    }[deleted]

    if path == "one statement":
        # The statement's look-up taken before the deletion: every referenced row there.
        looked_up = statement_with_look_up("true, true, true, stored")
    else:
        looked_up = mock.patch("chatbot.services._request_cost_lookup", side_effect=lookup_made_before_a_deletion())

    with looked_up, pytest.raises(ValidationError) as excinfo:
        record(**arguments)

    # The database refused the INSERT (its foreign key); the service says which row was missing.
    assert excinfo.value.message_dict == {deleted: expected}
    assert isinstance(excinfo.value.__cause__, IntegrityError)
    assert not OpenRouterRequestCost.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite admits one writer at a time: no one deletes.")
def test_inside_a_transaction_the_checked_rows_cannot_be_deleted_until_it_commits() -> None:
    user, ai_model = UserFactory(), AIModelFactory()
    recorded = threading.Event()
    deletion: list[str] = []

    def delete_the_user() -> None:
        recorded.wait(timeout=30)
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SET lock_timeout = '200ms'")
                cursor.execute(f"DELETE FROM {User._meta.db_table} WHERE id = %s", [user.pk])  # noqa: S608
        except OperationalError as error:
            deletion.append(type(error.__cause__).__name__)
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete_the_user)
    deleter.start()
    with transaction.atomic():
        record(user=user, ai_model=ai_model, generation_id="gen-locked")
        recorded.set()
        deleter.join(timeout=30)

    # The look-up locked the user as the foreign key check at COMMIT would: the deletion had to
    # wait for this transaction, so the commit could not fail on a user deleted in between.
    assert deletion == ["LockNotAvailable"]
    assert OpenRouterRequestCost.objects.get().user_id == user.pk
