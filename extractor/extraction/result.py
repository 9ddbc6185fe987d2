"""The shape of one extraction's answer, shared by ``/v1/extract``, the cache and batch results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

__all__ = ["ExtractOptions", "ExtractionResult", "FieldInfo", "Usage"]

GroundingMode = Literal["annotate", "strict", "off"]


class ExtractOptions(BaseModel):
    """Per-request options; unset ones take the service's settings. All of them are part of the cache key."""

    model_config = ConfigDict(extra="forbid")

    grounding: GroundingMode | None = Field(
        None, description="`annotate` marks values not found in the text, `strict` nulls them, `off` skips."
    )
    max_attempts: int | None = Field(None, ge=1, le=10, description="Model calls allowed, re-asks included.")
    temperature: float | None = Field(None, ge=0, le=2)
    cache: bool = Field(True, description="Read and write the result cache.")


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


class FieldInfo(BaseModel):
    span: tuple[int, int] | None = Field(None, description="[start, end) character offsets of the value in the text.")
    grounded: bool | None = Field(None, description="Found in the text; null where it cannot apply (booleans).")
    match: Literal["exact", "normalized"] | None = None


class ExtractionResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    status: Literal["ok", "empty"] = Field(description="`empty`: the document holds nothing this schema asks for.")
    data: dict[str, Any] | None = Field(description="Valid against the schema (every field nullable); null if empty.")
    schema_ref: str = Field(alias="schema", description="The exact version used, e.g. `receipt@3`.")
    model: str
    cached: bool = False
    enforcement: str = Field(description="How JSON output was enforced: json_schema, json_object_schema, ...")
    attempts: int = Field(description="Model calls made, re-asks included (0 when answered from the cache).")
    repairs: list[str] = Field(default_factory=list, description="Every repair, coercion and strict-grounding null.")
    fields: dict[str, FieldInfo] = Field(default_factory=dict, description="Per JSON Pointer of each non-null leaf.")
    usage: Usage = Field(default_factory=Usage)
    timings_ms: dict[str, float] = Field(default_factory=dict)
