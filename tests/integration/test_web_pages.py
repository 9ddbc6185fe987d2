"""The service's web pages (API docs, playground) load every asset from the service itself, pinned and packaged."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.api.assets import STATIC_DIR
from extractor.api.docs import SCALAR_VERSION, SWAGGER_UI_VERSION
from extractor.app import create_app
from extractor.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/10"
PAGES = ["/schema", "/schema/scalar", "/schema/swagger", "/playground"]
_ABSOLUTE_URL = re.compile(r"(?:https?:)?//[^\s\"'<>)]+")
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "model_base_url": "http://127.0.0.1:9/v1",
        "model_enforcement": "json_schema",
        "jobs": {"run_in_serve": False},
    }
    return Settings(**(base | overrides))


@pytest.fixture
async def redis() -> AsyncIterator[None]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def client(redis: None) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(make_settings())) as test_client:
        yield test_client


@pytest.mark.parametrize("path", PAGES)
async def test_pages_name_no_other_host(client: AsyncTestClient[Any], path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    foreign = [url for url in _ABSOLUTE_URL.findall(page.text) if urlsplit(url).hostname not in ("127.0.0.1", None)]
    assert foreign == []


@pytest.mark.parametrize("path", PAGES)
async def test_every_asset_a_page_loads_is_served(client: AsyncTestClient[Any], path: str) -> None:
    page = await client.get(path)
    assets = [ref for ref in _REFERENCE.findall(page.text) if ref.startswith("/static/")]
    assert assets, "the page loads no asset of the service's"
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.content, asset
        kind = answer.headers["content-type"]
        assert kind.split(";")[0] in ("text/javascript", "text/css", "image/svg+xml"), (asset, kind)


async def test_vendored_assets_are_cached_for_good_and_own_files_revalidated(client: AsyncTestClient[Any]) -> None:
    vendored = await client.get(f"/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui-bundle.js")
    assert "immutable" in vendored.headers["cache-control"]
    own = await client.get("/static/app/playground.js")
    assert own.headers["cache-control"] == "no-cache"


async def test_the_playground_may_call_and_load_only_its_own_origin(client: AsyncTestClient[Any]) -> None:
    page = await client.get("/playground")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    # and no copy of the page is served without that policy
    assert (await client.get("/static/app/playground.html")).status_code == 404


async def test_the_playground_and_docs_need_no_api_key(redis: None) -> None:
    async with AsyncTestClient(create_app(make_settings(api_keys={"secret": "acme"}))) as client:
        for path in [*PAGES, "/static/app/playground.js"]:
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/v1/schemas")).status_code == 401


def test_each_vendored_folder_keeps_its_licence() -> None:
    folders = [folder for folder in (STATIC_DIR / "vendor").iterdir() if folder.is_dir()]
    assert {folder.name for folder in folders} == {f"swagger-ui-{SWAGGER_UI_VERSION}", f"scalar-{SCALAR_VERSION}"}
    for folder in folders:
        assert (folder / "LICENSE").read_text().strip(), folder


def test_vendored_files_match_the_checksums_of_their_readme() -> None:
    vendor = STATIC_DIR / "vendor"
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (vendor / "README.md").read_text(), re.MULTILINE)
    served = {path.relative_to(vendor).as_posix() for path in vendor.glob("*/*") if path.suffix in (".js", ".css")}
    assert {name for _, name in listed} == served
    for digest, name in listed:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
