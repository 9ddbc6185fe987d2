"""The Kleister-NDA sample that ``extractor eval --limit N --seed S`` draws, split by whether a contract fits in one
prompt of the bundled model, for the long-document evaluation in docs/benchmarks.md.

    python -m bench.long_eval_samples OUT_DIR --limit 20 --seed 0

Writes ``kleister_sample.jsonl`` (the sample itself), ``kleister_fits.jsonl`` (its contracts that fit in one prompt)
and ``kleister_long.jsonl`` (the others), and prints each contract's length and token count. "Fits" is the
service's own test (``extraction.parts``): the contract's tokens, by the bundled model's tokenizer (vocabulary only,
no weights), within what the 4096-token window leaves after the ``nda`` prompt, the answer's reserve and the margin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llama_cpp import Llama

from extractor.evaluation.runner import load_cases
from extractor.evaluation.sampling import sample_by_length
from extractor.extraction.budget import MESSAGE_OVERHEAD_TOKENS, Budget
from extractor.extraction.prompt import build_messages
from extractor.local.model import find_bundled_model
from extractor.registry.compiled import compile_schema
from extractor.registry.schema import SchemaVersion
from extractor.registry.service import read_definitions

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kleister_nda" / "train.jsonl"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def document_budget(tokenizer: Llama, window: int, reserve: int) -> int:
    """Tokens the ``nda`` prompt leaves for the document, as ``PartPlanner`` reckons it."""
    definition = read_definitions(SCHEMAS)["nda"]
    version = SchemaVersion(name="nda", version=1, hash="", created_at="", **definition.model_dump())
    messages = build_messages(compile_schema(version), "")
    overhead = sum(len(tokenizer.tokenize(m["content"].encode(), add_bos=False)) for m in messages)
    return Budget.of(window, overhead + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1), reserve).document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=4096, help="The bundled server's n_ctx.")
    parser.add_argument("--reserve", type=int, default=1024, help="EXTRACTOR_EXTRACTION__MAX_TOKENS.")
    args = parser.parse_args()
    model = find_bundled_model()
    if model is None:
        raise SystemExit("the bundled model is not installed (extractor[local])")
    tokenizer = Llama(model_path=str(model), vocab_only=True, verbose=False)
    budget = document_budget(tokenizer, args.window, args.reserve)
    sample = sample_by_length(load_cases(DATA), args.limit, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: (args.out / f"kleister_{name}.jsonl").open("w") for name in ("sample", "fits", "long")}
    print(f"document budget: {budget} tokens; {len(sample)} contracts")
    for case in sample:
        tokens = len(tokenizer.tokenize(case.text.encode(), add_bos=False))
        line = json.dumps({"id": case.id, "text": case.text, "expected": case.expected}) + "\n"
        files["sample"].write(line)
        files["fits" if tokens <= budget else "long"].write(line)
        print(f"{case.id[:40]:40} {len(case.text):>7} chars {tokens:>6} tokens {'fits' if tokens <= budget else ''}")
    for handle in files.values():
        handle.close()


if __name__ == "__main__":
    main()
