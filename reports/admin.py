"""Show the usage reports above the admin's standard change lists."""

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.views.main import IS_POPUP_VAR
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from reports.periods import ALL_TIME
from reports.registry import Report, reports_visible_to
from reports.selectors import DEFAULT_LIMIT


@dataclass(frozen=True)
class ReportPanel:
    """One report as a change list shows it: the report and what it computed."""

    report: Report
    result: Any


def report_panels(*, request: HttpRequest, keys: tuple[str, ...]) -> list[ReportPanel]:
    """Return the panels among ``keys`` that the request's user may see, computed over all time."""
    return [
        ReportPanel(report=report, result=report.compute(period=ALL_TIME, limit=DEFAULT_LIMIT))
        for report in reports_visible_to(user=request.user, keys=keys)
    ]


class ReportsAdminMixin:
    """Put the reports named in ``report_keys`` above a ModelAdmin's change list.

    Each report is shown only to a user with view permission on every model it reads.
    """

    report_keys: tuple[str, ...] = ()
    change_list_template = "admin/reports/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context=extra_context)
        # Computed after the change list has answered, so that a redirect (a bad filter's ?e=1,
        # an action), an action's confirmation page or a related-object popup costs no report query.
        if (
            isinstance(response, TemplateResponse)
            and response.context_data is not None
            and "cl" in response.context_data
            and IS_POPUP_VAR not in request.GET
        ):
            panels = report_panels(request=request, keys=self.report_keys)
            response.context_data.update(
                usage_reports=panels,
                usage_report_limit=DEFAULT_LIMIT,
                usage_figures=[panel for panel in panels if panel.report.is_single_figure],
                usage_tables=[panel for panel in panels if not panel.report.is_single_figure],
            )
        return response
