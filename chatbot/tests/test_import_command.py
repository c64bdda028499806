"""Tests of the import_request_costs command: a CSV file in, every row or none stored."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import OpenRouterRequestCost
from core.factories import AIModelFactory, ChatSessionFactory, UserFactory
from core.tests.commands import manage_py_run

pytestmark = pytest.mark.django_db

HEADER = "user_id,ai_model,session_id,generation_id,prompt_tokens,completion_tokens,cost_usd,created_at,cost_status\n"


@pytest.fixture
def user() -> User:
    return UserFactory(username="ada")


@pytest.fixture
def ai_model() -> AIModel:
    return AIModelFactory(openrouter_id="openai/gpt-4o")


def csv_file(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "requests.csv"
    path.write_bytes(text.encode(encoding))
    return path


def run(path: Path) -> str:
    out = StringIO()
    call_command("import_request_costs", str(path), stdout=out)
    return out.getvalue()


def run_failing(path: Path) -> str:
    with pytest.raises(CommandError) as excinfo:
        run(path)
    assert excinfo.value.returncode == 2
    return str(excinfo.value)


def test_imports_a_file_and_skips_it_the_second_time(tmp_path: Path, user: User, ai_model: AIModel):
    session = ChatSessionFactory(user=user)
    path = csv_file(
        tmp_path,
        HEADER
        + f"{user.pk},openai/gpt-4o,{session.pk},gen-1,1000,500,0.0075,2026-03-01T10:00:00+00:00,billed\n"
        + f"{user.pk},openai/gpt-4o,,gen-2,10,0,0.1,2026-03-01T23:30:00-05:00,\n"
        + f"{user.pk},openai/gpt-4o,,gen-3,10,0,0.2,2026-03-02T08:00:00Z,\n"
        + f"{user.pk}, openai/gpt-4o ,,,0,0,0,2026-03-02T09:00:00.123456+01:00,\n",
    )

    assert run(path) == "Inserted 4 requests; skipped 0 whose generation_id was already stored.\n"
    assert run(path) == "Inserted 1 requests; skipped 3 whose generation_id was already stored.\n"

    first = OpenRouterRequestCost.objects.get(generation_id="gen-1")
    assert (first.session_id, first.total_tokens, first.cost_usd) == (session.pk, 1500, Decimal("0.0075"))
    # 0.0075 + 0.1 + 0.2 + 0, twice the row without a generation_id: exact.
    total = sum(OpenRouterRequestCost.objects.values_list("cost_usd", flat=True))
    assert total == Decimal("0.3075")
    assert OpenRouterRequestCost.objects.get(generation_id="gen-2").created_at.isoformat() == (
        "2026-03-02T04:30:00+00:00"
    )


def test_columns_may_come_in_any_order_and_the_optional_ones_may_be_left_out(tmp_path: Path, user, ai_model):
    path = csv_file(
        tmp_path,
        "created_at,cost_usd,completion_tokens,prompt_tokens,ai_model,user_id\n"
        f"2026-03-01T10:00:00+00:00,0.5,2,3,openai/gpt-4o,{user.pk}\n",
    )

    run(path)

    stored = OpenRouterRequestCost.objects.get()
    assert (stored.generation_id, stored.session_id, stored.cost_status) == (None, None, "billed")
    assert (stored.prompt_tokens, stored.completion_tokens, stored.cost_usd) == (3, 2, Decimal("0.5"))


def test_quoted_and_formula_like_cells_are_data_not_formulas(tmp_path: Path, user: User, ai_model: AIModel):
    path = csv_file(
        tmp_path,
        "\ufeff"  # The byte order mark a spreadsheet puts first.
        + HEADER
        + f'{user.pk},openai/gpt-4o,,"=HYPERLINK(""http://x"",""y"")",1,1,"0.1",2026-03-01T10:00:00+00:00,\n'
        + f'{user.pk},openai/gpt-4o,,"gen,with,commas",1,1," 0.2 ",2026-03-01T10:00:00+00:00,\n'
        + f'{user.pk},openai/gpt-4o,,"two\nlines",1,1,0.3,2026-03-01T10:00:00+00:00,\n'
        + f"{user.pk},openai/gpt-4o,,+1,+1,1,0,2026-03-01T10:00:00+00:00,\n"
        + "\n",  # A blank line is no row.
    )

    assert run(path).startswith("Inserted 4 requests")

    assert sorted(OpenRouterRequestCost.objects.values_list("generation_id", "cost_usd")) == [
        ("+1", Decimal("0")),
        ('=HYPERLINK("http://x","y")', Decimal("0.1")),
        ("gen,with,commas", Decimal("0.2")),
        ("two\nlines", Decimal("0.3")),
    ]


def test_bad_cells_exit_with_2_name_their_rows_and_lines_and_store_nothing(tmp_path: Path, user, ai_model):
    path = csv_file(
        tmp_path,
        HEADER
        + f"{user.pk},openai/gpt-4o,,gen-ok,1,1,0.1,2026-03-01T10:00:00+00:00,\n"
        + f'{user.pk},openai/gpt-4o,,"gen\n2",=1+2,1,0.1,2026-03-01T10:00:00+00:00,\n'
        + f"{user.pk},acme/unknown,,,1,1,0.1,2026-03-01T10:00:00+00:00,\n"
        + f"{user.pk},openai/gpt-4o,,,1,1,0.1,yesterday,\n"
        + f"{user.pk},openai/gpt-4o,,,1,1,0.1,,\n"
        + f"{user.pk},openai/gpt-4o,1\n"
        + "ada,openai/gpt-4o,,,1,1,0.1,2026-03-01T10:00:00+00:00,\n",
    )

    message = run_failing(path)

    assert message.splitlines() == [
        "Nothing imported: the file has errors.",
        "Row 2 (line 4): prompt_tokens: '=1+2' is not a whole number.",
        "Row 3 (line 5): ai_model: unknown model 'acme/unknown'.",
        "Row 4 (line 6): created_at: 'yesterday' is not an ISO 8601 date and time, e.g. 2026-01-31T12:00:00+00:00.",
        "Row 5 (line 7): created_at: A date and time is required, e.g. 2026-01-31T12:00:00+00:00.",
        "Row 6 (line 8): 3 cells, the header has 9.",
        "Row 7 (line 9): user_id: 'ada' is not a whole number.",
    ]
    assert not OpenRouterRequestCost.objects.exists()


def test_rows_the_import_refuses_exit_with_2_and_store_nothing(tmp_path: Path, user: User, ai_model: AIModel):
    someone_elses = ChatSessionFactory()
    path = csv_file(
        tmp_path,
        HEADER
        + f"{user.pk},openai/gpt-4o,,gen-ok,1,1,0.1,2026-03-01T10:00:00+00:00,\n"
        + f"{user.pk},openai/gpt-4o,,,1,1,-0.1,2026-03-01T10:00:00,\n"
        + f"{user.pk},openai/gpt-4o,{someone_elses.pk},,1,1,0.1,2026-03-01T10:00:00+00:00,\n"
        + f"{user.pk + 1000},openai/gpt-4o,,,1,1,0.0000000000001,2026-03-01T10:00:00+00:00,refunded\n",
    )

    message = run_failing(path)

    assert message.splitlines() == [
        "3 of 4 rows are invalid; nothing was imported.",
        "Row 2 (line 3): cost_usd: Cost cannot be negative.",
        "Row 2 (line 3): created_at: created_at must be timezone-aware.",
        "Row 3 (line 4): session_id: The session must be a saved session of the same user.",
        "Row 4 (line 5): cost_usd: Cost has more than 12 decimal places.",
        "Row 4 (line 5): user_id: Unknown user: it must be a saved user.",
        "Row 4 (line 5): cost_status: cost_status must be one of billed, unknown, reconciled.",
    ]
    assert not OpenRouterRequestCost.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The header lacks the columns user_id, ai_model, prompt_tokens, completion_tokens, cost_usd, created_at."),
        ("user_id,ai_model\n", "The header lacks the columns prompt_tokens, completion_tokens, cost_usd, created_at."),
        (HEADER.replace("cost_status", "note"), "The header has unknown columns: 'note'."),
        (HEADER.replace("cost_status", "cost_usd"), "The header repeats the columns cost_usd."),
    ],
    ids=["empty", "missing", "unknown", "repeated"],
)
def test_a_bad_header_exits_with_2(tmp_path: Path, text: str, message: str):
    lines = run_failing(csv_file(tmp_path, text)).splitlines()

    assert lines[:2] == ["Nothing imported: the file has errors.", message]
    assert lines[-1].startswith("Expected the columns user_id, ai_model,")


def test_an_unreadable_file_exits_with_2(tmp_path: Path):
    missing = tmp_path / "missing.csv"
    assert run_failing(missing) == f"Cannot read {missing}: No such file or directory."
    latin_1 = csv_file(tmp_path, HEADER + "1,caf\u00e9,,,1,1,0,2026-03-01T10:00:00+00:00,\n", encoding="latin-1")
    assert run_failing(latin_1).startswith(f"{latin_1} is not UTF-8 text")


def test_past_twenty_bad_cells_the_rest_are_counted(tmp_path: Path, user: User, ai_model: AIModel):
    rows = "".join(f"{user.pk},openai/gpt-4o,,,x,1,0,2026-03-01T10:00:00+00:00,\n" for _ in range(25))

    lines = run_failing(csv_file(tmp_path, HEADER + rows)).splitlines()

    assert len(lines) == 22
    assert lines[-1] == "...and 5 more."


def test_the_command_line_exits_with_status_2_on_bad_input(tmp_path: Path):
    # A bad header is refused before any query, so the child needs no test database.
    path = csv_file(tmp_path, "user_id\n1\n")
    completed = manage_py_run("import_request_costs", str(path))

    assert completed.returncode == 2, completed.stderr
    assert "CommandError: Nothing imported: the file has errors." in completed.stderr
    assert completed.stdout == ""
