from decimal import Decimal

import pytest

from bench.dataset import TABLES
from bench.load import TablePlan, _copy_converters, _copy_value, _sqlite_converters, table_plans
from chatbot.models import OpenRouterRequestCost

PLAN = TablePlan(
    label="chatbot.OpenRouterRequestCost",
    db_table="chatbot_openrouterrequestcost",
    columns=("id", "session_id", "generation_id", "is_free", "cost_usd", "prompt_price", "created_at"),
    kinds=("int", "int?", "text", "bool", "money", "money", "ts"),
    decimal_places={"cost_usd": 12, "prompt_price": 16},
    extra_columns=(),
    extra_values=(),
)
PREFIXES = ["2026-02-09 ", "2026-02-10 "]


def _times(suffix: str) -> list[str]:
    return [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{suffix}" for s in range(86_400)]


def test_copy_converters_write_postgres_text_format():
    converters = _copy_converters(PLAN, prefixes=PREFIXES, times=_times("+00"))
    # Second 86,400 + 3,723 is 01:02:03 on the second day.
    row = (7, None, "gen\t1\\", True, 225_000_000, 75_000, 86_400 + 3_723)
    cells = [convert(value) for convert, value in zip(converters, row, strict=True)]
    assert cells == [
        "7",
        "\\N",
        "gen\\t1\\\\",
        "t",
        "0.000225000000",
        "0.000000075000",
        "2026-02-10 01:02:03+00",
    ]


@pytest.mark.parametrize("units", [0, 1, 999_999_999_999, 10**12, 123_456_789_012_345_678])
def test_copy_money_is_exact(units):
    money = _copy_converters(PLAN, prefixes=PREFIXES, times=_times(""))[PLAN.kinds.index("money")]
    assert Decimal(money(units)) == Decimal(units).scaleb(-12)


def test_sqlite_converters_scale_money_to_each_columns_places():
    converters = dict(_sqlite_converters(PLAN, prefixes=PREFIXES, times=_times("")))
    # cost_usd keeps 12 places: units unchanged; prompt_price keeps 16: 10**4 times more units.
    assert converters[4](225_000_000) == 225_000_000
    assert converters[5](75_000) == 750_000_000
    assert converters[3](True) == 1
    assert converters[6](3_723) == "2026-02-09 01:02:03"
    assert 0 not in converters  # Integers go through as they are.


def test_copy_value_encodes_constants():
    assert [_copy_value(v) for v in (None, False, "a\tb", Decimal("1.50"))] == ["\\N", "f", "a\\tb", "1.50"]


@pytest.mark.django_db
def test_table_plans_cover_every_required_column_of_the_migrated_schema():
    # Raises if a model gained a required column without a default that TABLES does not generate.
    plans = table_plans()
    assert set(plans) == set(TABLES)
    requests = plans["chatbot.OpenRouterRequestCost"]
    assert requests.decimal_places == {"cost_usd": 12}
    fields = {field.column for field in OpenRouterRequestCost._meta.concrete_fields}
    assert set(requests.all_columns) == fields
    if "cost_status" in requests.extra_columns:
        index = requests.extra_columns.index("cost_status")
        assert requests.extra_values[index] == OpenRouterRequestCost.CostStatus.BILLED
