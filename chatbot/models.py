"""Chatbots, their conversations, and what each OpenRouter request cost."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import ExactDecimalField


class Chatbot(models.Model):
    """A configured assistant: a system prompt on top of one AI model."""

    name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="chatbots"
    )
    ai_model = models.ForeignKey("ai_models.AIModel", on_delete=models.PROTECT, related_name="chatbots")
    system_prompt = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class ChatSession(models.Model):
    """One conversation of a user with a chatbot."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    chatbot = models.ForeignKey(Chatbot, on_delete=models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["chatbot", "created_at"])]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"


class ChatMessage(models.Model):
    """One message of a conversation."""

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        SYSTEM = "system", "System"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set on a user's message whose turn failed: the message is kept, the reason recorded.
    failure_code = models.CharField(
        max_length=64, blank=True, help_text="Why the reply failed (e.g. insufficient_credits); empty when it did not."
    )
    failure_message = models.TextField(blank=True)
    # On an assistant's reply: the user's message it answers.
    in_reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["session", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:50]}"


class OpenRouterRequestCost(models.Model):
    """What one OpenRouter request used and cost: the raw row every cost report reads."""

    class CostStatus(models.TextChoices):
        BILLED = "billed", "Billed"
        UNKNOWN = "unknown", "Unknown (to reconcile)"
        RECONCILED = "reconciled", "Reconciled"

    # No index of their own on user and ai_model: the (user, created_at) and (ai_model, created_at)
    # indexes below serve every lookup by either, and each index slows every insert.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="request_costs", db_index=False
    )
    session = models.ForeignKey(
        ChatSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="request_costs"
    )
    ai_model = models.ForeignKey(
        "ai_models.AIModel", on_delete=models.PROTECT, related_name="request_costs", db_index=False
    )
    generation_id = models.CharField(max_length=255, null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField()
    completion_tokens = models.PositiveIntegerField()
    total_tokens = models.PositiveIntegerField()
    cost_usd = ExactDecimalField(max_digits=20, decimal_places=12, help_text="Billed cost in USD.")
    # "unknown" rows count 0 in every sum until reconcile_openrouter_costs fills them in.
    cost_status = models.CharField(
        max_length=16,
        choices=CostStatus.choices,
        default=CostStatus.BILLED,
        help_text="Billed: cost from the response; unknown: not reported yet; reconciled: fetched afterwards.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "OpenRouter Request Cost"
        verbose_name_plural = "OpenRouter Request Costs"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation_id"],
                condition=Q(generation_id__isnull=False),
                name="unique_generation_id_when_present",
            ),
            models.CheckConstraint(
                condition=Q(total_tokens=models.F("prompt_tokens") + models.F("completion_tokens")),
                name="total_tokens_is_prompt_plus_completion",
            ),
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="cost_usd_not_negative"),
            # An unknown cost is reconciled by its generation id, and adds nothing to a sum meanwhile.
            models.CheckConstraint(
                condition=~Q(cost_status="unknown") | (Q(cost_usd=0) & Q(generation_id__isnull=False)),
                name="unknown_cost_is_zero_with_generation_id",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(cost_status="unknown"), name="request_cost_unknown_idx"),
            models.Index(fields=["created_at"], name="request_cost_created_idx"),
            models.Index(fields=["user", "created_at"], name="request_cost_user_created_idx"),
            models.Index(fields=["ai_model", "created_at"], name="request_cost_model_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.generation_id or self.pk}: {self.cost_usd} USD"
