"""Tests of ``manage.py usage_report`` and of the JSON and CSV it prints (``reports.exports``)."""

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from core.tests.commands import manage_py_run
from reports.exports import report_csv_rows, usage_report_as_dict
from reports.periods import Period
from reports.registry import REPORTS

pytestmark = pytest.mark.django_db

# Not UTC, so that a day boundary taken in UTC instead of TIME_ZONE shows. Paris is UTC+1 until
# summer time starts on 29 March 2026, UTC+2 after: the period's two ends have different offsets.
PARIS = ZoneInfo("Europe/Paris")

REPORT_KEYS = [
    "period",
    "top_users_by_cost",
    "top_models_by_usage",
    "top_free_models",
    "average_tokens_per_request",
    "top_chatbots_by_sessions",
    "top_users_by_free_usage",
]
ROW_KEYS = {
    "top_users_by_cost": ["user_id", "username", "total_cost_usd", "total_tokens", "request_count"],
    "top_models_by_usage": ["model_id", "openrouter_id", "name", "usage_count", "total_tokens", "total_cost_usd"],
    "top_free_models": ["model_id", "openrouter_id", "name", "usage_count", "total_tokens"],
    "top_chatbots_by_sessions": ["chatbot_id", "name", "session_count", "message_count"],
    "top_users_by_free_usage": ["user_id", "username", "total_tokens", "request_count"],
}


def paris(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=PARIS)


@dataclass
class Platform:
    alice: Any
    bob: Any
    carol: Any
    big: Any
    small: Any
    free_a: Any
    free_b: Any
    helper: Any
    other: Any


@pytest.fixture
def platform(settings) -> Platform:
    """Build a small platform whose March 2026 figures are worked out by hand in the tests."""
    settings.TIME_ZONE = "Europe/Paris"
    alice, bob, carol = (UserFactory(username=name) for name in ("alice", "bob", "carol"))
    UserFactory(username="dave")  # never made a request: in no report
    big = AIModelFactory(openrouter_id="acme/big", name="Acme Big")
    small = AIModelFactory(openrouter_id="acme/small", name="Acme Small")
    free_a = AIModelFactory(free=True, openrouter_id="acme/free-a:free", name="Acme Free A")
    free_b = AIModelFactory(free=True, openrouter_id="other/free-b", name="Free B")
    AIModelFactory(openrouter_id="acme/unused", name="Unused")  # never requested: in no report

    def request(user, model, prompt, completion, cost, at):
        RequestCostFactory(
            user=user, ai_model=model, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, created_at=at
        )

    # r1, on the first instant of 1 March (still 28 February in UTC).
    request(alice, big, 1000, 500, Decimal("0.010500000000"), paris("2026-03-01", "00:00:00"))
    request(alice, small, 200, 100, Decimal("0.000123456789"), paris("2026-03-15"))  # r2
    # r3, on the last second of 31 March.
    request(bob, big, 2000, 1000, Decimal("0.021000000000"), paris("2026-03-31", "23:59:59"))
    request(bob, free_a, 400, 200, Decimal("0"), paris("2026-03-10"))  # r4
    request(carol, free_a, 100, 50, Decimal("0"), paris("2026-03-20"))  # r5
    request(carol, free_b, 1000, 1000, Decimal("0"), paris("2026-03-21"))  # r6
    # r7 and r8 lie one second before and on the first instant after March.
    request(alice, big, 100, 100, Decimal("0.500000000000"), paris("2026-02-28", "23:59:59"))
    request(bob, small, 100, 0, Decimal("0.250000000000"), paris("2026-04-01", "00:00:00"))

    helper = ChatbotFactory(name="Helper", owner=None, ai_model=big)
    other = ChatbotFactory(name="Other", owner=None, ai_model=free_a)
    ChatbotFactory(name="Idle", owner=None, ai_model=small)  # no sessions: in no report
    s1 = ChatSessionFactory(user=alice, chatbot=helper, created_at=paris("2026-03-01", "00:00:00"))
    for clock in ("00:00:00", "00:01:00", "00:02:00"):
        ChatMessageFactory(session=s1, created_at=paris("2026-03-01", clock))
    s2 = ChatSessionFactory(user=bob, chatbot=helper, created_at=paris("2026-03-31", "23:59:59"))
    ChatMessageFactory(session=s2, created_at=paris("2026-03-31", "23:59:59"))
    s_april = ChatSessionFactory(user=bob, chatbot=helper, created_at=paris("2026-04-01", "00:00:00"))
    ChatMessageFactory.create_batch(2, session=s_april, created_at=paris("2026-04-01", "00:00:00"))
    s3 = ChatSessionFactory(user=carol, chatbot=other, created_at=paris("2026-03-10"))
    ChatMessageFactory.create_batch(2, session=s3, created_at=paris("2026-03-10"))
    ChatSessionFactory(user=carol, chatbot=other, created_at=paris("2026-03-11"))  # no messages
    return Platform(alice, bob, carol, big, small, free_a, free_b, helper, other)


def pick(rows: list[dict[str, Any]], *keys: str) -> list[tuple]:
    return [tuple(row[key] for key in keys) for row in rows]


def run(*args: str) -> str:
    out = StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


def run_json(*args: str) -> dict[str, Any]:
    # Any float in the output would come back as a float here, and fail the comparisons.
    return json.loads(run("--format", "json", *args))


def test_json_for_march_has_the_hand_computed_figures(platform: Platform) -> None:
    p = platform
    data = run_json("--since", "2026-03-01", "--until", "2026-03-31")

    # In March: r1..r6 (r1 and r3 on the boundaries), not r7 (28 Feb) nor r8 (1 Apr).
    assert data == {
        "period": {"since": "2026-03-01", "until": "2026-03-31"},
        "top_users_by_cost": [
            # bob: r3 0.021 + r4 0 = 0.021; tokens 3000 + 600 = 3600; 2 requests.
            {
                "user_id": p.bob.pk,
                "username": "bob",
                "total_cost_usd": "0.021000000000",
                "total_tokens": 3600,
                "request_count": 2,
            },
            # alice: r1 0.0105 + r2 0.000123456789 = 0.010623456789; tokens 1500 + 300 = 1800.
            {
                "user_id": p.alice.pk,
                "username": "alice",
                "total_cost_usd": "0.010623456789",
                "total_tokens": 1800,
                "request_count": 2,
            },
            # carol: r5 + r6 on free models: 0; tokens 150 + 2000 = 2150.
            {
                "user_id": p.carol.pk,
                "username": "carol",
                "total_cost_usd": "0.000000000000",
                "total_tokens": 2150,
                "request_count": 2,
            },
        ],
        "top_models_by_usage": [
            # big: r1 + r3 = 2 requests, 1500 + 3000 = 4500 tokens, 0.0105 + 0.021 = 0.0315.
            {
                "model_id": p.big.pk,
                "openrouter_id": "acme/big",
                "name": "Acme Big",
                "usage_count": 2,
                "total_tokens": 4500,
                "total_cost_usd": "0.031500000000",
            },
            # free_a: r4 + r5 = 2 requests, 600 + 150 = 750 tokens: after big on the tie of 2.
            {
                "model_id": p.free_a.pk,
                "openrouter_id": "acme/free-a:free",
                "name": "Acme Free A",
                "usage_count": 2,
                "total_tokens": 750,
                "total_cost_usd": "0.000000000000",
            },
            # free_b: r6, 2000 tokens; small: r2, 300 tokens: 1 request each, tokens decide.
            {
                "model_id": p.free_b.pk,
                "openrouter_id": "other/free-b",
                "name": "Free B",
                "usage_count": 1,
                "total_tokens": 2000,
                "total_cost_usd": "0.000000000000",
            },
            {
                "model_id": p.small.pk,
                "openrouter_id": "acme/small",
                "name": "Acme Small",
                "usage_count": 1,
                "total_tokens": 300,
                "total_cost_usd": "0.000123456789",
            },
        ],
        "top_free_models": [
            {
                "model_id": p.free_a.pk,
                "openrouter_id": "acme/free-a:free",
                "name": "Acme Free A",
                "usage_count": 2,
                "total_tokens": 750,
            },
            {
                "model_id": p.free_b.pk,
                "openrouter_id": "other/free-b",
                "name": "Free B",
                "usage_count": 1,
                "total_tokens": 2000,
            },
        ],
        # (1500 + 300 + 3000 + 600 + 150 + 2000) / 6 = 7550 / 6 = 1258.333… -> 1258.33
        "average_tokens_per_request": "1258.33",
        "top_chatbots_by_sessions": [
            # Helper: s1 (3 messages) and s2 (1 message); s_april is outside.
            {"chatbot_id": p.helper.pk, "name": "Helper", "session_count": 2, "message_count": 4},
            # Other: s3 (2 messages) and an empty session; ties Helper on sessions, fewer messages.
            {"chatbot_id": p.other.pk, "name": "Other", "session_count": 2, "message_count": 2},
        ],
        "top_users_by_free_usage": [
            # carol: r5 + r6 = 150 + 2000 = 2150 tokens; bob: r4 = 600 tokens.
            {"user_id": p.carol.pk, "username": "carol", "total_tokens": 2150, "request_count": 2},
            {"user_id": p.bob.pk, "username": "bob", "total_tokens": 600, "request_count": 1},
        ],
    }


def test_json_keys_are_exactly_the_published_ones(platform: Platform) -> None:
    data = run_json()

    assert list(data) == REPORT_KEYS
    assert list(data["period"]) == ["since", "until"]
    for key, row_keys in ROW_KEYS.items():
        assert data[key], key
        for row in data[key]:
            assert list(row) == row_keys, key
    # Money and the average are strings; counts are integers.
    assert isinstance(data["average_tokens_per_request"], str)
    assert all(isinstance(row["total_cost_usd"], str) for row in data["top_users_by_cost"])
    assert all(isinstance(row["total_cost_usd"], str) for row in data["top_models_by_usage"])
    assert all(type(row["request_count"]) is int for row in data["top_users_by_cost"])


def test_json_without_dates_covers_all_time(platform: Platform) -> None:
    p = platform
    data = run_json()

    assert data["period"] == {"since": None, "until": None}
    # alice: 0.010623456789 + r7 0.5 = 0.510623456789, 1800 + 200 = 2000 tokens, 3 requests;
    # bob: 0.021 + r8 0.25 = 0.271, 3600 + 100 = 3700 tokens, 3 requests; carol unchanged.
    assert pick(data["top_users_by_cost"], "username", "total_cost_usd", "total_tokens", "request_count") == [
        ("alice", "0.510623456789", 2000, 3),
        ("bob", "0.271000000000", 3700, 3),
        ("carol", "0.000000000000", 2150, 2),
    ]
    # 7550 + 200 + 100 = 7850 tokens over 8 requests = 981.25.
    assert data["average_tokens_per_request"] == "981.25"
    # Helper gains s_april and its 2 messages.
    assert data["top_chatbots_by_sessions"] == [
        {"chatbot_id": p.helper.pk, "name": "Helper", "session_count": 3, "message_count": 6},
        {"chatbot_id": p.other.pk, "name": "Other", "session_count": 2, "message_count": 2},
    ]


def test_open_ended_periods_keep_their_boundary_days(platform: Platform) -> None:
    # Only r8 (first instant of 1 April) and s_april are on or after 1 April.
    since_april = run_json("--since", "2026-04-01")
    assert since_april["period"] == {"since": "2026-04-01", "until": None}
    assert pick(since_april["top_users_by_cost"], "username", "total_cost_usd", "total_tokens") == [
        ("bob", "0.250000000000", 100)
    ]
    assert since_april["average_tokens_per_request"] == "100.00"
    assert pick(since_april["top_chatbots_by_sessions"], "name", "session_count", "message_count") == [("Helper", 1, 2)]
    assert since_april["top_free_models"] == []

    # Only r7 (last second of 28 February) is on or before 28 February.
    until_february = run_json("--until", "2026-02-28")
    assert until_february["period"] == {"since": None, "until": "2026-02-28"}
    assert pick(until_february["top_users_by_cost"], "username", "total_cost_usd", "total_tokens") == [
        ("alice", "0.500000000000", 200)
    ]
    assert until_february["top_chatbots_by_sessions"] == []

    # A single day: 1 March holds r1 only, and s1 with its 3 messages.
    first_of_march = run_json("--since", "2026-03-01", "--until", "2026-03-01")
    assert pick(first_of_march["top_users_by_cost"], "username", "total_tokens") == [("alice", 1500)]
    assert pick(first_of_march["top_chatbots_by_sessions"], "name", "session_count", "message_count") == [
        ("Helper", 1, 3)
    ]


def test_day_boundaries_follow_time_zone(platform: Platform, settings) -> None:
    # In UTC, r1 (1 March 00:00 in Paris) falls on 28 February, and r7 with it.
    settings.TIME_ZONE = "UTC"
    data = run_json("--until", "2026-02-28")
    assert pick(data["top_users_by_cost"], "username", "total_tokens", "request_count") == [("alice", 1500 + 200, 2)]


def test_limit_keeps_the_top_rows(platform: Platform) -> None:
    data = run_json("--since", "2026-03-01", "--until", "2026-03-31", "--limit", "1")

    assert [row["username"] for row in data["top_users_by_cost"]] == ["bob"]
    assert [row["name"] for row in data["top_models_by_usage"]] == ["Acme Big"]
    assert [row["name"] for row in data["top_free_models"]] == ["Acme Free A"]
    assert [row["name"] for row in data["top_chatbots_by_sessions"]] == ["Helper"]
    assert [row["username"] for row in data["top_users_by_free_usage"]] == ["carol"]
    # The average is over every request, whatever the limit.
    assert data["average_tokens_per_request"] == "1258.33"


def test_tiny_amounts_stay_in_plain_notation() -> None:
    RequestCostFactory(
        user=UserFactory(username="erin"), prompt_tokens=1, completion_tokens=0, cost_usd=Decimal("0.00000001")
    )
    data = run_json()
    assert data["top_users_by_cost"][0]["total_cost_usd"] == "0.000000010000"
    assert data["top_models_by_usage"][0]["total_cost_usd"] == "0.000000010000"
    assert data["average_tokens_per_request"] == "1.00"


def test_json_is_the_exports_dict(platform: Platform) -> None:
    period = Period(since=date(2026, 3, 1), until=date(2026, 3, 31))
    assert run_json("--since", "2026-03-01", "--until", "2026-03-31", "--limit", "3") == usage_report_as_dict(
        period=period, limit=3
    )


def test_table_shows_every_report_aligned(platform: Platform) -> None:
    text = run("--since", "2026-03-01", "--until", "2026-03-31")

    assert text.startswith("Usage report: 2026-03-01 to 2026-03-31\n")
    for report in REPORTS.values():
        assert f"\n{report.title}\n{'=' * len(report.title)}\n" in text
    # Money shows rounded half-up to 6 places, as on the admin pages; counts are grouped.
    assert (
        "Top Users by OpenRouter Cost\n"
        "============================\n"
        "#  User   Total cost (USD)  Total tokens  Requests\n"
        "-  -----  ----------------  ------------  --------\n"
        "1  bob            0.021000         3,600         2\n"
        "2  alice          0.010623         1,800         2\n"
        "3  carol          0.000000         2,150         2\n"
    ) in text
    assert (
        "Top Chatbots by Session Count\n"
        "=============================\n"
        "#  Chatbot  Sessions  Total messages\n"
        "-  -------  --------  --------------\n"
        "1  Helper          2               4\n"
        "2  Other           2               2\n"
    ) in text
    assert "Average Token Usage\n===================\n1,258.33 tokens per request\n" in text


def test_empty_database_shows_empty_states() -> None:
    text = run()
    assert text.startswith("Usage report: all time\n")
    for report in REPORTS.values():
        assert f"{report.title}\n{'=' * len(report.title)}\n{report.empty_message}\n" in text

    data = run_json()
    assert data == {
        "period": {"since": None, "until": None},
        "top_users_by_cost": [],
        "top_models_by_usage": [],
        "top_free_models": [],
        "average_tokens_per_request": None,
        "top_chatbots_by_sessions": [],
        "top_users_by_free_usage": [],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "--limit must be at least 1, not 0."),
        (["--limit", "-3"], "--limit must be at least 1, not -3."),
        (["--limit", "ten"], "--limit must be a whole number, not 'ten'."),
        (["--limit", "2.5"], "--limit must be a whole number, not '2.5'."),
        (["--since", "2026-02-30"], "--since must be a real date written YYYY-MM-DD, not '2026-02-30'."),
        (["--since", "01/03/2026"], "--since must be a real date written YYYY-MM-DD, not '01/03/2026'."),
        (["--until", "2026-3-1"], "--until must be a real date written YYYY-MM-DD, not '2026-3-1'."),
        (["--until", "20260301"], "--until must be a real date written YYYY-MM-DD, not '20260301'."),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "--since (2026-03-02) is after --until (2026-03-01)."),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as error:
        run(*args)
    assert error.value.returncode == 2
    assert str(error.value) == message


def test_bad_keyword_options_are_usage_errors_too() -> None:
    for options in ({"limit": 0}, {"limit": True}, {"format": "xml"}, {"since": "yesterday"}):
        with pytest.raises(CommandError) as error:
            call_command("usage_report", stdout=StringIO(), **options)
        assert error.value.returncode == 2, options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-13-01"], "CommandError: --since must be a real date written YYYY-MM-DD, not '2026-13-01'."),
        (["--limit", "0"], "CommandError: --limit must be at least 1, not 0."),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_command_line_exits_with_status_2(args: list[str], message: str) -> None:
    assert_usage_error_exit(args, message)


def assert_usage_error_exit(args: list[str], message: str) -> None:
    """Run the command in a child process and check it exits with 2, ``message`` on stderr, nothing on stdout."""
    # Bad input is rejected before any query, so the child needs no test database.
    completed = manage_py_run("usage_report", *args)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert completed.stdout == ""


# --- --period ----------------------------------------------------------------------------------


def freeze_today(monkeypatch, day: str) -> None:
    """Make it 15:00 in Paris on ``day``, as far as the presets are concerned."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: paris(day, "15:00:00"))


def test_period_last_month_is_the_calendar_month(platform: Platform, monkeypatch) -> None:
    freeze_today(monkeypatch, "2026-04-15")

    data = run_json("--period", "last-month")

    assert data["period"] == {"since": "2026-03-01", "until": "2026-03-31"}
    assert data == run_json("--since", "2026-03-01", "--until", "2026-03-31")
    assert list(data) == REPORT_KEYS
    text = run("--period", "last-month")
    assert text.startswith("Usage report: last month (2026-03-01 to 2026-03-31)\n")
    assert text == run("--since", "2026-03-01", "--until", "2026-03-31").replace(
        "Usage report: 2026-03-01 to 2026-03-31", "Usage report: last month (2026-03-01 to 2026-03-31)"
    )


@pytest.mark.parametrize(
    ("today", "preset", "since", "until", "users"),
    [
        # 2 to 31 March: r1 (1 March) is out, so alice keeps r2 only.
        (
            "2026-03-31",
            "last-30-days",
            "2026-03-02",
            "2026-03-31",
            [
                ("bob", "0.021000000000", 3600, 2),
                ("alice", "0.000123456789", 300, 1),
                ("carol", "0.000000000000", 2150, 2),
            ],
        ),
        # 26 March to 1 April: r3 (31 March) and r8 (1 April): 0.021 + 0.25 USD, 3000 + 100 tokens.
        ("2026-04-01", "last-7-days", "2026-03-26", "2026-04-01", [("bob", "0.271000000000", 3100, 2)]),
        # 1 April only: r8.
        ("2026-04-01", "this-month", "2026-04-01", "2026-04-01", [("bob", "0.250000000000", 100, 1)]),
        ("2026-04-01", "today", "2026-04-01", "2026-04-01", [("bob", "0.250000000000", 100, 1)]),
        # 1 March only: r1.
        ("2026-03-01", "today", "2026-03-01", "2026-03-01", [("alice", "0.010500000000", 1500, 1)]),
        # February, on 1 March: r7 only.
        ("2026-03-01", "last-month", "2026-02-01", "2026-02-28", [("alice", "0.500000000000", 200, 1)]),
    ],
)
def test_period_presets_count_back_from_today(
    platform: Platform, monkeypatch, today: str, preset: str, since: str, until: str, users: list[tuple]
) -> None:
    freeze_today(monkeypatch, today)

    data = run_json("--period", preset)

    assert data["period"] == {"since": since, "until": until}
    assert pick(data["top_users_by_cost"], "username", "total_cost_usd", "total_tokens", "request_count") == users


def test_period_last_30_days_has_the_hand_computed_figures(platform: Platform, monkeypatch) -> None:
    freeze_today(monkeypatch, "2026-03-31")

    data = run_json("--period", "last-30-days")

    # r2..r6: (300 + 3000 + 600 + 150 + 2000) / 5 = 6050 / 5.
    assert data["average_tokens_per_request"] == "1210.00"
    # Helper keeps s2 (1 message), s1 being on 1 March; Other has s3 (2 messages) and an empty session.
    assert pick(data["top_chatbots_by_sessions"], "name", "session_count", "message_count") == [
        ("Other", 2, 2),
        ("Helper", 1, 1),
    ]


def test_period_all_time_is_the_default(platform: Platform) -> None:
    assert run_json("--period", "all-time") == run_json()
    assert run("--period", "all-time").startswith("Usage report: all time\n")


@pytest.mark.parametrize(
    "args",
    [
        ["--period", "last-month", "--since", "2026-03-01"],
        ["--period", "today", "--until", "2026-03-01"],
        ["--since", "2026-03-01", "--until", "2026-03-31", "--period", "all-time"],
    ],
)
def test_period_and_dates_are_exclusive(args: list[str]) -> None:
    with pytest.raises(CommandError) as error:
        run(*args)
    assert error.value.returncode == 2
    assert str(error.value) == "--period cannot be combined with --since or --until."


def test_unknown_period_keyword_is_a_usage_error() -> None:
    with pytest.raises(CommandError) as error:
        call_command("usage_report", stdout=StringIO(), period="yesterday")
    assert error.value.returncode == 2
    assert str(error.value) == (
        "--period must be one of today, last-7-days, last-30-days, this-month, last-month, all-time, not 'yesterday'."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "yesterday"], "argument --period: invalid choice: 'yesterday'"),
        (["--period", "today", "--since", "2026-03-01"], "CommandError: --period cannot be combined with --since"),
    ],
)
def test_period_errors_exit_with_status_2(args: list[str], message: str) -> None:
    assert_usage_error_exit(args, message)


# --- --format csv ------------------------------------------------------------------------------


def test_csv_for_march_has_the_hand_computed_figures(platform: Platform) -> None:
    p = platform
    text = run("--format", "csv", "--since", "2026-03-01", "--until", "2026-03-31")

    # The figures of test_json_for_march_has_the_hand_computed_figures, as spreadsheet sections.
    assert text == "\r\n".join(
        [
            "Usage report",
            "From,2026-03-01",
            "To,2026-03-31",
            "",
            "Top Users by OpenRouter Cost",
            "Rank,User ID,Username,Total cost (USD),Total tokens,Requests",
            f"1,{p.bob.pk},bob,0.021000000000,3600,2",
            f"2,{p.alice.pk},alice,0.010623456789,1800,2",
            f"3,{p.carol.pk},carol,0.000000000000,2150,2",
            "",
            "Top AI Models by Usage",
            "Rank,Model ID,OpenRouter ID,Model,Usage count,Total tokens,Total cost (USD)",
            f"1,{p.big.pk},acme/big,Acme Big,2,4500,0.031500000000",
            f"2,{p.free_a.pk},acme/free-a:free,Acme Free A,2,750,0.000000000000",
            f"3,{p.free_b.pk},other/free-b,Free B,1,2000,0.000000000000",
            f"4,{p.small.pk},acme/small,Acme Small,1,300,0.000123456789",
            "",
            "Top Free AI Models Usage",
            "Rank,Model ID,OpenRouter ID,Free model,Usage count,Total tokens",
            f"1,{p.free_a.pk},acme/free-a:free,Acme Free A,2,750",
            f"2,{p.free_b.pk},other/free-b,Free B,1,2000",
            "",
            "Average Token Usage",
            "Average tokens per request",
            "1258.33",
            "",
            "Top Chatbots by Session Count",
            "Rank,Chatbot ID,Chatbot,Sessions,Messages",
            f"1,{p.helper.pk},Helper,2,4",
            f"2,{p.other.pk},Other,2,2",
            "",
            "Top Users by Free Model Usage",
            "Rank,User ID,Username,Total tokens,Requests",
            f"1,{p.carol.pk},carol,2150,2",
            f"2,{p.bob.pk},bob,600,1",
            "",
        ]
    )


def test_csv_sections_are_the_downloads_rows(platform: Platform, monkeypatch) -> None:
    freeze_today(monkeypatch, "2026-04-15")
    rows = list(csv.reader(StringIO(run("--format", "csv", "--period", "last-month", "--limit", "2"), newline="")))

    assert rows[:3] == [["Usage report"], ["From", "2026-03-01"], ["To", "2026-03-31"]]
    sections = "\n".join("\t".join(row) for row in rows[4:]).split("\n\n")
    period = Period(since=date(2026, 3, 1), until=date(2026, 3, 31))
    # Each section is its title, then exactly what the admin's download of that report holds.
    assert len(sections) == len(REPORTS)
    for section, report in zip(sections, REPORTS.values(), strict=True):
        lines = [line.split("\t") for line in section.split("\n")]
        download = report_csv_rows(report=report, result=report.compute(period=period, limit=2))
        assert lines == [[report.title], *([str(cell) for cell in row] for row in download)], report.key


def test_csv_escapes_formulas_and_json_does_not(platform: Platform) -> None:
    evil = UserFactory(username='=HYPERLINK("http://evil.example","x")')
    model = AIModelFactory(openrouter_id="@evil/model", name="-Evil")
    RequestCostFactory(
        user=evil,
        ai_model=model,
        prompt_tokens=9000,
        completion_tokens=0,
        cost_usd=Decimal("1"),
        created_at=paris("2026-03-05"),
    )

    rows = list(csv.reader(StringIO(run("--format", "csv", "--since", "2026-03-01", "--until", "2026-03-31"))))
    # The costliest user in March; the third model (1 request, after big and free A with 2 each).
    assert ["1", str(evil.pk), '\'=HYPERLINK("http://evil.example","x")', "1.000000000000", "9000", "1"] in rows
    assert ["3", str(model.pk), "'@evil/model", "'-Evil", "1", "9000", "1.000000000000"] in rows

    data = run_json("--since", "2026-03-01", "--until", "2026-03-31")
    assert data["top_users_by_cost"][0]["username"] == '=HYPERLINK("http://evil.example","x")'
    assert pick(data["top_models_by_usage"][2:3], "openrouter_id", "name") == [("@evil/model", "-Evil")]


def test_csv_of_an_empty_database_has_every_header() -> None:
    assert run("--format", "csv") == "\r\n".join(
        [
            "Usage report",
            "From,",
            "To,",
            "",
            "Top Users by OpenRouter Cost",
            "Rank,User ID,Username,Total cost (USD),Total tokens,Requests",
            "",
            "Top AI Models by Usage",
            "Rank,Model ID,OpenRouter ID,Model,Usage count,Total tokens,Total cost (USD)",
            "",
            "Top Free AI Models Usage",
            "Rank,Model ID,OpenRouter ID,Free model,Usage count,Total tokens",
            "",
            "Average Token Usage",
            "Average tokens per request",
            '""',  # no requests: an empty figure, quoted so the row is not taken for a blank line
            "",
            "Top Chatbots by Session Count",
            "Rank,Chatbot ID,Chatbot,Sessions,Messages",
            "",
            "Top Users by Free Model Usage",
            "Rank,User ID,Username,Total tokens,Requests",
            "",
        ]
    )
