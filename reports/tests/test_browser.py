"""The report pages in headless Chromium: the reports light and dark, the period picker, drill-down, the dashboard."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page

from core.factories import (
    AIModelFactory,
    ChatbotFactory,
    ChatMessageFactory,
    ChatSessionFactory,
    RequestCostFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser

REQUEST_COSTS_PATH = "/admin/chatbot/openrouterrequestcost/"


@pytest.fixture
def platform(transactional_db) -> None:
    """Build a platform whose report figures are worked out by hand in the test."""
    ada = UserFactory(username="ada")
    ben = UserFactory(username="ben")
    paid = AIModelFactory(openrouter_id="acme/paid", name="Paid Model")
    free = AIModelFactory(openrouter_id="acme/free:free", name="Free Model", free=True)
    for user, model, prompt, completion, cost in (
        (ada, paid, 1200, 300, "0.0123456789"),
        (ada, free, 500, 100, "0"),
        (ben, paid, 100, 50, "0.5"),
    ):
        RequestCostFactory(
            user=user, ai_model=model, prompt_tokens=prompt, completion_tokens=completion, cost_usd=Decimal(cost)
        )
    session = ChatSessionFactory(user=ada, chatbot=ChatbotFactory(name="Helper", ai_model=paid))
    ChatMessageFactory.create_batch(3, session=session)
    UserFactory(username="operator", is_staff=True, is_superuser=True)


def table_rows(page: Page, report_key: str) -> list[list[str]]:
    """Return the text of each cell of a report's body rows, as the browser renders them."""
    return page.locator(f"#report-{report_key} tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"
    )


def contrast_ratio(page: Page, selector: str) -> float:
    """Return the WCAG contrast ratio between an element's text and its card's background."""
    return page.locator(selector).first.evaluate(
        """element => {
            const rgb = color => color.match(/[\\d.]+/g).slice(0, 3).map(Number);
            const luminance = ([r, g, b]) => {
                const [R, G, B] = [r, g, b].map(v => {
                    v /= 255;
                    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                });
                return 0.2126 * R + 0.7152 * G + 0.0722 * B;
            };
            const card = element.closest('.usage-report');
            const fg = luminance(rgb(getComputedStyle(element).color));
            const bg = luminance(rgb(getComputedStyle(card).backgroundColor));
            return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        }"""
    )


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_request_costs_page_shows_the_reports(browser, live_server, platform, color_scheme):
    context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/admin/login/?next={REQUEST_COSTS_PATH}")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}{REQUEST_COSTS_PATH}")

        assert page.locator(".usage-report h2").all_inner_texts() == [
            "Average Token Usage",
            "Top Users by OpenRouter Cost",
            "Top AI Models by Usage",
            "Top Free AI Models Usage",
            "Top Chatbots by Session Count",
        ]
        # 1500 + 600 + 150 = 2250 tokens over 3 requests.
        assert page.locator("#report-average_tokens_per_request .usage-report-value").inner_text() == "750.00"
        # ben 0.5 (150 tokens, 1 request); ada 0.0123456789 + 0 (1500 + 600 = 2100 tokens, 2 requests).
        assert table_rows(page, "top_users_by_cost") == [
            ["1", "ben", "0.500000", "150", "1"],
            ["2", "ada", "0.012346", "2,100", "2"],
        ]
        # Paid Model: 2 requests, 1500 + 150 = 1650 tokens, 0.0123456789 + 0.5 = 0.5123456789 USD.
        assert table_rows(page, "top_models_by_usage") == [
            ["1", "Paid Model", "2", "1,650", "0.512346"],
            ["2", "Free Model", "1", "600", "0.000000"],
        ]
        assert table_rows(page, "top_free_models") == [["1", "Free Model", "1", "600"]]
        assert table_rows(page, "top_chatbots_by_sessions") == [["1", "Helper", "1", "3"]]
        exact = page.locator("#report-top_models_by_usage td.usage-report-money span").first
        assert exact.get_attribute("title") == "0.5123456789 USD"

        # The page really is in the requested scheme, the stylesheet is applied, and it reads well.
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is (color_scheme == "dark")
        body_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert body_background == ("rgb(18, 18, 18)" if color_scheme == "dark" else "rgb(255, 255, 255)")
        assert page.locator(".usage-reports-tables").evaluate("e => getComputedStyle(e).display") == "grid"
        money_cell = page.locator("#report-top_users_by_cost td.usage-report-money").first
        assert money_cell.evaluate("e => getComputedStyle(e).textAlign") == "right"
        for selector in (".usage-report-value", "#report-top_users_by_cost td.usage-report-int"):
            assert contrast_ratio(page, selector) >= 4.5, selector
        # The standard list is still below the reports.
        assert page.locator("#result_list tbody tr").count() == 3
    finally:
        context.close()


# --- The report explorer: period picker, drill-down, dashboard -------------------------------------


@pytest.fixture
def timeline(transactional_db, settings) -> dict[str, int]:
    """Build requests 20 days ago and yesterday, so that each period shows different figures."""
    settings.TIME_ZONE = "UTC"
    now = timezone.now()
    ada = UserFactory(username="ada")
    ben = UserFactory(username="ben")
    paid = AIModelFactory(openrouter_id="acme/paid", name="Paid Model")
    free = AIModelFactory(openrouter_id="acme/free:free", name="Free Model", free=True)
    for user, model, prompt, completion, cost, days_ago in (
        (ada, paid, 800, 200, "0.5", 20),
        (ada, paid, 300, 100, "0.25", 1),
        (ben, free, 500, 100, "0", 1),
    ):
        RequestCostFactory(
            user=user,
            ai_model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=Decimal(cost),
            created_at=now - timedelta(days=days_ago),
        )
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    return {"ada": ada.pk, "ben": ben.pk}


def logged_in_page(browser: Browser, live_server, path: str, color_scheme: str = "light") -> Page:
    context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/admin/login/?next={path}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_load_state()
    return page


def test_period_picker_presets_and_custom_range(browser, live_server, timeline):
    page = logged_in_page(browser, live_server, REQUEST_COSTS_PATH)
    try:
        # All time: ada 0.5 + 0.25 (1000 + 400 tokens, 2 requests), ben 0 (600, 1); 2000 / 3 tokens a request.
        assert table_rows(page, "top_users_by_cost") == [
            ["1", "ada", "0.750000", "1,400", "2"],
            ["2", "ben", "0.000000", "600", "1"],
        ]
        assert page.locator("#report-average_tokens_per_request .usage-report-value").inner_text() == "666.67"
        assert page.locator("#result_list tbody tr").count() == 3

        page.click(".usage-period-presets a:text-is('Last 7 days')")
        page.wait_for_url("**?period=last-7-days")

        # Yesterday only: ada 0.25 (400 tokens), ben 0 (600); (400 + 600) / 2.
        assert table_rows(page, "top_users_by_cost") == [
            ["1", "ada", "0.250000", "400", "1"],
            ["2", "ben", "0.000000", "600", "1"],
        ]
        assert page.locator("#report-average_tokens_per_request .usage-report-value").inner_text() == "500.00"
        assert page.locator(".usage-period-presets a[aria-current]").inner_text() == "Last 7 days"
        assert page.locator("#result_list tbody tr").count() == 2
        # A week of days, one bar each in every chart, idle ones included.
        assert page.locator("#chart-requests .usage-chart-bar").count() == 7

        today = timezone.localdate()
        since, until = today - timedelta(days=25), today - timedelta(days=15)
        page.fill("#usage-period-from", since.isoformat())
        page.fill("#usage-period-to", until.isoformat())
        page.click(".usage-period-custom input[type=submit]")
        page.wait_for_url(f"**?period=custom&from={since}&to={until}")

        # 20 days ago only: ada's first request, 0.5 USD, 1000 tokens.
        assert table_rows(page, "top_users_by_cost") == [["1", "ada", "0.500000", "1,000", "1"]]
        assert page.locator("#report-average_tokens_per_request .usage-report-value").inner_text() == "1,000.00"
        assert page.locator(".usage-period-status").inner_text().startswith(f"Showing {since} to {until} · 11 days")
        assert page.locator("#result_list tbody tr").count() == 1
        # The headline compares with the 11 days before, which had nothing: no percentage.
        assert page.locator("#headline-request_count .usage-headline-value").inner_text() == "1"
        assert page.locator("#headline-request_count .usage-headline-previous").inner_text() == "from 0"

        # From after to: a message, and the page still renders.
        page.fill("#usage-period-from", until.isoformat())
        page.fill("#usage-period-to", since.isoformat())
        page.click(".usage-period-custom input[type=submit]")
        page.wait_for_load_state()
        assert (
            page.locator(".usage-period-error")
            .inner_text()
            .startswith(f"The period starts ({until}) after it ends ({since}).")
        )
        assert page.locator(".usage-report").count() == 0
    finally:
        page.context.close()


def test_drill_down_from_a_report_row_to_the_filtered_list(browser, live_server, timeline):
    page = logged_in_page(browser, live_server, "/admin/accounts/user/?period=last-30-days")
    try:
        assert table_rows(page, "top_users_by_cost")[0] == ["1", "ada", "0.750000", "1,400", "2"]

        page.click("#report-top_users_by_cost a.usage-report-drilldown:text-is('ada')")
        page.wait_for_url(f"**{REQUEST_COSTS_PATH}?user__id__exact={timeline['ada']}&period=last-30-days")

        # ada's 2 requests of the period, as the report said; the sidebar names the filter.
        assert page.locator("#result_list tbody tr").count() == 2
        assert page.locator("#changelist .paginator").inner_text().startswith("2 OpenRouter Request Costs")
        assert page.locator("#changelist-filter li.selected a:text-is('ada')").count() == 1
        assert page.locator(".usage-period-presets a[aria-current]").inner_text() == "Last 30 days"
        # The period's figures are folded away so the list comes first, and open on demand.
        figures = page.locator("details.usage-figures")
        assert figures.evaluate("element => element.open") is False
        figures.locator("summary.usage-figures-summary").click()
        assert page.locator("#report-top_users_by_cost").is_visible()
    finally:
        page.context.close()


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_dashboard_charts_follow_the_color_scheme(browser, live_server, timeline, color_scheme):
    page = logged_in_page(browser, live_server, "/admin/reports/dashboard/?period=last-30-days", color_scheme)
    try:
        assert page.locator("h1").inner_text() == "Usage dashboard"
        # 0.25 + 0.5 USD over the last 30 days.
        assert page.locator("#headline-total_cost_usd .usage-headline-value").inner_text() == "0.750000"
        assert page.locator("#chart-cost .usage-chart-bar").count() == 30
        paid = page.locator("#chart-cost .usage-chart-paid").last
        # The admin's --secondary, in both schemes; the axis text takes the scheme's quiet colour.
        assert paid.evaluate("e => getComputedStyle(e).fill") == "rgb(65, 118, 144)"
        axis_text = page.locator("#chart-cost .usage-chart-grid text").first
        expected_text = "rgb(208, 208, 208)" if color_scheme == "dark" else "rgb(102, 102, 102)"
        assert axis_text.evaluate("e => getComputedStyle(e).fill") == expected_text
        assert page.locator("#chart-cost svg").bounding_box()["width"] > 250
        # The text equivalent opens to a table of the 30 days.
        page.locator("#chart-cost summary").click()
        assert page.locator("#chart-cost table tbody tr").count() == 30
    finally:
        page.context.close()
