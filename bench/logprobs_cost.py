"""What token log-probabilities cost the bundled model server: generation speed with and without them.

    python -m bench.logprobs_cost --rounds 3 --tokens 64

Two bundled llama.cpp servers (``LocalModelServer``), one started as usual and one keeping every position's logits
(``--logits_all true``, which ``logprobs`` needs). Each round, in alternating order, asks each the same receipt
extraction at temperature 0 for ``--tokens`` tokens: the plain server plainly, the other with ``logprobs: true,
top_logprobs: 1``. Prints tokens per second per round and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx

from extractor.local.model import LocalModelServer

_MESSAGES = [
    {"role": "system", "content": "Extract the receipt as JSON with merchant, date, total, currency, items."},
    {"role": "user", "content": "Document:\n<<<\nACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n>>>"},
]


def tokens_per_s(client: httpx.Client, url: str, model: str, tokens: int, logprobs: bool) -> float:
    body: dict[str, Any] = {"model": model, "messages": _MESSAGES, "max_tokens": tokens, "temperature": 0}
    if logprobs:
        body |= {"logprobs": True, "top_logprobs": 1}
    started = time.perf_counter()
    answer = client.post(f"{url}/chat/completions", json=body, timeout=600).json()
    return int(answer["usage"]["completion_tokens"]) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)
    plain, keeping = LocalModelServer(), LocalModelServer(logprobs=True)
    try:
        urls = {False: plain.start(), True: keeping.start()}
        ratios = []
        with httpx.Client() as client:
            for round_ in range(args.rounds):
                order = (False, True) if round_ % 2 == 0 else (True, False)
                speed = {lp: tokens_per_s(client, urls[lp], plain.model_name, args.tokens, lp) for lp in order}
                ratios.append(speed[True] / speed[False])
                print(f"round {round_ + 1}: plain {speed[False]:.1f} tok/s, logprobs {speed[True]:.1f} tok/s")
        print(f"logprobs / plain, median of {args.rounds} rounds: {statistics.median(ratios):.3f}")
    finally:
        plain.stop()
        keeping.stop()


if __name__ == "__main__":
    main()
