"""The report period on the admin's change lists: presets, custom ranges, bad input, links that keep it, drill-down."""

import re
from datetime import date
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import admin
from django.db.models import Sum
from django.utils.html import strip_tags

from accounts.models import User
from ai_models.models import AIModel
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from reports.registry import REPORTS
from reports.tests.explorer_data import (
    PERIOD,
    PERIOD_QUERY,
    PERIOD_QUERY_STRING,
    at,
    build_explorer,
    grow,
)
from reports.tests.test_admin import report_html, report_rows, staff_user, view

REQUEST_COSTS_URL = "/admin/chatbot/openrouterrequestcost/"
SESSIONS_URL = "/admin/chatbot/chatsession/"
USERS_URL = "/admin/accounts/user/"
AI_MODELS_URL = "/admin/ai_models/aimodel/"
CHATBOTS_URL = "/admin/chatbot/chatbot/"
DASHBOARD_URL = "/admin/reports/dashboard/"
PERIOD_ONLY = {"period": ["custom"], "from": ["2024-01-30"], "to": ["2024-02-02"]}
# A decrease reads with a true minus sign, not a hyphen.
MINUS = "\u2212"


@pytest.fixture
def explorer(settings, db):
    settings.TIME_ZONE = "UTC"
    return build_explorer()


@pytest.fixture
def today(monkeypatch) -> date:
    """Make 2024-02-02 today for the presets: "last 7 days" is then 2024-01-27 to 2024-02-02."""
    fixed = date(2024, 2, 2)
    monkeypatch.setattr("reports.http.period_today", lambda: fixed)
    return fixed


def get(client, url: str, params: dict | None = None):
    response = client.get(url, params or {})
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    return response


def text(fragment: str) -> str:
    return " ".join(unescape(strip_tags(fragment)).split())


def query_of(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(unescape(href)).query)


def hrefs(content: str, pattern: str) -> list[str]:
    """Return the href of every link whose opening tag matches ``pattern``."""
    return [unescape(href) for href in re.findall(rf'<a [^>]*?href="([^"]*)"[^>]*{pattern}', content)]


def period_status(content: str) -> str:
    match = re.search(r'<p class="usage-period-status"[^>]*>(.*?)</p>', content, re.S)
    assert match, "no period status on the page"
    return text(match.group(1))


def period_error(content: str) -> str | None:
    match = re.search(r'<p class="errornote usage-period-error"[^>]*>(.*?)</p>', content, re.S)
    return text(match.group(1)) if match else None


# --- The period selects the figures ----------------------------------------------------------


def test_custom_period_across_a_month_boundary_on_the_request_costs_page(admin_client, explorer):
    response = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY)
    content = response.content.decode()

    assert (
        period_status(content) == "Showing 2024-01-30 to 2024-02-02 · 4 days · the period filters the list below too."
    )
    # bob r2 + r5: 0 + 1.000000000001 USD, 300 + 2000 tokens; alice r1 + r3: 0.375, 1500; carol r4: 3e-12, 200.
    assert report_rows(content, "top_users_by_cost") == [
        ["1", "bob", "1.000000", "2,300", "2"],
        ["2", "alice", "0.375000", "1,500", "2"],
        ["3", "carol", "0.000000", "200", "1"],
    ]
    # Paid r1, r3, r5 = 3 requests, 3500 tokens; free r2, r4 = 2, 500.
    assert report_rows(content, "top_models_by_usage") == [
        ["1", "Paid Model", "3", "3,500", "1.375000"],
        ["2", "Free Model", "2", "500", "0.000000"],
    ]
    # 4000 / 5
    assert "800.00" in report_html(content, "average_tokens_per_request")
    # Sessions of the period: Helpdesk s1, s2 (3 + 2 messages), Tutor s3 (4).
    assert report_rows(content, "top_chatbots_by_sessions") == [["1", "Helpdesk", "2", "5"], ["2", "Tutor", "1", "4"]]
    # The list shows the period's 5 requests, newest first.
    cl = response.context["cl"]
    assert cl.result_count == 5
    assert [row.pk for row in cl.result_list] == [explorer.requests[key].pk for key in ("r5", "r4", "r3", "r2", "r1")]


def test_headline_figures_and_their_change_on_the_request_costs_page(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    def tile(key: str) -> str:
        match = re.search(rf'<div class="usage-headline-item" id="headline-{key}">(.*?)</div>', content, re.S)
        assert match, key
        return text(match.group(1))

    # Current, change and previous: see explorer_data and test_explorer_selectors.
    assert tile("total_cost_usd") == f"Total cost (USD) 1.375000 ▼ {MINUS}84.7 % from 9.000000"
    assert tile("request_count") == "Requests 5 ▲ +150.0 % from 2"
    assert tile("total_tokens") == "Tokens 4,000 ▲ +263.6 % from 1,100"
    assert tile("active_users") == "Active users 3 ▲ +50.0 % from 2"
    assert tile("average_tokens_per_request") == "Average tokens per request 800.00 ▲ +45.5 % from 550.00"
    assert tile("free_request_share") == f"Free share of requests 40.00 % ▼ {MINUS}20.0 % from 50.00 %"
    assert "Change against the previous period, 2024-01-26 to 2024-01-29." in content


def test_request_costs_page_draws_the_daily_charts_with_an_idle_day_at_zero(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    charts = re.findall(r'<figure class="usage-chart module" id="chart-(\w+)">(.*?)</figure>', content, re.S)
    assert [key for key, _ in charts] == ["cost", "requests", "tokens"]
    requests_chart = dict(charts)["requests"]
    bars = re.findall(r'<g class="usage-chart-bar" aria-label="([^"]*)">(.*?)</g>', requests_chart, re.S)
    assert [label for label, _ in bars] == [
        "Tue 2024-01-30: 2 requests (paid 1, free 1)",
        "Wed 2024-01-31: 0 requests (paid 0, free 0)",
        "Thu 2024-02-01: 2 requests (paid 1, free 1)",
        "Fri 2024-02-02: 1 requests (paid 1, free 0)",
    ]
    # The idle day is a bar of zero height, not a missing one.
    idle = bars[1][1]
    assert re.search(r'class="usage-chart-paid"[^>]*height="0.00"', idle)
    assert re.search(r'class="usage-chart-free"[^>]*height="0.00"', idle)
    # The text equivalent: the svg is labelled, and a table holds every day.
    assert 'role="img" aria-labelledby="chart-requests-title chart-requests-desc"' in requests_chart
    table = re.search(r"<tbody>(.*?)</tbody>", requests_chart, re.S).group(1)
    assert [
        [text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ] == [
        ["Tue 2024-01-30", "1", "1", "2"],
        ["Wed 2024-01-31", "0", "0", "0"],
        ["Thu 2024-02-01", "1", "1", "2"],
        ["Fri 2024-02-02", "1", "0", "1"],
    ]


def test_presets_select_days_relative_to_today(admin_client, explorer, today):
    cases = {
        "today": ("Today (2024-02-02 to 2024-02-02) · 1 day", 1),  # r5
        "last-7-days": ("Last 7 days (2024-01-27 to 2024-02-02) · 7 days", 6),  # r0 .. r5
        "last-30-days": ("Last 30 days (2024-01-04 to 2024-02-02) · 30 days", 7),  # and "before"
        "this-month": ("This month (2024-02-01 to 2024-02-02) · 2 days", 3),  # r3, r4, r5
        "last-month": ("Last month (2024-01-01 to 2024-01-31) · 31 days", 4),  # before, r0, r1, r2
        "all-time": ("All time", 8),
    }
    for preset, (label, count) in cases.items():
        response = get(admin_client, REQUEST_COSTS_URL, {"period": preset})
        content = response.content.decode()
        assert period_status(content).startswith(f"Showing {label}"), preset
        assert response.context["cl"].result_count == count, preset
        current = re.findall(r'<a href="[^"]*" data-period="([\w-]+)" aria-current="true"', content)
        assert current == [preset]


def test_no_period_means_all_time(admin_client, explorer):
    response = get(admin_client, REQUEST_COSTS_URL)

    content = response.content.decode()
    assert period_status(content).startswith("Showing All time ·")
    assert response.context["cl"].result_count == 8
    assert "No comparison: all time has no previous period." in content
    assert 'class="usage-headline-compare"' not in content


def test_a_period_open_at_one_end_has_no_comparison(admin_client, explorer):
    response = get(admin_client, REQUEST_COSTS_URL, {"period": "custom", "to": "2024-01-30"})
    content = response.content.decode()

    assert period_status(content).startswith("Showing Up to 2024-01-30 · the period filters")
    assert "No comparison: a period open at one end has no previous period of the same length." in content
    # Up to the end of the 30th, inclusive: "before", r0, r1 and r2 (in the 30th's last microsecond).
    assert response.context["cl"].result_count == 4


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "custom", "from": "2024-02-30"}, "From must be a date written YYYY-MM-DD, not '2024-02-30'."),
        ({"period": "custom", "from": "yesterday"}, "From must be a date written YYYY-MM-DD, not 'yesterday'."),
        (
            {"period": "custom", "from": "2024-02-02", "to": "2024-01-30"},
            "The period starts (2024-02-02) after it ends (2024-01-30).",
        ),
        ({"period": "fortnight"}, "Unknown period 'fortnight'; choose one of:"),
        (
            {"period": "custom", "from": "2000-01-01", "to": "2024-01-01"},
            "The period spans 8767 days; the longest allowed is 3660.",
        ),
        ({"period": "custom", "from": "2000-01-01"}, "The period from 2000-01-01 to today spans"),
        ({"period": "custom"}, "A custom period needs a from date, a to date, or both."),
        ({"period": "today", "from": "2024-01-01"}, "Choose either the period 'today' or a from/to range, not both."),
        ({"period": "custom", "to": "9999-12-31"}, "To must be a date between 1900-01-01 and 9998-12-31"),
        ({"period": "custom", "from": "0001-01-01", "to": "0001-01-02"}, "From must be a date between 1900-01-01"),
    ],
)
def test_bad_period_shows_a_message_and_no_figure_and_never_fails(admin_client, explorer, params, message):
    response = get(admin_client, REQUEST_COSTS_URL, params)
    content = response.content.decode()

    error = period_error(content)
    assert error is not None and message in error
    assert error.endswith("No figure is shown until the period is corrected; the list below is not filtered by period.")
    assert 'class="usage-reports"' not in content
    assert 'class="usage-overview"' not in content
    assert response.context["usage_reports"] == []
    # The standard list still works, over all time.
    assert response.context["cl"].result_count == 8
    # What was typed stays in the form to be corrected; the presets still lead out.
    if "from" in params:
        assert re.search(rf'name="from" value="{re.escape(params["from"])}" aria-invalid="true"', content)
    assert hrefs(content, 'data-period="last-7-days"') == ["?period=last-7-days"]


@pytest.mark.parametrize("url", [USERS_URL, AI_MODELS_URL, CHATBOTS_URL, SESSIONS_URL, DASHBOARD_URL])
def test_bad_period_on_every_report_page(admin_client, explorer, url):
    content = get(admin_client, url, {"period": "custom", "from": "2024-02-02", "to": "2024-01-30"}).content.decode()

    assert "The period starts (2024-02-02) after it ends (2024-01-30)." in period_error(content)
    assert 'class="usage-reports"' not in content


def test_a_period_before_the_first_request_says_so(admin_client, explorer):
    response = get(admin_client, REQUEST_COSTS_URL, {"period": "custom", "from": "2023-12-01", "to": "2023-12-31"})
    content = response.content.decode()

    # The first request ("before") is on 2024-01-26.
    assert (
        '<li class="warning" role="status">The period ends before the first recorded request (2024-01-26): '
        "there is nothing to show for it.</li>"
    ) in content
    assert period_error(content) is None
    assert "No requests recorded yet." in report_html(content, "top_users_by_cost")
    assert response.context["cl"].result_count == 0


def test_a_period_after_today_says_so(admin_client, explorer, today):
    content = get(admin_client, USERS_URL, {"period": "custom", "from": "2024-03-01"}).content.decode()

    assert "The period starts after today (2024-02-02): nothing has been recorded in it yet." in content


def test_a_period_with_data_has_no_notice(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    assert "usage-period-notice" not in content
    assert period_error(content) is None


# --- The change list keeps working, and keeps the period ---------------------------------------


def test_period_params_are_not_taken_for_field_lookups(admin_client, explorer):
    # Without the period-aware change list, "period", "from" and "to" would redirect to ?e=1.
    for url in (REQUEST_COSTS_URL, SESSIONS_URL, USERS_URL, AI_MODELS_URL, CHATBOTS_URL):
        response = admin_client.get(url, PERIOD_QUERY)
        assert response.status_code == 200, url


def test_unknown_lookups_still_redirect_to_the_error_page(admin_client, explorer):
    response = admin_client.get(REQUEST_COSTS_URL, {**PERIOD_QUERY, "no_such_field": "1"})

    assert response.status_code == 302
    assert response["Location"] == f"{REQUEST_COSTS_URL}?e=1"


def test_filter_links_keep_the_period_and_filter_within_it(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    filter_nav = re.search(r'<nav id="changelist-filter".*?</nav>', content, re.S).group(0)
    free_yes = [href for href in re.findall(r'href="([^"]*)"', filter_nav) if "ai_model__is_free__exact=1" in href]
    assert len(free_yes) == 1
    assert query_of(free_yes[0]) == {**PERIOD_ONLY, "ai_model__is_free__exact": ["1"]}

    response = get(admin_client, REQUEST_COSTS_URL + unescape(free_yes[0]))

    # Free requests of the period: r2, r4.
    assert response.context["cl"].result_count == 2
    # The "clear all filters" link drops the filter but keeps the period.
    clear = re.search(r'<a href="([^"]*)">&#10006; Clear all filters</a>', response.content.decode())
    assert query_of(clear.group(1)) == PERIOD_ONLY


def test_search_keeps_the_period(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()
    search_form = re.search(r'<form id="changelist-search".*?</form>', content, re.S).group(0)
    for name, value in PERIOD_QUERY.items():
        assert f'<input type="hidden" name="{name}" value="{value}">' in search_form

    response = get(admin_client, REQUEST_COSTS_URL, {**PERIOD_QUERY, "q": "bob"})

    # bob's requests in the period: r2, r5 (r0 is dave's, "after" is alice's).
    assert response.context["cl"].result_count == 2
    assert period_status(response.content.decode()).startswith("Showing 2024-01-30 to 2024-02-02")


def test_pagination_and_sorting_keep_the_period(admin_client, explorer, monkeypatch):
    model_admin = admin.site.get_model_admin(OpenRouterRequestCost)
    monkeypatch.setattr(model_admin, "list_per_page", 2)
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    pages = re.findall(r'<a href="([^"]*)"(?: class="end")?>(\d)</a>', content)
    assert [(number, query_of(href)) for href, number in pages] == [
        ("2", {**PERIOD_ONLY, "p": ["2"]}),
        ("3", {**PERIOD_ONLY, "p": ["3"]}),
    ]
    sort_links = re.findall(r'<a href="(\?(?:[^"]*&amp;)?o=[^"]*)"', content)
    assert sort_links and all(
        {key: value for key, value in query_of(href).items() if key != "o"} == PERIOD_ONLY for href in sort_links
    )

    third = get(admin_client, REQUEST_COSTS_URL, {**PERIOD_QUERY, "p": "3"})

    # 5 requests, 2 a page: the third page holds the oldest, r1.
    assert [row.pk for row in third.context["cl"].result_list] == [explorer.requests["r1"].pk]


def test_period_bar_links_keep_filters_and_search_but_leave_the_page(admin_client, explorer):
    params = {**PERIOD_QUERY, "ai_model__is_free__exact": "0", "q": "alice", "o": "1", "p": "1"}
    content = get(admin_client, REQUEST_COSTS_URL, params).content.decode()

    (last_month,) = hrefs(content, 'data-period="last-month"')
    assert query_of(last_month) == {
        "ai_model__is_free__exact": ["0"],
        "q": ["alice"],
        "o": ["1"],
        "period": ["last-month"],
    }
    # The custom form resubmits them as hidden fields, with the current dates filled in.
    form = re.search(r'<form class="usage-period".*?</form>', content, re.S).group(0)
    for name, value in (("ai_model__is_free__exact", "0"), ("q", "alice"), ("o", "1"), ("period", "custom")):
        assert f'<input type="hidden" name="{name}" value="{value}">' in form
    assert 'name="p"' not in form
    assert '<input type="date" id="usage-period-from" name="from" value="2024-01-30">' in form
    assert '<input type="date" id="usage-period-to" name="to" value="2024-02-02">' in form


def test_report_nav_links_every_report_page_with_the_period(admin_client, explorer):
    content = get(admin_client, USERS_URL, PERIOD_QUERY).content.decode()

    nav = re.search(r'<nav class="usage-nav".*?</nav>', content, re.S).group(0)
    links = re.findall(r'<a href="([^"]*)"( aria-current="page")?>([^<]*)</a>', nav)
    assert [(label, unescape(href), bool(current)) for href, current, label in links] == [
        ("Dashboard", f"{DASHBOARD_URL}?{PERIOD_QUERY_STRING}", False),
        ("Request costs", f"{REQUEST_COSTS_URL}?{PERIOD_QUERY_STRING}", False),
        ("Users", f"{USERS_URL}?{PERIOD_QUERY_STRING}", True),
        ("AI models", f"{AI_MODELS_URL}?{PERIOD_QUERY_STRING}", False),
        ("Chatbots", f"{CHATBOTS_URL}?{PERIOD_QUERY_STRING}", False),
        ("Chat sessions", f"{SESSIONS_URL}?{PERIOD_QUERY_STRING}", False),
    ]


def test_report_nav_lists_only_pages_the_user_may_view(client, explorer):
    client.force_login(staff_user(*view(User, OpenRouterRequestCost)))

    content = get(client, USERS_URL, {"period": "all-time"}).content.decode()

    nav = re.search(r'<nav class="usage-nav".*?</nav>', content, re.S).group(0)
    assert re.findall(r">([^<]+)</a>", nav) == ["Dashboard", "Request costs", "Users"]


def test_users_page_reports_follow_the_period_but_not_the_list(admin_client, explorer):
    response = get(admin_client, USERS_URL, PERIOD_QUERY)
    content = response.content.decode()

    assert period_status(content).endswith("the list below is not filtered by period.")
    # Free-model tokens in the period: bob r2 300, carol r4 200 (alice's free request is before it).
    assert report_rows(content, "top_users_by_free_usage") == [["1", "bob", "300", "1"], ["2", "carol", "200", "1"]]
    # Every user is listed: alice, bob, carol, dave, and the admin.
    assert response.context["cl"].result_count == 5


def test_chat_sessions_list_is_filtered_by_the_period(admin_client, explorer):
    response = get(admin_client, SESSIONS_URL, PERIOD_QUERY)

    # s1, s2, s3 (s0 is on the 29th).
    assert {row.pk for row in response.context["cl"].result_list} == {
        explorer.sessions[key].pk for key in ("s1", "s2", "s3")
    }
    assert 'class="usage-reports"' not in response.content.decode()
    assert period_status(response.content.decode()).endswith("the period filters the list below too.")


def test_chat_messages_page_is_left_alone(admin_client, explorer):
    # Not a report page: no period bar, and its own list stays as it was.
    content = get(admin_client, "/admin/chatbot/chatmessage/").content.decode()

    assert "usage-period" not in content


# --- Drill-down ------------------------------------------------------------------------------


def drilldown_links(content: str, report_key: str) -> list[tuple[str, str]]:
    """Return (name, href) of the drill-down link of each row of a report."""
    return [
        (text(name), unescape(href))
        for href, name in re.findall(
            r'<a class="usage-report-drilldown" href="([^"]*)"[^>]*>(.*?)</a>', report_html(content, report_key), re.S
        )
    ]


REQUEST_REPORTS = {
    # report key: (row's count attribute, row's tokens attribute, row's cost attribute or None)
    "top_users_by_cost": ("request_count", "total_tokens", "total_cost_usd"),
    "top_models_by_usage": ("usage_count", "total_tokens", "total_cost_usd"),
    "top_free_models": ("usage_count", "total_tokens", None),
    "top_users_by_free_usage": ("request_count", "total_tokens", None),
}


# Where each report with request rows is shown.
REQUEST_REPORT_PAGES = [
    (REQUEST_COSTS_URL, "top_users_by_cost"),
    (REQUEST_COSTS_URL, "top_models_by_usage"),
    (REQUEST_COSTS_URL, "top_free_models"),
    (USERS_URL, "top_users_by_cost"),
    (USERS_URL, "top_users_by_free_usage"),
    (AI_MODELS_URL, "top_models_by_usage"),
    (AI_MODELS_URL, "top_free_models"),
    *((DASHBOARD_URL, key) for key in REQUEST_REPORTS),
]


@pytest.mark.parametrize(("page_url", "report_key"), REQUEST_REPORT_PAGES)
def test_drill_down_from_a_request_report_row_lists_exactly_its_requests(admin_client, explorer, page_url, report_key):
    content = get(admin_client, page_url, PERIOD_QUERY).content.decode()
    rows = REPORTS[report_key].compute(period=PERIOD, limit=10)
    links = drilldown_links(content, report_key)
    assert [name for name, _ in links] == [getattr(row, "username", None) or row.name for row in rows]
    count_attribute, tokens_attribute, cost_attribute = REQUEST_REPORTS[report_key]

    for row, (_, href) in zip(rows, links, strict=True):
        assert href.startswith(REQUEST_COSTS_URL)
        assert {key: value for key, value in query_of(href).items() if key in PERIOD_ONLY} == PERIOD_ONLY
        response = get(admin_client, href)
        cl = response.context["cl"]
        # The filtered list agrees with the report row: its count, and sums over its rows.
        assert cl.result_count == getattr(row, count_attribute), href
        totals = cl.queryset.aggregate(tokens=Sum("total_tokens"), cost=Sum("cost_usd"))
        assert totals["tokens"] == getattr(row, tokens_attribute), href
        if cost_attribute:
            assert totals["cost"] == getattr(row, cost_attribute), href
        if report_key in {"top_free_models", "top_users_by_free_usage"}:
            assert all(request.ai_model.is_free for request in cl.queryset)


def test_drill_down_to_a_users_free_requests_shows_the_filters_in_the_sidebar(admin_client, explorer):
    content = get(admin_client, USERS_URL, PERIOD_QUERY).content.decode()
    (bob, _carol) = drilldown_links(content, "top_users_by_free_usage")

    assert query_of(bob[1]) == {
        **PERIOD_ONLY,
        "user__id__exact": [str(explorer.bob.pk)],
        "ai_model__is_free__exact": ["1"],
    }
    response = get(admin_client, bob[1])
    filters = re.search(r'<nav id="changelist-filter".*?</nav>', response.content.decode(), re.S).group(0)

    # The chosen user, as the only choice of "By user", and "Yes" under "By is free".
    assert re.search(r'<li class="selected">\s*<a href="[^"]*"[^>]*>bob</a>', filters)
    assert re.search(r'<li class="selected">\s*<a href="[^"]*"[^>]*>Yes</a>', filters)
    assert "alice" not in filters
    # The figures fold away while the list is narrowed, so the list comes first.
    assert '<details class="usage-figures">' in response.content.decode()
    assert [row.pk for row in response.context["cl"].result_list] == [explorer.requests["r2"].pk]


@pytest.mark.parametrize("page_url", [CHATBOTS_URL, REQUEST_COSTS_URL, DASHBOARD_URL])
def test_drill_down_from_a_chatbot_row_lists_exactly_its_sessions(admin_client, explorer, page_url):
    content = get(admin_client, page_url, PERIOD_QUERY).content.decode()
    links = drilldown_links(content, "top_chatbots_by_sessions")

    assert [name for name, _ in links] == ["Helpdesk", "Tutor"]
    for (_, href), sessions in zip(links, (2, 1), strict=True):
        assert href.startswith(SESSIONS_URL)
        cl = get(admin_client, href).context["cl"]
        assert cl.result_count == sessions
        # And the messages in those sessions: Helpdesk s1 3 (+1 after the period) and s2 2; Tutor s3 4.
        messages = ChatMessage.objects.filter(session__in=cl.queryset, created_at__lt=at(2024, 2, 3)).count()
        assert messages == {2: 5, 1: 4}[sessions]


def test_unfiltered_page_keeps_the_figures_open(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    assert '<details class="usage-figures" open>' in content


def test_a_drill_down_to_a_missing_user_lists_nothing(admin_client, explorer):
    response = get(admin_client, REQUEST_COSTS_URL, {**PERIOD_QUERY, "user__id__exact": "999999"})

    # Not every request: the lookup applies even though no user is there to name in the sidebar.
    assert response.context["cl"].result_count == 0


def test_a_malformed_drill_down_id_redirects_to_the_error_page(admin_client, explorer):
    response = admin_client.get(REQUEST_COSTS_URL, {**PERIOD_QUERY, "user__id__exact": "abc"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_report_names_keep_a_link_to_their_record(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    users = report_html(content, "top_users_by_cost")
    assert f'<a class="usage-report-record" href="/admin/accounts/user/{explorer.bob.pk}/change/"' in users
    models = report_html(content, "top_models_by_usage")
    period = PERIOD_QUERY_STRING.replace("&", "&amp;")
    assert f'href="{REQUEST_COSTS_URL}?ai_model__id__exact={explorer.paid.pk}&amp;{period}"' in models
    assert 'title="acme/paid: its requests in the period"' in models


def test_export_links_carry_the_period(admin_client, explorer):
    content = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    exports = hrefs(content, r'aria-label="Download Top Users by OpenRouter Cost as (?:CSV|JSON)"')
    assert exports == [
        f"/admin/reports/export/top_users_by_cost.csv?{PERIOD_QUERY_STRING}",
        f"/admin/reports/export/top_users_by_cost.json?{PERIOD_QUERY_STRING}",
    ]
    assert f'href="/admin/reports/export/daily_usage.csv?{PERIOD_QUERY_STRING.replace("&", "&amp;")}"' in content


# --- Permissions -----------------------------------------------------------------------------


def test_overview_needs_the_request_cost_view_permission(client, explorer):
    client.force_login(staff_user(*view(Chatbot, ChatSession, ChatMessage)))

    content = get(client, CHATBOTS_URL, PERIOD_QUERY).content.decode()

    assert 'class="usage-overview"' not in content
    assert report_rows(content, "top_chatbots_by_sessions") == [["1", "Helpdesk", "2", "5"], ["2", "Tutor", "1", "4"]]


def test_request_cost_viewer_sees_the_overview(client, explorer):
    client.force_login(staff_user(*view(OpenRouterRequestCost, AIModel)))

    content = get(client, REQUEST_COSTS_URL, PERIOD_QUERY).content.decode()

    assert 'class="usage-overview"' in content
    assert 'id="headline-total_cost_usd"' in content


# --- Queries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        # Session, user, the list's count and rows (no unfiltered count on this big table), 5 reports
        # (and the pruning bound of the top-user report), 3 for the headline figures and the
        # previous period's (the totals of each, the active users of both), 1 for the days, 1 for
        # the first request (does the period end before it?).
        (REQUEST_COSTS_URL, PERIOD_QUERY, 4 + 5 + 1 + 3 + 1 + 1),
        # Drilled down to a user: and that user's name, for the sidebar.
        (REQUEST_COSTS_URL, {**PERIOD_QUERY, "user__id__exact": "1"}, 4 + 1 + 5 + 1 + 3 + 1 + 1),
        # Session, user, count, rows; the chatbots of the filter; the first request.
        (SESSIONS_URL, PERIOD_QUERY, 4 + 1 + 1),
        # As in test_admin (session, user, rows, count, full count, the page's own queries, the
        # reports and their pruning bounds), and the first request.
        (USERS_URL, PERIOD_QUERY, 5 + 1 + 3 + 2 + 1),
        (AI_MODELS_URL, PERIOD_QUERY, 5 + 2 + 2 + 1),
        (CHATBOTS_URL, PERIOD_QUERY, 5 + 1 + 1),
    ],
)
def test_period_pages_issue_a_fixed_number_of_queries_whatever_the_data(
    admin_client, explorer, url, params, expected, django_assert_num_queries
):
    grow(size=3, when=at(2024, 1, 31, 1))
    with django_assert_num_queries(expected):
        assert admin_client.get(url, params).status_code == 200

    grow(size=30, when=at(2024, 2, 1, 1))

    with django_assert_num_queries(expected):
        assert admin_client.get(url, params).status_code == 200


def test_the_period_filters_the_list_on_created_at_which_is_indexed(admin_client, explorer):
    cl = get(admin_client, REQUEST_COSTS_URL, PERIOD_QUERY).context["cl"]

    # The period's instants, compared with created_at in the list's own query: the index serves it.
    sql = str(cl.queryset.query)
    assert '"chatbot_openrouterrequestcost"."created_at" >= 2024-01-30 00:00:00' in sql
    assert '"chatbot_openrouterrequestcost"."created_at" < 2024-02-03 00:00:00' in sql
    indexes = {tuple(index.fields) for index in OpenRouterRequestCost._meta.indexes if index.condition is None}
    assert ("created_at",) in indexes
