"""Fixtures shared by the report tests."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# The sandbox needs privileges a container rarely has; the GPU and background traffic only add noise.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Yield a headless Chromium, or skip when it is not installed (fail instead under CI)."""
    if not CHROMIUM.exists():
        message = f"Chromium is not installed at {CHROMIUM}: apt-get install chromium chromium-driver."
        if os.environ.get("CI"):
            pytest.fail(f"The browser tests must run in CI. {message}", pytrace=False)
        pytest.skip(message)
    # Playwright's sync API keeps an event loop running in this thread, which makes Django refuse
    # database access from the test itself; nothing here runs concurrently, so allow it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
