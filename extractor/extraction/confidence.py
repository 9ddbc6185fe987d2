"""How sure each value is: a ``confidence`` in [0, 1] per leaf, from what the endpoint and the pipeline know.

Three signals, multiplied:

1. **Token log-probabilities** of the value's characters in the answer, where the endpoint returns them
   (``logprobs: true``): the geometric mean probability of the tokens that overlap the value. llama.cpp reports
   the model's own distribution before the grammar masks it, so a value the model would not have written of its
   own accord scores low even when the grammar forced its shape.
2. **Grounding**: a value found verbatim keeps its score, one found after normalisation loses a little, one not
   found in the text keeps a quarter. Without log-probabilities these factors are the whole score, a prior that
   ``extractor eval``'s calibration table checks (docs/benchmarks.md).
3. **Agreement across samples** (``options.samples: k``): the share of the k answers that gave the same value.

``min_confidence`` then nulls the values below it, one ``repairs`` line each (:func:`apply_min_confidence`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic_core

from extractor.extraction.answer_spans import scan_answer
from extractor.extraction.grounding import FieldGrounding, iter_leaves
from extractor.extraction.model import ModelReply
from extractor.pointer import child_pointer
from extractor.vocabulary import MatchKind

__all__ = [
    "TokenLogprob",
    "agreement",
    "answer_confidences",
    "apply_min_confidence",
    "logprob_confidences",
    "raw_leaves",
    "score_fields",
]

TokenLogprob = tuple[str, float]
"""One answer token and its natural-log probability."""

_GROUNDED = {MatchKind.EXACT: 1.0, MatchKind.NORMALIZED: 0.9}
_NOT_FOUND = 0.25
_PRIOR = {MatchKind.EXACT: 0.8, MatchKind.NORMALIZED: 0.7}  # without log-probabilities
_PRIOR_NOT_FOUND = 0.2
_PRIOR_UNKNOWN = 0.5
_INDEX = re.compile(r"/\d+(?=/|$)")


def logprob_confidences(content: str, tokens: Sequence[TokenLogprob]) -> dict[str, float]:
    """Per JSON Pointer of the answer ``content``, the geometric mean probability of the tokens under its value.

    Empty when the tokens do not spell out the content (an endpoint that trims or rewrites its answer)."""
    joined = "".join(token for token, _ in tokens)
    shift = joined.find(content) if joined != content else 0
    if shift < 0 or not content:
        return {}
    offsets: list[tuple[int, int, float]] = []
    position = -shift
    for token, logprob in tokens:
        offsets.append((position, position + len(token), logprob))
        position += len(token)
    confidences: dict[str, float] = {}
    for pointer, (start, end) in scan_answer(content).spans.items():
        under = [lp for a, b, lp in offsets if a < max(end, start + 1) and b > start and math.isfinite(lp)]
        if under:
            confidences[pointer] = math.exp(sum(under) / len(under))
    return confidences


def _same(left: Any, right: Any) -> bool:
    """Loose equality of an answer's value and the value kept after coercion (``"12.50"`` is 12.5)."""
    if isinstance(left, int | float) or isinstance(right, int | float):
        try:
            return float(left) == float(right)
        except (TypeError, ValueError):
            return False
    return str(left).strip().casefold() == str(right).strip().casefold()


def _shape(pointer: str) -> str:
    return _INDEX.sub("/#", pointer)


def _match_raw(raw: Mapping[str, tuple[Any, float]], pointer: str, value: Any, used: set[str]) -> float | None:
    """The raw answer's confidence for the kept leaf ``pointer``: same place, else the same value in the same list
    (strict grounding removes list items, which moves the later ones up)."""
    hit = raw.get(pointer)
    if hit is not None and pointer not in used and _same(hit[0], value):
        used.add(pointer)
        return hit[1]
    shape = _shape(pointer)
    for other, (raw_value, confidence) in raw.items():
        if other not in used and _shape(other) == shape and _same(raw_value, value):
            used.add(other)
            return confidence
    return None


def _grounding_factor(grounding: FieldGrounding | None, with_logprobs: bool) -> float:
    if grounding is None or grounding.grounded is None:
        return 1.0 if with_logprobs else _PRIOR_UNKNOWN
    if grounding.grounded is False:
        return _NOT_FOUND if with_logprobs else _PRIOR_NOT_FOUND
    kind = grounding.match or MatchKind.NORMALIZED
    return _GROUNDED[kind] if with_logprobs else _PRIOR[kind]


def score_fields(
    data: Any,
    fields: Mapping[str, FieldGrounding] | None,
    raw: Mapping[str, tuple[Any, float]],
    agreements: Mapping[str, float] | None = None,
) -> dict[str, FieldGrounding]:
    """``fields`` (one per non-null leaf of ``data``) with a ``confidence`` each.

    ``raw`` maps the answer's pointers to ``(value, log-probability confidence)``; ``agreements`` maps the kept
    data's pointers to the share of samples that agree (absent: one sample)."""
    scored: dict[str, FieldGrounding] = {}
    used: set[str] = set()
    for pointer, value in iter_leaves(data):
        if value is None:
            continue
        grounding = (fields or {}).get(pointer)
        from_tokens = _match_raw(raw, pointer, value, used) if raw else None
        confidence = (from_tokens if from_tokens is not None else 1.0) * _grounding_factor(
            grounding, from_tokens is not None
        )
        if agreements is not None:
            confidence *= agreements.get(pointer, 1.0)
        score = round(min(1.0, max(0.0, confidence)), 4)
        if grounding is None:
            scored[pointer] = FieldGrounding(span=None, grounded=None, match=None, confidence=score)
        else:  # not dataclasses.replace: it costs several times more, once per value of every answer
            scored[pointer] = FieldGrounding(grounding.span, grounding.grounded, grounding.match, score)
    return scored


def raw_leaves(value: Any, confidences: Mapping[str, float]) -> dict[str, tuple[Any, float]]:
    """The answer's leaves that have a log-probability confidence: pointer to ``(value, confidence)``."""
    return {p: (v, confidences[p]) for p, v in iter_leaves(value) if p in confidences and v is not None}


def answer_confidences(
    reply: ModelReply | None, data: Any, fields: Mapping[str, FieldGrounding] | None, samples: Sequence[Any] = ()
) -> dict[str, FieldGrounding] | None:
    """``fields`` with each value's confidence, from ``reply`` (the answer ``data`` came from) and the other samples.

    None when grounding was off (``fields`` None): the result then carries no per-field annotations at all."""
    if fields is None:
        return None
    raw: dict[str, tuple[Any, float]] = {}
    if reply is not None and reply.logprobs:
        confidences = logprob_confidences(reply.content, reply.logprobs)
        start = reply.content.find("{")
        if confidences and start >= 0:
            try:
                raw = raw_leaves(pydantic_core.from_json(reply.content[start:], allow_partial=True), confidences)
            except ValueError:
                raw = {}
    return score_fields(data, fields, raw, agreement(data, samples) if samples else None)


def agreement(data: Any, samples: Sequence[Any]) -> dict[str, float]:
    """Per leaf of ``data``, the share of ``[data, *samples]`` whose leaf at the same place is the same value."""
    others = [dict(iter_leaves(sample)) for sample in samples]
    return {
        pointer: (1 + sum(1 for leaves in others if pointer in leaves and _same(leaves[pointer], value)))
        / (1 + len(others))
        for pointer, value in iter_leaves(data)
        if value is not None
    }


def apply_min_confidence(
    data: Any, fields: Mapping[str, FieldGrounding], threshold: float
) -> tuple[Any, tuple[str, ...]]:
    """A copy of ``data`` with every leaf under ``threshold`` nulled (a list item removed), one log line each."""
    log: list[str] = []
    return _drop(data, "", fields, threshold, log), tuple(log)


def _low(fields: Mapping[str, FieldGrounding], pointer: str, threshold: float) -> float | None:
    grounding = fields.get(pointer)
    confidence = grounding.confidence if grounding is not None else None
    return confidence if confidence is not None and confidence < threshold else None


def _drop(data: Any, pointer: str, fields: Mapping[str, FieldGrounding], threshold: float, log: list[str]) -> Any:
    if isinstance(data, Mapping):
        return {key: _drop(value, child_pointer(pointer, key), fields, threshold, log) for key, value in data.items()}
    if isinstance(data, list):
        kept = []
        for index, value in enumerate(data):
            path = child_pointer(pointer, index)
            low = _low(fields, path, threshold)
            if low is not None and not isinstance(value, Mapping | list):
                log.append(f"{path}: confidence {low:.2f} below min_confidence {threshold:g}, removed from the list")
            else:
                kept.append(_drop(value, path, fields, threshold, log))
        return kept
    low = _low(fields, pointer, threshold)
    if low is None:
        return data
    log.append(f"{pointer}: confidence {low:.2f} below min_confidence {threshold:g}, set to null")
    return None
