"""The app under test: in-process behind Litestar's test client, its model served by a handler (``app_client``),
or under uvicorn on a loopback port in a thread (``serve_app``), for clients that need a real socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from extractor.app import create_app
from extractor.settings import Settings
from tests.support.fake_model import Handler, serve_model
from tests.support.processes import wait_for
from tests.support.redis_db import INTEGRATION_URL

__all__ = ["app_client", "make_settings", "serve_app"]


def make_settings(**overrides: Any) -> Settings:
    """The integration suite's settings (its Redis database, no retries, short time-outs), with ``overrides``."""
    base: dict[str, Any] = {
        "redis_url": INTEGRATION_URL,
        "model_base_url": "http://model.test/v1",
        "model_enforcement": "json_schema",
        "model_max_retries": 0,
        "model_timeout_s": 2.0,
    }
    return Settings(**(base | overrides))


@asynccontextmanager
async def app_client(settings: Settings, handler: Handler) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app under test, its model endpoint served by ``handler``."""
    with serve_model(handler) as url:
        app = create_app(settings.model_copy(update={"model_base_url": url}))
        async with AsyncTestClient(app) as test_client:
            yield test_client


@contextmanager
def serve_app(app: Litestar, *, timeout_s: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port, in a thread, until the block ends; yields its base URL.

    The socket is bound here and handed to uvicorn, so no other process can take the port in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", ws="none", loop="asyncio", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="service", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout_s, "the service started")
        assert server.started, "the service did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
