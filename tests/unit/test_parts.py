"""Planning a document's parts (window, counting only when needed, the split) and shaping the merged result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from extractor.errors import ExtractionFailedError, SchemaTooLargeError, UpstreamError
from extractor.extraction.grounding import ground
from extractor.extraction.merge import PartResult
from extractor.extraction.parts import PartPlanner, failed_part, merged_outcome
from extractor.extraction.split import Part
from extractor.registry.compiled import CompiledSchema, compile_schema
from extractor.registry.schema import SchemaVersion
from extractor.settings import ExtractionSettings
from extractor.vocabulary import EnforcementLevel

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
}


def compiled(schema: dict[str, Any] = SCHEMA) -> CompiledSchema:
    return compile_schema(SchemaVersion(name="doc", version=1, hash="h1", json_schema=schema, created_at=""))


class Tokenizer:
    """A ``ServerApi`` with llama-cpp-python's tokenize endpoint, one token per word; it logs every request."""

    def __init__(self, *, tokenizes: bool = True) -> None:
        self.tokenizes = tokenizes
        self.requests: list[str] = []

    async def server_json(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        self.requests.append(path)
        if self.tokenizes and path == "/extras/tokenize/count" and body is not None:
            return {"count": len(body["input"].split())}
        raise UpstreamError(f"model endpoint answered 404: {path}", upstream_status=404)

    @property
    def counts(self) -> int:
        return sum(path == "/extras/tokenize/count" for path in self.requests)


def planner(server: Tokenizer, window: int = 2048, **settings: Any) -> PartPlanner:
    options = {"max_tokens": 256, "chunk_overlap_chars": 0, **settings}
    return PartPlanner(server, ExtractionSettings(**options), context_tokens=window)


WORDS = " ".join(f"word{n}." for n in range(3000))


async def test_a_text_that_clearly_fits_is_one_part_without_a_tokenizer_round_trip() -> None:
    server = Tokenizer()
    plan = await planner(server).plan(compiled(), EnforcementLevel.JSON_OBJECT_SCHEMA, "Ada Lovelace, 1843.", "m")
    assert [(p.start, p.end) for p in plan.parts] == [(0, 19)]
    assert server.requests == []  # the window is configured, and the byte bound needs no count


async def test_a_long_text_is_split_to_fit_by_the_endpoint_s_count() -> None:
    server = Tokenizer()
    plan = await planner(server).plan(compiled(), EnforcementLevel.JSON_OBJECT_SCHEMA, WORDS, "m")
    assert len(plan.parts) > 1
    assert all(len(part.text.split()) <= plan.budget.document for part in plan.parts)
    assert plan.budget.overhead < 100  # counted by the tokenizer, not the byte bound
    assert "".join(part.text for part in plan.parts) == WORDS  # no overlap: the parts tile the text


async def test_the_prompt_is_counted_once_per_schema_and_level() -> None:
    server, schema = Tokenizer(), compiled()
    plans = planner(server)
    await plans.plan(schema, EnforcementLevel.JSON_OBJECT_SCHEMA, WORDS, "m")
    first = server.counts
    await plans.plan(schema, EnforcementLevel.JSON_OBJECT_SCHEMA, WORDS, "m")
    assert server.counts - first < first  # the second plan skips the probe and the prompt's count


async def test_chunk_tokens_splits_a_text_the_window_would_hold() -> None:
    text = " ".join(["word"] * 300)
    assert len((await planner(Tokenizer()).plan(compiled(), EnforcementLevel.JSON_OBJECT, text, "m")).parts) == 1
    plan = await planner(Tokenizer(), chunk_tokens=100).plan(compiled(), EnforcementLevel.JSON_OBJECT, text, "m")
    assert len(plan.parts) >= 3
    assert all(len(part.text.split()) <= 100 for part in plan.parts)


async def test_a_hosted_json_schema_endpoint_counts_the_schema_into_the_prompt() -> None:
    plans = planner(Tokenizer(tokenizes=False))
    grammar = await plans.plan(compiled(), EnforcementLevel.JSON_OBJECT_SCHEMA, WORDS, "m")
    hosted = await plans.plan(compiled(), EnforcementLevel.JSON_SCHEMA, WORDS, "m")
    assert hosted.budget.overhead > grammar.budget.overhead


async def test_a_window_the_prompt_and_answer_fill_is_refused_with_the_figures() -> None:
    with pytest.raises(SchemaTooLargeError) as caught:
        await planner(Tokenizer(), window=300).plan(compiled(), EnforcementLevel.JSON_OBJECT, WORDS, "m")
    assert "300-token window (setting)" in caught.value.detail
    assert caught.value.extra["reserve"] == 256


async def test_an_unconfigured_window_is_asked_of_the_endpoint_once() -> None:
    server = Tokenizer()
    plans = PartPlanner(server, ExtractionSettings(), context_tokens=None)
    await plans.plan(compiled(), EnforcementLevel.JSON_OBJECT, "short", "m")
    await plans.plan(compiled(), EnforcementLevel.JSON_OBJECT, "short", "m")
    assert server.requests == ["/props", "/v1/models"]


# --- the merged result ----------------------------------------------------------------------------------------


def part_result(text: str, start: int, index: int, data: dict[str, Any]) -> PartResult:
    part = Part(index=index, start=start, end=start + len(text), text=text)
    return PartResult(part=part, data=data, fields=ground(data, text))


def test_a_field_the_merge_makes_invalid_is_nulled_with_its_grounding_and_conflicts() -> None:
    first, second = "Ada: red, blue.", "Bob: green."
    results = [
        part_result(first, 0, 0, {"name": "Ada", "tags": ["red", "blue"]}),
        part_result(second, len(first) + 1, 1, {"name": "Bob", "tags": ["green"]}),
    ]
    merged = merged_outcome(compiled(), results)
    assert merged.data == {"name": "Ada", "tags": None}  # the union has three tags; the schema allows two
    assert merged.repairs == ["/tags: invalid after merging the parts, set to null"]
    assert merged.fields is not None
    assert not [pointer for pointer in merged.fields if pointer.startswith("/tags")]
    assert [(c.value, c.part, c.span) for c in merged.conflicts["/name"]] == [("Ada", 0, (0, 3)), ("Bob", 1, (16, 19))]


def test_a_failed_part_keeps_its_range_and_problem() -> None:
    error = ExtractionFailedError("no valid output after 1 attempt(s): not JSON", attempts=1)
    failed = failed_part(Part(index=2, start=40, end=90, text="x" * 50), error)
    assert (failed.index, failed.start, failed.end) == (2, 40, 90)
    assert failed.problem["type"] == "extraction-failed"
    assert failed.problem["attempts"] == 1
    assert failed.problem["status"] == 422  # what the same failure answers on /v1/extract
