"""Write side of the chatbot app: every row a report reads enters through here."""

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import ChatSession, OpenRouterRequestCost

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
) -> OpenRouterRequestCost:
    """Record one OpenRouter request; recording a known generation_id again returns the stored row."""
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
