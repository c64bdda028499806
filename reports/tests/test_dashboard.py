"""The usage dashboard: its sections and figures for a period, its permissions, its link on the admin index."""

import re

import pytest

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports.tests.explorer_data import PERIOD_QUERY, PERIOD_QUERY_STRING, at, build_explorer, grow
from reports.tests.test_admin import report_figure, report_rows, report_titles, staff_user, view
from reports.tests.test_periods_admin import MINUS, get, period_error, period_status, query_of, text

DASHBOARD_URL = "/admin/reports/dashboard/"
SESSIONS_URL = "/admin/chatbot/chatsession/"
EVERY_MODEL = (User, AIModel, Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)


@pytest.fixture
def explorer(settings, db):
    settings.TIME_ZONE = "UTC"
    return build_explorer()


def economics_rows(content: str) -> list[list[str]]:
    match = re.search(r'<article[^>]*id="report-chatbot_unit_economics".*?<tbody>(.*?)</tbody>', content, re.S)
    assert match, "no unit economics table"
    return [
        [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S)
    ]


def headline(content: str) -> dict[str, str]:
    return {
        key: text(body)
        for key, body in re.findall(r'<div class="usage-headline-item" id="headline-(\w+)">(.*?)</div>', content, re.S)
    }


# --- Figures ---------------------------------------------------------------------------------


def test_dashboard_shows_every_section_for_the_period(admin_client, explorer):
    content = get(admin_client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    assert "<h1>Usage dashboard</h1>" in content
    assert re.search(r'<div class="breadcrumbs">\s*<a href="/admin/">Home</a>\s*&rsaquo; Usage dashboard', content)
    assert period_status(content) == "Showing 2024-01-30 to 2024-02-02 · 4 days."
    # Headline figures beside the previous period's (see explorer_data).
    assert headline(content) == {
        "total_cost_usd": f"Total cost (USD) 1.375000 ▼ {MINUS}84.7 % from 9.000000",
        "request_count": "Requests 5 ▲ +150.0 % from 2",
        "total_tokens": "Tokens 4,000 ▲ +263.6 % from 1,100",
        "active_users": "Active users 3 ▲ +50.0 % from 2",
        "average_tokens_per_request": "Average tokens per request 800.00 ▲ +45.5 % from 550.00",
        "free_request_share": f"Free share of requests 40.00 % ▼ {MINUS}20.0 % from 50.00 %",
    }
    assert re.findall(r'<figure class="usage-chart module" id="chart-(\w+)">', content) == [
        "cost",
        "requests",
        "tokens",
    ]
    # Chatbot unit economics: Helpdesk 2 sessions, 5 messages, r1 r3 r5 at 1.375000000001 USD, so
    # 0.687500000001 a session and 0.275000000000 a message (6 places shown); Tutor's only request was free.
    assert economics_rows(content) == [
        ["Helpdesk", "2", "5", "3", "1.375000", "0.687500", "0.275000", "0.00 %"],
        ["Tutor", "1", "4", "1", "0.000000", "0.000000", "0.000000", "100.00 %"],
    ]
    # All six reports, the single figure first.
    assert report_titles(content) == [
        "Average Token Usage",
        "Top Users by OpenRouter Cost",
        "Top AI Models by Usage",
        "Top Free AI Models Usage",
        "Top Chatbots by Session Count",
        "Top Users by Free Model Usage",
    ]
    assert report_figure(content, "average_tokens_per_request") == "800.00"
    assert report_rows(content, "top_users_by_cost") == [
        ["1", "bob", "1.000000", "2,300", "2"],
        ["2", "alice", "0.375000", "1,500", "2"],
        ["3", "carol", "0.000000", "200", "1"],
    ]
    assert report_rows(content, "top_free_models") == [["1", "Free Model", "2", "500"]]
    assert report_rows(content, "top_users_by_free_usage") == [["1", "bob", "300", "1"], ["2", "carol", "200", "1"]]


def test_dashboard_economics_rows_drill_down_to_their_sessions(admin_client, explorer):
    content = get(admin_client, DASHBOARD_URL, PERIOD_QUERY).content.decode()
    table = re.search(r'id="report-chatbot_unit_economics".*?</table>', content, re.S).group(0)
    links = re.findall(r'<a class="usage-report-drilldown" href="([^"]*)"[^>]*>(\w+)</a>', table)

    assert [name for _, name in links] == ["Helpdesk", "Tutor"]
    for (href, _), sessions in zip(links, (2, 1), strict=True):
        assert query_of(href)["period"] == ["custom"]
        cl = get(admin_client, href.replace("&amp;", "&")).context["cl"]
        assert cl.result_count == sessions


def test_dashboard_all_time_has_no_comparison(admin_client, explorer):
    content = get(admin_client, DASHBOARD_URL).content.decode()

    assert period_status(content) == "Showing All time."
    assert "No comparison: all time has no previous period." in content
    # All 8 requests (see explorer_data), with no previous value or change.
    assert headline(content)["request_count"] == "Requests 8"
    assert 'class="usage-headline-compare"' not in content


def test_dashboard_export_links_carry_the_period(admin_client, explorer):
    content = get(admin_client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    exports = sorted(set(re.findall(r'href="(/admin/reports/export/[^"]*)"', content)))
    query = PERIOD_QUERY_STRING.replace("&", "&amp;")
    assert exports == sorted(
        f"/admin/reports/export/{key}.{export_format}?{query}"
        for key in (
            "average_tokens_per_request",
            "chatbot_unit_economics",
            "daily_usage",
            "top_chatbots_by_sessions",
            "top_free_models",
            "top_models_by_usage",
            "top_users_by_cost",
            "top_users_by_free_usage",
        )
        for export_format in ("csv", "json")
    )


def test_dashboard_with_a_bad_period_explains_and_shows_no_figure(admin_client, explorer):
    response = get(admin_client, DASHBOARD_URL, {"period": "custom", "from": "2024-02-31"})
    content = response.content.decode()

    assert period_error(content) == (
        "From must be a date written YYYY-MM-DD, not '2024-02-31'. No figure is shown until the period is corrected."
    )
    assert report_titles(content) == []
    assert 'class="usage-overview"' not in content
    assert "report-chatbot_unit_economics" not in content
    assert "/admin/reports/export/" not in content


def test_dashboard_of_an_empty_platform(admin_client, db):
    content = get(admin_client, DASHBOARD_URL, {"period": "last-7-days"}).content.decode()

    # Zero figures, a week of zero-height bars, and the reports' empty states.
    assert headline(content)["total_cost_usd"].startswith("Total cost (USD) 0.000000")
    assert headline(content)["average_tokens_per_request"].startswith("Average tokens per request —")
    assert len(re.findall(r'<g class="usage-chart-bar"', content)) == 3 * 7
    assert set(re.findall(r'class="usage-chart-paid"[^>]*height="([\d.]+)"', content)) == {"0.00"}
    assert "No chat sessions or requests in the period." in content
    assert "No requests recorded yet." in content


# --- Permissions -----------------------------------------------------------------------------


def test_staff_without_any_view_permission_is_refused_with_a_reason(client, explorer):
    client.force_login(staff_user())

    response = client.get(DASHBOARD_URL, PERIOD_QUERY)

    assert response.status_code == 403
    content = response.content.decode()
    assert "You may not see any usage figure" in content
    assert "1.375000" not in content
    assert report_titles(content) == []


def test_request_cost_viewer_sees_the_overview_and_the_average_only(client, explorer):
    client.force_login(staff_user(*view(OpenRouterRequestCost)))

    content = get(client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    assert headline(content)["request_count"].startswith("Requests 5")
    assert 'id="chart-cost"' in content
    # The other reports read users, AI models or chatbots too; unit economics reads chatbots.
    assert report_titles(content) == ["Average Token Usage"]
    assert "report-chatbot_unit_economics" not in content
    assert "Helpdesk" not in content
    assert "alice" not in content


def test_chatbot_viewer_sees_the_chatbot_report_only(client, explorer):
    client.force_login(staff_user(*view(Chatbot, ChatSession, ChatMessage)))

    content = get(client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    assert report_titles(content) == ["Top Chatbots by Session Count"]
    assert 'class="usage-overview"' not in content
    assert "report-chatbot_unit_economics" not in content
    assert "1.375000" not in content


def test_unit_economics_needs_chatbots_sessions_messages_and_request_costs(client, explorer):
    client.force_login(staff_user(*view(Chatbot, ChatSession, ChatMessage, OpenRouterRequestCost)))

    content = get(client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    assert economics_rows(content)[0][0] == "Helpdesk"
    assert report_titles(content) == ["Average Token Usage", "Top Chatbots by Session Count"]


def test_staff_with_every_view_permission_sees_everything(client, explorer):
    client.force_login(staff_user(*view(*EVERY_MODEL)))

    content = get(client, DASHBOARD_URL, PERIOD_QUERY).content.decode()

    assert len(report_titles(content)) == 6
    assert len(headline(content)) == 6
    assert len(economics_rows(content)) == 2


@pytest.mark.parametrize("staff", [True, False])
def test_non_staff_and_anonymous_visitors_are_sent_to_the_login_page(client, explorer, staff):
    if staff:
        user = staff_user(*view(*EVERY_MODEL))
        user.is_staff = False
        user.save()
        client.force_login(user)

    response = client.get(DASHBOARD_URL)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={DASHBOARD_URL}"


# --- The admin index links it ------------------------------------------------------------------


def test_admin_index_links_the_dashboard(admin_client, db):
    content = get(admin_client, "/admin/").content.decode()

    assert (
        '<th scope="row" id="reports-dashboard"><a href="/admin/reports/dashboard/">Usage dashboard</a></th>' in content
    )
    # Above the applications, and the applications are all still there.
    assert content.index("usage-dashboard-module") < content.index('class="app-accounts module')
    assert 'class="app-chatbot module' in content


def test_admin_index_has_no_dashboard_link_for_staff_who_may_see_none_of_it(client, db):
    client.force_login(staff_user(*view(ChatSession)))

    content = get(client, "/admin/").content.decode()

    assert "Usage dashboard" not in content
    assert 'class="app-chatbot module' in content


def test_admin_index_links_the_dashboard_for_a_chatbot_viewer(client, db):
    client.force_login(staff_user(*view(Chatbot, ChatSession, ChatMessage)))

    assert "/admin/reports/dashboard/" in get(client, "/admin/").content.decode()


# --- Queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # Session and user; the first request (does the period end before it?); 6 reports, and 2
        # bounds of the users the top-user reports leave out (one round up to 128 users); 3 for
        # the headline figures and the previous period's (the totals of each, the active users of
        # both); 1 for the days; 1 for unit economics.
        (PERIOD_QUERY, 2 + 1 + 6 + 2 + 3 + 1 + 1),
        # All time: no previous period, and the days start at the first request's, read once more.
        ({}, 2 + 6 + 2 + 2 + 2 + 1),
    ],
)
def test_dashboard_issues_a_fixed_number_of_queries_whatever_the_data(
    admin_client, explorer, params, expected, django_assert_num_queries
):
    grow(size=3, when=at(2024, 1, 31, 1))
    with django_assert_num_queries(expected):
        assert admin_client.get(DASHBOARD_URL, params).status_code == 200

    grow(size=30, when=at(2024, 2, 1, 1))

    with django_assert_num_queries(expected):
        content = admin_client.get(DASHBOARD_URL, params).content.decode()
    assert len(report_rows(content, "top_users_by_cost")) == 10


def test_dashboard_queries_for_staff_are_fixed_too(client, explorer, django_assert_num_queries):
    client.force_login(staff_user(*view(*EVERY_MODEL)))
    grow(size=3, when=at(2024, 1, 31, 1))
    # As for a superuser, and the user's permissions and their groups' (read once, then cached).
    with django_assert_num_queries(16 + 2):
        client.get(DASHBOARD_URL, PERIOD_QUERY)

    grow(size=30, when=at(2024, 2, 1, 1))

    with django_assert_num_queries(16 + 2):
        client.get(DASHBOARD_URL, PERIOD_QUERY)
