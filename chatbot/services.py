"""Write side of the chatbot app: every row a report reads enters through here."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from ai_models.models import AIModel
from ai_models.services import FREE_SUFFIX, openrouter_id_provider
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from chatbot.openrouter import (
    Generation,
    OpenRouterAuthenticationError,
    OpenRouterClient,
    OpenRouterError,
    OpenRouterMalformedResponse,
    OpenRouterNotConfigured,
    OpenRouterNotFound,
)

COST_DECIMAL_PLACES = OpenRouterRequestCost._meta.get_field("cost_usd").decimal_places


def cost_parse(*, value: Decimal | str | int) -> Decimal:
    """Return ``value`` as an exact, non-negative USD cost, or raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        # A float has already lost the exact figure; refuse it rather than guess.
        raise ValidationError({"cost_usd": f"Cost must be a Decimal, str or int, not {type(value).__name__}."})
    try:
        cost = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValidationError({"cost_usd": f"{value!r} is not a number."}) from None
    if not cost.is_finite():
        raise ValidationError({"cost_usd": f"{value!r} is not a finite number."})
    if cost < 0:
        raise ValidationError({"cost_usd": "Cost cannot be negative."})
    if cost != cost.quantize(Decimal(1).scaleb(-COST_DECIMAL_PLACES), rounding="ROUND_DOWN"):
        raise ValidationError({"cost_usd": f"Cost has more than {COST_DECIMAL_PLACES} decimal places."})
    return cost


def _tokens_parse(*, name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({name: f"{name} must be an integer, not {type(value).__name__}."})
    if value < 0:
        raise ValidationError({name: f"{name} cannot be negative."})
    return value


@transaction.atomic
def request_cost_record(
    *,
    user: User,
    ai_model: AIModel,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal | str | int,
    session: ChatSession | None = None,
    generation_id: str | None = None,
    created_at: datetime | None = None,
    cost_status: str = OpenRouterRequestCost.CostStatus.BILLED,
) -> OpenRouterRequestCost:
    """Record one OpenRouter request; recording a known generation_id again returns the stored row.

    ``cost_status="unknown"`` records a request whose cost OpenRouter has not reported yet: its
    cost must be 0 and its generation_id given, so ``reconcile_openrouter_costs`` can fill it in.
    """
    errors: dict[str, list[str]] = {}
    values: dict[str, object] = {}
    for name, parse in (
        ("prompt_tokens", lambda: _tokens_parse(name="prompt_tokens", value=prompt_tokens)),
        ("completion_tokens", lambda: _tokens_parse(name="completion_tokens", value=completion_tokens)),
        ("cost_usd", lambda: cost_parse(value=cost_usd)),
    ):
        try:
            values[name] = parse()
        except ValidationError as error:
            errors.update(error.message_dict)
    if not isinstance(user, User) or user.pk is None or not User.objects.filter(pk=user.pk).exists():
        errors["user"] = ["Unknown user: it must be a saved user."]
    if not isinstance(ai_model, AIModel) or ai_model.pk is None or not AIModel.objects.filter(pk=ai_model.pk).exists():
        errors["ai_model"] = ["Unknown AI model: it must be a saved AI model."]
    if session is not None and (session.pk is None or session.user_id != getattr(user, "pk", None)):
        errors["session"] = ["The session must be a saved session of the same user."]
    if generation_id is not None and (not isinstance(generation_id, str) or not generation_id.strip()):
        errors["generation_id"] = ["generation_id must be a non-empty string or None."]
    if created_at is not None and timezone.is_naive(created_at):
        errors["created_at"] = ["created_at must be timezone-aware."]
    if cost_status not in OpenRouterRequestCost.CostStatus.values:
        errors["cost_status"] = [f"cost_status must be one of {', '.join(OpenRouterRequestCost.CostStatus.values)}."]
    elif cost_status == OpenRouterRequestCost.CostStatus.UNKNOWN:
        if values.get("cost_usd") not in (None, 0):
            errors["cost_usd"] = ["An unknown cost is recorded as 0 until it is reconciled."]
        if generation_id is None:
            errors["generation_id"] = ["An unknown cost needs the generation_id to reconcile it by."]
    if errors:
        raise ValidationError(errors)

    if generation_id is not None:
        existing = OpenRouterRequestCost.objects.filter(generation_id=generation_id).first()
        if existing is not None:
            return existing

    request_cost = OpenRouterRequestCost(
        user=user,
        ai_model=ai_model,
        session=session,
        generation_id=generation_id,
        prompt_tokens=values["prompt_tokens"],
        completion_tokens=values["completion_tokens"],
        total_tokens=values["prompt_tokens"] + values["completion_tokens"],
        cost_usd=values["cost_usd"],
        cost_status=cost_status,
        created_at=created_at or timezone.now(),
    )
    request_cost.full_clean(validate_unique=False, validate_constraints=False)
    try:
        # A savepoint, so a concurrent writer of the same generation_id leaves this transaction usable.
        with transaction.atomic():
            request_cost.save(force_insert=True)
    except IntegrityError:
        if generation_id is None:
            raise
        return OpenRouterRequestCost.objects.get(generation_id=generation_id)
    return request_cost


# Long enough for any real message, short enough that one request cannot flood the database.
CHAT_CONTENT_MAX_LENGTH = 32_000


def _conversation(*, session: ChatSession) -> list[dict[str, str]]:
    """Return the messages to send: the chatbot's system prompt, then the session's answered history."""
    messages: list[dict[str, str]] = []
    if session.chatbot.system_prompt.strip():
        messages.append({"role": ChatMessage.Role.SYSTEM, "content": session.chatbot.system_prompt})
    # A message whose turn failed never reached the model; resending it would repeat the user.
    history = session.messages.filter(failure_code="").order_by("created_at", "id").values_list("role", "content")
    messages.extend({"role": role, "content": content} for role, content in history)
    return messages


def _response_model(*, openrouter_id: str) -> AIModel:
    """Return the AIModel a response names, creating it inactive if the catalog does not list it."""
    if len(openrouter_id) > AIModel._meta.get_field("openrouter_id").max_length:
        raise OpenRouterMalformedResponse(f"The response names a model with an overlong id: {openrouter_id[:80]!r}…")
    ai_model, _ = AIModel.objects.get_or_create(
        openrouter_id=openrouter_id,
        defaults={
            "name": openrouter_id,
            "provider": openrouter_id_provider(openrouter_id=openrouter_id),
            "is_free": openrouter_id.endswith(FREE_SUFFIX),
            # Inactive until the catalog sync lists it (with its prices).
            "is_active": False,
        },
    )
    return ai_model


def _failure_record(*, message: ChatMessage, code: str, text: str) -> None:
    message.failure_code = code
    message.failure_message = text
    message.save(update_fields=["failure_code", "failure_message"])


def chat_turn_send(*, session: ChatSession, content: str, client: OpenRouterClient | None = None) -> ChatMessage:
    """Send a user's message to the session's chatbot; store and return the assistant's reply.

    The user's message is saved first, on its own, so it survives any failure. The reply and
    the request's cost are then saved together or not at all. On failure the message records
    why, and the OpenRouterError is raised with ``user_message`` set to the stored message.
    Do not call this inside a transaction: the user's message would be rolled back with it.
    """
    if not isinstance(content, str) or not content.strip():
        raise ValidationError({"content": ["Write a message."]})
    if len(content) > CHAT_CONTENT_MAX_LENGTH:
        raise ValidationError({"content": [f"A message has at most {CHAT_CONTENT_MAX_LENGTH} characters."]})
    chatbot = session.chatbot
    if not chatbot.is_active:
        raise ValidationError({"session": ["This chatbot is no longer available."]})

    user_message = ChatMessage.objects.create(session=session, role=ChatMessage.Role.USER, content=content)
    try:
        messages = _conversation(session=session)
        request = {"model": chatbot.ai_model.openrouter_id, "messages": messages, "user": str(session.user_id)}
        if client is None:
            with OpenRouterClient.from_settings() as own_client:
                completion = own_client.chat_completion(**request)
        else:
            completion = client.chat_completion(**request)
        with transaction.atomic():
            reply = ChatMessage.objects.create(
                session=session, role=ChatMessage.Role.ASSISTANT, content=completion.content, in_reply_to=user_message
            )
            cost_known = completion.cost_usd is not None
            try:
                request_cost_record(
                    user=session.user,
                    ai_model=_response_model(openrouter_id=completion.model),
                    session=session,
                    generation_id=completion.id,
                    prompt_tokens=completion.prompt_tokens or 0,
                    completion_tokens=completion.completion_tokens or 0,
                    cost_usd=completion.cost_usd if cost_known else 0,
                    cost_status=(
                        OpenRouterRequestCost.CostStatus.BILLED
                        if cost_known
                        else OpenRouterRequestCost.CostStatus.UNKNOWN
                    ),
                )
            except ValidationError as error:
                # Figures the database cannot hold exactly (e.g. a cost finer than 12 decimals).
                raise OpenRouterMalformedResponse(f"The response's usage cannot be recorded: {error}") from error
    except OpenRouterError as error:
        _failure_record(message=user_message, code=error.code, text=error.message)
        error.user_message = user_message
        raise
    except Exception as error:
        _failure_record(message=user_message, code="internal_error", text=f"{type(error).__name__}: {error}")
        raise
    return reply


@dataclass(frozen=True)
class ReconcileFailure:
    generation_id: str
    message: str


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconciliation run did, by generation id."""

    reconciled: list[str]
    # OpenRouter does not know these generations yet: the next run tries again.
    pending: list[str]
    failed: list[ReconcileFailure]


@transaction.atomic
def request_cost_reconcile(*, request_cost: OpenRouterRequestCost, generation: Generation) -> OpenRouterRequestCost:
    """Fill an unknown cost in from OpenRouter's record of its generation; leave any other row as it is."""
    row = OpenRouterRequestCost.objects.select_for_update().get(pk=request_cost.pk)
    if row.cost_status != OpenRouterRequestCost.CostStatus.UNKNOWN:
        return row
    if generation.id != row.generation_id:
        raise ValidationError(
            {"generation_id": [f"OpenRouter answered for {generation.id!r}, not {row.generation_id!r}."]}
        )
    row.cost_usd = cost_parse(value=generation.total_cost)
    row.prompt_tokens = _tokens_parse(name="tokens_prompt", value=generation.tokens_prompt)
    row.completion_tokens = _tokens_parse(name="tokens_completion", value=generation.tokens_completion)
    row.total_tokens = row.prompt_tokens + row.completion_tokens
    row.cost_status = OpenRouterRequestCost.CostStatus.RECONCILED
    row.save(update_fields=["cost_usd", "prompt_tokens", "completion_tokens", "total_tokens", "cost_status"])
    return row


def request_costs_reconcile_unknown(
    *, client: OpenRouterClient, attempts: int = 3, retry_delay: float = 1.0, limit: int | None = None
) -> ReconcileResult:
    """Fetch OpenRouter's record of each unknown-cost request and fill the cost in; safe to run again.

    OpenRouter answers 404 for a second or two after a generation, so each lookup is tried up
    to ``attempts`` times, ``retry_delay`` seconds apart, before it is left for the next run.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive integer, not {attempts!r}.")
    unknown = OpenRouterRequestCost.objects.filter(cost_status=OpenRouterRequestCost.CostStatus.UNKNOWN).order_by(
        "created_at", "id"
    )
    if limit is not None:
        unknown = unknown[:limit]
    reconciled: list[str] = []
    pending: list[str] = []
    failed: list[ReconcileFailure] = []
    for request_cost in list(unknown):
        generation_id = request_cost.generation_id
        for attempt in range(1, attempts + 1):
            try:
                generation = client.generation(generation_id=generation_id)
            except OpenRouterNotFound:
                if attempt == attempts:
                    pending.append(generation_id)
                else:
                    client.sleep(retry_delay)
                continue
            except (OpenRouterNotConfigured, OpenRouterAuthenticationError):
                # Every other lookup would fail the same way.
                raise
            except OpenRouterError as error:
                failed.append(ReconcileFailure(generation_id=generation_id, message=f"{error.code}: {error.message}"))
                break
            try:
                request_cost_reconcile(request_cost=request_cost, generation=generation)
            except ValidationError as error:
                failed.append(ReconcileFailure(generation_id=generation_id, message=f"invalid: {error}"))
            else:
                reconciled.append(generation_id)
            break
    return ReconcileResult(reconciled=reconciled, pending=pending, failed=failed)


@transaction.atomic
def chat_session_create(*, user: User, chatbot: Chatbot, title: str = "") -> ChatSession:
    """Start a conversation of ``user`` with an active chatbot."""
    errors: dict[str, list[str]] = {}
    if not isinstance(user, User) or user.pk is None:
        errors["user"] = ["Unknown user: it must be a saved user."]
    if not isinstance(chatbot, Chatbot) or chatbot.pk is None or not chatbot.is_active:
        errors["chatbot"] = ["The chatbot must be a saved, active chatbot."]
    title = title.strip() if isinstance(title, str) else title
    title_max_length = ChatSession._meta.get_field("title").max_length
    if not isinstance(title, str) or len(title) > title_max_length:
        errors["title"] = [f"The title must be a string of at most {title_max_length} characters."]
    if errors:
        raise ValidationError(errors)
    return ChatSession.objects.create(user=user, chatbot=chatbot, title=title)
