"""``bench/eval_mix.py``: the evaluation sets of issue 13 mix relevant documents with unrelated ones whose gold is
all null, built from the fixtures' copies of SNIPS and Kleister-NDA (tests/fixtures/README.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.eval_mix import build, opening, spread
from extractor.evaluation.emptiness import has_values

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_each_mix_has_all_null_gold_for_unrelated_documents() -> None:
    snips = records(FIXTURES / "snips" / "eval.jsonl")
    contracts = records(FIXTURES / "kleister_nda" / "shortest_3.jsonl")
    mixes = build(snips, contracts, argparse.Namespace(unrelated=14, relevant=2, openings=1, held_out=False))
    assert set(mixes) == {"nda", "receipt", "invoice", "contact", "job_posting", "snips"}
    nda = mixes["nda"]
    assert [row["source"] for row in nda[:2]] == ["kleister_nda", "kleister_nda"]
    assert all(has_values(row["expected"], ["party", "jurisdiction"]) for row in nda[:2])
    assert all(row["expected"] == {} for row in nda[2:])
    assert len({row["id"] for row in nda[2:]}) == 14
    intents = {str(row["id"]).split("-")[1] for row in nda[2:]}
    assert len(intents) == 7  # spread over the file: every intent
    receipt = mixes["receipt"]
    assert receipt[-1]["source"] == "kleister_nda opening (unrelated)"
    assert len(str(receipt[-1]["text"])) <= 1200
    assert all(row["expected"] == {} for row in receipt)
    assert all(isinstance(row["expected"], dict) for row in mixes["snips"])


def test_the_held_out_set_shares_no_document_with_the_first() -> None:
    snips = records(FIXTURES / "snips" / "eval.jsonl")
    contracts = records(FIXTURES / "kleister_nda" / "shortest_3.jsonl")
    first = build(snips, contracts, argparse.Namespace(unrelated=14, relevant=1, openings=1, held_out=False))
    held = build(snips, contracts, argparse.Namespace(unrelated=14, relevant=1, openings=1, held_out=True))
    for name in first:
        ids = {row["id"] for row in first[name]}
        assert ids.isdisjoint(row["id"] for row in held[name]), name
        assert len(held[name]) == len(first[name])
    assert held["nda"][0]["source"] == "kleister_nda"  # the next shortest contract is the relevant one


def test_opening_cuts_at_a_line_end_and_spread_wraps() -> None:
    text = "a" * 700 + "\n" + "b" * 1000
    assert opening(text) == "a" * 700
    assert opening("x" * 2000) == "x" * 1200
    assert [r["n"] for r in spread([{"n": i} for i in range(10)], 3)] == [0, 3, 6]
    assert spread([], 3) == []
