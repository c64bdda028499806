"""Merge the delta rows of the rollup tables, one row per key: run it every few minutes."""

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from reports.rollups import SQUASH_BATCH_KEYS, rollups_squash


class Command(BaseCommand):
    help = (
        "Merge the rows the rollup triggers appended into one row per key (day and user, model or "
        "chatbot). Safe to run at any time, alongside writers and readers; reports are exact either way."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: default).")
        parser.add_argument(
            "--batch-keys",
            type=int,
            default=SQUASH_BATCH_KEYS,
            help=f"Keys merged per transaction on PostgreSQL (default: {SQUASH_BATCH_KEYS}).",
        )

    def handle(self, *args: object, **options: object) -> None:
        result = rollups_squash(using=options["database"], batch_keys=options["batch_keys"])
        for table, merged in result.rows_merged.items():
            self.stdout.write(f"{table}: merged {merged:,} rows into {result.rows_written[table]:,}")
        self.stdout.write(f"Merged {result.total_merged:,} rows in total.")
        if result.activity_rows_counted:
            self.stdout.write(
                f"Counted {result.activity_rows_counted:,} yearly activity rows anew into the active-user histogram."
            )
        if result.activity_rows_made_exact:
            self.stdout.write(
                f"Recomputed {result.activity_rows_made_exact:,} yearly activity rows left inexact by deletions."
            )
