"""Format report values for the admin: money to 6 places (exact value on hover), counts grouped."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ai_models.models import AIModel
from chatbot.models import Chatbot
from reports.registry import Column

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


def _row_admin_url(row: Any) -> str | None:
    for attribute, model in ROW_LINKS:
        pk = getattr(row, attribute, None)
        if pk is not None:
            try:
                return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
            except NoReverseMatch:
                return None
    return None


@register.simple_tag
def report_cell(row: Any, column: Column) -> SafeString:
    """Render one cell of a report row: a linked name, a grouped count, or a rounded amount."""
    value = getattr(row, column.attribute)
    if column.kind == "money":
        return money_html(value)
    if column.kind == "int":
        return format_html("{}", f"{value:,}")
    url = _row_admin_url(row)
    # A model's display name can be shared; its OpenRouter id, shown on hover, cannot.
    title = getattr(row, "openrouter_id", "")
    if url is None:
        return format_html('<span title="{}">{}</span>', title, value) if title else format_html("{}", value)
    if title:
        return format_html('<a href="{}" title="{}">{}</a>', url, title, value)
    return format_html('<a href="{}">{}</a>', url, value)


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
