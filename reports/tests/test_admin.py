"""The usage reports above the admin's change lists: figures, empty states, permissions, queries."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import strip_tags

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)
from core.paginators import EstimatedCountPaginator
from reports.raw_selectors import UserCostRow
from reports.registry import REPORTS
from reports.templatetags import report_format

REQUEST_COSTS_URL = "/admin/chatbot/openrouterrequestcost/"
USERS_URL = "/admin/accounts/user/"
AI_MODELS_URL = "/admin/ai_models/aimodel/"
CHATBOTS_URL = "/admin/chatbot/chatbot/"

TOP_USERS_BY_COST = "Top Users by OpenRouter Cost"
TOP_MODELS = "Top AI Models by Usage"
TOP_FREE_MODELS = "Top Free AI Models Usage"
AVERAGE_TOKENS = "Average Token Usage"
TOP_CHATBOTS = "Top Chatbots by Session Count"
TOP_USERS_BY_FREE_USAGE = "Top Users by Free Model Usage"
ALL_TITLES = (TOP_USERS_BY_COST, TOP_MODELS, TOP_FREE_MODELS, AVERAGE_TOKENS, TOP_CHATBOTS, TOP_USERS_BY_FREE_USAGE)

# Which reports each page shows. Single figures render first, in a row of their own, then the
# tables in the order the admin class lists them.
PAGE_TITLES = {
    REQUEST_COSTS_URL: [AVERAGE_TOKENS, TOP_USERS_BY_COST, TOP_MODELS, TOP_FREE_MODELS, TOP_CHATBOTS],
    USERS_URL: [AVERAGE_TOKENS, TOP_USERS_BY_COST, TOP_USERS_BY_FREE_USAGE],
    AI_MODELS_URL: [TOP_MODELS, TOP_FREE_MODELS],
    CHATBOTS_URL: [TOP_CHATBOTS],
}


# --- Reading the rendered page -------------------------------------------------------------


def _text(fragment: str) -> str:
    return " ".join(unescape(strip_tags(fragment)).split())


def report_titles(content: str) -> list[str]:
    """Return the report titles of a page, in the order shown."""
    return [_text(title) for title in re.findall(r'<h2 id="report-[\w-]+-title">(.*?)</h2>', content, re.S)]


def report_html(content: str, key: str) -> str:
    """Return the HTML of one report's card, or fail."""
    match = re.search(rf'<article[^>]*id="report-{key}"[^>]*>(.*?)</article>', content, re.S)
    assert match, f"report {key} is not on the page"
    return match.group(1)


def report_rows(content: str, key: str) -> list[list[str]]:
    """Return the text of each body row of one report's table."""
    body = re.search(r"<tbody>(.*?)</tbody>", report_html(content, key), re.S)
    assert body, f"report {key} has no table"
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


def report_figure(content: str, key: str) -> str:
    """Return the single figure a report shows."""
    match = re.search(r'<span class="usage-report-value">(.*?)</span>', report_html(content, key), re.S)
    assert match, f"report {key} shows no figure"
    return _text(match.group(1))


def page(client, url: str, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response
    return response.content.decode()


# --- Data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    alice: User
    bob: User
    carol: User
    paid_one: AIModel
    paid_two: AIModel
    free_one: AIModel
    free_two: AIModel
    helpdesk: Chatbot
    tutor: Chatbot


@pytest.fixture
def platform(db) -> Platform:
    """Build a small platform whose every report figure is worked out by hand below."""
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    carol = UserFactory(username="carol")
    paid_one = AIModelFactory(openrouter_id="acme/paid-one", name="Paid One")
    paid_two = AIModelFactory(openrouter_id="acme/paid-two", name="Paid Two")
    free_one = AIModelFactory(openrouter_id="acme/free-one:free", name="Free One", free=True)
    free_two = AIModelFactory(openrouter_id="acme/free-two:free", name="Free Two", free=True)
    AIModelFactory(openrouter_id="acme/never-used", name="Never Used")

    for user, model, prompt, completion, cost in (
        (alice, paid_one, 1000, 500, "0.012345678901"),
        (alice, paid_two, 200, 100, "0.5"),
        (alice, free_one, 400, 0, "0"),
        (bob, paid_one, 3000, 1000, "0.25"),
        (bob, free_one, 100, 50, "0"),
        (carol, free_two, 700, 300, "0"),
        (carol, free_one, 50, 25, "0"),
    ):
        RequestCostFactory(
            user=user, ai_model=model, prompt_tokens=prompt, completion_tokens=completion, cost_usd=Decimal(cost)
        )

    # Helpdesk: 2 sessions with 3 + 2 messages; Tutor: 1 session with 4; Idle: none, so not listed.
    helpdesk = ChatbotFactory(name="Helpdesk", ai_model=paid_one)
    tutor = ChatbotFactory(name="Tutor", ai_model=free_one)
    ChatbotFactory(name="Idle", ai_model=paid_two)
    for chatbot, message_counts in ((helpdesk, (3, 2)), (tutor, (4,))):
        for count in message_counts:
            session = ChatSessionFactory(user=alice, chatbot=chatbot)
            ChatMessageFactory.create_batch(count, session=session)
    return Platform(alice, bob, carol, paid_one, paid_two, free_one, free_two, helpdesk, tutor)


# Users by cost: alice 0.012345678901 + 0.5 + 0 = 0.512345678901 (1500 + 300 + 400 = 2200 tokens, 3 requests),
# bob 0.25 (4000 + 150 = 4150 tokens, 2), carol 0 (1000 + 75 = 1075 tokens, 2). Shown to 6 places, half-up.
TOP_USERS_BY_COST_ROWS = [
    ["1", "alice", "0.512346", "2,200", "3"],
    ["2", "bob", "0.250000", "4,150", "2"],
    ["3", "carol", "0.000000", "1,075", "2"],
]
# Models by requests: Free One 3 (400 + 150 + 75 = 625 tokens), Paid One 2 (1500 + 4000 = 5500 tokens,
# 0.012345678901 + 0.25 = 0.262345678901 USD), then a tie at 1 request broken by tokens: Free Two 1000
# before Paid Two 300. "Never Used" has no request, so it is not listed.
TOP_MODELS_ROWS = [
    ["1", "Free One", "3", "625", "0.000000"],
    ["2", "Paid One", "2", "5,500", "0.262346"],
    ["3", "Free Two", "1", "1,000", "0.000000"],
    ["4", "Paid Two", "1", "300", "0.500000"],
]
TOP_FREE_MODELS_ROWS = [
    ["1", "Free One", "3", "625"],
    ["2", "Free Two", "1", "1,000"],
]
# 2200 + 4150 + 1075 = 7425 tokens over 7 requests = 1060.714… → 1,060.71.
AVERAGE_FIGURE = "1,060.71"
# Sessions, not sessions times messages: Helpdesk 2 sessions (3 + 2 = 5 messages), Tutor 1 (4 messages).
TOP_CHATBOTS_ROWS = [
    ["1", "Helpdesk", "2", "5"],
    ["2", "Tutor", "1", "4"],
]
# Free-model tokens: carol 1000 + 75 = 1075 (2 requests), alice 400 (1), bob 150 (1).
TOP_USERS_BY_FREE_USAGE_ROWS = [
    ["1", "carol", "1,075", "2"],
    ["2", "alice", "400", "1"],
    ["3", "bob", "150", "1"],
]
COST_FIGURES = ("0.512346", "0.512345678901", "0.262346", "0.262345678901", "0.250000", "0.25 USD", "0.500000")


def staff_user(*permissions: tuple[type, str]) -> User:
    """Return an active staff user holding exactly the given (model, action) permissions."""
    user = UserFactory(is_staff=True)
    for model, action in permissions:
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label=model._meta.app_label, codename=f"{action}_{model._meta.model_name}"
            )
        )
    return user


def view(*models: type) -> tuple[tuple[type, str], ...]:
    return tuple((model, "view") for model in models)


# --- Figures ---------------------------------------------------------------------------------


def test_request_costs_page_shows_all_five_reports_with_their_figures(admin_client, platform):
    content = page(admin_client, REQUEST_COSTS_URL)

    assert report_titles(content) == PAGE_TITLES[REQUEST_COSTS_URL]
    assert report_figure(content, "average_tokens_per_request") == AVERAGE_FIGURE
    assert report_rows(content, "top_users_by_cost") == TOP_USERS_BY_COST_ROWS
    assert report_rows(content, "top_models_by_usage") == TOP_MODELS_ROWS
    assert report_rows(content, "top_free_models") == TOP_FREE_MODELS_ROWS
    assert report_rows(content, "top_chatbots_by_sessions") == TOP_CHATBOTS_ROWS
    # Above the standard list, which still lists the 7 requests.
    assert content.index('class="usage-reports"') < content.index('id="changelist"')
    assert content.count('<input type="checkbox" name="_selected_action"') == 7


def test_users_page_shows_cost_free_usage_and_average(admin_client, platform):
    content = page(admin_client, USERS_URL)

    assert report_titles(content) == PAGE_TITLES[USERS_URL]
    assert report_figure(content, "average_tokens_per_request") == AVERAGE_FIGURE
    assert report_rows(content, "top_users_by_cost") == TOP_USERS_BY_COST_ROWS
    assert report_rows(content, "top_users_by_free_usage") == TOP_USERS_BY_FREE_USAGE_ROWS
    assert content.index('class="usage-reports"') < content.index('id="changelist"')


def test_ai_models_page_shows_top_models_and_top_free_models(admin_client, platform):
    content = page(admin_client, AI_MODELS_URL)

    assert report_titles(content) == PAGE_TITLES[AI_MODELS_URL]
    assert report_rows(content, "top_models_by_usage") == TOP_MODELS_ROWS
    assert report_rows(content, "top_free_models") == TOP_FREE_MODELS_ROWS
    assert content.index('class="usage-reports"') < content.index('id="changelist"')


def test_chatbots_page_shows_top_chatbots(admin_client, platform):
    content = page(admin_client, CHATBOTS_URL)

    assert report_titles(content) == PAGE_TITLES[CHATBOTS_URL]
    assert report_rows(content, "top_chatbots_by_sessions") == TOP_CHATBOTS_ROWS
    assert content.index('class="usage-reports"') < content.index('id="changelist"')


def test_exact_cost_is_in_the_tooltip(admin_client, platform):
    content = page(admin_client, REQUEST_COSTS_URL)

    users = report_html(content, "top_users_by_cost")
    assert '<span title="0.512345678901 USD">0.512346</span>' in users
    assert '<span title="0.25 USD">0.250000</span>' in users
    assert '<span title="0 USD">0.000000</span>' in users


def test_exact_cost_tooltip_never_uses_an_exponent(admin_client):
    # 10.000000000000 normalizes to Decimal("1E+1"); the tooltip must still read 10.
    RequestCostFactory(user=UserFactory(username="dora"), cost_usd=Decimal("10"))

    users = report_html(page(admin_client, REQUEST_COSTS_URL), "top_users_by_cost")

    assert '<span title="10 USD">10.000000</span>' in users
    assert "E+" not in users


def test_report_names_link_to_their_rows_and_to_their_admin_pages(admin_client, platform):
    content = page(admin_client, REQUEST_COSTS_URL)

    # A name opens its rows for the period (all time here); the icon beside it opens its record.
    users = report_html(content, "top_users_by_cost")
    assert (
        f'<a class="usage-report-drilldown" href="{REQUEST_COSTS_URL}?user__id__exact={platform.alice.pk}'
        '&amp;period=all-time" title="Its requests in the period">alice</a>'
    ) in users
    assert f'<a class="usage-report-record" href="/admin/accounts/user/{platform.alice.pk}/change/"' in users
    models = report_html(content, "top_models_by_usage")
    # The OpenRouter id tells apart two models of the same display name.
    assert (
        f'<a class="usage-report-drilldown" href="{REQUEST_COSTS_URL}?ai_model__id__exact={platform.paid_one.pk}'
        '&amp;period=all-time" title="acme/paid-one: its requests in the period">Paid One</a>'
    ) in models
    assert (
        f'href="/admin/ai_models/aimodel/{platform.paid_one.pk}/change/" title="Open the AI Model Paid One"' in models
    )
    chatbots = report_html(content, "top_chatbots_by_sessions")
    assert f'href="/admin/chatbot/chatsession/?chatbot__id__exact={platform.helpdesk.pk}&amp;period=all-time"' in (
        chatbots
    )
    assert f'href="/admin/chatbot/chatbot/{platform.helpdesk.pk}/change/"' in chatbots


def test_report_names_are_escaped(admin_client):
    RequestCostFactory(user=UserFactory(username="x<b>y"), ai_model=AIModelFactory(name="<script>alert(1)</script>"))

    content = page(admin_client, REQUEST_COSTS_URL)

    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html(content, "top_models_by_usage")


# --- Empty states ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", list(PAGE_TITLES))
def test_empty_database_shows_each_report_with_its_empty_state(admin_client, url):
    content = page(admin_client, url)

    assert report_titles(content) == PAGE_TITLES[url]
    section = re.search(r'<section class="usage-reports".*?</section>', content, re.S)
    assert section
    assert "<table" not in section.group(0)
    expected_empty = {
        TOP_USERS_BY_COST: "No requests recorded yet.",
        TOP_MODELS: "No requests recorded yet.",
        TOP_FREE_MODELS: "No requests to free models yet.",
        AVERAGE_TOKENS: "No requests recorded yet.",
        TOP_CHATBOTS: "No chat sessions yet.",
        TOP_USERS_BY_FREE_USAGE: "No requests to free models yet.",
    }
    keys = re.findall(r'<article[^>]*id="report-([\w-]+)"', content)
    for key, title in zip(keys, PAGE_TITLES[url], strict=True):
        assert f'<p class="usage-report-empty">{expected_empty[title]}</p>' in report_html(content, key)


def test_paid_requests_only_leave_the_free_reports_empty(admin_client):
    RequestCostFactory(user=UserFactory(username="payer"), prompt_tokens=10, completion_tokens=5)

    content = page(admin_client, USERS_URL)

    assert report_rows(content, "top_users_by_cost") == [["1", "payer", "0.000090", "15", "1"]]
    assert "No requests to free models yet." in report_html(content, "top_users_by_free_usage")


def test_sessions_without_requests_fill_only_the_chatbot_report(admin_client):
    ChatSessionFactory(chatbot=ChatbotFactory(name="Quiet"))

    content = page(admin_client, REQUEST_COSTS_URL)

    assert report_rows(content, "top_chatbots_by_sessions") == [["1", "Quiet", "1", "0"]]
    assert "No requests recorded yet." in report_html(content, "top_users_by_cost")
    assert "No requests recorded yet." in report_html(content, "average_tokens_per_request")


# --- Permissions -----------------------------------------------------------------------------


def test_user_viewer_without_request_cost_permission_sees_no_cost_anywhere(client, platform):
    viewer = staff_user(*view(User))
    client.force_login(viewer)

    response = client.get(USERS_URL)

    assert response.status_code == 200
    content = response.content.decode()
    assert 'class="usage-reports"' not in content
    for title in ALL_TITLES:
        assert title not in content
    for figure in (*COST_FIGURES, AVERAGE_FIGURE, "2,200", "4,150"):
        assert figure not in content
    assert response.context["usage_reports"] == []
    # The standard list is still there, and the request costs stay closed to this user.
    assert "alice" in content
    assert client.get(REQUEST_COSTS_URL).status_code == 403


def test_each_report_needs_view_permission_on_every_model_it_reads(client, platform):
    # Users and request costs, but not AI models: the free-usage report also reads AI models.
    client.force_login(staff_user(*view(User, OpenRouterRequestCost)))

    content = page(client, USERS_URL)

    assert report_titles(content) == [AVERAGE_TOKENS, TOP_USERS_BY_COST]
    assert report_rows(content, "top_users_by_cost") == TOP_USERS_BY_COST_ROWS
    assert TOP_USERS_BY_FREE_USAGE not in content


def test_request_cost_viewer_without_chatbot_permissions_sees_the_cost_reports_only(client, platform):
    client.force_login(staff_user(*view(OpenRouterRequestCost, AIModel)))

    content = page(client, REQUEST_COSTS_URL)

    # No Users permission: no users by cost. No chatbot, session or message permission: no chatbots.
    assert report_titles(content) == [AVERAGE_TOKENS, TOP_MODELS, TOP_FREE_MODELS]
    assert report_rows(content, "top_models_by_usage") == TOP_MODELS_ROWS
    assert "Helpdesk" not in content


def test_chatbots_report_needs_sessions_and_messages_too(client, platform):
    client.force_login(staff_user(*view(Chatbot, ChatSession)))

    content = page(client, CHATBOTS_URL)

    assert report_titles(content) == []
    assert "Helpdesk" in content  # in the standard list


def test_staff_with_view_permission_on_every_model_sees_every_report(client, platform):
    client.force_login(staff_user(*view(User, AIModel, Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)))

    for url, titles in PAGE_TITLES.items():
        content = page(client, url)
        assert report_titles(content) == titles, url
    content = page(client, REQUEST_COSTS_URL)
    assert report_rows(content, "top_users_by_cost") == TOP_USERS_BY_COST_ROWS
    assert report_rows(content, "top_chatbots_by_sessions") == TOP_CHATBOTS_ROWS


@pytest.mark.parametrize("url", list(PAGE_TITLES))
def test_non_staff_user_is_sent_to_the_login_page(client, platform, url):
    everything = view(User, AIModel, Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)
    user = staff_user(*everything)
    user.is_staff = False
    user.save()
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", list(PAGE_TITLES))
def test_anonymous_visitor_is_sent_to_the_login_page(client, platform, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


# --- Queries ---------------------------------------------------------------------------------


def grow_platform(*, size: int) -> None:
    """Add ``size`` users, models, chatbots, sessions, messages and requests: more than a page of top 10."""
    models = [AIModelFactory(free=index % 2 == 0) for index in range(size)]
    users = UserFactory.create_batch(size)
    for index, (user, model) in enumerate(zip(users, models, strict=True)):
        session = ChatSessionFactory(user=user, chatbot=ChatbotFactory(owner=user, ai_model=model))
        ChatMessageFactory.create_batch(2, session=session)
        RequestCostFactory.create_batch(2, user=user, ai_model=model, session=session, prompt_tokens=index)


def page_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    ("url", "max_queries"),
    [
        # Session, user, the list's rows and its count (and the unfiltered count, except on the
        # request list, which skips it), then one query per report, two per top-user report (the
        # bound of the users left out, then the rows; a second round only past 128 users). Besides:
        # Users lists its groups for a filter; AI Models reads its last catalog sync and lists its
        # providers for a filter; the request list adds the headline figures (2: totals, then active
        # users; all time has no previous period) and the daily chart (2: the first request's day,
        # then the days).
        (REQUEST_COSTS_URL, 4 + 5 + 1 + 2 + 2),
        (USERS_URL, 5 + 1 + 3 + 2),
        (AI_MODELS_URL, 5 + 2 + 2),
        (CHATBOTS_URL, 5 + 1),
    ],
)
def test_page_queries_do_not_grow_with_rows(admin_client, url, max_queries, django_assert_max_num_queries):
    grow_platform(size=3)
    small = page_queries(admin_client, url)
    grow_platform(size=30)

    with django_assert_max_num_queries(max_queries):
        large = page_queries(admin_client, url)

    assert large == small


def test_staff_permissions_cost_a_fixed_number_of_queries(client, db):
    client.force_login(staff_user(*view(User, AIModel, Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)))
    grow_platform(size=3)
    small = page_queries(client, REQUEST_COSTS_URL)
    grow_platform(size=30)

    large = page_queries(client, REQUEST_COSTS_URL)

    assert large == small


def test_top_lists_stop_at_ten(admin_client):
    grow_platform(size=12)

    content = page(admin_client, REQUEST_COSTS_URL)

    assert len(report_rows(content, "top_users_by_cost")) == 10
    assert len(report_rows(content, "top_models_by_usage")) == 10
    assert len(report_rows(content, "top_chatbots_by_sessions")) == 10
    # 6 of the 12 models are free.
    assert len(report_rows(content, "top_free_models")) == 6


# --- The standard change list still works ------------------------------------------------------


def test_search_narrows_the_list_but_not_the_reports(admin_client, platform):
    response = admin_client.get(REQUEST_COSTS_URL, {"q": "bob"})

    assert response.status_code == 200
    assert {row.user.username for row in response.context["cl"].result_list} == {"bob"}
    assert response.context["cl"].result_count == 2
    assert report_rows(response.content.decode(), "top_users_by_cost") == TOP_USERS_BY_COST_ROWS


def test_filter_narrows_the_list_without_an_error_redirect(admin_client, platform):
    response = admin_client.get(REQUEST_COSTS_URL, {"ai_model__is_free__exact": "1"})

    assert response.status_code == 200
    # alice, bob and carol (twice) used free models: 4 requests.
    assert response.context["cl"].result_count == 4
    assert report_rows(response.content.decode(), "top_users_by_cost") == TOP_USERS_BY_COST_ROWS


def test_unknown_filter_still_redirects_to_the_error_page_without_report_queries(admin_client, platform):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(REQUEST_COSTS_URL, {"no_such_field": "1"})

    assert response.status_code == 302
    assert response["Location"] == f"{REQUEST_COSTS_URL}?e=1"
    assert not any("chatbot_openrouterrequestcost" in query["sql"] for query in queries.captured_queries)


def test_pagination_and_sorting_by_cost(admin_client, platform, monkeypatch):
    model_admin = admin.site._registry[OpenRouterRequestCost]
    monkeypatch.setattr(model_admin, "list_per_page", 3)
    # The change list numbers its columns after the action checkbox.
    by_cost_desc = f"-{['action_checkbox', *model_admin.list_display].index('cost')}"

    # Sorted by cost, highest first: 0.5, 0.25, 0.012345678901, then the four free requests.
    first = admin_client.get(REQUEST_COSTS_URL, {"o": by_cost_desc})
    second = admin_client.get(REQUEST_COSTS_URL, {"o": by_cost_desc, "p": "2"})

    assert [row.cost_usd for row in first.context["cl"].result_list] == [
        Decimal("0.5"),
        Decimal("0.25"),
        Decimal("0.012345678901"),
    ]
    assert [row.cost_usd for row in second.context["cl"].result_list] == [Decimal(0)] * 3
    assert report_rows(second.content.decode(), "top_users_by_cost") == TOP_USERS_BY_COST_ROWS


def test_request_list_shows_cost_rounded_with_the_exact_value_on_hover(admin_client, platform):
    content = page(admin_client, REQUEST_COSTS_URL)
    rows = content.split('id="result_list"')[1]

    assert '<td class="field-cost"><span title="0.012345678901 USD">0.012346</span></td>' in rows


def test_ai_model_list_shows_prices_per_million_tokens(admin_client):
    # 0.0000003 USD per token * 1,000,000 = 0.30; 0.0000012 * 1,000,000 = 1.20.
    AIModelFactory(prompt_price=Decimal("0.0000003"), completion_price=Decimal("0.0000012"))
    AIModelFactory(prompt_price=None, completion_price=Decimal("0.00000025740"))

    content = page(admin_client, AI_MODELS_URL).split('id="result_list"')[1]

    assert '<td class="field-prompt_price_per_million">0.30</td>' in content
    assert '<td class="field-completion_price_per_million">1.20</td>' in content
    assert '<td class="field-completion_price_per_million">0.2574</td>' in content
    assert '<td class="field-prompt_price_per_million">-</td>' in content


def test_related_object_popup_shows_no_reports(admin_client, platform):
    response = admin_client.get(USERS_URL, {"_popup": "1", "_to_field": "id"})

    assert response.status_code == 200
    assert 'class="usage-reports"' not in response.content.decode()
    assert "usage_reports" not in response.context


def test_action_confirmation_page_shows_no_reports(admin_client, platform):
    response = admin_client.post(
        CHATBOTS_URL,
        {"action": "delete_selected", "_selected_action": [platform.helpdesk.pk]},
    )

    assert response.status_code == 200
    content = response.content.decode()
    assert "admin/delete_selected_confirmation.html" in [template.name for template in response.templates]
    assert 'class="usage-reports"' not in content


def test_report_rows_rank_each_row_and_render_its_cells_escaped(settings):
    settings.STATIC_URL = "/assets/"
    rows = [
        UserCostRow(user_id=7, username="x<b>y", total_cost_usd=Decimal("1.5"), total_tokens=1200, request_count=3),
        UserCostRow(user_id=9, username="zed", total_cost_usd=Decimal("0.25"), total_tokens=40, request_count=1),
    ]

    html = report_format.report_rows(REPORTS["top_users_by_cost"], rows, "period=last-7-days")

    first, second = html.splitlines()
    assert first.startswith('<tr><td class="usage-report-rank">1</td><td class="usage-report-text">')
    assert second.startswith('<tr><td class="usage-report-rank">2</td>')
    assert "<b>" not in first
    assert "x&lt;b&gt;y" in first
    assert 'href="/admin/chatbot/openrouterrequestcost/?user__id__exact=7&amp;period=last-7-days"' in first
    assert 'href="/admin/accounts/user/7/change/"' in first
    # The view-link icon follows STATIC_URL.
    assert '<img src="/assets/admin/img/icon-viewlink.svg"' in first
    assert [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", second)] == ["2", "zed", "0.250000", "40", "1"]


def list_counts(client, url: str, model, **params) -> tuple[int, int]:
    """Return a change list's "N results" and how many COUNT queries it ran over the model's table."""
    table = model._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200
    counted = [q for q in queries.captured_queries if "COUNT(" in q["sql"] and f'FROM "{table}"' in q["sql"]]
    return response.context["cl"].result_count, len(counted)


def test_the_request_list_and_a_period_of_it_are_counted_from_the_rollups(admin_client, monkeypatch):
    # Past the exact count's limit, the list itself would be estimated (PostgreSQL) or counted.
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 2)
    user = UserFactory()
    for day in (1, 2, 2, 3):
        RequestCostFactory(user=user, created_at=datetime(2026, 3, day, 12, tzinfo=UTC))

    def counts(**params) -> tuple[int, int]:
        return list_counts(admin_client, REQUEST_COSTS_URL, OpenRouterRequestCost, **params)

    assert counts() == (4, 0)
    assert counts(**{"from": "2026-03-02", "to": "2026-03-03", "o": "1", "p": "1"}) == (3, 0)
    # A filter or a search counts the list itself.
    assert counts(**{"from": "2026-03-02", "to": "2026-03-02", "q": "x"}) == (0, 1)
    count, counted = counts(user__id__exact=str(user.pk))
    assert count >= 3 and counted == 1


def test_the_whole_message_list_is_counted_from_the_rollups(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 1)
    first, second = ChatSessionFactory(), ChatSessionFactory()
    ChatMessageFactory.create_batch(3, session=first, role="user", content="hello")
    ChatMessageFactory.create_batch(2, session=second, role="assistant", content="hi there")
    second.delete()  # its 2 messages go with it

    def counts(**params) -> tuple[int, int]:
        return list_counts(admin_client, "/admin/chatbot/chatmessage/", ChatMessage, **params)

    assert counts() == (3, 0)
    assert counts(o="-5", p="1") == (3, 0)
    # A search or a filter counts the list itself (past the limit of 1, the count is then the
    # planner's estimate on PostgreSQL: only the query is checked).
    assert counts(q="nothing like it") == (0, 1)
    assert counts(role__exact="user")[1] == 1


def test_the_session_list_and_a_period_of_it_are_counted_from_the_rollups(admin_client, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 1)
    helpdesk = ChatbotFactory()
    for day in (1, 2, 3):
        ChatSessionFactory(chatbot=helpdesk, created_at=datetime(2026, 3, day, 12, tzinfo=UTC))

    def counts(**params) -> tuple[int, int]:
        return list_counts(admin_client, "/admin/chatbot/chatsession/", ChatSession, **params)

    assert counts() == (3, 0)
    assert counts(**{"from": "2026-03-02", "to": "2026-03-31"}) == (2, 0)
    # The chatbot's filter counts the list itself.
    count, counted = counts(**{"chatbot__id__exact": str(helpdesk.pk), "from": "2026-03-03", "to": "2026-03-03"})
    assert (count, counted) == (1, 1)
