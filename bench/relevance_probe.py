"""Could a yes/no question tell relevant documents from unrelated ones? An issue 13 relevance candidate, measured.

    python -m bench.relevance_probe --url http://127.0.0.1:PORT/v1 --data MIX.jsonl --subject "a shop receipt"

For each document of an ``extractor eval`` set (``bench.eval_mix``; ``expected`` empty: unrelated), the model is asked
"Is this text <subject>? Answer yes or no." about the document's first ``--chars`` characters, with token
log-probabilities on; p(yes) is the probability of a "yes" token over "yes" + "no" among the answer token's top 10.
Prints, per threshold, the share of unrelated documents it would call unrelated and of relevant ones it would lose.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

_QUESTION = "Is this text {subject}? Answer with one word: yes or no.\n\nText:\n<<<\n{text}\n>>>"


def p_yes(client: httpx.Client, url: str, model: str, subject: str, text: str) -> float:
    """The model's probability of "yes" against "no" as the first token of its answer."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": _QUESTION.format(subject=subject, text=text)}],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 10,
    }
    answer = client.post(f"{url}/chat/completions", json=body, timeout=300).json()
    top = answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    mass = {"yes": 0.0, "no": 0.0}
    for entry in top:
        word = entry["token"].strip().lower()
        if word in mass:
            mass[word] += math.exp(entry["logprob"])
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total else 0.5


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--subject", required=True, help='what a relevant document is: "a shop receipt"')
    parser.add_argument("--chars", type=int, default=1200)
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored: list[tuple[bool, float]] = []
    started = time.perf_counter()
    with httpx.Client() as client:
        for row in rows:
            has_gold = bool(row["expected"]) and any(v not in (None, "", []) for v in row["expected"].values())
            scored.append((has_gold, p_yes(client, args.url, args.model, args.subject, row["text"][: args.chars])))
    print(f"{len(rows)} documents in {time.perf_counter() - started:.0f} s; subject {args.subject!r}")
    relevant = [p for r, p in scored if r]
    unrelated = [p for r, p in scored if not r]
    print(f"mean p(yes): relevant {_mean(relevant):.3f} (n={len(relevant)}), unrelated {_mean(unrelated):.3f}")
    print("threshold  unrelated called unrelated  relevant called unrelated")
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        kept = sum(p < threshold for p in unrelated) / max(1, len(unrelated))
        lost = sum(p < threshold for p in relevant) / max(1, len(relevant))
        print(f"{threshold:9.1f}  {kept:26.2f}  {lost:25.2f}")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


if __name__ == "__main__":
    main()
