"""The JSON chat API: session auth, CSRF, own sessions only, clear errors, and a turn into the reports."""

import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from chatbot.models import ChatMessage, ChatSession, OpenRouterRequestCost
from chatbot.tests.fake_openrouter import FakeResponse, chat_completion_body, error_body, fake_openrouter_for
from core.factories import AIModelFactory, ChatbotFactory, ChatSessionFactory, UserFactory
from reports.selectors import top_users_by_cost

pytestmark = pytest.mark.django_db

MODEL_ID = "mistralai/mistral-small-3.2-24b-instruct"


@pytest.fixture
def fake(settings):
    with fake_openrouter_for(settings) as server:
        yield server


@pytest.fixture
def chatbot():
    return ChatbotFactory(
        name="Travel helper",
        ai_model=AIModelFactory(openrouter_id=MODEL_ID, name="Mistral Small 3.2"),
        system_prompt="You plan trips.",
    )


@pytest.fixture
def alice():
    return UserFactory(username="alice")


class ApiClient:
    """A browser-like client: session cookie, CSRF cookie and the X-CSRFToken header."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.token = self.client.get(reverse("chatbot_api:csrf")).json()["csrf_token"]

    def login(self, username: str, password: str = "password"):  # noqa: S107 (the factories' test password)
        response = self.post(reverse("chatbot_api:login"), {"username": username, "password": password})
        if response.status_code == 200:
            # Signing in rotates the token.
            self.token = response.json()["csrf_token"]
        return response

    def get(self, url: str):
        return self.client.get(url)

    def post(self, url: str, body, *, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body)
        return self.client.post(url, data=data, content_type="application/json", HTTP_X_CSRFTOKEN=self.token)


def signed_in(user) -> ApiClient:
    api = ApiClient()
    assert api.login(user.username).status_code == 200
    return api


def completion(*, generation_id: str, content: str, prompt_tokens: int, completion_tokens: int, cost: str):
    return FakeResponse(
        body=chat_completion_body(
            generation_id=generation_id,
            model=MODEL_ID,
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=Decimal(cost),
        )
    )


def messages_url(session_id: int) -> str:
    return reverse("chatbot_api:messages", args=[session_id])


def test_a_chat_through_the_api_reaches_the_admin_reports_with_openrouters_figures(fake, chatbot, alice):
    fake.enqueue_chat(
        completion(generation_id="gen-a", content="Try Lisbon.", prompt_tokens=25, completion_tokens=4, cost="0.1"),
        completion(
            generation_id="gen-b", content="In May.", prompt_tokens=40, completion_tokens=3, cost="0.000000000002"
        ),
    )
    api = signed_in(alice)

    assert api.get(reverse("chatbot_api:chatbots")).json() == {
        "chatbots": [{"id": chatbot.pk, "name": "Travel helper", "model": MODEL_ID}]
    }
    created = api.post(reverse("chatbot_api:sessions"), {"chatbot": chatbot.pk, "title": "Holidays"})
    assert created.status_code == 201
    session_id = created.json()["id"]
    assert created.json()["chatbot"]["id"] == chatbot.pk

    first = api.post(messages_url(session_id), {"content": "Where to go in spring?"})
    second = api.post(messages_url(session_id), {"content": "When exactly?"})

    assert first.status_code == second.status_code == 201
    assert first.json()["reply"]["content"] == "Try Lisbon."
    assert first.json()["message"]["content"] == "Where to go in spring?"
    listed = api.get(messages_url(session_id)).json()["messages"]
    assert [(message["role"], message["content"]) for message in listed] == [
        ("user", "Where to go in spring?"),
        ("assistant", "Try Lisbon."),
        ("user", "When exactly?"),
        ("assistant", "In May."),
    ]
    # OpenRouter was told who asked, and got the whole conversation the second time.
    first_request, second_request = fake.requests_to("/chat/completions")
    assert first_request.body["user"] == second_request.body["user"] == str(alice.pk)
    assert [message["content"] for message in second_request.body["messages"]] == [
        "You plan trips.",
        "Where to go in spring?",
        "Try Lisbon.",
        "When exactly?",
    ]

    # OpenRouter's own figures: 0.1 + 0.000000000002 = 0.100000000002 USD; 29 + 43 = 72 tokens.
    [row] = top_users_by_cost()
    assert (row.username, row.total_cost_usd, row.total_tokens, row.request_count) == (
        "alice",
        Decimal("0.100000000002"),
        72,
        2,
    )
    admin = Client()
    admin.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    page = admin.get(reverse("admin:chatbot_openrouterrequestcost_changelist"))
    assert page.status_code == 200
    panels = {panel.report.key: panel.result for panel in page.context["usage_reports"]}
    assert panels["top_users_by_cost"] == [row]
    assert "alice" in page.content.decode()


def test_a_failed_turn_answers_a_clear_error_and_keeps_the_message(fake, chatbot, alice):
    fake.enqueue_chat(FakeResponse(402, error_body(code=402, message="Insufficient credits")))
    session = ChatSessionFactory(user=alice, chatbot=chatbot)
    api = signed_in(alice)

    response = api.post(messages_url(session.pk), {"content": "Hello?"})

    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "insufficient_credits"
    assert "Insufficient credits" in body["error"]["message"]
    assert body["error"]["user_message"]["content"] == "Hello?"
    assert body["error"]["user_message"]["failure"] == {
        "code": "insufficient_credits",
        "message": "Insufficient credits",
    }
    [listed] = api.get(messages_url(session.pk)).json()["messages"]
    assert listed["failure"]["code"] == "insufficient_credits"
    assert not OpenRouterRequestCost.objects.exists()


def test_a_rate_limit_too_long_to_wait_is_passed_on_with_retry_after(fake, chatbot, alice):
    fake.enqueue_chat(
        FakeResponse(429, error_body(code=429, message="Rate limit exceeded"), headers={"Retry-After": "30"})
    )
    session = ChatSessionFactory(user=alice, chatbot=chatbot)

    response = signed_in(alice).post(messages_url(session.pk), {"content": "Hello?"})

    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert response.json()["error"]["code"] == "rate_limited"


@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        (FakeResponse(502, error_body(code=502, message="Model is down")), 502, "upstream_unavailable"),
        (FakeResponse(body=b"not json"), 502, "malformed_response"),
        (FakeResponse(400, error_body(code=400, message="Context too long")), 422, "bad_request"),
    ],
)
def test_upstream_failures_map_to_gateway_statuses(fake, chatbot, alice, response, status, code):
    fake.enqueue_chat(response)
    session = ChatSessionFactory(user=alice, chatbot=chatbot)

    answer = signed_in(alice).post(messages_url(session.pk), {"content": "Hello?"})

    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_a_user_never_sees_or_writes_anothers_session(fake, chatbot, alice):
    bobs = ChatSessionFactory(user=UserFactory(username="bob"), chatbot=chatbot)
    ChatMessage.objects.create(session=bobs, role="user", content="Bob's secret")
    api = signed_in(alice)

    assert api.get(messages_url(bobs.pk)).status_code == 404
    assert api.get(reverse("chatbot_api:session", args=[bobs.pk])).status_code == 404
    written = api.post(messages_url(bobs.pk), {"content": "Hijack"})
    assert written.status_code == 404
    assert written.json()["error"]["code"] == "not_found"
    assert api.get(reverse("chatbot_api:sessions")).json() == {"sessions": []}
    assert list(bobs.messages.values_list("content", flat=True)) == ["Bob's secret"]
    assert fake.received == []


def test_sessions_list_only_the_users_own(chatbot, alice):
    own = ChatSessionFactory(user=alice, chatbot=chatbot, title="Mine")
    ChatSessionFactory(chatbot=chatbot, title="Someone else's")

    sessions = signed_in(alice).get(reverse("chatbot_api:sessions")).json()["sessions"]

    assert [(session["id"], session["title"]) for session in sessions] == [(own.pk, "Mine")]


def test_anonymous_requests_are_refused_with_401(chatbot):
    session = ChatSessionFactory(chatbot=chatbot)
    api = ApiClient()

    for response in (
        api.get(reverse("chatbot_api:sessions")),
        api.get(messages_url(session.pk)),
        api.post(messages_url(session.pk), {"content": "Hi"}),
        api.post(reverse("chatbot_api:sessions"), {"chatbot": chatbot.pk}),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert not session.messages.exists()


def test_a_post_without_the_csrf_token_is_refused_with_json(chatbot, alice):
    api = signed_in(alice)
    api.token = "wrong"

    response = api.post(reverse("chatbot_api:sessions"), {"chatbot": chatbot.pk})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert not ChatSession.objects.exists()


def test_csrf_failures_outside_the_api_keep_djangos_page():
    response = Client(enforce_csrf_checks=True).post(reverse("admin:login"), {"username": "x", "password": "y"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_signing_in_with_wrong_credentials_is_a_400(alice):
    response = ApiClient().login("alice", password="wrong")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_signing_out_ends_the_session(alice):
    api = signed_in(alice)

    assert api.post(reverse("chatbot_api:logout"), {}).status_code == 204
    assert api.get(reverse("chatbot_api:sessions")).status_code == 401


@pytest.mark.parametrize(
    ("body", "raw", "code", "field"),
    [
        (None, b"{not json", "invalid_json", None),
        (None, b"[1, 2]", "invalid_json", None),
        ({}, None, "invalid", "chatbot"),
        ({"chatbot": "1"}, None, "invalid", "chatbot"),
        ({"chatbot": True}, None, "invalid", "chatbot"),
        ({"chatbot": 999_999}, None, "invalid", "chatbot"),
        ({"chatbot": "CHATBOT", "title": 5}, None, "invalid", "title"),
        ({"chatbot": "CHATBOT", "title": "t" * 256}, None, "invalid", "title"),
    ],
)
def test_creating_a_session_with_bad_input_is_a_400(chatbot, alice, body, raw, code, field):
    if body and body.get("chatbot") == "CHATBOT":
        body["chatbot"] = chatbot.pk

    response = signed_in(alice).post(reverse("chatbot_api:sessions"), body, raw=raw)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    if field:
        assert field in error["fields"]
    assert not ChatSession.objects.exists()


def test_an_inactive_chatbot_takes_no_new_session(chatbot, alice):
    chatbot.is_active = False
    chatbot.save()

    response = signed_in(alice).post(reverse("chatbot_api:sessions"), {"chatbot": chatbot.pk})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"chatbot": ["No such chatbot."]}


@pytest.mark.parametrize(
    ("body", "raw"),
    [({}, None), ({"content": 5}, None), ({"content": "   "}, None), ({"content": "x" * 32_001}, None), (None, b"x")],
    ids=["missing", "not-a-string", "blank", "too-long", "not-json"],
)
def test_posting_a_bad_message_is_a_400_and_stores_nothing(fake, chatbot, alice, body, raw):
    session = ChatSessionFactory(user=alice, chatbot=chatbot)

    response = signed_in(alice).post(messages_url(session.pk), body, raw=raw)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid", "invalid_json"}
    assert not session.messages.exists()
    assert fake.received == []


def test_wrong_methods_are_a_405_with_allow(alice, chatbot):
    session = ChatSessionFactory(user=alice, chatbot=chatbot)
    api = signed_in(alice)

    login_get = api.get(reverse("chatbot_api:login"))
    messages_put = api.client.put(messages_url(session.pk), HTTP_X_CSRFTOKEN=api.token)

    assert (login_get.status_code, login_get["Allow"]) == (405, "POST")
    assert (messages_put.status_code, messages_put["Allow"]) == (405, "GET, POST")
    assert messages_put.json()["error"]["code"] == "method_not_allowed"
