"""Reports as plain data: JSON-ready dicts for ``usage_report --format json`` and the exports.

The keys are a published contract (scripts read them), so each report lists its own instead
of following whatever fields its row class grows. Money and averages become decimal strings
in plain notation, never floats, so no figure is rounded on its way out.
"""

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

from reports.periods import Period
from reports.registry import REPORTS, Report
from reports.selectors import DEFAULT_LIMIT

EXPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "top_users_by_cost": ("user_id", "username", "total_cost_usd", "total_tokens", "request_count"),
    "top_models_by_usage": ("model_id", "openrouter_id", "name", "usage_count", "total_tokens", "total_cost_usd"),
    "top_free_models": ("model_id", "openrouter_id", "name", "usage_count", "total_tokens"),
    "top_chatbots_by_sessions": ("chatbot_id", "name", "session_count", "message_count"),
    "top_users_by_free_usage": ("user_id", "username", "total_tokens", "request_count"),
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


def report_export(request: Any, report_key: str, export_format: str) -> Any:
    """Stream one report as CSV or JSON."""
    from django.http import Http404

    raise Http404("Exports are being built.")
