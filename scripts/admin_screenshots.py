"""Screenshot the admin pages that show usage reports, and the usage dashboard, in light and dark mode.

Run it against a running server (``make run``, or ``manage.py runserver``)::

    .venv/bin/python scripts/admin_screenshots.py --base-url http://127.0.0.1:8000 \\
        --username admin --password admin

It logs in through the admin's login form in headless Chromium and writes, into
``artifacts/screenshots/``, a full-page PNG (``<page>-<scheme>.png``) and the first screenful
(``<page>-<scheme>-top.png``) of each page. Django's admin follows the browser's
``prefers-color-scheme``, so dark mode is the same page with a dark color scheme emulated.
The exit status is 1 when a page fails to load, or loads with a broken asset or a script error.
"""

import argparse
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, Response, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "artifacts" / "screenshots"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# The sandbox needs privileges a container rarely has; the GPU and background traffic only add noise.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
COLOR_SCHEMES = ("light", "dark")


@dataclass(frozen=True)
class AdminPage:
    """One admin change list to photograph."""

    slug: str
    path: str


def admin_pages(*, today: date) -> tuple[AdminPage, ...]:
    """Return the pages to photograph; the custom period is the 30 days ending two weeks ago."""
    custom = f"period=custom&from={today - timedelta(days=44)}&to={today - timedelta(days=15)}"
    return (
        AdminPage("index", "/admin/"),
        AdminPage("dashboard", "/admin/reports/dashboard/?period=last-30-days"),
        AdminPage("request-costs", "/admin/chatbot/openrouterrequestcost/"),
        AdminPage("request-costs-custom-period", f"/admin/chatbot/openrouterrequestcost/?{custom}"),
        AdminPage("users", "/admin/accounts/user/?period=this-month"),
        AdminPage("ai-models", "/admin/ai_models/aimodel/?period=last-7-days"),
        AdminPage("chatbots", "/admin/chatbot/chatbot/?period=last-month"),
        AdminPage("chat-sessions", "/admin/chatbot/chatsession/?period=last-7-days"),
        AdminPage("chat-messages", "/admin/chatbot/chatmessage/"),
    )


def admin_login(*, page: Page, base_url: str, username: str, password: str) -> None:
    """Log in through the admin's login form, or raise RuntimeError."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state()
    if "/admin/login/" in page.url:
        raise RuntimeError(f"Could not log in to {base_url}/admin/ as {username!r}: check the username and password.")


def screenshots_take(
    *, browser: Browser, base_url: str, username: str, password: str, out: Path, width: int, height: int
) -> list[str]:
    """Screenshot every page in every color scheme into ``out``; return the problems seen."""
    problems: list[str] = []
    for scheme in COLOR_SCHEMES:
        context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        page = context.new_page()

        def on_script_error(error: Exception, scheme: str = scheme) -> None:
            problems.append(f"[{scheme}] script error: {error}")

        def on_response(response: Response, scheme: str = scheme) -> None:
            if response.status >= 400:
                problems.append(f"[{scheme}] HTTP {response.status}: {response.url}")

        page.on("pageerror", on_script_error)
        page.on("response", on_response)
        admin_login(page=page, base_url=base_url, username=username, password=password)
        for admin_page in admin_pages(today=date.today()):
            response = page.goto(f"{base_url}{admin_page.path}")
            page.wait_for_load_state("networkidle")
            if response is None or not response.ok:
                status = response.status if response is not None else "no response"
                problems.append(f"[{scheme}] {admin_page.path}: {status}")
            # The whole page, and the first screenful: what an operator sees on arrival.
            for path, full_page in (
                (out / f"{admin_page.slug}-{scheme}.png", True),
                (out / f"{admin_page.slug}-{scheme}-top.png", False),
            ):
                page.screenshot(path=str(path), full_page=full_page)
                print(path)
        context.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, take the screenshots, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="the server's root URL")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs")
    parser.add_argument("--width", type=int, default=1400, help="viewport width in CSS pixels")
    parser.add_argument("--height", type=int, default=900, help="viewport height; pages are shot full length")
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM, help="path to the Chromium executable")
    args = parser.parse_args(argv)

    if not Path(args.chromium).exists():
        print(f"Chromium not found at {args.chromium}: apt-get install chromium, or pass --chromium.", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            problems = screenshots_take(
                browser=browser,
                base_url=args.base_url.rstrip("/"),
                username=args.username,
                password=args.password,
                out=args.out,
                width=args.width,
                height=args.height,
            )
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        finally:
            browser.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
