"""Print every usage report for a period, as aligned text tables, JSON or CSV."""

import json
import re
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.exports import csv_lines, usage_report_as_dict, usage_report_csv_rows
from reports.periods import PRESETS, Period, PeriodError, period_from_preset
from reports.registry import REPORTS, Report
from reports.selectors import DEFAULT_LIMIT
from reports.templatetags.report_format import money_display

FORMATS = ("table", "json", "csv")
# Bad input exits with 2, as argparse does for its own errors.
USAGE_ERROR = 2
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Command(BaseCommand):
    help = (
        "Print every usage report (top users by cost, top models, free models, average tokens, top "
        "chatbots, top users of free models). Dates are inclusive days in TIME_ZONE; choose them with "
        "--period or with --since/--until."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="table", help="Output format (default: table).")
        parser.add_argument(
            "--limit",
            default=DEFAULT_LIMIT,
            metavar="N",
            help=f"Rows per report, at least 1 (default: {DEFAULT_LIMIT}).",
        )
        parser.add_argument("--since", metavar="YYYY-MM-DD", help="First day to include (default: no bound).")
        parser.add_argument("--until", metavar="YYYY-MM-DD", help="Last day to include (default: no bound).")
        parser.add_argument(
            "--period",
            choices=tuple(PRESETS),
            help="A preset period, counted back from today in TIME_ZONE; not with --since/--until.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Checked here rather than by argparse types: call_command() passes keyword options
        # straight through, and both ways must reject the same input with the same status.
        output_format = options["format"]
        if output_format not in FORMATS:
            raise CommandError(
                f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}.", returncode=USAGE_ERROR
            )
        limit = limit_parse(options["limit"])
        since = date_parse(options["since"], option="--since")
        until = date_parse(options["until"], option="--until")
        preset = options.get("period")
        if preset is not None:
            if since or until:
                raise CommandError("--period cannot be combined with --since or --until.", returncode=USAGE_ERROR)
            if preset not in PRESETS:
                raise CommandError(
                    f"--period must be one of {', '.join(PRESETS)}, not {preset!r}.", returncode=USAGE_ERROR
                )
        if since and until and since > until:
            raise CommandError(f"--since ({since}) is after --until ({until}).", returncode=USAGE_ERROR)
        try:
            period = period_from_preset(preset=preset) if preset else Period(since=since, until=until)
        except (PeriodError, ValueError) as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from None

        if output_format == "json":
            self.stdout.write(
                json.dumps(usage_report_as_dict(period=period, limit=limit), indent=2, ensure_ascii=False)
            )
        elif output_format == "csv":
            # The same rows, cells and formula escaping as the admin's downloads.
            for line in csv_lines(usage_report_csv_rows(period=period, limit=limit)):
                self.stdout.write(line, ending="")
        else:
            self.stdout.write(usage_report_as_text(period=period, limit=limit))


def limit_parse(value: Any) -> int:
    """Return ``value`` as a row limit of at least 1, or raise a usage error."""
    if isinstance(value, int) and not isinstance(value, bool):
        limit = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        limit = int(value)
    else:
        raise CommandError(f"--limit must be a whole number, not {value!r}.", returncode=USAGE_ERROR)
    if limit < 1:
        raise CommandError(f"--limit must be at least 1, not {limit}.", returncode=USAGE_ERROR)
    return limit


def date_parse(value: Any, *, option: str) -> date | None:
    """Return ``value`` (YYYY-MM-DD) as a date, None when absent, or raise a usage error."""
    if value is None:
        return None
    if isinstance(value, date):
        return value
    # date.fromisoformat alone would also take 20260105 or 2026-W01-1.
    if isinstance(value, str) and ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CommandError(f"{option} must be a real date written YYYY-MM-DD, not {value!r}.", returncode=USAGE_ERROR)


def period_describe(period: Period) -> str:
    """Return the period in words: "all time", "2026-11-01 to 2026-11-30", "last month (…)", "since …"."""
    if period.since and period.until:
        bounds = f"{period.since} to {period.until}"
        if period.preset in PRESETS:
            return f"{PRESETS[period.preset].lower()} ({bounds})"
        return bounds
    if period.since:
        return f"since {period.since}"
    if period.until:
        return f"until {period.until}"
    return "all time"


def _cell(value: Any, kind: str) -> str:
    if kind == "money":
        return money_display(value)
    if kind == "int":
        return f"{value:,}"
    return str(value)


def report_as_text(*, report: Report, result: Any) -> str:
    """Return one computed report as a titled, aligned text table (or its single figure)."""
    lines = [report.title, "=" * len(report.title)]
    if report.is_single_figure:
        lines.append(report.empty_message if result is None else f"{result:,} tokens per request")
        return "\n".join(lines)
    if not result:
        lines.append(report.empty_message)
        return "\n".join(lines)
    headers = ["#", *(column.label for column in report.columns)]
    kinds = ["int", *(column.kind for column in report.columns)]
    table = [
        [str(rank), *(_cell(getattr(row, column.attribute), column.kind) for column in report.columns)]
        for rank, row in enumerate(result, start=1)
    ]
    widths = [max(len(line[index]) for line in [headers, *table]) for index in range(len(headers))]

    def render(cells: list[str]) -> str:
        aligned = [
            cell.ljust(width) if kind == "text" else cell.rjust(width)
            for cell, kind, width in zip(cells, kinds, widths, strict=True)
        ]
        return "  ".join(aligned).rstrip()

    lines.append(render(headers))
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(render(cells) for cells in table)
    return "\n".join(lines)


def usage_report_as_text(*, period: Period, limit: int) -> str:
    """Return every report for the period as text tables, one after the other."""
    sections = [f"Usage report: {period_describe(period)}"]
    for report in REPORTS.values():
        sections.append(report_as_text(report=report, result=report.compute(period=period, limit=limit)))
    return "\n\n".join(sections) + "\n"
