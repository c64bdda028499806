"""The LLMs the platform can call, as listed in OpenRouter's catalog."""

from django.db import models

from core.fields import ExactDecimalField


class AIModel(models.Model):
    """One model of OpenRouter's catalog, with its per-token prices."""

    openrouter_id = models.CharField(
        max_length=255, unique=True, help_text="OpenRouter's id, e.g. meta-llama/llama-3.3-70b-instruct:free."
    )
    name = models.CharField(max_length=255)
    provider = models.CharField(max_length=100, blank=True)
    context_length = models.PositiveIntegerField(null=True, blank=True)
    # USD per token; the catalog's finest prices have 14 decimal places.
    prompt_price = ExactDecimalField(
        max_digits=18, decimal_places=16, null=True, blank=True, help_text="USD per prompt token; empty when unknown."
    )
    completion_price = ExactDecimalField(
        max_digits=18,
        decimal_places=16,
        null=True,
        blank=True,
        help_text="USD per completion token; empty when unknown.",
    )
    is_free = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI Model"
        verbose_name_plural = "AI Models"
        ordering = ["openrouter_id"]

    def __str__(self) -> str:
        return self.name or self.openrouter_id
