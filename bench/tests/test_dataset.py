from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bench.dataset import (
    MONEY_PLACES,
    PROMPT_PRICES_PER_MILLION,
    SECONDS_PER_DAY,
    PlatformGenerator,
    Scale,
    _money_units,
    scale_for_rows,
)

END = datetime(2026, 3, 10, 15, 30, 12, tzinfo=UTC)
SCALE = Scale(rows=3_000, users=40, models=20, chatbots=8, sessions=300, days=30, seed=7)


def _generate(scale: Scale = SCALE, end: datetime = END) -> tuple[PlatformGenerator, dict[str, list[tuple]]]:
    generator = PlatformGenerator(scale=scale, end=end)
    rows = {label: list(values) for label, values in generator.catalog().items()}
    for day in generator.days():
        for label, values in day.rows.items():
            rows.setdefault(label, []).extend(values)
    return generator, rows


@pytest.fixture(scope="module")
def platform() -> tuple[PlatformGenerator, dict[str, list[tuple]]]:
    return _generate()


def test_scale_for_rows_matches_the_reference_platform_at_10m():
    assert scale_for_rows(rows=10_000_000) == Scale(
        rows=10_000_000, users=50_000, models=300, chatbots=500, sessions=1_000_000
    )
    assert scale_for_rows(rows=10_000_000).free_models == 30


def test_scale_for_rows_scales_the_traffic_down_with_floors_and_keeps_the_catalogue():
    # 1M is a tenth of the reference: 5,000 users and 100,000 sessions; the catalogue stays 300 models, 500 chatbots.
    assert scale_for_rows(rows=1_000_000) == Scale(
        rows=1_000_000, users=5_000, models=300, chatbots=500, sessions=100_000
    )
    # 1,000 requests would mean 5 users: the floor applies; sessions are 1,000 / 10; a catalogue size given is kept.
    assert scale_for_rows(rows=1_000, models=7) == Scale(rows=1_000, users=50, models=7, chatbots=500, sessions=100)
    assert scale_for_rows(rows=10).sessions == 10


def test_exactly_rows_requests_with_unique_ids(platform):
    _, rows = platform
    requests = rows["chatbot.OpenRouterRequestCost"]
    assert len(requests) == 3_000
    assert [request[0] for request in requests] == list(range(1, 3_001))
    assert len({request[4] for request in requests}) == 3_000
    assert len(rows["chatbot.ChatSession"]) == 300
    # 40 users plus the superuser the pages are measured as.
    assert len(rows["accounts.User"]) == 41
    assert [user[1] for user in rows["accounts.User"] if user[5]] == ["bench-admin"]


def test_total_tokens_is_prompt_plus_completion(platform):
    _, rows = platform
    assert all(request[7] == request[5] + request[6] for request in rows["chatbot.OpenRouterRequestCost"])


def test_costs_are_exact_from_list_prices(platform):
    generator, rows = platform
    prices = {
        model[0]: (Decimal(model[5]).scaleb(-MONEY_PLACES), Decimal(model[6]).scaleb(-MONEY_PLACES))
        for model in rows["ai_models.AIModel"]
    }
    list_prices = {Decimal(price) for price in PROMPT_PRICES_PER_MILLION}
    for model in rows["ai_models.AIModel"]:
        prompt, completion = prices[model[0]]
        if model[7]:
            assert (prompt, completion) == (0, 0)
        else:
            assert prompt.scaleb(6) in list_prices
            assert completion / prompt in {1, 2, 3, 4, 5}
    # An independent path: Decimal arithmetic on USD, against the generator's integer picodollars.
    for request in rows["chatbot.OpenRouterRequestCost"]:
        prompt, completion = prices[request[3]]
        assert Decimal(request[8]).scaleb(-MONEY_PLACES) == request[5] * prompt + request[6] * completion
    free_ids = {model[0] for model in rows["ai_models.AIModel"] if model[7]}
    assert free_ids == generator.free_model_ids
    assert len(free_ids) == 2  # A tenth of 20 models.


def test_money_units_are_picodollars():
    # $0.075 per million tokens is 0.000000075 USD per token: 75,000 units of 10**-12 USD.
    assert _money_units(Decimal("0.075").scaleb(-6)) == 75_000
    # 1,000 prompt tokens at that price and 500 completion tokens at four times it:
    # 1,000 * 0.000000075 + 500 * 0.0000003 = 0.000075 + 0.00015 = 0.000225 USD.
    assert _money_units(Decimal("0.000225")) == 1_000 * 75_000 + 500 * 300_000
    with pytest.raises(ValueError, match="whole number"):
        _money_units(Decimal("1E-13"))


def test_timestamps_stay_in_the_window_and_requests_are_in_time_order(platform):
    generator, rows = platform
    # From 2026-02-09 00:00 UTC (30 days ending 2026-03-10) to 15:30:12 on the last day.
    assert generator.first_day.isoformat() == "2026-02-09"
    assert generator.last_second == 29 * SECONDS_PER_DAY + 15 * 3600 + 30 * 60 + 12
    times = [request[9] for request in rows["chatbot.OpenRouterRequestCost"]]
    assert times == sorted(times)
    for table in ("chatbot.ChatSession", "chatbot.ChatMessage", "chatbot.OpenRouterRequestCost"):
        assert all(0 <= row[-1] <= generator.last_second for row in rows[table])


def test_sessions_hold_alternating_messages_and_their_replies_requests(platform):
    _, rows = platform
    sessions = {session[0]: session for session in rows["chatbot.ChatSession"]}
    messages = defaultdict(list)
    for message in rows["chatbot.ChatMessage"]:
        messages[message[1]].append(message)
    assert set(messages) == set(sessions)
    for session_messages in messages.values():
        assert 3 <= len(session_messages) <= 6
        expected_roles = (["user", "assistant"] * 3)[: len(session_messages)]
        assert [message[2] for message in session_messages] == expected_roles
    replies = Counter()
    for request in rows["chatbot.OpenRouterRequestCost"]:
        if request[2] is None:
            continue
        session = sessions[request[2]]
        assert request[1] == session[1]  # The session's own user.
        assert request[9] >= session[4]
        assert request[9] // SECONDS_PER_DAY == session[4] // SECONDS_PER_DAY
        replies[request[2]] += 1
    for session_id, count in replies.items():
        assert count == sum(1 for m in messages[session_id] if m[2] == "assistant")


def test_generation_is_reproducible():
    assert _generate()[1] == _generate()[1]
    assert _generate()[1] != _generate(Scale(**{**SCALE.__dict__, "seed": 8}))[1]


def test_users_and_models_are_skewed(platform):
    _, rows = platform
    requests = rows["chatbot.OpenRouterRequestCost"]
    by_user = Counter(request[1] for request in requests)
    by_model = Counter(request[3] for request in requests)
    # Uniform traffic would give each of 40 users 75 requests and each of 20 models 150.
    assert by_user.most_common(1)[0][1] > 3 * 75
    assert by_model.most_common(1)[0][1] > 3 * 150
