"""Read side of the AI model catalog."""

from collections.abc import Collection

from ai_models.models import AIModel, CatalogSync


def catalog_sync_latest() -> CatalogSync | None:
    """Return the most recent catalog sync, or None if the catalog was never synced."""
    return CatalogSync.objects.order_by("-synced_at", "-id").first()


def ai_model_ids_by_openrouter_id(*, openrouter_ids: Collection[str]) -> dict[str, int]:
    """Return the id of each model of ``openrouter_ids`` the catalog holds, by its OpenRouter id."""
    return dict(AIModel.objects.filter(openrouter_id__in=set(openrouter_ids)).values_list("openrouter_id", "pk"))


__all__ = ["ai_model_ids_by_openrouter_id", "catalog_sync_latest"]
