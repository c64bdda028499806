"""Report pages of the admin that belong to no single model: the usage dashboard."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from reports import selectors
from reports.admin import ReportPanel, explorer_context, usage_overview
from reports.http import dashboard_access, period_selection_from_request
from reports.selectors import DEFAULT_LIMIT


def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the usage dashboard: headline figures, daily charts, chatbot unit economics and every report.

    ``admin_view`` lets in any active staff user; each section is shown only with view permission
    on every model it reads, and a user who may see none of them gets a 403 saying so.
    """
    access = dashboard_access(user=request.user)
    context = {
        **admin.site.each_context(request),
        "title": "Usage dashboard",
        "access": access,
        "on_dashboard": True,
    }
    if not access.anything:
        return TemplateResponse(request, "admin/reports/dashboard.html", context, status=403)

    selection = period_selection_from_request(request=request)
    period = selection.period
    context.update(explorer_context(request=request, selection=selection))
    # Nothing is computed for an unusable period: no figure is better than one for the wrong days.
    panels = (
        [
            ReportPanel(report=report, result=report.compute(period=period, limit=DEFAULT_LIMIT))
            for report in access.reports
        ]
        if period is not None
        else []
    )
    context.update(
        usage_reports=panels,
        usage_figures=[panel for panel in panels if panel.report.is_single_figure],
        usage_tables=[panel for panel in panels if not panel.report.is_single_figure],
        usage_overview=usage_overview(period=period) if access.overview and period is not None else None,
        economics=(
            selectors.chatbot_unit_economics(period=period, limit=DEFAULT_LIMIT)
            if access.economics and period is not None
            else None
        ),
    )
    return TemplateResponse(request, "admin/reports/dashboard.html", context)
