"""Sync the AI model catalog from OpenRouter's GET /models, or from a saved response."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ai_models.services import (
    CatalogError,
    CatalogSyncResult,
    PriceChange,
    catalog_sync_from_file,
    catalog_sync_from_openrouter,
)
from chatbot.openrouter import OpenRouterError


def _price_text(prices: tuple[Any, Any]) -> str:
    return " / ".join("dynamic" if price is None else f"{price.normalize():f}" for price in prices)


def _change_text(change: PriceChange) -> str:
    return f"{change.openrouter_id}: {_price_text(change.old)} -> {_price_text(change.new)} USD per token"


class Command(BaseCommand):
    help = (
        "Upsert the AI models from OpenRouter's catalog (GET /models, or --file with a saved response); "
        "deactivate the models it no longer lists. A malformed catalog changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", help="A saved GET /models response (JSON) to sync from instead of the API.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            path = options["file"]
            result = catalog_sync_from_file(path=path) if path else catalog_sync_from_openrouter()
        except (CatalogError, OpenRouterError) as error:
            raise CommandError(f"Catalog sync failed, nothing was changed: {error}") from None
        self._report(result, verbosity=options["verbosity"])

    def _report(self, result: CatalogSyncResult, *, verbosity: int) -> None:
        if verbosity < 1:
            return
        sections = (
            ("Created", result.created),
            ("Updated", result.updated),
            ("Repriced (prompt / completion)", [_change_text(change) for change in result.repriced]),
            ("Deactivated", result.deactivated),
        )
        for title, lines in sections:
            if lines:
                self.stdout.write(f"{title} ({len(lines)}):")
                for line in lines:
                    self.stdout.write(f"  {line}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Synced {result.sync.model_count} models from {result.sync.source}: "
                f"{len(result.created)} created, {len(result.updated)} updated, {len(result.repriced)} repriced, "
                f"{len(result.deactivated)} deactivated, {result.unchanged} unchanged."
            )
        )
