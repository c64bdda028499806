"""Load the demo platform: users, AI models, chatbots, conversations and 90 days of request costs."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbot.demo import DEFAULT_SEED, DemoSeedResult, demo_platform_seed


class Command(BaseCommand):
    help = "Create believable demo data to try the usage reports on; a second run adds nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"Random seed (default {DEFAULT_SEED}).")
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed even with DEBUG off (a staging copy, say); never on a production database.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_without_debug"]:
            # Fake users and costs in a production database would end up in its real reports.
            raise CommandError("Refusing to load demo data with DEBUG off; pass --allow-without-debug if you mean it.")
        result = demo_platform_seed(seed=options["seed"])
        self.stdout.write(summary_line(result))


def summary_line(result: DemoSeedResult) -> str:
    """Return the one-line summary of a seeding run."""
    if not result.created:
        return "Demo data already present: nothing added."
    return (
        f"Created {result.users} users, {result.ai_models} AI models, {result.chatbots} chatbots, "
        f"{result.sessions:,} sessions, {result.messages:,} messages and {result.requests:,} request costs "
        f"(USD {result.total_cost_usd:,.2f} in total) over the last 90 days."
    )
