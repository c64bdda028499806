"""Read side of the AI model catalog."""

from ai_models.models import CatalogSync


def catalog_sync_latest() -> CatalogSync | None:
    """Return the most recent catalog sync, or None if the catalog was never synced."""
    return CatalogSync.objects.order_by("-synced_at", "-id").first()


__all__ = ["catalog_sync_latest"]
