"""Fill in the costs OpenRouter did not report with the chat reply, from GET /generation."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.openrouter import OpenRouterClient, OpenRouterError
from chatbot.services import request_costs_reconcile_unknown


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Fetch OpenRouter's record (GET /generation) of every request whose cost is unknown and record "
        "its cost and tokens. Safe to run again: reconciled requests are left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--attempts",
            type=_positive_int,
            default=3,
            help="Lookups per generation while OpenRouter answers 404 (it does for a few seconds). Default 3.",
        )
        parser.add_argument(
            "--retry-delay",
            type=_non_negative_float,
            default=1.0,
            help="Seconds between those lookups. Default 1.",
        )
        parser.add_argument("--limit", type=_positive_int, help="Reconcile at most this many requests.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with OpenRouterClient.from_settings() as client:
                result = request_costs_reconcile_unknown(
                    client=client,
                    attempts=options["attempts"],
                    retry_delay=options["retry_delay"],
                    limit=options["limit"],
                )
        except OpenRouterError as error:
            raise CommandError(f"Reconciliation stopped: {error}") from None
        verbosity = options["verbosity"]
        if verbosity >= 2:
            for generation_id in result.reconciled:
                self.stdout.write(f"Reconciled {generation_id}")
        if verbosity >= 1:
            for generation_id in result.pending:
                self.stdout.write(f"Not known to OpenRouter yet, left for the next run: {generation_id}")
        for failure in result.failed:
            self.stderr.write(f"Failed {failure.generation_id}: {failure.message}")
        summary = (
            f"{len(result.reconciled)} reconciled, {len(result.pending)} still pending, {len(result.failed)} failed."
        )
        if result.failed:
            raise CommandError(summary)
        if verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(summary))
