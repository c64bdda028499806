"""Tests of chatbot.services.request_cost_record, the write side of every cost report."""

from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import OpenRouterRequestCost
from chatbot.services import request_cost_record
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


def test_same_generation_id_written_concurrently_returns_the_stored_row(user: User, ai_model: AIModel) -> None:
    original = record(user=user, ai_model=ai_model, generation_id="gen-race")

    # Hide the stored row from the look-up, as when another writer commits it in between: the
    # insert then hits the unique constraint, which must end in the stored row, not an error.
    save = OpenRouterRequestCost.save
    with (
        mock.patch.object(QuerySet, "first", return_value=None),
        mock.patch.object(OpenRouterRequestCost, "save", autospec=True, side_effect=save) as save_spy,
    ):
        again = record(user=user, ai_model=ai_model, generation_id="gen-race", prompt_tokens=1)

    save_spy.assert_called_once()  # the insert was tried, and refused by the database
    assert again.pk == original.pk
    assert OpenRouterRequestCost.objects.count() == 1
    # The surrounding transaction is still usable after the failed insert.
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
