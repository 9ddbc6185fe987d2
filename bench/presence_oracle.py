"""How strict a bundled schema's presence rule is for right answers: the Kleister-NDA gold records, taken as if a
model had answered them, through strict grounding and the relevance decision (``relevance.decide``), with no model.

    python -m bench.presence_oracle [--data ../shared/data/kleister_nda/train.jsonl] [--schema nda]

A relevant document answered ``empty`` by the bundled model can be the model's fault (wrong or ungrounded values)
or the rule's (a right record it would not count). With the gold as the answer, every ``empty`` is the rule's, or
grounding's: Kleister's gold is normalised ("Nike Inc." for "NIKE, Inc.", "7 years" for "seven (7) years"), so
a right value a model copies from the text can ground where the gold's own form does not. The figure is thus an
upper bound on what the rule alone costs right answers.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from extractor.evaluation.runner import load_cases
from extractor.extraction.grounding import apply_strict, ground
from extractor.extraction.presence import describe_rule, presence_rule
from extractor.extraction.relevance import decide
from extractor.registry.service import read_definitions

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "kleister_nda" / "train.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--schema", default="nda", help="A bundled schema (schemas/NAME.json).")
    args = parser.parse_args()
    schema = read_definitions(ROOT / "schemas")[args.schema].json_schema
    names = list(schema["properties"])
    statuses: collections.Counter[str] = collections.Counter()
    grounded: collections.Counter[str] = collections.Counter()
    given: collections.Counter[str] = collections.Counter()
    cases = [case for case in load_cases(args.data) if case.expected]
    for case in cases:
        answer = {name: (case.expected or {}).get(name) for name in names}
        for name, value in answer.items():
            if value not in (None, [], ""):
                given[name] += 1
        kept, _ = apply_strict(answer, ground(answer, case.text))
        fields = ground(kept, case.text)
        for name, value in kept.items():
            if value not in (None, [], ""):
                grounded[name] += 1
        decision = decide(schema, kept, fields, [])
        statuses[decision.reason or "ok"] += 1
    total = len(cases)
    print(
        f"{args.data.name}: {total} documents with a gold record; schema {args.schema!r}, presence rule: "
        f"{describe_rule(presence_rule(schema)) or '(none)'}"
    )
    print("| answered | documents | share |\n|---|---:|---:|")
    for status, count in statuses.most_common():
        print(f"| {status} | {count} | {count / total:.3f} |")
    print("\n| field | gold values | found in the text (strict keeps them) | share |\n|---|---:|---:|---:|")
    for name in names:
        share = grounded[name] / given[name] if given[name] else float("nan")
        print(f"| {name} | {given[name]} | {grounded[name]} | {share:.3f} |")


if __name__ == "__main__":
    main()
