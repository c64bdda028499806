"""Admin for the AI model catalog, with model usage above the list."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format

from ai_models.models import AIModel, CatalogSync
from ai_models.selectors import catalog_sync_latest
from ai_models.services import CatalogError, CatalogSyncResult, catalog_sync_from_openrouter
from chatbot.openrouter import OpenRouterError
from reports.admin import ReportsAdminMixin
from reports.templatetags.report_format import price_per_million


def catalog_sync_summary(*, sync: CatalogSync | None) -> str:
    """Return the one line the AI Models page shows about the catalog's last sync."""
    if sync is None:
        return "Catalog never synced: use Sync from OpenRouter, or run manage.py sync_openrouter_models."
    when = date_format(timezone.localtime(sync.synced_at), "DATETIME_FORMAT")
    return (
        f"Catalog last synced {when} ({sync.model_count} models: {sync.created_count} new, "
        f"{sync.updated_count} updated, {sync.repriced_count} repriced, {sync.deactivated_count} deactivated)."
    )


def _sync_result_message(result: CatalogSyncResult) -> str:
    return (
        f"Synced {result.sync.model_count} models from OpenRouter: {len(result.created)} new, "
        f"{len(result.updated)} updated, {len(result.repriced)} repriced, {len(result.deactivated)} deactivated, "
        f"{result.unchanged} unchanged."
    )


@admin.register(CatalogSync)
class CatalogSyncAdmin(admin.ModelAdmin):
    list_display = (
        "synced_at",
        "source",
        "model_count",
        "created_count",
        "updated_count",
        "repriced_count",
        "deactivated_count",
        "unchanged_count",
    )
    show_full_result_count = False

    # A sync's record is history: written by the sync alone.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CatalogSync | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CatalogSync | None = None) -> bool:
        return False


@admin.register(AIModel)
class AIModelAdmin(ReportsAdminMixin, admin.ModelAdmin):
    report_keys = ("top_models_by_usage", "top_free_models")
    # The reports' change list plus the catalog's last sync and a sync button.
    change_list_template = "admin/ai_models/aimodel/change_list.html"
    list_display = (
        "openrouter_id",
        "name",
        "provider",
        "context_length",
        "prompt_price_per_million",
        "completion_price_per_million",
        "is_free",
        "is_active",
        "updated_at",
    )
    list_filter = ("is_free", "is_active", "provider")
    search_fields = ("openrouter_id", "name", "provider")
    readonly_fields = ("created_at", "updated_at")
    actions = ("sync_catalog",)

    def has_sync_permission(self, request: HttpRequest) -> bool:
        """Return whether the user may sync the catalog: it adds and changes AI models."""
        return self.has_add_permission(request) and self.has_change_permission(request)

    def _sync(self, request: HttpRequest) -> None:
        try:
            result = catalog_sync_from_openrouter()
        except (OpenRouterError, CatalogError) as error:
            self.message_user(request, f"The catalog sync failed, nothing was changed: {error}", messages.ERROR)
        else:
            self.message_user(request, _sync_result_message(result), messages.SUCCESS)

    @admin.action(description="Sync the whole catalog from OpenRouter", permissions=("sync",))
    def sync_catalog(self, request: HttpRequest, queryset: QuerySet[AIModel]) -> None:
        # The catalog is synced as a whole; the selection only lets the admin offer the action.
        self._sync(request)

    def get_urls(self) -> list[Any]:
        sync_url = path(
            "sync/",
            self.admin_site.admin_view(self.sync_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_sync",
        )
        return [sync_url, *super().get_urls()]

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        """Sync the catalog on a POST (works on an empty catalog, where no action can be picked)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_sync_permission(request):
            self.message_user(
                request,
                "You may not sync the catalog: it needs add and change permission on AI models.",
                messages.ERROR,
            )
        else:
            self._sync(request)
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        latest = catalog_sync_latest()
        extra_context = {
            **(extra_context or {}),
            "catalog_last_sync": latest,
            "catalog_status": catalog_sync_summary(sync=latest),
            "catalog_can_sync": self.has_sync_permission(request),
        }
        return super().changelist_view(request, extra_context=extra_context)

    # Catalogs quote prices per million tokens; per token they are a run of zeros.
    @admin.display(description="Prompt $/1M", ordering="prompt_price")
    def prompt_price_per_million(self, ai_model: AIModel) -> str | None:
        return price_per_million(ai_model.prompt_price)

    @admin.display(description="Completion $/1M", ordering="completion_price")
    def completion_price_per_million(self, ai_model: AIModel) -> str | None:
        return price_per_million(ai_model.completion_price)
