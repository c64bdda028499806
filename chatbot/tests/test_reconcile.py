"""reconcile_openrouter_costs: fill unknown costs from GET /generation, idempotently."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from chatbot.models import OpenRouterRequestCost
from chatbot.openrouter import OpenRouterClient
from chatbot.services import request_cost_record, request_costs_reconcile_unknown
from chatbot.tests.fake_openrouter import FakeResponse, error_body, fake_openrouter_for, generation_body
from core.factories import AIModelFactory, RequestCostFactory, UserFactory
from reports.selectors import top_users_by_cost

pytestmark = pytest.mark.django_db

UNKNOWN = OpenRouterRequestCost.CostStatus.UNKNOWN
BILLED = OpenRouterRequestCost.CostStatus.BILLED
RECONCILED = OpenRouterRequestCost.CostStatus.RECONCILED


@pytest.fixture
def fake(settings):
    with fake_openrouter_for(settings) as server:
        yield server


@pytest.fixture
def user():
    return UserFactory(username="grace")


@pytest.fixture
def ai_model():
    return AIModelFactory(openrouter_id="openai/gpt-4o-mini")


def unknown_cost(*, user, ai_model, generation_id: str, prompt_tokens: int = 10, completion_tokens: int = 5):
    return request_cost_record(
        user=user,
        ai_model=ai_model,
        generation_id=generation_id,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=0,
        cost_status=UNKNOWN,
    )


def generation(generation_id: str, total_cost: str, tokens_prompt: int, tokens_completion: int) -> dict:
    return generation_body(
        generation_id=generation_id,
        model="openai/gpt-4o-mini",
        total_cost=Decimal(total_cost),
        tokens_prompt=tokens_prompt,
        tokens_completion=tokens_completion,
    )


def run(*args: str) -> str:
    out = StringIO()
    call_command("reconcile_openrouter_costs", "--retry-delay", "0", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_unknown_costs_are_filled_from_openrouters_generation_records(fake, user, ai_model):
    slow = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-slow")
    ready = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-ready")
    billed = request_cost_record(
        user=user, ai_model=ai_model, generation_id="gen-billed", prompt_tokens=1, completion_tokens=1, cost_usd="0.5"
    )
    # OpenRouter answers 404 for a moment after a generation: twice here, then the record.
    fake.add_generation(generation("gen-slow", "0.000000000211", 120, 40), not_found_first=2)
    fake.add_generation(generation("gen-ready", "0.000123456789", 30, 9))

    output = run("--attempts", "3")

    assert "2 reconciled, 0 still pending, 0 failed." in output
    slow.refresh_from_db()
    ready.refresh_from_db()
    billed.refresh_from_db()
    assert (slow.cost_status, slow.cost_usd, slow.prompt_tokens, slow.completion_tokens, slow.total_tokens) == (
        RECONCILED,
        Decimal("0.000000000211"),
        120,
        40,
        160,
    )
    assert (ready.cost_status, ready.cost_usd, ready.total_tokens) == (RECONCILED, Decimal("0.000123456789"), 39)
    assert (billed.cost_status, billed.cost_usd) == (BILLED, Decimal("0.5"))
    lookups = [request.query["id"][0] for request in fake.requests_to("/generation")]
    assert lookups == ["gen-slow", "gen-slow", "gen-slow", "gen-ready"]
    assert fake.requests_to("/generation")[0].header("Authorization") == "Bearer sk-or-v1-test-key"
    # 0.5 + 0.000000000211 + 0.000123456789 = 0.500123457000, over 2 + 160 + 39 = 201 tokens.
    [row] = top_users_by_cost()
    assert (row.total_cost_usd, row.total_tokens, row.request_count) == (Decimal("0.500123457000"), 201, 3)


def test_a_second_run_changes_nothing_and_asks_nothing(fake, user, ai_model):
    unknown_cost(user=user, ai_model=ai_model, generation_id="gen-1")
    fake.add_generation(generation("gen-1", "0.0042", 100, 50))
    run()
    snapshot = list(OpenRouterRequestCost.objects.values())
    lookups = len(fake.received)

    output = run()

    assert "0 reconciled, 0 still pending, 0 failed." in output
    assert list(OpenRouterRequestCost.objects.values()) == snapshot
    assert len(fake.received) == lookups


def test_a_generation_still_unknown_after_the_attempts_waits_for_the_next_run(fake, user, ai_model):
    pending = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-late")
    fake.add_generation(generation("gen-late", "0.003", 10, 5), not_found_first=5)

    output = run("--attempts", "2")

    assert "0 reconciled, 1 still pending, 0 failed." in output
    assert "gen-late" in output
    pending.refresh_from_db()
    assert (pending.cost_status, pending.cost_usd) == (UNKNOWN, Decimal(0))
    assert len(fake.requests_to("/generation")) == 2

    # Three more 404s remain: a run of 4 attempts gets the record on its fourth.
    run("--attempts", "4")

    pending.refresh_from_db()
    assert (pending.cost_status, pending.cost_usd) == (RECONCILED, Decimal("0.003"))


def test_the_404_retries_wait_the_given_delay(fake, user, ai_model):
    unknown_cost(user=user, ai_model=ai_model, generation_id="gen-2")
    fake.add_generation(generation("gen-2", "0.01", 1, 1), not_found_first=2)
    sleeps: list[float] = []

    with OpenRouterClient(api_key="k", base_url=fake.base_url, sleep=sleeps.append) as client:
        result = request_costs_reconcile_unknown(client=client, attempts=3, retry_delay=0.25)

    assert result.reconciled == ["gen-2"]
    assert sleeps == [0.25, 0.25]


def test_an_error_is_reported_and_leaves_the_cost_unknown(fake, user, ai_model):
    broken = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-broken")
    fine = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-fine")
    fake.enqueue("GET", "/generation", FakeResponse(400, error_body(code=400, message="Invalid generation id")))
    fake.add_generation(generation("gen-fine", "0.02", 3, 4))
    errors = StringIO()

    with pytest.raises(CommandError, match="1 reconciled, 0 still pending, 1 failed"):
        call_command("reconcile_openrouter_costs", "--retry-delay", "0", stdout=StringIO(), stderr=errors)

    assert "gen-broken: bad_request: Invalid generation id" in errors.getvalue()
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert (broken.cost_status, fine.cost_status) == (UNKNOWN, RECONCILED)


def test_a_cost_the_database_cannot_hold_exactly_is_refused(fake, user, ai_model):
    row = unknown_cost(user=user, ai_model=ai_model, generation_id="gen-fine-grained")
    fake.add_generation(generation("gen-fine-grained", "0.0000000000001", 1, 1))

    with pytest.raises(CommandError, match="1 failed"):
        run()

    row.refresh_from_db()
    assert (row.cost_status, row.cost_usd) == (UNKNOWN, Decimal(0))


def test_a_missing_api_key_stops_the_run_with_a_clear_error(fake, settings, user, ai_model):
    unknown_cost(user=user, ai_model=ai_model, generation_id="gen-3")
    settings.OPENROUTER_API_KEY = ""

    with pytest.raises(CommandError, match="OPENROUTER_API_KEY is not set"):
        run()

    assert fake.received == []


@pytest.mark.parametrize(
    ("cost_usd", "generation_id"),
    [("0.1", "gen-4"), (0, None)],
    ids=["unknown-with-a-cost", "unknown-without-generation-id"],
)
def test_an_unknown_cost_needs_a_zero_cost_and_a_generation_id(user, ai_model, cost_usd, generation_id):
    with pytest.raises(ValidationError):
        request_cost_record(
            user=user,
            ai_model=ai_model,
            generation_id=generation_id,
            prompt_tokens=1,
            completion_tokens=1,
            cost_usd=cost_usd,
            cost_status=UNKNOWN,
        )
    assert not OpenRouterRequestCost.objects.exists()


@pytest.mark.parametrize(
    ("cost_usd", "generation_id"),
    [(Decimal("0.1"), "gen-5"), (Decimal(0), None)],
    ids=["unknown-with-a-cost", "unknown-without-generation-id"],
)
def test_the_database_refuses_an_unknown_cost_that_would_count_or_could_not_be_reconciled(cost_usd, generation_id):
    with pytest.raises(IntegrityError), transaction.atomic():
        RequestCostFactory(cost_usd=cost_usd, generation_id=generation_id, cost_status=UNKNOWN)
