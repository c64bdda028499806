"""Admin for chatbots, their sessions and messages, and the cost of every request."""

from django.contrib import admin
from django.http import HttpRequest

from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from core.admin import KnownCountMixin, QuickActionCheckboxMixin, change_list_is_whole
from core.paginators import EstimatedCountPaginator
from reports import selectors
from reports.admin import PeriodAdminMixin, ReportsAdminMixin, SelectedRelatedFilter
from reports.templatetags.report_format import money_html


@admin.register(Chatbot)
class ChatbotAdmin(ReportsAdminMixin, admin.ModelAdmin):
    report_keys = ("top_chatbots_by_sessions",)
    list_display = ("name", "ai_model", "owner", "is_active", "created_at")
    list_filter = ("is_active",)
    list_select_related = ("ai_model", "owner")
    search_fields = ("name", "ai_model__openrouter_id", "owner__username")
    autocomplete_fields = ("ai_model", "owner")


class ChatMessageInline(admin.TabularInline):
    model = ChatMessage
    extra = 0
    fields = ("role", "content", "failure_code", "created_at")


@admin.register(ChatSession)
class ChatSessionAdmin(PeriodAdminMixin, admin.ModelAdmin):
    # A chatbot report's drill-down lands here: the period keeps the list to the sessions it counted.
    period_list_field = "created_at"
    list_display = ("__str__", "user", "chatbot", "created_at")
    list_select_related = ("user", "chatbot")
    list_filter = ("chatbot",)
    search_fields = ("title", "user__username", "chatbot__name")
    raw_id_fields = ("user", "chatbot")
    inlines = (ChatMessageInline,)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    period_count = staticmethod(selectors.session_count)


@admin.register(ChatMessage)
class ChatMessageAdmin(KnownCountMixin, QuickActionCheckboxMixin, admin.ModelAdmin):
    list_display = ("session", "role", "short_content", "failure_code", "created_at")
    list_select_related = ("session",)
    list_filter = ("role",)
    search_fields = ("content",)
    raw_id_fields = ("session", "in_reply_to")
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def list_known_count(self, request: HttpRequest) -> int | None:
        # The whole list, only sorted or paged, is counted exactly from the chatbots' rollups; a
        # search, a filter or a popup counts the list itself.
        return selectors.message_count() if change_list_is_whole(request=request) else None

    @admin.display(description="Content")
    def short_content(self, message: ChatMessage) -> str:
        return message.content[:80]


@admin.register(OpenRouterRequestCost)
class OpenRouterRequestCostAdmin(ReportsAdminMixin, admin.ModelAdmin):
    report_keys = (
        "top_users_by_cost",
        "top_models_by_usage",
        "top_free_models",
        "average_tokens_per_request",
        "top_chatbots_by_sessions",
    )
    show_usage_overview = True
    # The period filters the list too, so that a report row's drill-down lists exactly its requests.
    period_list_field = "created_at"
    # The cost comes early so that it stays on screen when the wide list scrolls sideways.
    list_display = (
        "created_at",
        "user",
        "ai_model",
        "total_tokens",
        "cost",
        "cost_status",
        "prompt_tokens",
        "completion_tokens",
        "generation_id",
    )
    list_select_related = ("user", "ai_model")
    # The user and model filters list only the chosen one: reached from a report row, not picked from all.
    list_filter = (
        "cost_status",
        "ai_model__is_free",
        ("user", SelectedRelatedFilter),
        ("ai_model", SelectedRelatedFilter),
    )
    search_fields = ("generation_id", "user__username", "ai_model__openrouter_id")
    raw_id_fields = ("user", "session", "ai_model")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    period_count = staticmethod(selectors.request_count)

    @admin.display(description="Cost (USD)", ordering="cost_usd")
    def cost(self, request_cost: OpenRouterRequestCost) -> str:
        return money_html(request_cost.cost_usd)
