"""Tests of the demo data: ``manage.py seed_demo`` and ``chatbot.demo``."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Count, F
from django.test import override_settings

from accounts.models import User
from ai_models.models import AIModel
from chatbot import demo
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost

pytestmark = pytest.mark.django_db

FIXED_NOW = datetime(2026, 8, 14, 12, 0, tzinfo=UTC)


def table_counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "ai_models": AIModel.objects.count(),
        "chatbots": Chatbot.objects.count(),
        "sessions": ChatSession.objects.count(),
        "messages": ChatMessage.objects.count(),
        "requests": OpenRouterRequestCost.objects.count(),
    }


def seed_command() -> str:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_refuses_to_run_with_debug_off() -> None:
    with pytest.raises(CommandError, match="DEBUG off"):
        call_command("seed_demo", stdout=StringIO())
    assert table_counts()["requests"] == 0
    call_command("seed_demo", "--allow-without-debug", stdout=StringIO())
    assert table_counts()["requests"] > 0


def test_seed_demo_builds_a_believable_platform_once() -> None:
    started = datetime.now(tz=UTC)
    first_output = seed_command()
    counts = table_counts()

    assert counts["users"] == len(demo.DEMO_USERS) == 36
    assert counts["ai_models"] == 13
    assert counts["chatbots"] == len(demo.DEMO_CHATBOTS) == 12
    assert counts["sessions"] == demo.DEMO_SESSION_COUNT
    # Every exchange is a user message, an assistant reply, and the request that produced it.
    assert counts["messages"] == 2 * counts["requests"]
    assert counts["requests"] > counts["sessions"]
    assert first_output.startswith(
        f"Created 36 users, 13 AI models, 12 chatbots, {counts['sessions']:,} sessions, "
        f"{counts['messages']:,} messages and {counts['requests']:,} request costs (USD "
    )
    assert first_output.count("\n") == 1

    requests = OpenRouterRequestCost.objects.all()
    assert not requests.exclude(generation_id__startswith=demo.DEMO_GENERATION_PREFIX).exists()
    assert not requests.exclude(total_tokens=F("prompt_tokens") + F("completion_tokens")).exists()
    assert not requests.filter(created_at__lt=started - timedelta(days=90)).exists()
    assert not requests.filter(created_at__gt=datetime.now(tz=UTC)).exists()
    assert not requests.filter(session__isnull=True).exists()
    assert not requests.exclude(session__user=F("user")).exists()
    # Free and paid models are both used; a free request costs nothing, a paid one something.
    assert requests.filter(ai_model__is_free=True).count() > 50
    assert requests.filter(ai_model__is_free=False).count() > 50
    assert not requests.filter(ai_model__is_free=True).exclude(cost_usd=0).exists()
    assert not requests.filter(ai_model__is_free=False, cost_usd=0).exists()
    assert set(requests.values_list("ai_model__is_free", flat=True).distinct()) == {False, True}

    # Skewed usage: a few heavy users, then a long tail.
    per_user = sorted(requests.values("user").annotate(n=Count("id")).values_list("n", flat=True), reverse=True)
    total = sum(per_user)
    assert sum(per_user[:3]) >= 0.4 * total
    assert per_user[len(per_user) // 2] <= 0.02 * total
    assert 25 <= len(per_user) < counts["users"]

    # A second run adds nothing and says so.
    assert seed_command() == "Demo data already present: nothing added.\n"
    assert table_counts() == counts


def test_request_costs_are_the_model_prices_times_the_tokens() -> None:
    demo.demo_platform_seed(now=FIXED_NOW, session_count=60)
    sonnet = AIModel.objects.get(openrouter_id="anthropic/claude-sonnet-4.6")
    # The prices are the catalog's strings, exactly.
    assert (sonnet.prompt_price, sonnet.completion_price) == (Decimal("0.000003"), Decimal("0.000015"))

    # A sample row, at the catalog's Claude Sonnet 4.6 prices: USD 3 and 15 per million tokens.
    sample = OpenRouterRequestCost.objects.filter(ai_model=sonnet).order_by("id").first()
    assert sample.cost_usd == sample.prompt_tokens * Decimal("0.000003") + sample.completion_tokens * Decimal(
        "0.000015"
    )
    assert sample.cost_usd > 0
    assert sample.total_tokens == sample.prompt_tokens + sample.completion_tokens

    # Every row, by the same arithmetic done independently of the seeder.
    for row in OpenRouterRequestCost.objects.select_related("ai_model"):
        expected = row.prompt_tokens * row.ai_model.prompt_price + row.completion_tokens * row.ai_model.completion_price
        assert row.cost_usd == expected.quantize(Decimal("0.000000000001")), row.generation_id


def test_request_cost_compute_rounds_half_up_to_the_cost_field() -> None:
    mistral = AIModel(prompt_price=Decimal("0.00000009375"), completion_price=Decimal("0.00000025"))
    # 1000 * 0.00000009375 = 0.00009375; 333 * 0.00000025 = 0.00008325; sum 0.000177.
    assert demo.request_cost_compute(ai_model=mistral, prompt_tokens=1000, completion_tokens=333) == Decimal(
        "0.000177000000"
    )
    tiny = AIModel(prompt_price=Decimal("0.0000000000005"), completion_price=Decimal("0.0000000000004"))
    # 1 * 0.0000000000005 is exactly half a unit of the 12th place: rounds up to 0.000000000001.
    assert demo.request_cost_compute(ai_model=tiny, prompt_tokens=1, completion_tokens=0) == Decimal("1E-12")
    # 0.0000000000004 is less than half a unit: rounds down to zero.
    assert demo.request_cost_compute(ai_model=tiny, prompt_tokens=0, completion_tokens=1) == 0
    unpriced = AIModel(prompt_price=None, completion_price=None)
    assert demo.request_cost_compute(ai_model=unpriced, prompt_tokens=500, completion_tokens=500) == 0


def test_demo_catalog_is_a_slice_of_the_real_catalog() -> None:
    entries = {entry.openrouter_id: entry for entry in demo.demo_catalog_load()}
    assert len(entries) == 13
    free = {openrouter_id for openrouter_id, entry in entries.items() if entry.is_free}
    # Four ":free" ids, and a router priced "0"/"0" without the suffix.
    assert free == {
        "openai/gpt-oss-20b:free",
        "google/gemma-4-31b-it:free",
        "z-ai/glm-5.2:free",
        "nvidia/nemotron-3-super-120b-a12b:free",
        "openrouter/free",
    }
    mistral = entries["mistralai/mistral-small-3.2-24b-instruct"]
    assert mistral.provider == "mistralai"
    assert mistral.prompt_price == Decimal("0.00000009375")
    assert mistral.completion_price == Decimal("0.00000025")
    assert mistral.context_length == 256000
    # The fixture keeps OpenRouter's raw shape: prices are strings.
    with demo.DEMO_CATALOG_PATH.open(encoding="utf-8") as file:
        raw = json.load(file)
    assert {entry["id"] for entry in raw["data"]} == set(entries)
    assert all(isinstance(entry["pricing"]["prompt"], str) for entry in raw["data"])
    # Every chatbot runs on a model of the catalog.
    assert {spec.openrouter_id for spec in demo.DEMO_CHATBOTS} <= set(entries)


def test_same_seed_builds_the_same_platform_and_another_seed_another() -> None:
    def snapshot(seed: int) -> list[tuple]:
        with transaction.atomic():
            demo.demo_platform_seed(seed=seed, now=FIXED_NOW, session_count=40)
            rows = list(
                OpenRouterRequestCost.objects.order_by("generation_id").values_list(
                    "generation_id",
                    "user__username",
                    "ai_model__openrouter_id",
                    "session__chatbot__name",
                    "prompt_tokens",
                    "completion_tokens",
                    "cost_usd",
                    "created_at",
                )
            )
            transaction.set_rollback(True)
        return rows

    first = snapshot(1)
    assert len(first) > 40
    assert snapshot(1) == first
    assert snapshot(2) != first


def test_a_failure_half_way_leaves_nothing_behind() -> None:
    calls = 0
    record = demo.request_cost_record

    def fail_on_the_tenth(**kwargs):
        nonlocal calls
        calls += 1
        if calls == 10:
            raise RuntimeError("database went away")
        return record(**kwargs)

    with mock.patch.object(demo, "request_cost_record", fail_on_the_tenth), pytest.raises(RuntimeError):
        demo.demo_platform_seed(now=FIXED_NOW, session_count=30)

    assert calls == 10
    assert table_counts() == dict.fromkeys(table_counts(), 0)


def test_existing_models_and_users_are_reused_not_duplicated() -> None:
    AIModel.objects.create(openrouter_id="openai/gpt-5.4-mini", name="Synced earlier", is_free=False)
    User.objects.create_user(username="amelia.chen", email="amelia@example.org")

    result = demo.demo_platform_seed(now=FIXED_NOW, session_count=20)

    assert (result.ai_models, result.users) == (12, 35)
    assert AIModel.objects.filter(openrouter_id="openai/gpt-5.4-mini").get().name == "Synced earlier"
    assert User.objects.filter(username="amelia.chen").count() == 1
