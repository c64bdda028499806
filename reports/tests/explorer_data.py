"""A small platform across a month boundary, shared by the report explorer's tests.

Every figure the tests assert is worked out by hand here, once. Times are UTC and the tests run
with TIME_ZONE = "UTC", so a day is a UTC calendar day.

The period is 2024-01-30 to 2024-02-02 (4 days, across the end of January); 2024-01-31 has no
usage at all. The previous period of the same length is 2024-01-26 to 2024-01-29.

    request  at (UTC)                    user   model  tokens  cost (USD)        session
    before   2024-01-26 00:00            alice  free      100  0                 -
    r0       2024-01-29 23:59:59.999999  dave   paid     1000  9                 s0 (Helpdesk, 01-29)
    r1       2024-01-30 10:00            alice  paid     1000  0.25              s1 (Helpdesk, 01-30)
    r2       2024-01-30 23:59:59.999999  bob    free      300  0                 s3 (Tutor, 01-30)
             2024-01-31                  (nobody)
    r3       2024-02-01 00:00            alice  paid      500  0.125             s1
    r4       2024-02-01 12:00            carol  free      200  0.000000000003    - (a fee on a free model)
    r5       2024-02-02 08:00            bob    paid     2000  1.000000000001    s2 (Helpdesk, 02-01)
    after    2024-02-03 00:00            alice  paid        7  5                 -

In the period: cost 0.25 + 0.125 + 0.000000000003 + 1.000000000001 = 1.375000000004 USD;
5 requests; 1000 + 300 + 500 + 200 + 2000 = 4000 tokens; users alice, bob, carol = 3;
free requests r2, r4 = 2 (40.00 %); 4000 / 5 = 800.00 tokens per request.
In the previous period: 9 USD; 2 requests; 1100 tokens; users alice, dave = 2; 1 free (50.00 %);
1100 / 2 = 550.00 tokens per request.

Sessions and messages: s0 (Helpdesk, 2024-01-29, 1 message, outside); s1 (Helpdesk, 01-30 09:00,
3 messages on 01-30 and 1 on 02-03, outside); s2 (Helpdesk, 02-01 10:00, 2 messages); s3 (Tutor,
01-30 20:00, 4 messages). "Idle" has no session.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatSession, OpenRouterRequestCost
from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from reports.periods import Period

PERIOD = Period(since=date(2024, 1, 30), until=date(2024, 2, 2))
PREVIOUS = Period(since=date(2024, 1, 26), until=date(2024, 1, 29))
PERIOD_QUERY = {"period": "custom", "from": "2024-01-30", "to": "2024-02-02"}
PERIOD_QUERY_STRING = "period=custom&from=2024-01-30&to=2024-02-02"
LAST_INSTANT = timedelta(microseconds=1)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass(frozen=True)
class Explorer:
    alice: User
    bob: User
    carol: User
    dave: User
    paid: AIModel
    free: AIModel
    helpdesk: Chatbot
    tutor: Chatbot
    idle: Chatbot
    requests: dict[str, OpenRouterRequestCost]
    sessions: dict[str, ChatSession]


def add_request(
    *, user: User, ai_model: AIModel, tokens: int, cost: str, when: datetime, session: ChatSession | None = None
) -> OpenRouterRequestCost:
    """Store one request of ``tokens`` total tokens (three quarters prompt, one quarter completion)."""
    completion = tokens // 4
    return RequestCostFactory(
        user=user,
        ai_model=ai_model,
        session=session,
        prompt_tokens=tokens - completion,
        completion_tokens=completion,
        cost_usd=Decimal(cost),
        created_at=when,
    )


def add_session(*, chatbot: Chatbot, user: User, when: datetime, messages: int) -> ChatSession:
    """Store one session started at ``when`` with ``messages`` messages written then."""
    session = ChatSessionFactory(chatbot=chatbot, user=user, created_at=when)
    ChatMessageFactory.create_batch(messages, session=session, created_at=when)
    return session


def build_explorer() -> Explorer:
    """Store the platform described in the module docstring."""
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    carol = UserFactory(username="carol")
    dave = UserFactory(username="dave")
    paid = AIModelFactory(openrouter_id="acme/paid", name="Paid Model")
    free = AIModelFactory(openrouter_id="acme/free:free", name="Free Model", free=True)
    helpdesk = ChatbotFactory(name="Helpdesk", ai_model=paid, owner=alice)
    tutor = ChatbotFactory(name="Tutor", ai_model=free, owner=alice)
    idle = ChatbotFactory(name="Idle", ai_model=paid, owner=alice)

    sessions = {
        "s0": add_session(chatbot=helpdesk, user=dave, when=at(2024, 1, 29, 12), messages=1),
        "s1": add_session(chatbot=helpdesk, user=alice, when=at(2024, 1, 30, 9), messages=3),
        "s2": add_session(chatbot=helpdesk, user=bob, when=at(2024, 2, 1, 10), messages=2),
        "s3": add_session(chatbot=tutor, user=bob, when=at(2024, 1, 30, 20), messages=4),
    }
    # A message of s1 written after the period: counted by its own date, so outside.
    ChatMessageFactory(session=sessions["s1"], created_at=at(2024, 2, 3, 9))

    requests = {
        "before": add_request(user=alice, ai_model=free, tokens=100, cost="0", when=at(2024, 1, 26)),
        "r0": add_request(
            user=dave, ai_model=paid, tokens=1000, cost="9", when=at(2024, 1, 30) - LAST_INSTANT, session=sessions["s0"]
        ),
        "r1": add_request(
            user=alice, ai_model=paid, tokens=1000, cost="0.25", when=at(2024, 1, 30, 10), session=sessions["s1"]
        ),
        "r2": add_request(
            user=bob, ai_model=free, tokens=300, cost="0", when=at(2024, 1, 31) - LAST_INSTANT, session=sessions["s3"]
        ),
        "r3": add_request(
            user=alice, ai_model=paid, tokens=500, cost="0.125", when=at(2024, 2, 1), session=sessions["s1"]
        ),
        "r4": add_request(user=carol, ai_model=free, tokens=200, cost="0.000000000003", when=at(2024, 2, 1, 12)),
        "r5": add_request(
            user=bob, ai_model=paid, tokens=2000, cost="1.000000000001", when=at(2024, 2, 2, 8), session=sessions["s2"]
        ),
        "after": add_request(user=alice, ai_model=paid, tokens=7, cost="5", when=at(2024, 2, 3)),
    }
    return Explorer(alice, bob, carol, dave, paid, free, helpdesk, tutor, idle, requests, sessions)


def grow(*, size: int, when: datetime) -> None:
    """Add ``size`` users, models, chatbots, sessions, messages and requests at ``when``: more than a top 10."""
    models = [AIModelFactory(free=index % 2 == 0) for index in range(size)]
    users = UserFactory.create_batch(size)
    for index, (user, model) in enumerate(zip(users, models, strict=True)):
        session = ChatSessionFactory(user=user, chatbot=ChatbotFactory(owner=user, ai_model=model), created_at=when)
        ChatMessageFactory.create_batch(2, session=session, created_at=when)
        RequestCostFactory.create_batch(
            2, user=user, ai_model=model, session=session, prompt_tokens=index, created_at=when + timedelta(hours=index)
        )
