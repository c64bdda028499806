"""Tests of ExactDecimalField: exact storage, sums and lookups on SQLite and PostgreSQL."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Sum

from ai_models.models import AIModel
from chatbot.models import OpenRouterRequestCost
from core.factories import AIModelFactory, RequestCostFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_twelve_decimal_places_round_trip() -> None:
    # cost_usd has 12 decimal places; on SQLite it is an int64 of 10**-12 units, so the largest
    # value is 9223372.036854775807 (2**63 - 1 units): 1234567.123456789012 uses 19 digits.
    values = [Decimal("0.000000000001"), Decimal("1234567.123456789012"), Decimal("0"), Decimal("0.1")]
    rows = [RequestCostFactory(cost_usd=value) for value in values]

    stored = list(OpenRouterRequestCost.objects.filter(pk__in=[r.pk for r in rows]).order_by("pk"))

    assert [row.cost_usd for row in stored] == values
    assert all(type(row.cost_usd) is Decimal for row in stored)


def test_sixteen_decimal_places_round_trip() -> None:
    # prompt_price is (max_digits=18, decimal_places=16): 2 integer digits, 16 decimal ones.
    smallest = AIModelFactory(prompt_price=Decimal("0.0000000000000001"))
    largest = AIModelFactory(prompt_price=Decimal("99.9999999999999999"))
    typical = AIModelFactory(prompt_price=Decimal("0.00000012345678"))  # the catalog's 14 places

    prices = dict(AIModel.objects.values_list("pk", "prompt_price"))

    assert prices[smallest.pk] == Decimal("0.0000000000000001")
    assert prices[largest.pk] == Decimal("99.9999999999999999")
    assert prices[typical.pk] == Decimal("0.00000012345678")
    assert all(type(price) is Decimal for price in prices.values())


def test_null_round_trips_as_none() -> None:
    model = AIModelFactory(prompt_price=None, completion_price=None)

    model.refresh_from_db()

    assert model.prompt_price is None
    assert model.completion_price is None


def test_point_one_plus_point_two_sums_to_exactly_point_three() -> None:
    RequestCostFactory(cost_usd=Decimal("0.1"))
    RequestCostFactory(cost_usd=Decimal("0.2"))

    total = OpenRouterRequestCost.objects.aggregate(total=Sum("cost_usd"))["total"]

    # In binary floating point 0.1 + 0.2 is 0.30000000000000004; the sum must be exact.
    assert type(total) is Decimal
    assert total == Decimal("0.3")


def test_a_million_tiny_costs_sum_exactly() -> None:
    user = UserFactory()
    ai_model = AIModelFactory()
    cost = Decimal("0.000000123")
    # 15 625 rows go through the field (bulk_create in batches), then the table doubles itself
    # six times in SQL: 15 625 * 2**6 = 1 000 000 rows, without building a million objects.
    OpenRouterRequestCost.objects.bulk_create(
        (
            OpenRouterRequestCost(
                user=user, ai_model=ai_model, prompt_tokens=0, completion_tokens=0, total_tokens=0, cost_usd=cost
            )
            for _ in range(15_625)
        ),
        batch_size=2_500,
    )
    meta = OpenRouterRequestCost._meta
    columns = ", ".join(connection.ops.quote_name(f.column) for f in meta.concrete_fields if not f.primary_key)
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        for _ in range(6):
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}")  # noqa: S608

    totals = OpenRouterRequestCost.objects.aggregate(total=Sum("cost_usd"))

    assert OpenRouterRequestCost.objects.count() == 1_000_000
    # 1 000 000 * 0.000000123 = 0.123
    assert type(totals["total"]) is Decimal
    assert totals["total"] == Decimal("0.123")


def test_filters_compare_exact_values() -> None:
    tiny = RequestCostFactory(cost_usd=Decimal("0.000000000001"))
    point_one = RequestCostFactory(cost_usd=Decimal("0.1"))
    point_three = RequestCostFactory(cost_usd=Decimal("0.3"))
    costs = OpenRouterRequestCost.objects.order_by("pk")

    assert list(costs.filter(cost_usd=Decimal("0.1"))) == [point_one]
    assert list(costs.filter(cost_usd="0.3")) == [point_three]
    assert list(costs.filter(cost_usd__gt=0)) == [tiny, point_one, point_three]
    assert list(costs.filter(cost_usd__gt=Decimal("0.000000000001"))) == [point_one, point_three]
    assert list(costs.filter(cost_usd__lt=Decimal("0.1"))) == [tiny]
    assert list(costs.filter(cost_usd__lte=Decimal("0.1"))) == [tiny, point_one]
    assert list(costs.filter(cost_usd__range=(Decimal("0.1"), Decimal("0.3")))) == [point_one, point_three]
    assert list(costs.filter(cost_usd__in=[Decimal("0.3"), Decimal("0.000000000001")])) == [tiny, point_three]


def test_values_and_aggregates_are_decimals_not_floats() -> None:
    RequestCostFactory(cost_usd=Decimal("0.5"))
    RequestCostFactory(cost_usd=Decimal("0.25"))

    listed = list(OpenRouterRequestCost.objects.values_list("cost_usd", flat=True))
    total = OpenRouterRequestCost.objects.aggregate(total=Sum("cost_usd"))["total"]

    assert sorted(listed) == [Decimal("0.25"), Decimal("0.5")]
    assert all(type(value) is Decimal for value in listed)
    # 0.5 + 0.25 = 0.75
    assert type(total) is Decimal
    assert total == Decimal("0.75")


def test_too_many_decimal_places_is_rejected_on_save() -> None:
    user, ai_model = UserFactory(), AIModelFactory()

    # 13 decimal places in a 12-place column: PostgreSQL's numeric would round it silently.
    with pytest.raises(ValidationError), transaction.atomic():
        RequestCostFactory(user=user, ai_model=ai_model, cost_usd=Decimal("0.0000000000001"))

    assert not OpenRouterRequestCost.objects.exists()


def test_too_many_decimal_places_is_rejected_by_full_clean() -> None:
    row = RequestCostFactory.build(user=UserFactory(), ai_model=AIModelFactory(), cost_usd=Decimal("1.0000000000001"))

    with pytest.raises(ValidationError) as excinfo:
        row.full_clean()

    assert "cost_usd" in excinfo.value.message_dict


def test_trailing_zeros_beyond_the_scale_are_accepted() -> None:
    # 0.10000000000000 has 14 written places but is exactly 0.1.
    row = RequestCostFactory(cost_usd=Decimal("0.10000000000000"))

    row.refresh_from_db()

    assert row.cost_usd == Decimal("0.1")
