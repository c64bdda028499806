"""Show the usage reports above the admin's standard change lists."""

from typing import Any

from django.http import HttpRequest, HttpResponse

from reports.periods import ALL_TIME
from reports.registry import reports_visible_to
from reports.selectors import DEFAULT_LIMIT


class ReportsAdminMixin:
    """Put the reports named in ``report_keys`` above a ModelAdmin's change list."""

    report_keys: tuple[str, ...] = ()
    change_list_template = "admin/reports/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        reports = reports_visible_to(user=request.user, keys=self.report_keys)
        extra_context = {
            **(extra_context or {}),
            "usage_reports": [
                {"report": report, "result": report.compute(period=ALL_TIME, limit=DEFAULT_LIMIT)} for report in reports
            ],
        }
        return super().changelist_view(request, extra_context=extra_context)
