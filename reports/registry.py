"""The catalogue of reports: each one's title, selector, columns and the models it reads."""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model

from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports import selectors
from reports.periods import Period


@dataclass(frozen=True)
class Column:
    """One column of a report table."""

    label: str
    attribute: str
    kind: str = "text"  # "text", "int" or "money": how the value is formatted and aligned.


@dataclass(frozen=True)
class Report:
    """A report as the admin and the exports show it."""

    key: str
    title: str
    description: str
    models: tuple[type[Model], ...]
    columns: tuple[Column, ...] = ()
    rows: Callable[..., list[Any]] | None = None
    value: Callable[..., Decimal | None] | None = None
    empty_message: str = "No requests recorded yet."

    @property
    def is_single_figure(self) -> bool:
        return self.value is not None

    def permission_codenames(self) -> list[str]:
        """Return the view permissions a user needs to see this report."""
        return [f"{model._meta.app_label}.view_{model._meta.model_name}" for model in self.models]

    def is_visible_to(self, user: Any) -> bool:
        """Return whether ``user`` may see this report: staff with view permission on each model."""
        return bool(user.is_active and user.is_staff and user.has_perms(self.permission_codenames()))

    def compute(self, *, period: Period, limit: int) -> Any:
        """Return the report's rows, or its single figure."""
        if self.value is not None:
            return self.value(period=period)
        return self.rows(period=period, limit=limit)


User = get_user_model()

REPORTS: dict[str, Report] = {
    report.key: report
    for report in (
        Report(
            key="top_users_by_cost",
            title="Top Users by OpenRouter Cost",
            description="Users ranked by what their requests cost.",
            models=(User, OpenRouterRequestCost),
            columns=(
                Column("User", "username"),
                Column("Total cost (USD)", "total_cost_usd", "money"),
                Column("Total tokens", "total_tokens", "int"),
                Column("Requests", "request_count", "int"),
            ),
            rows=selectors.top_users_by_cost,
        ),
        Report(
            key="top_models_by_usage",
            title="Top AI Models by Usage",
            description="AI models ranked by number of requests.",
            models=(AIModel, OpenRouterRequestCost),
            columns=(
                Column("Model", "name"),
                Column("Usage count", "usage_count", "int"),
                Column("Total tokens", "total_tokens", "int"),
                Column("Total cost (USD)", "total_cost_usd", "money"),
            ),
            rows=selectors.top_models_by_usage,
        ),
        Report(
            key="top_free_models",
            title="Top Free AI Models Usage",
            description="Free AI models ranked by number of requests.",
            models=(AIModel, OpenRouterRequestCost),
            columns=(
                Column("Free model", "name"),
                Column("Usage count", "usage_count", "int"),
                Column("Total tokens", "total_tokens", "int"),
            ),
            rows=selectors.top_free_models,
            empty_message="No requests to free models yet.",
        ),
        Report(
            key="average_tokens_per_request",
            title="Average Token Usage",
            description="Average total tokens (prompt + completion) per request.",
            models=(OpenRouterRequestCost,),
            value=selectors.average_tokens_per_request,
        ),
        Report(
            key="top_chatbots_by_sessions",
            title="Top Chatbots by Session Count",
            description="Chatbots ranked by sessions, with the messages in them.",
            models=(Chatbot, ChatSession, ChatMessage),
            columns=(
                Column("Chatbot", "name"),
                Column("Sessions", "session_count", "int"),
                Column("Total messages", "message_count", "int"),
            ),
            rows=selectors.top_chatbots_by_sessions,
            empty_message="No chat sessions yet.",
        ),
        Report(
            key="top_users_by_free_usage",
            title="Top Users by Free Model Usage",
            description="Users ranked by tokens used on free models.",
            models=(User, AIModel, OpenRouterRequestCost),
            columns=(
                Column("User", "username"),
                Column("Total tokens", "total_tokens", "int"),
                Column("Requests", "request_count", "int"),
            ),
            rows=selectors.top_users_by_free_usage,
            empty_message="No requests to free models yet.",
        ),
    )
}


def reports_visible_to(*, user: Any, keys: list[str] | tuple[str, ...]) -> list[Report]:
    """Return the reports among ``keys`` that ``user`` may see, in that order."""
    return [REPORTS[key] for key in keys if REPORTS[key].is_visible_to(user)]
