"""The playground in headless Chromium against the service (API keys on, model faked), with the network off."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import FilePayload, Page, Route, expect

from tests.support.browser import API_KEY, MODEL_ANSWER, OfflineContext, screenshot

TEXT = "ACME Market\nMarch 5, 2024\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR"
SHOP_SCHEMA = {
    "type": "object",
    "properties": {"merchant": {"type": ["string", "null"]}, "total": {"type": ["number", "null"]}},
}


def open_with_key(page: Page, service_url: str) -> None:
    """Open the playground; it asks for the API key, refuses a wrong one, takes the right one; then lists schemas."""
    page.goto(f"{service_url}/playground")
    message = page.locator("#schema-message")
    expect(message).to_contain_text("needs an API key")
    expect(page.locator("#api-key")).to_have_class("wanted")
    page.fill("#api-key", "wrong-key")
    page.press("#api-key", "Enter")
    expect(message).to_contain_text("refused this API key")
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    expect(page.locator("#schema-select option[value=receipt]")).to_have_count(1)
    expect(page.locator("#schema-message")).to_be_hidden()


def marked_text(page: Page, pointer: str) -> tuple[str, set[str]]:
    """The highlighted text of one field, and the colour classes of its marks."""
    marks = page.locator(f'#highlighted mark[data-pointers~="{pointer}"]')
    texts = marks.all_text_contents()
    kinds = {kind for mark in marks.all() for kind in (mark.get_attribute("class") or "").split()}
    return "".join(texts), kinds


def shown_result(page: Page) -> dict[str, Any]:
    page.click("details.raw summary")
    result: dict[str, Any] = json.loads(page.text_content("#raw-json") or "")
    return result


def test_extracts_and_highlights_each_value_where_it_was_found(
    page: Page, offline: OfflineContext, service_url: str
) -> None:
    open_with_key(page, service_url)
    page.select_option("#schema-select", "receipt")
    page.fill("#text", TEXT)
    page.select_option("#grounding", "annotate")
    page.click("#run")

    expect(page.locator("#status")).to_have_text("ok")
    assert json.loads(page.text_content("#json") or "") == MODEL_ANSWER
    result = shown_result(page)
    assert result["schema"] == "receipt@1"
    assert result["data"] == MODEL_ANSWER
    # Each value with a span is marked over exactly that span of the text, in the colour of its match.
    spans = {pointer: info for pointer, info in result["fields"].items() if info["span"]}
    assert set(spans) == {f for f in result["fields"] if f != "/currency"}
    for pointer, info in spans.items():
        start, end = info["span"]
        assert marked_text(page, pointer) == (TEXT[start:end], {info["match"]}), pointer
    assert marked_text(page, "/merchant") == ("ACME Market", {"exact"})
    assert marked_text(page, "/date") == ("March 5, 2024", {"normalized"})
    assert marked_text(page, "/total") == ("3.70", {"normalized"})
    # USD is nowhere in the text: listed as not found, marked nowhere.
    currency = page.locator('#fields tr[data-pointer="/currency"]')
    expect(currency).to_contain_text("not found")
    expect(currency).to_have_class("kind-missing")
    assert marked_text(page, "/currency") == ("", set())
    stats = page.locator("#stats")
    for shown in ("receipt@1", "fake-model", "json_schema", "160"):
        expect(stats).to_contain_text(shown)
    screenshot(page, "playground-result")
    assert offline.blocked == []


def test_registers_a_pasted_schema_and_runs_it(page: Page, offline: OfflineContext, service_url: str) -> None:
    open_with_key(page, service_url)
    page.select_option("#schema-select", "__new__")
    page.fill("#schema-name", "shop")
    page.fill("#schema-json", json.dumps({"type": "string"}))
    page.click("#register")
    problem = page.locator("#problem")
    expect(problem).to_contain_text("invalid-schema")
    expect(problem).to_contain_text("422")

    page.fill("#schema-json", json.dumps(SHOP_SCHEMA, indent=2))
    dropped = page.evaluate_handle(
        "text => { const d = new DataTransfer(); d.items.add(new File([text], 'receipt.txt')); return d; }", TEXT
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    expect(page.locator("#text")).to_have_value(TEXT)
    expect(page.locator("#run")).to_have_text("Register and run")
    page.click("#run")

    expect(page.locator("#status")).to_have_text("ok")
    expect(problem).to_be_hidden()
    expect(page.locator("#schema-select")).to_have_value("shop")
    assert json.loads(page.text_content("#json") or "") == {"merchant": "ACME Market", "total": 3.7}
    assert marked_text(page, "/merchant") == ("ACME Market", {"exact"})
    registered = httpx.get(f"{service_url}/v1/schemas/shop", headers={"Authorization": f"Bearer {API_KEY}"})
    assert registered.status_code == 200
    assert registered.json()["json_schema"] == SHOP_SCHEMA
    screenshot(page, "playground-registered")
    assert offline.blocked == []


def test_renders_a_streamed_answer(page: Page, offline: OfflineContext, service_url: str) -> None:
    """When /v1/extract answers server-sent events (a later issue), the page shows progress, then the final answer."""
    answer = httpx.post(
        f"{service_url}/v1/extract",
        json={"schema": "receipt", "text": TEXT, "options": {"grounding": "annotate"}},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    accepted: list[str] = []

    def stream(route: Route) -> None:
        accepted.append(route.request.headers.get("accept", ""))
        partial = json.dumps({"data": {"merchant": "ACME Market"}})
        body = f"event: partial\ndata: {partial}\n\nevent: final\ndata: {json.dumps(answer)}\n\n"
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route("**/v1/extract", stream)
    open_with_key(page, service_url)
    page.select_option("#schema-select", "receipt")
    file: FilePayload = {"name": "receipt.txt", "mimeType": "text/plain", "buffer": TEXT.encode()}
    page.set_input_files("#file", files=file)
    expect(page.locator("#text")).to_have_value(TEXT)
    page.click("#run")

    expect(page.locator("#status")).to_have_text("ok")
    assert len(accepted) == 1
    assert accepted[0].startswith("text/event-stream")
    assert shown_result(page) == answer
    assert marked_text(page, "/merchant") == ("ACME Market", {"exact"})
    assert offline.blocked == []
