"""A fake OpenAI-compatible chat-completions server for benchmarks and tests.

It answers every request with a JSON object valid against the schema in ``response_format``, built
deterministically from the schema and the user's text, after a fixed latency; a seeded RNG injects
failures (an OpenAI-style error body) and hangs. Plain ASGI rather than Litestar: called in-process it
costs about half as much per request (~110 vs ~225 us for the same handler), and a benchmark's fake should
cost as little as possible; under uvicorn and a real client the server and client dominate either way.

Known limits of the answer builder: it does not invert ``pattern`` (it tries the text's tokens), ``not``,
``minProperties`` or ``oneOf`` exclusivity; real-world schemas of jsonschemabench get a valid answer ~89% of
the time; the flat extraction schemas in its tests always do.

Mount it in-process with ``httpx.ASGITransport(create_fake_app())`` or run it as a server::

    python -m bench.fake_openai --port 8900 --latency-ms 100 --fail-rate 0.0 --fail-status 500 --hang-rate 0 --seed 0
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ASGIApp", "FakeOpenAI", "build_answer", "create_fake_app", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MODEL_ID = "fake-model"
HANG_SECONDS = 3600.0
_MODELS = {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "bench"}]}
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_STOP_WORDS = frozenset(
    " ".join(
        (
            "a an and are as at be but by for from has have he her his i in is it its me my no not of on or our she so",
            "that the their them they this to us was we were what when which who will with you your document text",
            "extract following below above json",
        )
    ).split()
)
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")
_TOKEN = re.compile(r"\S+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PATTERN_TRIES = 200
_FORMAT_DEFAULTS = {"date": "2000-01-01", "date-time": "2000-01-01T00:00:00Z", "time": "00:00:00Z"}


# --- answers -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    """What the answer may copy from the user's text, plus the root schema for local ``$ref``."""

    words: tuple[str, ...]
    number: float | None
    date: str | None
    tokens: tuple[str, ...]
    root: Mapping[str, Any]


def _scan(text: str, root: Mapping[str, Any]) -> _Source:
    words = tuple(
        itertools.islice((m.group() for m in _WORD.finditer(text) if m.group().casefold() not in _STOP_WORDS), 1)
    )
    number = _NUMBER.search(text)
    date = _ISO_DATE.search(text)
    tokens = tuple(m.group() for m in itertools.islice(_TOKEN.finditer(text), _PATTERN_TRIES))
    return _Source(words, float(number.group()) if number else None, date.group() if date else None, tokens, root)


def _resolve(schema: Any, source: _Source) -> Any:
    """Follow local ``$ref`` (``#/...``) and fold ``allOf`` into one schema."""
    seen = 0
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and seen < 32:
        target: Any = source.root
        for part in schema["$ref"].removeprefix("#").strip("/").split("/"):
            if part:
                target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        seen += 1
    if isinstance(schema, Mapping) and isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = {**merged, **_resolve(part, source)}
        schema = merged
    return schema


def _types(schema: Mapping[str, Any], source: _Source) -> list[str]:
    """The JSON types ``schema`` allows, in the order it lists them (``anyOf``/``oneOf`` branches included)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    branches = schema.get("anyOf") or schema.get("oneOf") or []
    kinds = [t for branch in branches for t in _types(_resolve(branch, source), source)]
    if kinds:
        return list(dict.fromkeys(kinds))
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return ["null"]


def _branch_for(schema: Mapping[str, Any], kind: str, source: _Source) -> Mapping[str, Any]:
    """The ``anyOf``/``oneOf`` branch that allows ``kind`` (or ``schema`` itself when it has none)."""
    for branch in schema.get("anyOf") or schema.get("oneOf") or []:
        resolved = _resolve(branch, source)
        if isinstance(resolved, Mapping) and kind in _types(resolved, source):
            return resolved
    return schema


def _text_string(schema: Mapping[str, Any], source: _Source) -> str | None:
    """The first non-stop word, fitted to the length limits; under a ``pattern``, the first token that matches."""
    fmt = schema.get("format")
    if fmt in _FORMAT_DEFAULTS:
        return source.date if fmt == "date" and source.date else _FORMAT_DEFAULTS[fmt]
    pattern = schema.get("pattern")
    candidates = source.words if pattern is None else source.tokens
    for token in candidates:
        fitted = token[: schema.get("maxLength", len(token))].ljust(schema.get("minLength", 0), "x")
        if pattern is None or re.search(pattern, fitted):
            return fitted
    return None


def _bounded(value: float, schema: Mapping[str, Any], integer: bool) -> float:
    step = 1 if integer else 1e-6
    low = max(schema.get("minimum", -math.inf), schema.get("exclusiveMinimum", -math.inf) + step)
    high = min(schema.get("maximum", math.inf), schema.get("exclusiveMaximum", math.inf) - step)
    value = min(max(value, low), high)
    multiple = schema.get("multipleOf")
    if multiple:
        value = math.ceil(value / multiple) * multiple
    return value


def _text_number(schema: Mapping[str, Any], source: _Source, integer: bool) -> float | None:
    if source.number is None:
        return None
    value = _bounded(math.trunc(source.number) if integer else source.number, schema, integer)
    return int(value) if integer else value


def _from_text(schema: Mapping[str, Any], kind: str, source: _Source) -> Any:
    """A value of ``kind`` copied from the text, or ``None`` when the text has none (or ``kind`` is not copied)."""
    builder = _TEXT_BUILDERS.get(kind)
    return None if builder is None else builder(_branch_for(schema, kind, source), source)


def _build_object(schema: Mapping[str, Any], source: _Source) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    names = list(dict.fromkeys(itertools.chain(properties, schema.get("required") or [])))
    return {name: _build(properties.get(name, {}), source) for name in names}


def _build_array(schema: Mapping[str, Any], source: _Source) -> list[Any]:
    count = schema.get("minItems", 0)
    return [_build(schema.get("items", {}), source) for _ in range(count)]


_TEXT_BUILDERS: dict[str, Callable[[Mapping[str, Any], _Source], Any]] = {
    "string": _text_string,
    "number": lambda schema, source: _text_number(schema, source, integer=False),
    "integer": lambda schema, source: _text_number(schema, source, integer=True),
}
_DEFAULT_BUILDERS: dict[str, Callable[[Mapping[str, Any], _Source], Any]] = {
    "object": _build_object,
    "array": _build_array,
    "string": lambda schema, _: "".ljust(schema.get("minLength", 0), "x"),
    "number": lambda schema, _: _bounded(0, schema, integer=False),
    "integer": lambda schema, _: int(_bounded(0, schema, integer=True)),
    "boolean": lambda _schema, _: False,
}


def _default(schema: Mapping[str, Any], kind: str, source: _Source) -> Any:
    """The type default of ``kind``: "", 0, false, [] (or ``minItems`` items), objects built recursively."""
    builder = _DEFAULT_BUILDERS.get(kind)
    return None if builder is None else builder(_branch_for(schema, kind, source), source)


def _build(schema: Any, source: _Source) -> Any:
    """Examples first, then const/enum, then a value from the text, then null if allowed, then a default."""
    schema = _resolve(schema, source)
    if not isinstance(schema, Mapping):
        return None  # a boolean schema: ``true`` takes anything
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kinds = _types(schema, source)
    if "object" in kinds:
        return _build_object(_branch_for(schema, "object", source), source)
    for kind in kinds:
        value = _from_text(schema, kind, source)
        if value is not None:
            return value
    if "null" in kinds:
        return None
    return _default(schema, kinds[0], source)


def build_answer(schema: Mapping[str, Any] | None, text: str) -> Any:
    """The deterministic answer to ``text`` under ``schema`` (``{}`` without a schema)."""
    if not schema:
        return {}
    return _build(schema, _scan(text, schema))


# --- requests ----------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def _texts(messages: Iterable[Any], roles: Sequence[str] | None = None) -> str:
    return "\n".join(
        _content_text(m.get("content"))
        for m in messages
        if isinstance(m, Mapping) and (roles is None or m.get("role") in roles)
    )


def _requested_schema(response_format: Any) -> Mapping[str, Any] | None:
    """The schema in ``{"type": "json_schema", "json_schema": {"schema": ...}}`` or ``{"type": "json_object",
    "schema": ...}`` (llama.cpp's form), else ``None``."""
    if not isinstance(response_format, Mapping):
        return None
    wrapper = response_format.get("json_schema")
    schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else response_format.get("schema")
    return schema if isinstance(schema, Mapping) else None


def _completion(request: Mapping[str, Any], number: int) -> dict[str, Any]:
    messages = request.get("messages") or []
    answer = json.dumps(build_answer(_requested_schema(request.get("response_format")), _texts(messages, ("user",))))
    prompt_tokens = max(1, len(_texts(messages)) // 4)
    completion_tokens = max(1, len(answer) // 4)
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --- ASGI --------------------------------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode()


async def _send(send: Send, status: int, payload: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
    await send({"type": "http.response.body", "body": payload})


async def _send_json(send: Send, status: int, body: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await _send(send, status, _encode(body), headers)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class FakeOpenAI:
    """The ASGI app: ``GET /v1/models`` and ``POST /v1/chat/completions`` with seeded faults."""

    def __init__(self, latency_ms: float, fail_rate: float, fail_status: int, hang_rate: float, seed: int) -> None:
        self.latency = latency_ms / 1000
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self.hang_rate = hang_rate
        self._rng = random.Random(seed)
        self._numbers = itertools.count(1)
        self._routes: dict[tuple[str, str], Callable[[Receive, Send], Awaitable[None]]] = {
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        handler = self._routes.get((scope["method"], path))
        if handler is not None:
            await handler(receive, send)
        elif any(route_path == path for _, route_path in self._routes):
            await _send_json(send, 405, _error_body(405, f"method {scope['method']} not allowed on {path}"))
        else:
            await _send_json(send, 404, _error_body(404, f"no route {path}"))

    @staticmethod
    async def _hang(receive: Receive, send: Send) -> None:
        """Answer nothing for an hour; returns early when the client disconnects (its timeout fired)."""
        try:
            await asyncio.wait_for(receive(), HANG_SECONDS)
        except TimeoutError:
            await _send_json(send, 504, _error_body(504, "injected hang ended"))

    async def _models(self, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, _MODELS)

    async def _chat(self, receive: Receive, send: Send) -> None:
        arrived = time.perf_counter()
        roll = self._rng.random()  # drawn on arrival, so the fault sequence depends on the seed and order only
        number = next(self._numbers)
        body = await _read_body(receive)
        if self.fail_rate <= roll < self.fail_rate + self.hang_rate:
            await self._hang(receive, send)
            return
        status, payload, headers = self._reply(roll, number, body)
        # The latency runs from arrival, with the fake's own work inside it: a loaded fake still answers on time,
        # so "ideal = concurrency / latency" holds for whoever calls it (its parsing and answer building used to
        # come on top, about 8 ms at 560 requests per second).
        await asyncio.sleep(max(0.0, self.latency - (time.perf_counter() - arrived)))
        await _send(send, status, payload, headers)

    def _reply(self, roll: float, number: int, body: bytes) -> tuple[int, bytes, Sequence[tuple[bytes, bytes]]]:
        if roll < self.fail_rate:
            retry = [(b"retry-after", b"1")] if self.fail_status == 429 else []
            message = f"injected fault {number} (fail_rate={self.fail_rate})"
            return self.fail_status, _encode(_error_body(self.fail_status, message)), retry
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _encode(_error_body(400, "request body is not valid JSON")), ()
        if not isinstance(request, Mapping) or not isinstance(request.get("messages"), list):
            return 400, _encode(_error_body(400, "'messages' is required and must be a list")), ()
        return 200, _encode(_completion(request, number)), ()


def create_fake_app(
    latency_ms: float = 0, fail_rate: float = 0, fail_status: int = 500, hang_rate: float = 0, seed: int = 0
) -> ASGIApp:
    """Build the fake server; faults are drawn per request from ``random.Random(seed)``."""
    if fail_rate < 0 or hang_rate < 0 or fail_rate + hang_rate > 1:
        raise ValueError("fail_rate and hang_rate must be non-negative and add up to at most 1")
    return FakeOpenAI(latency_ms, fail_rate, fail_status, hang_rate, seed)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake with uvicorn: ``python -m bench.fake_openai --port 8900 --latency-ms 100 ...``."""
    parser = argparse.ArgumentParser(prog="python -m bench.fake_openai", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--hang-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import uvicorn

    app = create_fake_app(args.latency_ms, args.fail_rate, args.fail_status, args.hang_rate, args.seed)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
