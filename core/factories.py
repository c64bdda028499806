"""factory_boy factories for the platform's models, shared by every app's tests."""

from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost


class UserFactory(factory.django.DjangoModelFactory):
    """Build a saved user with a unique username."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    # A usable password lets admin tests log in with client.login(username=..., password="password").
    password = factory.django.Password("password")


class AIModelFactory(factory.django.DjangoModelFactory):
    """Build a paid AI model with per-token prices; pass free=True for a free one at zero prices."""

    class Meta:
        model = AIModel

    class Params:
        free = factory.Trait(
            is_free=True,
            prompt_price=Decimal("0"),
            completion_price=Decimal("0"),
        )

    openrouter_id = factory.Sequence(lambda n: f"provider{n}/model-{n}")
    name = factory.Sequence(lambda n: f"Model {n}")
    provider = factory.LazyAttribute(lambda model: model.openrouter_id.split("/", 1)[0])
    context_length = 131072
    prompt_price = Decimal("0.0000003")
    completion_price = Decimal("0.0000012")
    is_free = False
    is_active = True


class ChatbotFactory(factory.django.DjangoModelFactory):
    """Build a chatbot owned by a new user, on a new AI model."""

    class Meta:
        model = Chatbot

    name = factory.Sequence(lambda n: f"Chatbot {n}")
    owner = factory.SubFactory(UserFactory)
    ai_model = factory.SubFactory(AIModelFactory)
    system_prompt = "You are a helpful assistant."
    is_active = True
    created_at = factory.LazyFunction(timezone.now)


class ChatSessionFactory(factory.django.DjangoModelFactory):
    """Build a conversation of a new user with a new chatbot."""

    class Meta:
        model = ChatSession

    user = factory.SubFactory(UserFactory)
    chatbot = factory.SubFactory(ChatbotFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")
    created_at = factory.LazyFunction(timezone.now)


class ChatMessageFactory(factory.django.DjangoModelFactory):
    """Build one user message in a new session."""

    class Meta:
        model = ChatMessage

    session = factory.SubFactory(ChatSessionFactory)
    role = ChatMessage.Role.USER
    content = factory.Sequence(lambda n: f"Message {n}")
    created_at = factory.LazyFunction(timezone.now)


class RequestCostFactory(factory.django.DjangoModelFactory):
    """Build one OpenRouter request row through the model's normal create.

    ``total_tokens`` follows ``prompt_tokens + completion_tokens`` unless given, as the
    database's check constraint requires. To exercise the write-side validation, call
    ``chatbot.services.request_cost_record`` instead.
    """

    class Meta:
        model = OpenRouterRequestCost

    user = factory.SubFactory(UserFactory)
    ai_model = factory.SubFactory(AIModelFactory)
    session = None
    generation_id = factory.Sequence(lambda n: f"gen-{n}")
    prompt_tokens = 100
    completion_tokens = 50
    total_tokens = factory.LazyAttribute(lambda row: row.prompt_tokens + row.completion_tokens)
    cost_usd = Decimal("0.000090000000")
    created_at = factory.LazyFunction(timezone.now)


__all__ = [
    "AIModelFactory",
    "ChatMessageFactory",
    "ChatSessionFactory",
    "ChatbotFactory",
    "RequestCostFactory",
    "UserFactory",
]
