"""Adapt HTTP requests to the report layer: which period a request asks for, and the links that keep it."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils.http import urlencode

from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports.periods import (
    CUSTOM,
    MAX_PERIOD_DAYS,
    PERIOD_PARAM,
    PERIOD_PARAMS,
    PRESETS,
    SINCE_PARAM,
    UNTIL_PARAM,
    Period,
    PeriodError,
    period_from_params,
    period_today,
)
from reports.registry import REPORTS, Report, reports_visible_to
from reports.selectors import first_request_date

# What the headline figures, the daily charts and the chatbot unit economics read.
OVERVIEW_MODELS: tuple[type[Model], ...] = (OpenRouterRequestCost,)
ECONOMICS_MODELS: tuple[type[Model], ...] = (Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)


def view_permissions(models: tuple[type[Model], ...]) -> list[str]:
    """Return the view permission codenames of ``models``."""
    return [f"{model._meta.app_label}.view_{model._meta.model_name}" for model in models]


def period_from_request(*, request: HttpRequest) -> Period:
    """Return the period selected by the request's query string; raise PeriodError when it is invalid."""
    today = period_today()
    period = period_from_params(params={name: request.GET.get(name, "") for name in PERIOD_PARAMS}, today=today)
    if period.since is not None and period.until is None:
        # Open-ended, so Period cannot check its length; it ends today as far as any chart goes.
        days = (today - period.since).days + 1
        if days > MAX_PERIOD_DAYS:
            raise PeriodError(
                f"The period from {period.since} to today spans {days} days; the longest allowed is {MAX_PERIOD_DAYS}."
            )
    return period


@dataclass(frozen=True)
class PeriodSelection:
    """The period a request asks for, or the reason it cannot be shown."""

    period: Period | None
    error: str | None = None
    # The from/to as typed, so that a wrong date stays in the form to be corrected.
    typed_since: str = ""
    typed_until: str = ""

    @property
    def params(self) -> dict[str, str]:
        """Return the query-string parameters that select this period (none when it is invalid)."""
        return self.period.as_params() if self.period is not None else {}

    @property
    def label(self) -> str:
        """Return the period as the page names it, e.g. "Last 7 days (2024-01-27 to 2024-02-02)"."""
        if self.period is None:
            return ""
        if self.period.since is None and self.period.until is not None:
            return f"Up to {self.period.until}"
        return self.period.label

    @property
    def query(self) -> str:
        """Return the period's parameters as a query string without the leading "?", e.g. period=today."""
        return urlencode(self.params)


def period_selection_from_request(*, request: HttpRequest) -> PeriodSelection:
    """Return the period a request selects, or the error that makes it unusable; never raise."""
    typed = {"typed_since": request.GET.get(SINCE_PARAM, ""), "typed_until": request.GET.get(UNTIL_PARAM, "")}
    try:
        return PeriodSelection(period=period_from_request(request=request), **typed)
    except PeriodError as error:
        return PeriodSelection(period=None, error=str(error), **typed)


def period_notice(*, period: Period, today: date | None = None) -> str | None:
    """Return why a valid period shows nothing (it ends before the first request, or starts after today)."""
    today = today or period_today()
    if period.since is not None and period.since > today:
        return f"The period starts after today ({today}): nothing has been recorded in it yet."
    if period.until is None:
        return None
    first = first_request_date()
    if first is not None and period.until < first:
        return f"The period ends before the first recorded request ({first}): there is nothing to show for it."
    return None


def query_string_with(params: QueryDict, *, changes: Mapping[str, str]) -> str:
    """Return ``params`` as a query string with the period replaced by ``changes``, back on the first page."""
    kept = params.copy()
    for name in (*PERIOD_PARAMS, PAGE_VAR, ERROR_FLAG):
        kept.pop(name, None)
    for name, value in changes.items():
        kept[name] = value
    return "?" + kept.urlencode()


@dataclass(frozen=True)
class PeriodChoice:
    """One preset of the period bar."""

    key: str
    label: str
    url: str
    is_current: bool


@dataclass(frozen=True)
class PeriodBar:
    """What the period bar shows: the presets, the custom range form, and the state of the selection."""

    selection: PeriodSelection
    choices: tuple[PeriodChoice, ...]
    # Other query parameters (a change list's filters, search, ordering) the custom form resubmits.
    hidden_fields: tuple[tuple[str, str], ...]
    since_value: str
    until_value: str
    is_custom: bool
    custom_param: str = PERIOD_PARAM
    custom_value: str = CUSTOM
    since_param: str = SINCE_PARAM
    until_param: str = UNTIL_PARAM


def period_bar(*, request: HttpRequest, selection: PeriodSelection) -> PeriodBar:
    """Return the period bar of a report page: preset links and a from/to form that keep the page's other params."""
    period = selection.period
    current_preset = period.preset if period is not None else None
    if period is not None and period.is_all_time:
        current_preset = "all-time"
    choices = tuple(
        PeriodChoice(
            key=key,
            label=label,
            url=query_string_with(request.GET, changes={PERIOD_PARAM: key}),
            is_current=key == current_preset,
        )
        for key, label in PRESETS.items()
    )
    hidden = tuple(
        (name, value)
        for name, values in request.GET.lists()
        if name not in (*PERIOD_PARAMS, PAGE_VAR, ERROR_FLAG)
        for value in values
    )
    if period is None:
        since_value, until_value = selection.typed_since, selection.typed_until
    else:
        since_value = period.since.isoformat() if period.since else ""
        until_value = period.until.isoformat() if period.until else ""
    return PeriodBar(
        selection=selection,
        choices=choices,
        hidden_fields=hidden,
        since_value=since_value,
        until_value=until_value,
        is_custom=period is not None and current_preset is None,
    )


@dataclass(frozen=True)
class DashboardAccess:
    """Which sections of the usage dashboard a user may see."""

    overview: bool
    economics: bool
    reports: tuple[Report, ...]

    @property
    def anything(self) -> bool:
        return self.overview or self.economics or bool(self.reports)


def dashboard_access(*, user: Any) -> DashboardAccess:
    """Return the dashboard sections ``user`` may see: each needs view permission on every model it reads."""
    allowed = bool(user.is_active and user.is_staff)
    return DashboardAccess(
        overview=allowed and user.has_perms(view_permissions(OVERVIEW_MODELS)),
        economics=allowed and user.has_perms(view_permissions(ECONOMICS_MODELS)),
        reports=tuple(reports_visible_to(user=user, keys=tuple(REPORTS))) if allowed else (),
    )


@dataclass(frozen=True)
class NavLink:
    """One link of the report pages' navigation."""

    label: str
    url: str
    is_current: bool


# The admin pages that show reports, or whose list the period filters, in the order the nav lists them.
REPORT_PAGES: tuple[tuple[str, type[Model]], ...] = (
    ("Request costs", OpenRouterRequestCost),
    ("Users", get_user_model()),
    ("AI models", AIModel),
    ("Chatbots", Chatbot),
    ("Chat sessions", ChatSession),
)


def report_nav(*, request: HttpRequest, selection: PeriodSelection) -> list[NavLink]:
    """Return links to the dashboard and each report page the user may view, carrying the current period."""
    suffix = f"?{selection.query}" if selection.query else ""
    links = []
    if dashboard_access(user=request.user).anything:
        url = reverse("reports:dashboard")
        links.append(NavLink("Dashboard", f"{url}{suffix}", request.path == url))
    for label, model in REPORT_PAGES:
        try:
            model_admin = admin.site.get_model_admin(model)
        except NotRegistered:
            continue
        if not model_admin.has_view_permission(request):
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        links.append(NavLink(label, f"{url}{suffix}", request.path == url))
    return links
