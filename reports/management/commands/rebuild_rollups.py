"""Recompute the rollup tables from the raw tables and report what differed: run it daily."""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from reports.rollups import HISTOGRAM, rollups_rebuild


class Command(BaseCommand):
    help = (
        "Compare the rollup tables with the raw requests, sessions and messages, and rewrite them when "
        "they differ; also (re)installs the rollup triggers for the current TIME_ZONE. Run it after "
        "changing TIME_ZONE. Prints each difference it repaired; exits 0 either way."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")
        parser.add_argument(
            "--force", action="store_true", help="Rewrite the rollup tables even when they match the raw tables."
        )

    def handle(self, *args: object, **options: object) -> None:
        result = rollups_rebuild(using=options["database"], force=options["force"])
        if result.previous_time_zone != result.time_zone:
            previous = result.previous_time_zone or "not installed"
            self.stdout.write(f"Triggers now compute days in {result.time_zone} (were: {previous}).")
        if result.triggers_installed:
            self.stdout.write(f"Installed missing triggers: {', '.join(result.triggers_installed)}.")
        for table, difference in result.differences.items():
            if not difference.total:
                # The histogram counts the yearly activity's days, not the raw rows directly.
                source = "the yearly activity it counts" if table == HISTOGRAM else "the raw tables"
                self.stdout.write(f"{table}: matches {source}.")
                continue
            self.stdout.write(
                f"{table}: repaired {difference.added:,} missing, {difference.changed:,} wrong and "
                f"{difference.removed:,} superfluous keys."
            )
            for kind, key, expected, stored in difference.samples:
                self.stdout.write(f"  {kind} {_text(key)}: expected {_text(expected)}, stored {_text(stored)}")
        if result.activity_rows_made_exact:
            self.stdout.write(
                f"Recomputed {result.activity_rows_made_exact:,} yearly activity rows left inexact by deletions."
            )
        if result.is_consistent:
            self.stdout.write(self.style.SUCCESS("The rollups matched the raw tables; nothing to repair."))
        elif result.rebuilt:
            self.stdout.write(self.style.WARNING("Rebuilt the rollups from the raw tables."))


def _text(values: tuple | None) -> str:
    if values is None:
        return "nothing"
    # Decimals in full (0.000000000000, not 0E-12), as the reports print them.
    return "(" + ", ".join(format(value, "f") if isinstance(value, Decimal) else str(value) for value in values) + ")"
