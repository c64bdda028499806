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


class CatalogSync(models.Model):
    """One run of the catalog sync: when it ran, from where, and what it changed."""

    synced_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=500, help_text="The API URL or the file the catalog came from.")
    model_count = models.PositiveIntegerField(help_text="Models listed in the catalog.")
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    repriced_count = models.PositiveIntegerField(default=0)
    deactivated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "Catalog sync"
        verbose_name_plural = "Catalog syncs"
        ordering = ["-synced_at", "-id"]
        get_latest_by = ["synced_at", "id"]

    def __str__(self) -> str:
        return f"Catalog sync at {self.synced_at:%Y-%m-%d %H:%M:%S %Z}"
