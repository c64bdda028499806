"""Reports as plain data: JSON-ready dicts, CSV rows, and the streamed downloads of the admin.

The keys are a published contract (scripts read them), so each report lists its own instead
of following whatever fields its row class grows. Money and averages become decimal strings
in plain notation, never floats, so no figure is rounded on its way out.
"""

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports import selectors
from reports.http import period_from_request
from reports.periods import Period, PeriodError
from reports.registry import REPORTS, Report
from reports.selectors import DEFAULT_LIMIT

EXPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "top_users_by_cost": ("user_id", "username", "total_cost_usd", "total_tokens", "request_count"),
    "top_models_by_usage": ("model_id", "openrouter_id", "name", "usage_count", "total_tokens", "total_cost_usd"),
    "top_free_models": ("model_id", "openrouter_id", "name", "usage_count", "total_tokens"),
    "top_chatbots_by_sessions": ("chatbot_id", "name", "session_count", "message_count"),
    "top_users_by_free_usage": ("user_id", "username", "total_tokens", "request_count"),
    "chatbot_unit_economics": (
        "chatbot_id",
        "name",
        "session_count",
        "message_count",
        "request_count",
        "free_request_count",
        "total_cost_usd",
        "cost_per_session",
        "cost_per_message",
        "free_share",
    ),
    "daily_usage": (
        "day",
        "free_cost_usd",
        "paid_cost_usd",
        "total_cost_usd",
        "free_requests",
        "paid_requests",
        "total_requests",
        "free_tokens",
        "paid_tokens",
        "total_tokens",
    ),
}


def export_value(value: Any) -> Any:
    """Return ``value`` as JSON can hold it exactly: decimals and dates as strings."""
    if isinstance(value, Decimal):
        # "f" keeps plain notation: 0.000000012, never 1.2E-8.
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def report_rows_as_dicts(*, report: Report, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Return a report's rows as dicts with the report's export keys, in order."""
    fields = EXPORT_FIELDS.get(report.key)
    if fields is None:
        return [{key: export_value(value) for key, value in asdict(row).items()} for row in rows]
    return [{field: export_value(getattr(row, field)) for field in fields} for row in rows]


def report_result_as_data(*, report: Report, result: Any) -> Any:
    """Return a computed report (rows, or a single figure) as JSON-ready data."""
    if report.is_single_figure:
        return export_value(result)
    return report_rows_as_dicts(report=report, rows=result)


def period_as_dict(*, period: Period) -> dict[str, str | None]:
    """Return the period's inclusive bounds as ISO dates (None for an open end)."""
    return {
        "since": period.since.isoformat() if period.since else None,
        "until": period.until.isoformat() if period.until else None,
    }


def usage_report_as_dict(
    *, period: Period, limit: int = DEFAULT_LIMIT, reports: Iterable[Report] | None = None
) -> dict[str, Any]:
    """Return the period and every report (or the given ones) as one JSON-ready dict."""
    data: dict[str, Any] = {"period": period_as_dict(period=period)}
    for report in REPORTS.values() if reports is None else reports:
        data[report.key] = report_result_as_data(report=report, result=report.compute(period=period, limit=limit))
    return data


# --- The dashboard's tables, exportable beside the six reports --------------------------------


def daily_usage_rows(*, period: Period, limit: int | None = None) -> list[selectors.DailyUsageRow]:
    """Return the period's daily usage; ``limit`` is accepted for a uniform call and ignored."""
    return selectors.daily_usage(period=period)


EXTRA_EXPORTS: dict[str, Report] = {
    report.key: report
    for report in (
        Report(
            key="chatbot_unit_economics",
            title="Chatbot Unit Economics",
            description="Per chatbot: sessions, messages, requests, cost, cost per session and message, free share.",
            models=(Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost),
            rows=selectors.chatbot_unit_economics,
            empty_message="No chat sessions or requests yet.",
        ),
        Report(
            key="daily_usage",
            title="Daily Usage",
            description="Cost, requests and tokens per day, free and paid apart.",
            models=(OpenRouterRequestCost,),
            rows=daily_usage_rows,
            empty_message="No requests recorded yet.",
        ),
    )
}

# Every download the admin offers, by the key in its URL.
EXPORTS: dict[str, Report] = {**REPORTS, **EXTRA_EXPORTS}

# Rows per export when the query string gives no limit: the report pages show DEFAULT_LIMIT rows,
# while the unit economics table lists every chatbot and the daily series every day.
EXPORT_DEFAULT_LIMITS: dict[str, int | None] = {"chatbot_unit_economics": None, "daily_usage": None}
MAX_EXPORT_LIMIT = 1000
LIMIT_PARAM = "limit"
EXPORT_FORMATS = ("csv", "json")


# --- CSV ---------------------------------------------------------------------------------------

CSV_HEADERS: dict[str, str] = {
    "user_id": "User ID",
    "username": "Username",
    "model_id": "Model ID",
    "openrouter_id": "OpenRouter ID",
    "chatbot_id": "Chatbot ID",
    "name": "Name",
    "total_cost_usd": "Total cost (USD)",
    "total_tokens": "Total tokens",
    "request_count": "Requests",
    "usage_count": "Usage count",
    "session_count": "Sessions",
    "message_count": "Messages",
    "free_request_count": "Free requests",
    "cost_per_session": "Cost per session (USD)",
    "cost_per_message": "Cost per message (USD)",
    "free_share": "Free share of requests (%)",
    "day": "Day",
    "free_cost_usd": "Free cost (USD)",
    "paid_cost_usd": "Paid cost (USD)",
    "free_requests": "Free requests",
    "paid_requests": "Paid requests",
    "total_requests": "Requests",
    "free_tokens": "Free tokens",
    "paid_tokens": "Paid tokens",
}
# "Name" alone would not say whose.
CSV_NAME_HEADERS: dict[str, str] = {
    "top_models_by_usage": "Model",
    "top_free_models": "Free model",
    "top_chatbots_by_sessions": "Chatbot",
    "chatbot_unit_economics": "Chatbot",
}
CSV_FIGURE_HEADERS: dict[str, str] = {"average_tokens_per_request": "Average tokens per request"}
# A date series has no ranking to show.
UNRANKED_EXPORTS = frozenset({"daily_usage"})

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Return ``value`` as a CSV cell: exact numbers, ISO dates, and text that no spreadsheet runs."""
    if value is None:
        return ""
    if isinstance(value, str):
        # A leading apostrophe makes the spreadsheet show the text as typed instead of evaluating it.
        # Only text is escaped: a number, even a negative one, must stay a number.
        return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value
    return export_value(value)


def report_csv_rows(*, report: Report, result: Any) -> Iterator[list[Any]]:
    """Yield a computed report as CSV rows: a header of column names, then one row per entry."""
    if report.is_single_figure:
        yield [csv_cell(CSV_FIGURE_HEADERS.get(report.key, report.title))]
        yield [csv_cell(result)]
        return
    fields = EXPORT_FIELDS[report.key]
    ranked = report.key not in UNRANKED_EXPORTS
    headers = [
        CSV_NAME_HEADERS.get(report.key, CSV_HEADERS[field]) if field == "name" else CSV_HEADERS[field]
        for field in fields
    ]
    yield [csv_cell(header) for header in (["Rank", *headers] if ranked else headers)]
    for rank, row in enumerate(result, start=1):
        cells = [csv_cell(getattr(row, field)) for field in fields]
        yield [rank, *cells] if ranked else cells


def usage_report_csv_rows(
    *, period: Period, limit: int = DEFAULT_LIMIT, reports: Iterable[Report] | None = None
) -> Iterator[list[Any]]:
    """Yield every report (or the given ones) as one CSV: the period, then a titled section per report.

    Sections are separated by an empty row; each has its title, its header and its rows, so a
    spreadsheet shows them one under the other.
    """
    yield ["Usage report"]
    yield ["From", csv_cell(period.since)]
    yield ["To", csv_cell(period.until)]
    for report in REPORTS.values() if reports is None else reports:
        yield []
        yield [csv_cell(report.title)]
        yield from report_csv_rows(report=report, result=report.compute(period=period, limit=limit))


class _Echo:
    """A file-like object whose write() returns what it is given, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Yield each row as one CSV line (RFC 4180: quoted when needed, CRLF-terminated)."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


# --- JSON --------------------------------------------------------------------------------------


def report_json_chunks(*, report: Report, period: Period, result: Any) -> Iterator[str]:
    """Yield one computed report as a JSON document, a row at a time.

    The document is ``{"report", "title", "period", "rows": [...]}``, or ``"value"`` in place of
    ``"rows"`` for a single figure.
    """
    head = {"report": report.key, "title": report.title, "period": period_as_dict(period=period)}
    opening = ", ".join(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in head.items())
    if report.is_single_figure:
        yield f'{{{opening}, "value": {json.dumps(export_value(result))}}}\n'
        return
    yield f'{{{opening}, "rows": ['
    for index, row in enumerate(result):
        (data,) = report_rows_as_dicts(report=report, rows=[row])
        yield ("," if index else "") + "\n" + json.dumps(data, ensure_ascii=False)
    yield "\n]}\n"


# --- The download view -------------------------------------------------------------------------


class ExportError(ValueError):
    """A request for an export that cannot be answered, with a message fit to show the user."""


def export_limit_parse(*, value: str | None, default: int | None) -> int | None:
    """Return the ``limit`` query parameter as a row count from 1 to MAX_EXPORT_LIMIT, ``default`` when absent."""
    if value is None or not value.strip():
        return default
    # Four ASCII digits at most: int() would take other scripts' digits, and refuse 5,000 of them.
    if not re.fullmatch(r"[0-9]{1,4}", value.strip()) or not 1 <= int(value) <= MAX_EXPORT_LIMIT:
        raise ExportError(f"limit must be a whole number from 1 to {MAX_EXPORT_LIMIT}, not {value!r}.")
    return int(value)


def export_filename(*, report: Report, period: Period, export_format: str) -> str:
    """Return the download's file name from the report key and the period, e.g. top_users_by_cost_all-time.csv."""
    if period.since and period.until:
        bounds = f"{period.since}_{period.until}"
    elif period.since:
        bounds = f"since_{period.since}"
    elif period.until:
        bounds = f"until_{period.until}"
    else:
        bounds = "all-time"
    return f"{report.key}_{bounds}.{export_format}"


def _plain(response_class: type[HttpResponse], message: str) -> HttpResponse:
    return response_class(message + "\n", content_type="text/plain; charset=utf-8")


@require_safe
def report_export(request: HttpRequest, report_key: str, export_format: str) -> HttpResponseBase:
    """Stream one report as a CSV or JSON download, for the period and limit the query string selects."""
    report = EXPORTS.get(report_key)
    if report is None:
        return _plain(HttpResponseNotFound, f"There is no report {report_key!r} to export.")
    if export_format not in EXPORT_FORMATS:
        formats = " or ".join(EXPORT_FORMATS)
        return _plain(HttpResponseNotFound, f"Reports export as {formats}, not {export_format!r}.")
    if not report.is_visible_to(request.user):
        needed = ", ".join(report.permission_codenames())
        return _plain(HttpResponseForbidden, f"Exporting {report.title!r} needs the view permissions {needed}.")
    try:
        period = period_from_request(request=request)
        limit = export_limit_parse(
            value=request.GET.get(LIMIT_PARAM), default=EXPORT_DEFAULT_LIMITS.get(report.key, DEFAULT_LIMIT)
        )
    except (PeriodError, ExportError) as error:
        return _plain(HttpResponseBadRequest, str(error))

    # Computed before the response starts: a database error then is a plain error page, not a
    # download that stops halfway under a 200 status.
    result = report.compute(period=period, limit=limit)
    if export_format == "csv":
        content = csv_lines(report_csv_rows(report=report, result=result))
        content_type = "text/csv; charset=utf-8"
    else:
        content = report_json_chunks(report=report, period=period, result=result)
        content_type = "application/json"
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=export_filename(report=report, period=period, export_format=export_format)
    )
    return response
