"""The catalog sync, on OpenRouter's real GET /models responses of 2025-11-10 and 2026-08-14."""

import copy
import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ai_models.models import AIModel, CatalogSync
from ai_models.services import CatalogError, catalog_load_file, catalog_sync, catalog_sync_from_file
from chatbot.tests.fake_openrouter import FakeResponse, catalog_path, error_body, fake_openrouter_for
from core.factories import AIModelFactory, RequestCostFactory, UserFactory
from reports.selectors import top_models_by_usage

pytestmark = pytest.mark.django_db

OLD = "models-2025-11-10.json"
NEW = "models-2026-08-14.json"
MODEL_FIELDS = ("name", "provider", "context_length", "prompt_price", "completion_price", "is_free")


# An independent reading of the files, straight from the documented rules, to check the sync against.
def raw_models(name: str) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in json.loads(catalog_path(name).read_bytes(), parse_float=Decimal)["data"]}


def expected(item: dict[str, Any]) -> dict[str, Any]:
    """Return the AIModel fields a catalog entry should give."""
    prices = [Decimal(item["pricing"].get(key, "0")) for key in ("prompt", "completion")]
    dynamic = any(price < 0 for price in prices)
    return {
        # Some real names end in a space; the sync trims them.
        "name": item["name"].strip(),
        "provider": item["id"].split("/")[0].removeprefix("~"),
        "context_length": item["context_length"],
        "prompt_price": None if prices[0] < 0 else prices[0],
        "completion_price": None if prices[1] < 0 else prices[1],
        "is_free": not dynamic and (item["id"].endswith(":free") or prices == [0, 0]),
    }


def stored() -> dict[str, dict[str, Any]]:
    return {
        row["openrouter_id"]: {field: row[field] for field in MODEL_FIELDS}
        for row in AIModel.objects.values("openrouter_id", *MODEL_FIELDS)
    }


def snapshot() -> list[dict[str, Any]]:
    return list(AIModel.objects.order_by("openrouter_id").values())


def sync_file(name: str):
    return catalog_sync_from_file(path=catalog_path(name))


def test_the_first_sync_creates_every_model_as_the_catalog_lists_it():
    old = raw_models(OLD)

    result = sync_file(OLD)

    assert len(result.created) == len(old) == 341
    assert (result.updated, result.repriced, result.deactivated, result.unchanged) == ([], [], [], 0)
    assert stored() == {openrouter_id: expected(item) for openrouter_id, item in old.items()}
    assert AIModel.objects.filter(is_active=False).count() == 0
    # Spot checks against the raw file.
    gemma = AIModel.objects.get(openrouter_id="google/gemma-3-4b-it")
    assert (gemma.prompt_price, gemma.completion_price) == (Decimal("0.00000001703012"), Decimal("0.0000000681536"))
    router = AIModel.objects.get(openrouter_id="openrouter/auto")  # priced "-1": dynamic
    assert (router.prompt_price, router.completion_price, router.is_free) == (None, None, False)
    polaris = AIModel.objects.get(openrouter_id="openrouter/polaris-alpha")  # "0"/"0" without ":free"
    assert polaris.is_free is True
    assert AIModel.objects.filter(openrouter_id__endswith=":free", is_free=True).count() == 45


def test_the_newer_catalog_adds_reprices_and_deactivates_as_the_files_differ():
    old, new = raw_models(OLD), raw_models(NEW)
    appeared = set(new) - set(old)
    disappeared = set(old) - set(new)
    both = set(old) & set(new)

    def prices(item: dict[str, Any]) -> tuple[Any, Any]:
        return expected(item)["prompt_price"], expected(item)["completion_price"]

    repriced = {model_id for model_id in both if prices(old[model_id]) != prices(new[model_id])}
    updated = {model_id for model_id in both - repriced if expected(old[model_id]) != expected(new[model_id])}
    # The data's README counts the same: 253 appeared, 180 disappeared, 67 changed price.
    assert (len(appeared), len(disappeared), len(repriced)) == (253, 180, 67)
    sync_file(OLD)

    result = sync_file(NEW)

    assert set(result.created) == appeared
    assert {change.openrouter_id for change in result.repriced} == repriced
    assert set(result.deactivated) == disappeared
    assert set(result.updated) == updated
    assert result.unchanged == len(both) - len(repriced) - len(updated)
    # Nothing is deleted: 341 + 253 = 594 models, the 180 gone from the catalog inactive.
    assert AIModel.objects.count() == 594
    assert set(AIModel.objects.filter(is_active=False).values_list("openrouter_id", flat=True)) == disappeared
    current = stored()
    assert {model_id: current[model_id] for model_id in new} == {model_id: expected(new[model_id]) for model_id in new}
    qwen = next(change for change in result.repriced if change.openrouter_id == "qwen/qwen-plus")
    assert (qwen.old, qwen.new) == (
        (Decimal("0.0000004"), Decimal("0.0000012")),
        (Decimal("0.00000026"), Decimal("0.00000078")),
    )
    sync = CatalogSync.objects.latest()
    assert (sync.model_count, sync.created_count, sync.repriced_count, sync.deactivated_count) == (414, 253, 67, 180)
    assert (sync.updated_count, sync.unchanged_count) == (len(updated), result.unchanged)


def test_a_second_identical_sync_changes_nothing():
    sync_file(OLD)
    sync_file(NEW)
    before = snapshot()

    result = sync_file(NEW)

    assert (result.created, result.updated, result.repriced, result.deactivated) == ([], [], [], [])
    assert result.unchanged == 414
    # updated_at included: not a single row was written.
    assert snapshot() == before


def test_a_model_back_in_the_catalog_is_reactivated():
    sync_file(OLD)
    sync_file(NEW)

    result = sync_file(OLD)

    old, new = raw_models(OLD), raw_models(NEW)
    assert result.created == []
    assert set(result.deactivated) == set(new) - set(old)
    assert set(result.updated) >= set(old) - set(new)
    assert set(AIModel.objects.filter(is_active=True).values_list("openrouter_id", flat=True)) == set(old)


def test_a_deactivated_model_keeps_its_history_in_the_reports():
    sync_file(OLD)
    gone = AIModel.objects.get(openrouter_id="kwaipilot/kat-coder-pro:free")
    RequestCostFactory(ai_model=gone, prompt_tokens=100, completion_tokens=20, cost_usd=Decimal(0))

    sync_file(NEW)

    gone.refresh_from_db()
    assert gone.is_active is False
    [row] = top_models_by_usage()
    assert (row.openrouter_id, row.usage_count, row.total_tokens) == ("kwaipilot/kat-coder-pro:free", 1, 120)


def test_a_model_first_seen_in_a_chat_reply_gets_its_catalog_prices():
    # How chat_turn_send records a model the catalog did not list yet.
    AIModel.objects.create(openrouter_id="qwen/qwen-plus", name="qwen/qwen-plus", provider="qwen", is_active=False)

    result = sync_file(NEW)

    qwen = AIModel.objects.get(openrouter_id="qwen/qwen-plus")
    assert (qwen.is_active, qwen.prompt_price, qwen.name) == (True, Decimal("0.00000026"), "Qwen: Qwen-Plus")
    assert [change.openrouter_id for change in result.repriced] == ["qwen/qwen-plus"]


def test_omitted_price_keys_are_zero_as_in_the_newer_format():
    document = {
        "data": [
            {"id": "acme/half", "name": "Half", "context_length": 8192, "pricing": {"completion": "0.000002"}},
            {"id": "acme/nothing", "name": "Nothing", "context_length": None, "pricing": {}},
        ]
    }

    catalog_sync(document=document, source="test")

    assert stored() == {
        "acme/half": {
            "name": "Half",
            "provider": "acme",
            "context_length": 8192,
            "prompt_price": Decimal(0),
            "completion_price": Decimal("0.000002"),
            "is_free": False,
        },
        "acme/nothing": {
            "name": "Nothing",
            "provider": "acme",
            "context_length": None,
            "prompt_price": Decimal(0),
            "completion_price": Decimal(0),
            "is_free": True,
        },
    }


def corrupt(document: dict[str, Any], how: str) -> Any:
    data = document["data"]
    if how == "bad-price":
        data[-1]["pricing"]["prompt"] = "abc"
    elif how == "nan-price":
        data[200]["pricing"]["completion"] = "NaN"
    elif how == "too-fine-price":
        data[-1]["pricing"]["prompt"] = "0.00000000000000001"
    elif how == "no-name":
        del data[10]["name"]
    elif how == "negative-context":
        data[10]["context_length"] = -1
    elif how == "pricing-not-object":
        data[-1]["pricing"] = "free"
    elif how == "duplicate-id":
        data.append(copy.deepcopy(data[0]))
    elif how == "padded-id":
        data[5]["id"] = " " + data[5]["id"]
    elif how == "empty":
        document["data"] = []
    elif how == "no-data":
        return {"models": data}
    elif how == "list":
        return data
    return document


@pytest.mark.parametrize(
    "how",
    [
        "bad-price",
        "nan-price",
        "too-fine-price",
        "no-name",
        "negative-context",
        "pricing-not-object",
        "duplicate-id",
        "padded-id",
        "empty",
        "no-data",
        "list",
    ],
)
def test_a_malformed_catalog_changes_nothing(how):
    sync_file(OLD)
    before = snapshot()
    syncs = CatalogSync.objects.count()
    document = corrupt(catalog_load_file(path=catalog_path(NEW)), how)

    with pytest.raises(CatalogError, match=r"nothing was changed|no models|not an object"):
        catalog_sync(document=document, source="test")

    assert snapshot() == before
    assert CatalogSync.objects.count() == syncs


def test_the_command_syncs_a_saved_file_and_prints_what_changed():
    call_command("sync_openrouter_models", "--file", str(catalog_path(OLD)), stdout=StringIO())
    out = StringIO()

    call_command("sync_openrouter_models", "--file", str(catalog_path(NEW)), stdout=out)

    output = out.getvalue()
    assert "253 created" in output
    assert "67 repriced" in output
    assert "180 deactivated" in output
    assert "Created (253):" in output
    assert "  qwen/qwen-plus: 0.0000004 / 0.0000012 -> 0.00000026 / 0.00000078 USD per token" in output
    assert "  kwaipilot/kat-coder-pro:free" in output


def test_the_command_refuses_a_file_that_is_not_a_catalog(tmp_path):
    broken = tmp_path / "catalog.json"
    broken.write_text('{"data": [')

    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("sync_openrouter_models", "--file", str(broken))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("sync_openrouter_models", "--file", str(tmp_path / "missing.json"))
    assert not AIModel.objects.exists()


def test_the_command_reads_openrouters_models_endpoint(settings):
    with fake_openrouter_for(settings) as fake:
        fake.use_catalog_file(NEW)
        out = StringIO()
        call_command("sync_openrouter_models", stdout=out)
        base_url = fake.base_url

    assert "Synced 414 models" in out.getvalue()
    assert AIModel.objects.count() == 414
    [request] = fake.received
    assert (request.method, request.path) == ("GET", "/api/v1/models")
    assert request.header("X-Title") == "Chatbot Platform"
    assert CatalogSync.objects.get().source == f"{base_url}/models"


def test_an_unreachable_catalog_changes_nothing(settings):
    sync_file(OLD)
    before = snapshot()
    with fake_openrouter_for(settings) as fake:
        down = FakeResponse(503, error_body(code=503, message="Service unavailable"))
        fake.enqueue("GET", "/models", down, down, down)
        settings.OPENROUTER_MAX_RETRY_WAIT = 0
        with pytest.raises(CommandError, match="Service unavailable"):
            call_command("sync_openrouter_models")

    assert snapshot() == before


# The admin: the sync action, the sync button's URL, and the last sync time on the page.
@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_ai_models_page_says_when_the_catalog_was_last_synced(superuser_client):
    changelist = reverse("admin:ai_models_aimodel_changelist")
    never = superuser_client.get(changelist)
    assert "Catalog never synced" in never.content.decode()

    catalog_sync_from_file(path=catalog_path(OLD))
    CatalogSync.objects.update(synced_at=timezone.now() - timedelta(days=2))
    sync_file(NEW)
    page = superuser_client.get(changelist)

    latest = CatalogSync.objects.latest()
    assert page.context["catalog_last_sync"] == latest
    assert page.context["catalog_status"].startswith("Catalog last synced")
    assert "(414 models: 253 new, " in page.content.decode()


def test_the_admin_action_syncs_the_catalog_from_openrouter(settings, superuser_client):
    selected = AIModelFactory()
    with fake_openrouter_for(settings) as fake:
        fake.use_catalog_file(NEW)
        response = superuser_client.post(
            reverse("admin:ai_models_aimodel_changelist"),
            {"action": "sync_catalog", "_selected_action": [selected.pk], "index": 0},
            follow=True,
        )

    assert "Synced 414 models from OpenRouter: 414 new" in response.content.decode()
    assert "1 deactivated" in response.content.decode()
    assert AIModel.objects.filter(is_active=True).count() == 414
    assert fake.requests_to("/models")


def test_the_sync_url_works_on_an_empty_catalog(settings, superuser_client):
    sync_url = reverse("admin:ai_models_aimodel_sync")
    assert superuser_client.get(sync_url).status_code == 405
    with fake_openrouter_for(settings) as fake:
        fake.use_catalog_file(OLD)
        response = superuser_client.post(sync_url)

    assert response.status_code == 302
    assert AIModel.objects.count() == 341


def test_a_failed_admin_sync_says_so_and_changes_nothing(settings, superuser_client):
    with fake_openrouter_for(settings) as fake:
        fake.catalog = b'{"data": [{"id": "a/b"}]}'
        response = superuser_client.post(reverse("admin:ai_models_aimodel_sync"), follow=True)

    assert "The catalog sync failed, nothing was changed" in response.content.decode()
    assert not AIModel.objects.exists()


def test_a_staff_user_who_may_only_view_models_cannot_sync(settings):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_aimodel"))
    client = Client()
    client.force_login(viewer)
    AIModelFactory()

    page = client.get(reverse("admin:ai_models_aimodel_changelist"))
    with fake_openrouter_for(settings) as fake:
        fake.use_catalog_file(OLD)
        client.post(reverse("admin:ai_models_aimodel_sync"))

    actions = page.context["action_form"].fields["action"].choices if page.context["action_form"] else []
    assert "sync_catalog" not in [name for name, _ in actions]
    assert fake.received == []
    assert AIModel.objects.count() == 1


def test_the_sync_button_shows_only_to_users_who_may_sync(superuser_client):
    changelist = reverse("admin:ai_models_aimodel_changelist")
    sync_url = reverse("admin:ai_models_aimodel_sync")
    page = superuser_client.get(changelist).content.decode()
    assert f'action="{sync_url}"' in page
    assert "catalog-sync-button" in page

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_aimodel"))
    client = Client()
    client.force_login(viewer)
    page = client.get(changelist).content.decode()
    assert "Catalog never synced" in page
    assert "catalog-sync-button" not in page
    assert f'action="{sync_url}"' not in page
    refused = client.post(sync_url, follow=True).content.decode()
    assert "You may not sync the catalog" in refused
    assert not CatalogSync.objects.exists()
