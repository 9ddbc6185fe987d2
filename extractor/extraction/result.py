"""The shape of one extraction's answer, shared by ``/v1/extract``, the cache and batch results."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, computed_field, field_validator

from extractor.extraction.grounding import FieldGrounding
from extractor.vocabulary import EnforcementLevel, GroundingMode, ResultStatus

__all__ = ["ConflictCandidate", "ExtractOptions", "ExtractionResult", "FailedPart", "ResolvedOptions", "Usage"]


class ExtractOptions(BaseModel):
    """Per-request options; unset ones take the service's settings. Those that change an answer are part of the cache
    key (``cache`` and ``require_complete`` do not: only complete results are cached)."""

    model_config = ConfigDict(extra="forbid")

    grounding: GroundingMode | None = Field(
        None, description="`annotate` marks values not found in the text, `strict` nulls them, `off` skips."
    )
    max_attempts: int | None = Field(None, ge=1, le=10, description="Model calls allowed, re-asks included.")
    temperature: float | None = Field(None, ge=0, le=2)
    cache: StrictBool = Field(True, description="Read and write the result cache (`true` or `false`, not 0 or 1).")
    require_complete: bool = Field(
        False,
        description="A long document is extracted in parts: fail (422) when any part fails, instead of answering "
        "the merge of the others with `complete: false`.",
    )
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Null every value whose `confidence` is below this (logged in `repairs`)."
    )
    samples: int | None = Field(
        None,
        ge=1,
        le=5,
        description="Answers asked of the model (the first at `temperature`, the others sampled): their agreement "
        "goes into each value's `confidence`. Each costs a model call.",
    )

    @field_validator("cache", mode="before")
    @classmethod
    def _strict_cache(cls, value: object) -> object:
        """``true`` or ``false`` only: Litestar validates bodies leniently, where ``0`` or ``"no"`` would pass."""
        if not isinstance(value, bool):
            raise ValueError("cache must be true or false")  # pydantic wants a ValueError
        return value


class ResolvedOptions(BaseModel):
    """The options one extraction runs with: the request's, with the service's settings for those it left unset."""

    model_config = ConfigDict(frozen=True)

    grounding: GroundingMode
    max_attempts: int
    temperature: float
    min_confidence: float | None = None
    samples: int = 1


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt_tokens: int, completion_tokens: int) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + prompt_tokens,
            completion_tokens=self.completion_tokens + completion_tokens,
        )


class FailedPart(BaseModel):
    """A part of a long document whose extraction failed: where it is in the text, and why."""

    index: int = Field(description="The part's position among the document's parts, from 0.")
    start: int = Field(description="Its first character in the text sent.")
    end: int = Field(description="Just past its last character.")
    problem: dict[str, Any] = Field(description="The problem document its extraction ended with.")


class ConflictCandidate(BaseModel):
    """One value the parts of a document gave for a field they disagree on."""

    value: Any
    part: int = Field(description="The part that gave it.")
    span: tuple[int, int] | None = Field(description="Where it is in the text sent; null when not found.")
    grounded: bool | None


def _one(parts: int) -> bool:
    return parts == 1


class ExtractionResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    status: ResultStatus = Field(description="`empty`: the document holds nothing this schema asks for.")
    data: dict[str, Any] | None = Field(description="Valid against the schema (every field nullable); null if empty.")
    schema_ref: str = Field(alias="schema", description="The exact version used, e.g. `receipt@3`.")
    model: str
    cached: bool = False
    enforcement: EnforcementLevel = Field(description="How JSON output was enforced.")
    attempts: int = Field(description="Model calls made, re-asks included (0 when answered from the cache).")
    repairs: list[str] = Field(default_factory=list, description="Every repair, coercion and strict-grounding null.")
    fields: dict[str, FieldGrounding] = Field(
        default_factory=dict, description="Per JSON Pointer of each non-null leaf."
    )
    usage: Usage = Field(default_factory=Usage)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    # A long document's: left out of the JSON at their defaults, so a one-part result reads as it always did.
    complete: bool = Field(True, exclude_if=bool, description="False when some part of a long document failed.")
    parts: int = Field(1, exclude_if=_one, description="Parts the document was split into to fit the model.")
    failed_parts: list[FailedPart] = Field(
        default_factory=list, exclude_if=lambda value: not value, description="The parts that failed, if any."
    )
    empty_reason: str | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Why the answer is `empty`: `no_values` (nothing extracted), `not_grounded` (no value found in "
        "the text), `no_presence` (the values do not make a record of this schema: its `x-required-for-presence`).",
    )
    truncated: bool = Field(
        False,
        exclude_if=lambda value: not value,
        description="The model's answer was cut off at its token limit: the fields it had closed are kept, the one "
        "it was writing is null (see `repairs`).",
    )
    conflicts: dict[str, list[ConflictCandidate]] = Field(
        default_factory=dict,
        exclude_if=lambda value: not value,
        description="Per JSON Pointer, the different values parts gave for a field; the kept one first.",
    )
