"""chat_turn_send: a user's message, OpenRouter's reply and the request's real cost, or nothing half-written."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from ai_models.models import AIModel
from chatbot.models import ChatMessage, OpenRouterRequestCost
from chatbot.openrouter import (
    OpenRouterClient,
    OpenRouterInsufficientCredits,
    OpenRouterMalformedResponse,
    OpenRouterNotConfigured,
    OpenRouterRateLimited,
    OpenRouterTimeout,
    OpenRouterUnavailable,
)
from chatbot.services import chat_turn_send
from chatbot.tests.fake_openrouter import (
    FakeOpenRouter,
    FakeResponse,
    chat_completion_body,
    error_body,
    fake_openrouter_for,
)
from core.factories import AIModelFactory, ChatbotFactory, ChatMessageFactory, ChatSessionFactory, UserFactory

pytestmark = pytest.mark.django_db

MODEL_ID = "meta-llama/llama-3.3-70b-instruct"


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
        api_key="sk-or-v1-test", base_url=fake.base_url, timeout=2.0, max_retries=2, sleep=sleeps.append
    ) as openrouter:
        yield openrouter


@pytest.fixture
def session():
    ai_model = AIModelFactory(openrouter_id=MODEL_ID, name="Llama 3.3 70B")
    chatbot = ChatbotFactory(ai_model=ai_model, system_prompt="You answer in one sentence.")
    return ChatSessionFactory(chatbot=chatbot, user=UserFactory(username="ada"))


def reply(**overrides) -> FakeResponse:
    values = {
        "generation_id": "gen-1786722910-Xy7",
        "model": MODEL_ID,
        "content": "Paris is the capital of France.",
        "prompt_tokens": 31,
        "completion_tokens": 8,
        "cost": Decimal("0.000123456789"),
    }
    values.update(overrides)
    return FakeResponse(body=chat_completion_body(**values))


def test_a_turn_stores_the_reply_and_openrouters_figures(fake, client, session):
    fake.enqueue_chat(reply())

    assistant = chat_turn_send(session=session, content="What is the capital of France?", client=client)

    assert (assistant.role, assistant.content) == (ChatMessage.Role.ASSISTANT, "Paris is the capital of France.")
    user_message = assistant.in_reply_to
    assert (user_message.role, user_message.content, user_message.failure_code) == (
        ChatMessage.Role.USER,
        "What is the capital of France?",
        "",
    )
    assert list(session.messages.order_by("created_at", "id")) == [user_message, assistant]
    request_cost = OpenRouterRequestCost.objects.get()
    assert request_cost.generation_id == "gen-1786722910-Xy7"
    assert (request_cost.user, request_cost.session, request_cost.ai_model) == (
        session.user,
        session,
        session.chatbot.ai_model,
    )
    # 31 + 8 = 39 tokens; the cost is usage.cost to the last digit.
    assert (request_cost.prompt_tokens, request_cost.completion_tokens, request_cost.total_tokens) == (31, 8, 39)
    assert request_cost.cost_usd == Decimal("0.000123456789")
    assert request_cost.cost_status == OpenRouterRequestCost.CostStatus.BILLED


def test_a_turn_sends_the_system_prompt_the_answered_history_and_the_user_id(fake, client, session):
    earlier = timezone.now() - timedelta(minutes=5)
    ChatMessageFactory(session=session, role="user", content="Hi", created_at=earlier)
    ChatMessageFactory(session=session, role="assistant", content="Hello!", created_at=earlier + timedelta(seconds=1))
    # A message whose turn failed never reached the model, and is not resent.
    ChatMessageFactory(
        session=session,
        role="user",
        content="lost",
        created_at=earlier + timedelta(seconds=2),
        failure_code="timeout",
    )
    ChatMessageFactory(content="another session's message", created_at=earlier)
    fake.enqueue_chat(reply())

    chat_turn_send(session=session, content="What is the capital of France?", client=client)

    [request] = fake.received
    assert request.body["model"] == MODEL_ID
    assert request.body["user"] == str(session.user.pk)
    assert request.body["messages"] == [
        {"role": "system", "content": "You answer in one sentence."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is the capital of France?"},
    ]


def test_a_chatbot_without_system_prompt_sends_only_the_history(fake, client, session):
    session.chatbot.system_prompt = ""
    session.chatbot.save()
    fake.enqueue_chat(reply())

    chat_turn_send(session=session, content="Hi", client=client)

    assert fake.received[0].body["messages"] == [{"role": "user", "content": "Hi"}]


def test_the_cost_is_linked_to_the_model_that_answered_creating_it_inactive(fake, client, session):
    # A router model answers with the model it routed to, which the catalog may not list yet.
    fake.enqueue_chat(reply(model="~moonshotai/kimi-k2:free"))

    chat_turn_send(session=session, content="Hi", client=client)

    routed = AIModel.objects.get(openrouter_id="~moonshotai/kimi-k2:free")
    assert (routed.provider, routed.is_free, routed.is_active) == ("moonshotai", True, False)
    assert (routed.prompt_price, routed.completion_price) == (None, None)
    assert OpenRouterRequestCost.objects.get().ai_model == routed


def test_a_paid_model_missing_from_the_catalog_is_created_not_free(fake, client, session):
    fake.enqueue_chat(reply(model="openai/gpt-5-mini"))

    chat_turn_send(session=session, content="Hi", client=client)

    assert AIModel.objects.get(openrouter_id="openai/gpt-5-mini").is_free is False


def test_a_reply_without_usage_cost_is_recorded_with_the_cost_unknown(fake, client, session):
    fake.enqueue_chat(reply(cost=None))

    chat_turn_send(session=session, content="Hi", client=client)

    request_cost = OpenRouterRequestCost.objects.get()
    assert request_cost.cost_status == OpenRouterRequestCost.CostStatus.UNKNOWN
    assert request_cost.cost_usd == Decimal(0)
    assert (request_cost.generation_id, request_cost.total_tokens) == ("gen-1786722910-Xy7", 39)


def test_a_rate_limit_is_waited_out_as_retry_after_asks(fake, client, sleeps, session):
    fake.enqueue_chat(
        FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "3"}),
        reply(),
    )

    chat_turn_send(session=session, content="Hi", client=client)

    assert sleeps == [3.0]
    assert OpenRouterRequestCost.objects.count() == 1
    assert session.messages.filter(failure_code="").count() == 2


RATE_LIMITED = FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "1"})


@pytest.mark.parametrize(
    ("responses", "error_class", "code"),
    [
        (
            [
                FakeResponse(
                    402,
                    error_body(
                        code=402,
                        message="Insufficient credits",
                        metadata={"limit_source": "openrouter_credits"},
                    ),
                )
            ],
            OpenRouterInsufficientCredits,
            "insufficient_credits",
        ),
        ([RATE_LIMITED, RATE_LIMITED, RATE_LIMITED], OpenRouterRateLimited, "rate_limited"),
        (
            [FakeResponse(502, error_body(code=502, message="Model is down"))],
            OpenRouterUnavailable,
            "upstream_unavailable",
        ),
        (
            [FakeResponse(503, error_body(code=503, message="No provider"))],
            OpenRouterUnavailable,
            "upstream_unavailable",
        ),
        ([FakeResponse(500, b"Internal Server Error")], OpenRouterUnavailable, "upstream_unavailable"),
        ([FakeResponse(body=b"<html>not json</html>")], OpenRouterMalformedResponse, "malformed_response"),
        ([FakeResponse(body={"id": "gen-1", "model": MODEL_ID})], OpenRouterMalformedResponse, "malformed_response"),
        (
            [FakeResponse(200, error_body(code=502, message="Provider error"))],
            OpenRouterUnavailable,
            "upstream_unavailable",
        ),
    ],
    ids=["402-credits", "429-exhausted", "502", "503", "500-html", "not-json", "no-choices", "error-inside-200"],
)
def test_a_failed_turn_keeps_the_message_records_why_and_writes_nothing_else(
    fake, client, session, responses, error_class, code
):
    fake.enqueue_chat(*responses)

    with pytest.raises(error_class) as caught:
        chat_turn_send(session=session, content="Still there?", client=client)

    [kept] = session.messages.all()
    assert (kept.role, kept.content, kept.failure_code) == (ChatMessage.Role.USER, "Still there?", code)
    assert kept.failure_message == caught.value.message
    assert caught.value.user_message == kept
    assert not OpenRouterRequestCost.objects.exists()
    assert list(AIModel.objects.values_list("openrouter_id", flat=True)) == [MODEL_ID]


def test_a_timeout_keeps_the_message_and_writes_nothing_else(fake, session):
    slow = reply()
    slow.delay = 1.5
    fake.enqueue_chat(slow)

    with (
        OpenRouterClient(api_key="k", base_url=fake.base_url, timeout=0.2) as impatient,
        pytest.raises(OpenRouterTimeout),
    ):
        chat_turn_send(session=session, content="Still there?", client=impatient)

    [kept] = session.messages.all()
    assert kept.failure_code == "timeout"
    assert not OpenRouterRequestCost.objects.exists()


def test_usage_that_cannot_be_stored_exactly_rolls_the_reply_back(fake, client, session):
    # 13 decimal places: one more than cost_usd holds. The reply was saved first, inside the
    # transaction; the cost then fails, and the reply must go with it.
    fake.enqueue_chat(reply(cost=Decimal("0.0000000000001"), model="new/model-from-router"))

    with pytest.raises(OpenRouterMalformedResponse, match="cannot be recorded"):
        chat_turn_send(session=session, content="Hi", client=client)

    assert list(session.messages.values_list("role", "failure_code")) == [("user", "malformed_response")]
    assert not OpenRouterRequestCost.objects.exists()
    # The model the response named was created in the same transaction, and rolled back too.
    assert not AIModel.objects.filter(openrouter_id="new/model-from-router").exists()


@pytest.mark.django_db(transaction=True)
def test_the_users_message_is_committed_before_the_call_and_survives_a_failure(fake, client):
    ai_model = AIModelFactory(openrouter_id=MODEL_ID)
    session = ChatSessionFactory(chatbot=ChatbotFactory(ai_model=ai_model))
    fake.enqueue_chat(reply(cost=Decimal("0.0000000000001")))

    with pytest.raises(OpenRouterMalformedResponse):
        chat_turn_send(session=session, content="Keep me", client=client)

    # Real commits here (no test transaction): the message survived, the reply was rolled back.
    assert list(ChatMessage.objects.values_list("content", "failure_code")) == [("Keep me", "malformed_response")]
    assert not OpenRouterRequestCost.objects.exists()


def test_a_missing_api_key_is_a_recorded_failure(settings, session):
    with fake_openrouter_for(settings) as fake:
        settings.OPENROUTER_API_KEY = ""
        with pytest.raises(OpenRouterNotConfigured):
            chat_turn_send(session=session, content="Hi")

    assert fake.received == []
    assert session.messages.get().failure_code == "not_configured"


def test_the_settings_configured_client_is_used_by_default(settings, session):
    with fake_openrouter_for(settings) as fake:
        fake.enqueue_chat(reply())
        chat_turn_send(session=session, content="Hi")

    assert fake.received[0].header("Authorization") == "Bearer sk-or-v1-test-key"
    assert OpenRouterRequestCost.objects.get().cost_usd == Decimal("0.000123456789")


@pytest.mark.parametrize("content", ["", "   ", None, "x" * 32_001])
def test_invalid_content_is_refused_before_anything_is_stored(fake, client, session, content):
    with pytest.raises(ValidationError) as caught:
        chat_turn_send(session=session, content=content, client=client)

    assert "content" in caught.value.message_dict
    assert not session.messages.exists()
    assert fake.received == []


def test_an_inactive_chatbot_takes_no_message(fake, client, session):
    session.chatbot.is_active = False
    session.chatbot.save()

    with pytest.raises(ValidationError):
        chat_turn_send(session=session, content="Hi", client=client)

    assert not session.messages.exists()
    assert fake.received == []
