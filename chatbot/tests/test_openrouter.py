"""The OpenRouter client, over loopback against the fake OpenRouter server."""

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from chatbot.openrouter import (
    ChatCompletion,
    OpenRouterAuthenticationError,
    OpenRouterBadRequest,
    OpenRouterClient,
    OpenRouterForbidden,
    OpenRouterInsufficientCredits,
    OpenRouterMalformedResponse,
    OpenRouterNotConfigured,
    OpenRouterNotFound,
    OpenRouterRateLimited,
    OpenRouterTimeout,
    OpenRouterUnavailable,
    _retry_after_parse,
)
from chatbot.tests.fake_openrouter import (
    FakeOpenRouter,
    FakeResponse,
    chat_completion_body,
    error_body,
    fake_openrouter_for,
    generation_body,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.fixture
def fake():
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake, sleeps):
    with OpenRouterClient(
        api_key="sk-or-v1-test",
        base_url=fake.base_url,
        app_url="https://chatbots.example.com",
        app_title="Chatbot Platform",
        timeout=5.0,
        max_retries=2,
        max_retry_wait=10.0,
        sleep=sleeps.append,
    ) as openrouter:
        yield openrouter


def completion(**overrides) -> FakeResponse:
    values = {
        "generation_id": "gen-1786722910-a1",
        "model": "meta-llama/llama-3.3-70b-instruct",
        "content": "Hello!",
        "prompt_tokens": 14,
        "completion_tokens": 3,
        "cost": Decimal("0.000123456789"),
    }
    values.update(overrides)
    return FakeResponse(body=chat_completion_body(**values))


def send(client: OpenRouterClient) -> ChatCompletion:
    return client.chat_completion(model="meta-llama/llama-3.3-70b-instruct", messages=MESSAGES, user="42")


def test_chat_completion_sends_the_conversation_user_and_attribution(fake, client):
    fake.enqueue_chat(completion())

    send(client)

    [request] = fake.received
    assert request.method == "POST"
    assert request.path == "/api/v1/chat/completions"
    assert request.header("Authorization") == "Bearer sk-or-v1-test"
    assert request.header("HTTP-Referer") == "https://chatbots.example.com"
    assert request.header("X-Title") == "Chatbot Platform"
    assert request.body["model"] == "meta-llama/llama-3.3-70b-instruct"
    assert request.body["messages"] == MESSAGES
    assert request.body["user"] == "42"


def test_chat_completion_parses_usage_cost_exactly(fake, client):
    fake.enqueue_chat(completion())

    result = send(client)

    assert result == ChatCompletion(
        id="gen-1786722910-a1",
        model="meta-llama/llama-3.3-70b-instruct",
        content="Hello!",
        finish_reason="stop",
        prompt_tokens=14,
        completion_tokens=3,
        cost_usd=Decimal("0.000123456789"),
    )
    # Through a float the same figure would be 0.000123456788999999...: it must never get there.
    assert Decimal(float("0.000123456789")) != Decimal("0.000123456789")
    assert isinstance(result.cost_usd, Decimal)


def test_chat_completion_without_usage_cost_reports_it_unknown(fake, client):
    fake.enqueue_chat(completion(cost=None))

    result = send(client)

    assert result.cost_usd is None
    assert (result.prompt_tokens, result.completion_tokens) == (14, 3)


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (400, OpenRouterBadRequest, "bad_request"),
        (401, OpenRouterAuthenticationError, "authentication_failed"),
        (402, OpenRouterInsufficientCredits, "insufficient_credits"),
        (403, OpenRouterForbidden, "forbidden"),
        (502, OpenRouterUnavailable, "upstream_unavailable"),
        (503, OpenRouterUnavailable, "upstream_unavailable"),
    ],
)
def test_error_statuses_raise_their_domain_error_without_retrying_the_chat(
    fake, client, sleeps, status, error_class, code
):
    metadata = {"provider_name": "DeepInfra", "raw": "upstream said no"}
    fake.enqueue_chat(FakeResponse(status, error_body(code=status, message=f"Failure {status}", metadata=metadata)))

    with pytest.raises(error_class) as caught:
        send(client)

    assert caught.value.code == code
    assert caught.value.status == status
    assert caught.value.message == f"Failure {status}"
    assert caught.value.metadata == metadata
    # A chat request is billed per attempt: only a rate limit is retried.
    assert len(fake.received) == 1
    assert sleeps == []


def test_rate_limit_waits_for_retry_after_then_succeeds(fake, client, sleeps):
    fake.enqueue_chat(
        FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "2"}),
        completion(),
    )

    result = send(client)

    assert result.id == "gen-1786722910-a1"
    assert sleeps == [2.0]
    assert len(fake.received) == 2


def test_rate_limit_retries_are_bounded(fake, client, sleeps):
    limited = FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "1"})
    fake.enqueue_chat(limited, limited, limited, completion())

    with pytest.raises(OpenRouterRateLimited) as caught:
        send(client)

    # max_retries=2: the first attempt and two retries, with a wait before each retry.
    assert len(fake.received) == 3
    assert sleeps == [1.0, 1.0]
    assert caught.value.retry_after == 1.0


def test_rate_limit_longer_than_the_bound_is_not_waited_for(fake, client, sleeps):
    fake.enqueue_chat(
        FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "60"}),
        completion(),
    )

    with pytest.raises(OpenRouterRateLimited) as caught:
        send(client)

    assert caught.value.retry_after == 60.0
    assert sleeps == []
    assert len(fake.received) == 1


def test_rate_limit_without_retry_after_backs_off(fake, client, sleeps):
    limited = FakeResponse(429, error_body(code=429, message="Rate limit exceeded"))
    fake.enqueue_chat(limited, limited, completion())

    send(client)

    # 0.5 * 2**attempt: 0.5 then 1.0.
    assert sleeps == [0.5, 1.0]


def test_retry_after_accepts_an_http_date():
    in_thirty_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert 28 <= _retry_after_parse(in_thirty_seconds) <= 30
    assert _retry_after_parse("5") == 5.0
    assert _retry_after_parse("-3") == 0.0
    assert _retry_after_parse("soon") is None
    assert _retry_after_parse(None) is None


def test_a_slow_answer_times_out(fake, sleeps):
    slow = completion()
    slow.delay = 2.0
    fake.enqueue_chat(slow)
    with (
        OpenRouterClient(api_key="k", base_url=fake.base_url, timeout=0.2, sleep=sleeps.append) as slow_client,
        pytest.raises(OpenRouterTimeout),
    ):
        send(slow_client)

    assert len(fake.received) == 1
    assert sleeps == []


def test_an_unreachable_server_is_unavailable(sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    with (
        OpenRouterClient(api_key="k", base_url=f"http://127.0.0.1:{port}/api/v1", sleep=sleeps.append) as client,
        pytest.raises(OpenRouterUnavailable),
    ):
        send(client)


@pytest.mark.parametrize(
    "response",
    [
        FakeResponse(body=b"<html>Bad gateway</html>"),
        FakeResponse(body=b'{"id": "gen-1", "model": "x/y", "choices": [], "usage": null}'),
        FakeResponse(body=b'{"id": "gen-1", "model": "x/y", "choices": [{"message": {"content": null}}]}'),
        FakeResponse(body=b'{"model": "x/y", "choices": [{"message": {"content": "hi"}}]}'),
        FakeResponse(
            body=b'{"id": "gen-1", "model": "x/y", "choices": [{"message": {"content": "hi"}}],'
            b' "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": -0.5}}'
        ),
        FakeResponse(
            body=b'{"id": "gen-1", "model": "x/y", "choices": [{"message": {"content": "hi"}}],'
            b' "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": NaN}}'
        ),
        FakeResponse(
            body=b'{"id": "gen-1", "model": "x/y", "choices": [{"message": {"content": "hi"}}],'
            b' "usage": {"prompt_tokens": 1.5, "completion_tokens": 1, "cost": 0.1}}'
        ),
        FakeResponse(
            body=b'{"id": "gen-1", "model": "x/y", "choices": [{"message": {"content": "hi"}}],'
            b' "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": "0.1"}}'
        ),
    ],
    ids=["not-json", "no-choices", "null-content", "no-id", "negative-cost", "nan-cost", "float-tokens", "string-cost"],
)
def test_a_malformed_body_is_reported(fake, client, response):
    fake.enqueue_chat(response)

    with pytest.raises(OpenRouterMalformedResponse):
        send(client)


def test_an_error_reported_inside_a_200_is_raised(fake, client):
    # OpenRouter answers 200 once the model has started, and reports a later failure in the body.
    fake.enqueue_chat(FakeResponse(200, error_body(code=502, message="Provider returned error")))

    with pytest.raises(OpenRouterUnavailable, match="Provider returned error"):
        send(client)


def test_a_missing_api_key_is_reported_when_a_call_is_made(fake):
    with (
        OpenRouterClient(api_key="", base_url=fake.base_url) as keyless,
        pytest.raises(OpenRouterNotConfigured, match="OPENROUTER_API_KEY"),
    ):
        send(keyless)

    assert fake.received == []


def test_models_needs_no_key_and_keeps_prices_exact(fake):
    fake.catalog = b'{"data": [{"id": "a/b", "pricing": {"prompt": "0.00000000000001", "completion": 0.1}}]}'
    with OpenRouterClient(api_key="", base_url=fake.base_url) as keyless:
        document = keyless.models()

    assert document["data"][0]["pricing"] == {"prompt": "0.00000000000001", "completion": Decimal("0.1")}
    assert fake.received[0].header("Authorization") is None


def test_generation_returns_openrouters_figures(fake, client):
    fake.add_generation(
        generation_body(
            generation_id="gen-7",
            model="openai/gpt-4o-mini",
            total_cost=Decimal("0.00004215"),
            tokens_prompt=120,
            tokens_completion=40,
        )
    )

    generation = client.generation(generation_id="gen-7")

    assert (generation.id, generation.model, generation.total_cost) == (
        "gen-7",
        "openai/gpt-4o-mini",
        Decimal("0.00004215"),
    )
    assert (generation.tokens_prompt, generation.tokens_completion) == (120, 40)
    [request] = fake.received
    assert request.query == {"id": ["gen-7"]}


def test_generation_not_found_yet_raises_not_found(fake, client):
    fake.add_generation(
        generation_body(
            generation_id="gen-8", model="x/y", total_cost=Decimal("0.1"), tokens_prompt=1, tokens_completion=1
        ),
        not_found_first=1,
    )

    with pytest.raises(OpenRouterNotFound):
        client.generation(generation_id="gen-8")
    assert client.generation(generation_id="gen-8").total_cost == Decimal("0.1")


def test_reads_retry_an_outage(fake, client, sleeps):
    fake.enqueue("GET", "/models", FakeResponse(503, error_body(code=503, message="No provider")))
    fake.catalog = b'{"data": []}'

    assert client.models() == {"data": []}
    assert sleeps == [0.5]


def test_from_settings_reads_the_openrouter_settings(settings):
    with fake_openrouter_for(settings) as fake:
        fake.enqueue_chat(completion())
        with OpenRouterClient.from_settings() as configured:
            send(configured)

    [request] = fake.received
    assert request.header("Authorization") == "Bearer sk-or-v1-test-key"
    assert request.header("X-Title") == "Chatbot Platform"
    assert request.header("HTTP-Referer") == "https://chatbots.example.com"
