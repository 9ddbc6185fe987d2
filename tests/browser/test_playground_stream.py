"""The playground against a service that streams (``Accept: text/event-stream``), its model writing slowly: the
page shows the object so far while the model writes, then the final answer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import API_KEY, MODEL_ANSWER, OfflineContext, browser_service, screenshot
from tests.support.fake_model import FakeModel
from tests.support.redis_db import STREAMING_URL

TEXT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR"


@pytest.fixture
def streaming_service() -> Iterator[str]:
    """The service, API keys on, its model writing the receipt 3 characters every 60 ms (about 3 s)."""
    model = FakeModel().stream(MODEL_ANSWER, piece_chars=3, delay_s=0.06)
    with browser_service(STREAMING_URL, model.handler, model_timeout_s=30.0) as url:
        yield url


def test_shows_the_object_so_far_then_the_final_answer(
    page: Page, offline: OfflineContext, streaming_service: str
) -> None:
    page.goto(f"{streaming_service}/playground")
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    expect(page.locator("#schema-select option[value=receipt]")).to_have_count(1)
    page.select_option("#schema-select", "receipt")
    page.fill("#text", TEXT)
    page.click("#run")

    running = page.locator("#stats .badge.running")
    expect(running).to_have_text("partial", timeout=10_000)
    expect(page.locator("#json")).to_contain_text("ACME", timeout=10_000)
    assert "Milk" not in (page.text_content("#json") or ""), "the whole answer was there before the model wrote it"
    screenshot(page, "playground-streaming")

    expect(page.locator("#status")).to_have_text("ok", timeout=20_000)
    page.click("details.raw summary")
    final = json.loads(page.text_content("#raw-json") or "")
    assert final["data"]["merchant"] == "ACME Market"
    assert final["data"]["items"] == MODEL_ANSWER["items"]
    screenshot(page, "playground-streamed")
    assert offline.blocked == []
