"""Import OpenRouter requests and their costs from a CSV file: every row, or none."""

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ai_models.selectors import ai_model_ids_by_openrouter_id
from chatbot.services import RequestCostInput, request_costs_import

# Bad input exits with 2, as argparse does for its own errors.
USAGE_ERROR = 2
REQUIRED_COLUMNS = ("user_id", "ai_model", "prompt_tokens", "completion_tokens", "cost_usd", "created_at")
OPTIONAL_COLUMNS = ("session_id", "generation_id", "cost_status")
# Invalid cells described one by one; the rest are counted.
ERRORS_SHOWN = 20
# ASCII digits only: int() would also take "1_000" or other scripts' digits.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


class RowError(Exception):
    """A cell that cannot be read as its column's type."""


# A problem with the file: the row it is in (0 for the header), and what it is.
Problem = tuple[int, str]


@dataclass(frozen=True)
class CsvRow:
    number: int  # From 1, after the header; blank lines are not rows.
    line: int  # The file's line where the row ends (a quoted cell may span lines).
    cells: dict[str, str]

    def problem(self, message: str) -> Problem:
        return self.number, f"Row {self.number} (line {self.line}): {message}"


def _whole_number(cell: str) -> int:
    if not WHOLE_NUMBER.fullmatch(cell.strip()):
        raise RowError(f"{cell!r} is not a whole number.")
    return int(cell)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(cell: str) -> Any:
        return None if not cell.strip() else parse(cell)

    return parse_optional


def _date_time(cell: str) -> datetime:
    if not cell.strip():
        raise RowError("A date and time is required, e.g. 2026-01-31T12:00:00+00:00.")
    try:
        # Kept naive when the cell has no offset: the import then refuses it as not timezone-aware.
        return datetime.fromisoformat(cell.strip())
    except ValueError:
        raise RowError(f"{cell!r} is not an ISO 8601 date and time, e.g. 2026-01-31T12:00:00+00:00.") from None


def _verbatim(cell: str) -> str:
    return cell


# How each column's cell becomes the import's value; the cost stays text, for the import to parse exactly.
PARSERS: dict[str, Callable[[str], Any]] = {
    "user_id": _whole_number,
    "session_id": _optional(_whole_number),
    # An id, kept as written: stripping could merge two distinct ids.
    "generation_id": _optional(_verbatim),
    "prompt_tokens": _whole_number,
    "completion_tokens": _whole_number,
    "cost_usd": _verbatim,
    "created_at": _date_time,
    "cost_status": _optional(str.strip),
}


def csv_rows_read(*, lines: Iterator[str]) -> tuple[list[CsvRow], list[Problem]]:
    """Return the rows of a CSV file (header first) as cells by column, and what is wrong with its layout."""
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    problems = []
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if missing:
        problems.append(f"The header lacks the columns {', '.join(missing)}.")
    if unknown:
        problems.append(f"The header has unknown columns: {', '.join(map(repr, unknown))}.")
    if repeated:
        problems.append(f"The header repeats the columns {', '.join(repeated)}.")
    if problems:
        expected = ", ".join(REQUIRED_COLUMNS) + "; optional: " + ", ".join(OPTIONAL_COLUMNS)
        return [], [(0, problem) for problem in [*problems, f"Expected the columns {expected}."]]
    rows = []
    number = 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        number += 1
        if len(cells) != len(header):
            problems.append(
                (number, f"Row {number} (line {reader.line_num}): {len(cells)} cells, the header has {len(header)}.")
            )
            continue
        rows.append(CsvRow(number=number, line=reader.line_num, cells=dict(zip(header, cells, strict=True))))
    return rows, problems


def request_cost_inputs_parse(*, rows: list[CsvRow]) -> tuple[list[RequestCostInput], list[Problem]]:
    """Return the import's input for each row, and what cannot be read."""
    model_ids = ai_model_ids_by_openrouter_id(openrouter_ids={row.cells["ai_model"].strip() for row in rows})
    inputs = []
    problems = []
    for row in rows:
        values: dict[str, Any] = {}
        for name, cell in row.cells.items():
            if name == "ai_model":
                model_id = model_ids.get(cell.strip())
                if model_id is None:
                    problems.append(row.problem(f"ai_model: unknown model {cell!r}."))
                values["ai_model_id"] = model_id
                continue
            try:
                value = PARSERS[name](cell)
            except RowError as error:
                problems.append(row.problem(f"{name}: {error}"))
                continue
            if value is not None:
                values[name] = value
        if not problems:
            inputs.append(RequestCostInput(**values))
    return inputs, problems


def _shown(problems: list[Problem]) -> list[str]:
    messages = [message for _, message in sorted(problems, key=lambda problem: problem[0])]
    if len(messages) <= ERRORS_SHOWN:
        return messages
    return [*messages[:ERRORS_SHOWN], f"...and {len(messages) - ERRORS_SHOWN} more."]


class Command(BaseCommand):
    help = (
        "Import OpenRouter requests from a CSV file with a header: user_id, ai_model (an OpenRouter id such as "
        "openai/gpt-4o), prompt_tokens, completion_tokens, cost_usd, created_at (ISO 8601 with an offset), and "
        "optionally session_id, generation_id and cost_status (default billed). Every row is checked first: "
        "one bad row and nothing is imported. A generation_id already stored is skipped, so importing a "
        "file again is safe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The CSV file (UTF-8).")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            # utf-8-sig: a spreadsheet's CSV export often starts with a byte order mark.
            with path.open(encoding="utf-8-sig", newline="") as file:
                rows, problems = csv_rows_read(lines=file)
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}.", returncode=USAGE_ERROR) from None
        except UnicodeDecodeError as error:
            raise CommandError(f"{path} is not UTF-8 text: {error.reason}.", returncode=USAGE_ERROR) from None
        except csv.Error as error:
            raise CommandError(f"{path} is not a readable CSV file: {error}.", returncode=USAGE_ERROR) from None
        inputs, cell_problems = request_cost_inputs_parse(rows=rows)
        problems += cell_problems
        if problems:
            raise CommandError(
                "\n".join(["Nothing imported: the file has errors.", *_shown(problems)]), returncode=USAGE_ERROR
            )
        try:
            result = request_costs_import(rows=inputs)
        except ValidationError as error:
            lines = {row.number: row.line for row in rows}
            raise CommandError("\n".join(_messages(error, lines=lines)), returncode=USAGE_ERROR) from None
        self.stdout.write(
            f"Inserted {result.inserted} requests; skipped {result.skipped} whose generation_id was already stored."
        )


def _messages(error: ValidationError, *, lines: dict[int, int]) -> list[str]:
    """Return the import's error messages, each row's with its line in the file."""
    messages = []
    for item in error.error_list:
        params = item.params or {}
        if item.code == "invalid_row":
            line = lines.get(params["row"])
            messages.append(f"Row {params['row']} (line {line}): {params['field']}: {params['message']}")
        else:
            messages.extend(item.messages)
    return messages
