"""``extractor eval --limit N``: a seeded sample that keeps the length spread of the data.

The first N lines of a file are often its shortest or its oldest documents; a uniform sample of a few dozen may miss
the long tail, and long documents are where the pipeline does the most (split, parts, merge). The cases are ranked
by text length and cut into N strata of (nearly) equal size; one case is drawn from each, so the longest stratum is
always represented. The sample keeps the file's order, and the same seed gives the same sample.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["sample_by_length"]


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


Case = TypeVar("Case", bound=_HasText)


def sample_by_length(cases: Sequence[Case], limit: int | None, seed: int = 0) -> list[Case]:
    """``limit`` cases, one from each length stratum, in their original order (all of them when ``limit`` is None
    or not below their number)."""
    if limit is None or limit >= len(cases):
        return list(cases)
    rng = random.Random(seed)
    ranked = sorted(range(len(cases)), key=lambda i: (len(cases[i].text), i))
    bounds = [round(n * len(ranked) / limit) for n in range(limit + 1)]
    chosen = sorted(rng.choice(ranked[low:high]) for low, high in itertools.pairwise(bounds))
    return [cases[i] for i in chosen]
