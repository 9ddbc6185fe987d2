"""The API docs render their operations in headless Chromium with the network off: every asset is the service's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Response, expect

from tests.support.browser import OfflineContext, screenshot


@pytest.fixture
def failed(page: Page, offline: OfflineContext) -> Iterator[list[str]]:
    """Every request of the page that failed or answered an error; checked empty, with ``offline.blocked``."""
    failures: list[str] = []

    def on_response(response: Response) -> None:
        if not response.ok:
            failures.append(f"{response.status} {response.url}")

    page.on("requestfailed", lambda request: failures.append(request.url))
    page.on("response", on_response)
    yield failures
    assert offline.blocked == []
    assert failures == []


def test_scalar_renders_the_operations_offline(page: Page, failed: list[str], service_url: str) -> None:
    page.goto(f"{service_url}/schema")
    expect(page.get_by_role("heading", name="Liveness: the process answers")).to_be_visible()
    page.get_by_role("link", name="extraction", exact=True).click()
    expect(page.get_by_role("heading", name="Extract structured data from one document")).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot(page, "docs-scalar", full_page=False)


def test_swagger_ui_renders_the_operations_offline(page: Page, failed: list[str], service_url: str) -> None:
    page.goto(f"{service_url}/schema/swagger")
    for path in ("/v1/extract", "/v1/schemas/{name}", "/v1/batches"):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot(page, "docs-swagger", full_page=False)
