"""Show the usage reports, for a chosen period, above the admin's standard change lists."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import IS_POPUP_VAR, ChangeList
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.admin import KnownCountMixin, QuickActionCheckboxMixin, change_list_is_whole
from reports import selectors
from reports.charts import StackedBarChart, usage_charts
from reports.http import (
    OVERVIEW_MODELS,
    PeriodSelection,
    period_bar,
    period_notice,
    period_selection_from_request,
    report_nav,
    view_permissions,
)
from reports.periods import PERIOD_PARAMS, Period
from reports.registry import Report, reports_visible_to
from reports.selectors import DEFAULT_LIMIT, HeadlineComparison

# The admin index links the usage dashboard (the stock index template cannot be overridden by an
# app listed after django.contrib.admin, so the site is pointed at one that extends it).
admin.site.index_template = "admin/reports/index.html"


@dataclass(frozen=True)
class ReportPanel:
    """One report as a page shows it: the report and what it computed."""

    report: Report
    result: Any


@dataclass(frozen=True)
class UsageOverview:
    """The headline figures beside the previous period's, and the daily charts of a period."""

    period: Period
    previous: Period | None
    comparison: list[HeadlineComparison]
    charts: list[StackedBarChart]


def report_panels(*, request: HttpRequest, keys: tuple[str, ...], period: Period) -> list[ReportPanel]:
    """Return the panels among ``keys`` that the request's user may see, computed over ``period``."""
    return [
        ReportPanel(report=report, result=report.compute(period=period, limit=DEFAULT_LIMIT))
        for report in reports_visible_to(user=request.user, keys=keys)
    ]


def usage_overview(*, period: Period) -> UsageOverview:
    """Return the period's headline comparison and daily charts."""
    return UsageOverview(
        period=period,
        previous=period.previous(),
        comparison=selectors.usage_comparison(period=period),
        charts=usage_charts(rows=selectors.daily_usage(period=period)),
    )


def explorer_context(*, request: HttpRequest, selection: PeriodSelection) -> dict[str, Any]:
    """Return what every report page shows around its figures: the nav, the period bar and its messages."""
    period = selection.period
    return {
        "period_selection": selection,
        "period_query": selection.query,
        "period_bar": period_bar(request=request, selection=selection),
        "period_notice": period_notice(period=period) if period is not None else None,
        "report_nav": report_nav(request=request, selection=selection),
        "usage_report_limit": DEFAULT_LIMIT,
    }


class SelectedRelatedFilter(admin.RelatedFieldListFilter):
    """Filter on a foreign key, listing only the chosen object: the related table can be too long to list.

    It makes a report's drill-down (e.g. one user's requests) show in the sidebar, with "All" to undo it.
    """

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        if not self.lookup_val:
            return []
        try:
            return [(obj.pk, str(obj)) for obj in field.related_model._default_manager.filter(pk__in=self.lookup_val)]
        except (ValueError, ValidationError):
            # A malformed id: the change list's own lookup rejects it and redirects with ?e=1.
            return []

    def has_output(self) -> bool:
        # Whenever a value is chosen, even one that names no object: a filter without output is
        # left out of the change list, and its lookup with it, which would list every row.
        return bool(self.lookup_val)


class PeriodChangeList(ChangeList):
    """A change list that reads the report period from the query string without taking it for a field lookup.

    The period parameters stay in ``params``, so the links for filters, search, sorting and pages keep
    them; when the model admin names a ``period_list_field``, the period filters the list too.
    """

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.period_selection = period_selection_from_request(request=request)
        super().__init__(request, *args, **kwargs)

    def get_filters_params(self, params: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
        lookup_params = super().get_filters_params(params)
        for name in PERIOD_PARAMS:
            lookup_params.pop(name, None)
        return lookup_params

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        queryset = super().get_queryset(request, exclude_parameters)
        field = getattr(self.model_admin, "period_list_field", None)
        period = self.period_selection.period
        # An invalid period filters nothing: the page says so, and the list stays the standard one.
        if field and period is not None and not period.is_all_time:
            queryset = queryset.filter(period.q(field))
        return queryset


def period_only_selection(*, request: HttpRequest) -> Period | None:
    """Return the period a change list request selects when nothing else filters the list, else None.

    None too for an unusable period (the list is then not filtered at all) and for any other
    parameter: a search, a filter, "show all", a popup, or one the change list will reject.
    """
    if not change_list_is_whole(request=request, also=PERIOD_PARAMS):
        return None
    return period_selection_from_request(request=request).period


def _is_rendered_change_list(request: HttpRequest, response: HttpResponse) -> bool:
    # Not a redirect (a bad filter's ?e=1, an action), an action's confirmation page or a popup.
    return (
        isinstance(response, TemplateResponse)
        and response.context_data is not None
        and isinstance(response.context_data.get("cl"), PeriodChangeList)
        and IS_POPUP_VAR not in request.GET
    )


class PeriodAdminMixin(KnownCountMixin, QuickActionCheckboxMixin):
    """Give a ModelAdmin's change list the report period: a period bar, and the list filtered by it.

    ``period_list_field`` names the date-time field the period filters the list on (None: the list
    is not filtered, the period applies to the reports only).
    """

    period_list_field: str | None = None
    # The exact size of the list over a period, from the rollups (a selector taking ``period``),
    # for a paginator that takes ``known_count``: used when nothing but the period filters the list.
    period_count: Callable[..., int] | None = None
    change_list_template = "admin/reports/change_list.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PeriodChangeList

    def list_known_count(self, request: HttpRequest) -> int | None:
        period = period_only_selection(request=request) if self.period_count else None
        return self.period_count(period=period) if period is not None else None

    def usage_context(self, request: HttpRequest, selection: PeriodSelection) -> dict[str, Any]:
        """Return the reports to show above the list; none here."""
        return {"usage_available": False, "usage_reports": [], "usage_overview": None}

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context=extra_context)
        # Computed after the change list has answered, so that a redirect, an action's confirmation
        # page or a related-object popup costs no report query.
        if _is_rendered_change_list(request, response):
            selection = response.context_data["cl"].period_selection
            context = self.usage_context(request, selection)
            response.context_data.update(context)
            if self.period_list_field or context["usage_available"]:
                response.context_data.update(
                    explorer_context(request=request, selection=selection),
                    period_filters_list=bool(self.period_list_field),
                    usage_explorer=True,
                )
        return response


class ReportsAdminMixin(PeriodAdminMixin):
    """Put the reports named in ``report_keys`` above a ModelAdmin's change list, for the chosen period.

    Each report is shown only to a user with view permission on every model it reads. With
    ``show_usage_overview``, the headline figures and the daily charts come first.
    """

    report_keys: tuple[str, ...] = ()
    show_usage_overview: bool = False
    # The reports come first on these pages and the list below them pages on: rendering a row
    # costs more than reading it (Django's 100 rows were most of a page's time), so 50 a page.
    list_per_page = 50

    def usage_context(self, request: HttpRequest, selection: PeriodSelection) -> dict[str, Any]:
        period = selection.period
        visible = reports_visible_to(user=request.user, keys=self.report_keys)
        overview_allowed = self.show_usage_overview and request.user.has_perms(view_permissions(OVERVIEW_MODELS))
        # Nothing is computed for an unusable period: no figure is better than one for the wrong days.
        panels = (
            [
                ReportPanel(report=report, result=report.compute(period=period, limit=DEFAULT_LIMIT))
                for report in visible
            ]
            if period is not None
            else []
        )
        return {
            "usage_available": bool(visible) or overview_allowed,
            "usage_reports": panels,
            "usage_figures": [panel for panel in panels if panel.report.is_single_figure],
            "usage_tables": [panel for panel in panels if not panel.report.is_single_figure],
            "usage_overview": usage_overview(period=period) if overview_allowed and period is not None else None,
        }
