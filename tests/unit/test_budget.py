"""The token budget: the window (setting, bundled server, endpoint report), token counting, and the arithmetic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from extractor.errors import UpstreamError, UpstreamUnavailableError
from extractor.extraction.budget import (
    DEFAULT_CONTEXT_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
    Budget,
    ContextWindow,
    EndpointTokenCounter,
    EstimatedTokenCounter,
    discover_window,
    prompt_overhead,
    resolve_window,
    window_from_models,
    window_from_props,
)
from extractor.extraction.model import ModelClient

Handler = Callable[[str, Mapping[str, Any] | None], Any]


class ScriptedServer:
    """A ``ServerApi`` whose answers come from a function of (path, body); it logs every request."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str]] = []

    async def server_json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        self.requests.append((method, path))
        return self.answer(path, body)


def not_found(path: str) -> UpstreamError:
    return UpstreamError(f"model endpoint answered 404: {path}", upstream_status=404)


def llama_cpp_python(path: str, body: Mapping[str, Any] | None) -> Any:
    if path == "/extras/tokenize/count" and body is not None:
        return {"count": len(body["input"].split())}
    raise not_found(path)


def vllm(path: str, body: Mapping[str, Any] | None) -> Any:
    if path == "/tokenize" and body is not None and "prompt" in body:
        return {"count": len(body["prompt"]) // 2, "max_model_len": 32768, "tokens": []}
    if path == "/tokenize":
        raise UpstreamError("model endpoint answered 422: field required", upstream_status=422)
    if path == "/v1/models":
        return {"object": "list", "data": [{"id": "qwen", "max_model_len": 32768}]}
    raise not_found(path)


# --- the window ----------------------------------------------------------------------------------------------------


def test_window_from_llama_cpp_props_is_the_slot_context() -> None:
    props = {"default_generation_settings": {"n_ctx": 2048, "params": {}}, "total_slots": 4}
    assert window_from_props(props) == 2048
    assert window_from_props({"default_generation_settings": {"n_ctx": True}}) is None
    assert window_from_props({"total_slots": 1}) is None
    assert window_from_props("<html>") is None


def test_window_from_models_reads_vllm_and_llama_cpp() -> None:
    assert window_from_models({"data": [{"id": "a", "max_model_len": 8192}]}, "a") == 8192
    llama = {"data": [{"id": "m.gguf", "meta": {"n_ctx_train": 131072, "n_vocab": 49152}}]}
    assert window_from_models(llama, "alias-not-listed") == 131072, "the only model listed is the one served"
    two = {"data": [{"id": "a", "max_model_len": 100}, {"id": "b", "max_model_len": 200}]}
    assert window_from_models(two, "b") == 200
    assert window_from_models(two, "c") is None, "several models and none named: unknown"
    assert window_from_models({"data": [{"id": "gpt-4o", "object": "model"}]}, "gpt-4o") is None
    assert window_from_models([], "a") is None


async def test_the_window_setting_wins_then_the_bundled_server_then_the_endpoint() -> None:
    server = ScriptedServer(vllm)
    assert await resolve_window(configured=1000, bundled=4096, server=server, model="qwen") == ContextWindow(
        1000, "setting"
    )
    assert await resolve_window(configured=None, bundled=4096, server=server, model="qwen") == ContextWindow(
        4096, "bundled server"
    )
    assert server.requests == [], "neither asks the endpoint"
    found = await resolve_window(configured=None, bundled=None, server=server, model="qwen")
    assert found == ContextWindow(32768, "endpoint /v1/models")
    assert server.requests == [("GET", "/props"), ("GET", "/v1/models")]


async def test_props_is_asked_before_models() -> None:
    def llama_cpp(path: str, body: Mapping[str, Any] | None) -> Any:
        if path == "/props":
            return {"default_generation_settings": {"n_ctx": 4096}}
        return {"data": [{"id": "m", "meta": {"n_ctx_train": 131072}}]}

    assert await discover_window(ScriptedServer(llama_cpp), "m") == ContextWindow(4096, "endpoint /props")


async def test_an_endpoint_that_says_nothing_gets_the_default(caplog: pytest.LogCaptureFixture) -> None:
    def openai(path: str, body: Mapping[str, Any] | None) -> Any:
        if path == "/v1/models":
            return {"data": [{"id": "gpt-4o"}]}
        raise not_found(path)

    found = await resolve_window(configured=None, bundled=None, server=ScriptedServer(openai), model="gpt-4o")
    assert found == ContextWindow(DEFAULT_CONTEXT_TOKENS, "default")
    assert "EXTRACTOR_MODEL_CONTEXT_TOKENS" in caplog.text


# --- counting ------------------------------------------------------------------------------------------------------


async def test_the_estimate_rounds_up() -> None:
    assert await EstimatedTokenCounter(3.0).count(["", "ab", "abc", "abcd"]) == [0, 1, 1, 2]


async def test_the_bundled_servers_tokenizer_is_found_once_and_used() -> None:
    server = ScriptedServer(llama_cpp_python)
    counter = EndpointTokenCounter(server, "smollm2")
    assert await counter.count(["one two three", "four"]) == [3, 1]
    assert await counter.count(["five six"]) == [2]
    assert counter.dialect == "llama-cpp-python"
    probes = [request for request in server.requests if request[1] != "/extras/tokenize/count"]
    assert probes == [], "the first dialect answered: no other was tried"
    assert len(server.requests) == 1 + 3, "one probe, then one request per text"


async def test_vllm_is_found_after_the_others_refuse() -> None:
    counter = EndpointTokenCounter(ScriptedServer(vllm), "qwen")
    assert await counter.count(["x" * 10]) == [5]
    assert counter.dialect == "vllm"


async def test_no_tokenizer_means_the_estimate_and_no_more_probes() -> None:
    server = ScriptedServer(lambda path, body: (_ for _ in ()).throw(not_found(path)))
    counter = EndpointTokenCounter(server, "gpt-4o", EstimatedTokenCounter(2.0))
    assert await counter.count(["abcd", "abcde"]) == [2, 3]
    probed = len(server.requests)
    assert await counter.count(["ab"]) == [1]
    assert len(server.requests) == probed, "a definite refusal is remembered"
    assert counter.dialect is None


async def test_a_transient_fault_estimates_this_time_and_probes_again() -> None:
    down = True

    def flaky(path: str, body: Mapping[str, Any] | None) -> Any:
        if down:
            raise UpstreamUnavailableError("model endpoint answered 503")
        return llama_cpp_python(path, body)

    counter = EndpointTokenCounter(ScriptedServer(flaky), "smollm2", EstimatedTokenCounter(1.0))
    assert await counter.count(["one two"]) == [7], "estimated"
    down = False
    assert await counter.count(["one two"]) == [2], "the tokenizer, once the endpoint is back"


# --- the arithmetic ------------------------------------------------------------------------------------------------


async def test_prompt_overhead_counts_messages_template_and_extras() -> None:
    messages = [{"role": "system", "content": "abcdef"}, {"role": "user", "content": "Document:\n<<<\n\n>>>"}]
    overhead = await prompt_overhead(EstimatedTokenCounter(3.0), messages, extra=['{"type": "object"}'])
    assert overhead == 2 + 6 + 6 + MESSAGE_OVERHEAD_TOKENS * 3


def test_the_document_gets_what_prompt_answer_and_margin_leave() -> None:
    budget = Budget.of(window=4096, overhead=300, reserve=1024)
    assert budget.margin == 81
    assert budget.document == 4096 - 300 - 1024 - 81
    assert Budget.of(window=512, overhead=10, reserve=10).margin == 16
    assert Budget(window=1000, overhead=600, reserve=500).document < 0, "a prompt that alone does not fit"


def test_answer_room_shrinks_for_a_longer_reask_prompt() -> None:
    budget = Budget(window=4096, overhead=300, reserve=1024, margin=16)
    assert budget.answer_room(2000) == 1024
    assert budget.answer_room(3500) == 4096 - 3500 - 16
    assert budget.answer_room(5000) == 0


# --- through the real model client -----------------------------------------------------------------------------------


async def serve(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> TestServer:
    app = web.Application()
    for spec, handler in routes.items():
        method, path = spec.split(" ")
        app.router.add_route(method, path, handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_the_model_client_asks_beside_v1() -> None:
    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": len((await request.json())["input"])})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m", "max_model_len": 2048}]})

    server = await serve({"POST /extras/tokenize/count": count, "GET /v1/models": models})
    client = ModelClient(str(server.make_url("/v1")), model="m")
    try:
        counter = EndpointTokenCounter(client, "m")
        assert await counter.count(["abc", "abcdefgh"]) == [3, 8]
        assert await discover_window(client, "m") == ContextWindow(2048, "endpoint /v1/models")
    finally:
        await client.close()
        await server.close()
