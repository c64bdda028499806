"""Admin for the AI model catalog, with model usage above the list."""

from django.contrib import admin

from ai_models.models import AIModel
from reports.admin import ReportsAdminMixin


@admin.register(AIModel)
class AIModelAdmin(ReportsAdminMixin, admin.ModelAdmin):
    report_keys = ("top_models_by_usage", "top_free_models")
    list_display = (
        "openrouter_id",
        "name",
        "provider",
        "context_length",
        "prompt_price",
        "completion_price",
        "is_free",
        "is_active",
        "updated_at",
    )
    list_filter = ("is_free", "is_active", "provider")
    search_fields = ("openrouter_id", "name", "provider")
    readonly_fields = ("created_at", "updated_at")
