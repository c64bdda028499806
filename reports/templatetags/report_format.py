"""Format report values for the admin: money to 6 places (exact value on hover), counts grouped."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.utils.html import format_html

from reports.registry import Column

register = template.Library()

MONEY_DISPLAY_PLACES = Decimal("0.000001")


def money_display(value: Decimal | None) -> str:
    """Return a USD amount rounded half-up to 6 decimal places, for display only."""
    if value is None:
        return "—"
    return f"{value.quantize(MONEY_DISPLAY_PLACES, rounding=ROUND_HALF_UP):,}"


@register.simple_tag
def report_cell(row: Any, column: Column) -> str:
    """Render one cell of a report row."""
    value = getattr(row, column.attribute)
    if column.kind == "money":
        return format_html(
            '<span title="{} USD">{}</span>', value.normalize() if value is not None else "", money_display(value)
        )
    if column.kind == "int":
        return f"{value:,}"
    return format_html("{}", value)


@register.filter
def money(value: Decimal | None) -> str:
    """Format a USD amount for display."""
    return money_display(value)
