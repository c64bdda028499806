"""Format report values for the admin: money to 6 places (exact value on hover), counts grouped, rows linked."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from django import template
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.templatetags.static import static
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatSession, OpenRouterRequestCost
from reports.http import dashboard_access
from reports.registry import Column, Report

register = template.Library()

MONEY_DISPLAY_PLACES = Decimal("0.000001")

# A row's id attribute, and the model whose admin change page that id opens.
ROW_LINKS = (
    ("user_id", get_user_model()),
    ("model_id", AIModel),
    ("chatbot_id", Chatbot),
)


def money_display(value: Decimal | None) -> str:
    """Return a USD amount rounded half-up to 6 decimal places, grouped by thousands, for display only."""
    if value is None:
        return "—"
    return f"{value.quantize(MONEY_DISPLAY_PLACES, rounding=ROUND_HALF_UP):,}"


def money_exact(value: Decimal | None) -> str:
    """Return a USD amount with every stored digit and no exponent (10, not 1E+1)."""
    if value is None:
        return ""
    return f"{value.normalize():f}"


def money_html(value: Decimal | None) -> SafeString:
    """Return a USD amount rounded for display, with the exact amount in its tooltip."""
    return format_html('<span title="{} USD">{}</span>', money_exact(value), money_display(value))


@dataclass(frozen=True)
class Drilldown:
    """The admin list a report row opens: the rows behind its figures, for the same period."""

    model: type[Model]
    # Query parameter -> the row attribute holding its value.
    row_params: tuple[tuple[str, str], ...]
    fixed_params: tuple[tuple[str, str], ...] = ()
    noun: str = "requests"


# Each filter is one the change list accepts (a foreign key's id, or a declared list filter), so it
# never answers with ?e=1; the period in the query string filters those two lists by date.
DRILLDOWNS: dict[str, Drilldown] = {
    "top_users_by_cost": Drilldown(OpenRouterRequestCost, (("user__id__exact", "user_id"),)),
    "top_users_by_free_usage": Drilldown(
        OpenRouterRequestCost,
        (("user__id__exact", "user_id"),),
        fixed_params=(("ai_model__is_free__exact", "1"),),
        noun="requests to free models",
    ),
    "top_models_by_usage": Drilldown(OpenRouterRequestCost, (("ai_model__id__exact", "model_id"),)),
    "top_free_models": Drilldown(OpenRouterRequestCost, (("ai_model__id__exact", "model_id"),)),
    "top_chatbots_by_sessions": Drilldown(ChatSession, (("chatbot__id__exact", "chatbot_id"),), noun="sessions"),
    "chatbot_unit_economics": Drilldown(ChatSession, (("chatbot__id__exact", "chatbot_id"),), noun="sessions"),
}


@lru_cache(maxsize=1024)
def _reverse_cached(name: str, pk: Any, urlconf: str | None, script_prefix: str) -> str | None:
    try:
        return reverse(name, args=[] if pk is None else [pk], urlconf=urlconf)
    except NoReverseMatch:
        return None


def _reverse(name: str, pk: Any = None) -> str | None:
    """Return reverse(name, args=[pk]), or None when no URL has that name.

    A report row's links are the same on every load of a page (the same top users, models and
    chatbots), and reverse() is costly next to the rest of a row: the URLs are kept per URL
    configuration and script prefix, the two things that can change them.
    """
    return _reverse_cached(name, pk, get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())


def drilldown_url(*, report_key: str | None, row: Any, period_query: str) -> str | None:
    """Return the admin list of the rows behind one report row, filtered to the row and the period."""
    drilldown = DRILLDOWNS.get(report_key or "")
    if drilldown is None:
        return None
    opts = drilldown.model._meta
    url = _reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    if url is None:
        return None
    params = [f"{name}={getattr(row, attribute)}" for name, attribute in drilldown.row_params]
    params += [f"{name}={value}" for name, value in drilldown.fixed_params]
    if period_query:
        params.append(period_query)
    return f"{url}?{'&'.join(params)}"


def _row_admin_url(row: Any) -> tuple[str, str] | None:
    for attribute, model in ROW_LINKS:
        pk = getattr(row, attribute, None)
        if pk is not None:
            url = _reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", pk)
            if url is None:
                return None
            return url, str(model._meta.verbose_name)
    return None


@register.simple_tag
def report_cell(row: Any, column: Column, report_key: str | None = None, period_query: str = "") -> SafeString:
    """Render one cell of a report row: a name linked to its rows in the period, a grouped count, or an amount."""
    value = getattr(row, column.attribute)
    if column.kind == "money":
        return money_html(value)
    if column.kind == "int":
        return format_html("{}", f"{value:,}")
    record = _row_admin_url(row)
    # A model's display name can be shared; its OpenRouter id, shown on hover, cannot.
    openrouter_id = getattr(row, "openrouter_id", "")
    drilldown = drilldown_url(report_key=report_key, row=row, period_query=period_query)
    if drilldown is not None:
        noun = DRILLDOWNS[report_key].noun
        title = f"{openrouter_id}: its {noun} in the period" if openrouter_id else f"Its {noun} in the period"
        name = format_html('<a class="usage-report-drilldown" href="{}" title="{}">{}</a>', drilldown, title, value)
        if record is None:
            return name
        url, verbose_name = record
        return format_html(
            '{} <a class="usage-report-record" href="{}" title="Open the {} {}">'
            '<img src="{}" alt="Open the {} {}" width="12" height="12"></a>',
            name,
            url,
            verbose_name,
            value,
            static("admin/img/icon-viewlink.svg"),
            verbose_name,
            value,
        )
    if record is None:
        if openrouter_id:
            return format_html('<span title="{}">{}</span>', openrouter_id, value)
        return format_html("{}", value)
    if openrouter_id:
        return format_html('<a href="{}" title="{}">{}</a>', record[0], openrouter_id, value)
    return format_html('<a href="{}">{}</a>', record[0], value)


@register.simple_tag
def report_rows(report: Report, rows: list[Any], period_query: str = "") -> SafeString:
    """Render the body rows of a report table: the rank, then each column's cell (see ``report_cell``).

    Written here rather than as loops in the template: a page draws up to six tables, and the
    template engine's per-cell work was most of their time.
    """
    # The cells are escaped by report_cell; the rank is an int and a column's kind one of the
    # registry's own names, so the rows are joined as they are.
    return mark_safe(  # noqa: S308
        "\n".join(
            f'<tr><td class="usage-report-rank">{rank}</td>'
            + "".join(
                f'<td class="usage-report-{column.kind}">{report_cell(row, column, report.key, period_query)}</td>'
                for column in report.columns
            )
            + "</tr>"
            for rank, row in enumerate(rows, start=1)
        )
    )


@register.simple_tag
def row_drilldown_url(report_key: str, row: Any, period_query: str) -> str:
    """Return the drill-down list of a row (see ``drilldown_url``), or an empty string."""
    return drilldown_url(report_key=report_key, row=row, period_query=period_query) or ""


@register.simple_tag(takes_context=True)
def usage_dashboard_url(context: template.Context) -> str:
    """Return the usage dashboard's URL when the current user may see any of it, else an empty string."""
    request = context.get("request")
    if request is None or not dashboard_access(user=request.user).anything:
        return ""
    return reverse("reports:dashboard")


@register.filter
def money(value: Decimal | None) -> str:
    """Format a USD amount for display."""
    return money_display(value)


@register.filter
def figure(value: Decimal | int | None) -> str:
    """Format a single figure with thousands grouped, keeping its decimals."""
    if value is None:
        return "—"
    return f"{value:,}"


def price_per_million(price: Decimal | None) -> str | None:
    """Return a USD per-token price as USD per million tokens, exact, or None when unknown."""
    if price is None:
        return None
    per_million = price.scaleb(6).normalize()
    if per_million.as_tuple().exponent > -2:
        # Cents at least, as price lists print them: 3.00, not 3.
        per_million = per_million.quantize(Decimal("0.01"))
    return f"{per_million:f}"


@register.simple_tag
def headline_value(value: Decimal | int | None, kind: str) -> SafeString:
    """Render a headline figure by its kind: an amount, a count, a decimal or a percentage."""
    if value is None:
        return format_html('<span title="{}">—</span>', "No request in the period")
    if kind == "money":
        return money_html(value)
    if kind == "percent":
        return format_html("{}&nbsp;%", f"{value:,}")
    return format_html("{}", f"{value:,}")


@register.simple_tag
def headline_change(change: Decimal | None, previous: Decimal | int | None) -> SafeString:
    """Render the change from the previous period: an arrow and a signed percentage, or why there is none."""
    if change is None:
        reason = "nothing to compare with" if previous in (None, 0) else "no figure in this period"
        return format_html('<span class="usage-change usage-change-none" title="{}">—</span>', reason)
    if change > 0:
        return format_html('<span class="usage-change usage-change-up">▲&nbsp;+{}&nbsp;%</span>', f"{change:,}")
    if change < 0:
        return format_html(
            '<span class="usage-change usage-change-down">▼&nbsp;&minus;{}&nbsp;%</span>', f"{-change:,}"
        )
    return format_html('<span class="usage-change usage-change-flat">{}&nbsp;%</span>', "±0.0")
