"""Write, per bundled schema, an evaluation set that mixes relevant documents with unrelated ones (gold all null).

    python -m bench.eval_mix OUT_DIR [--unrelated 40] [--relevant 15] [--openings 20] [--held-out]

Each ``OUT_DIR/SCHEMA_mix.jsonl`` line is ``{"id", "text", "expected", "source"}``; ``expected`` is ``{}`` for an
unrelated document, so every field's gold is null and the right answer is ``empty``. From ``../shared/data``:

- ``nda``: the ``--relevant`` shortest Kleister-NDA contracts (they fit the bundled model's 4096-token context),
  and ``--unrelated`` SNIPS utterances, evenly spread over the 700 (all 7 intents).
- ``receipt``, ``invoice``, ``job_posting``: ``--unrelated`` SNIPS utterances and the openings (first 1,200
  characters, cut at a line end) of ``--openings`` contracts other than the ones above. ``../shared/data`` holds no
  receipts, invoices or job postings, so these sets measure false positives only.
- ``contact``: SNIPS utterances only; a contract's opening names its parties with their addresses, which a reader
  could fairly call contact details.
- ``snips`` (``bench/snips_schema.json``, one nullable string per slot): ``--relevant`` SNIPS utterances (gold: their
  slots) and ``--openings`` contract openings.

``--held-out`` draws a second set that shares no document with the first at the same sizes: the utterances and
openings half a step further along, and the next ``--relevant`` shortest contracts (which may need splitting). A rule
tuned on the first set is measured on this one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OPENING_CHARS = 1200
_FALSE_POSITIVE_ONLY = ("receipt", "invoice", "job_posting")

Record = dict[str, Any]


def _records(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def spread(records: Sequence[Record], count: int, offset: int = 0) -> list[Record]:
    """``count`` records evenly spaced over ``records`` (SNIPS is grouped by intent: every intent gets its share)."""
    if count <= 0 or not records:
        return []
    step = max(1, len(records) // count)
    return [records[(offset + i * step) % len(records)] for i in range(min(count, len(records)))]


def opening(text: str, limit: int = OPENING_CHARS) -> str:
    """The first ``limit`` characters of ``text``, cut back to the last line end when there is one."""
    head = text[:limit]
    cut = head.rfind("\n")
    return head[:cut] if cut > limit // 2 else head


def _line(record_id: str, text: str, expected: Record, source: str) -> Record:
    return {"id": record_id, "text": text, "expected": expected, "source": source}


def unrelated_snips(records: Sequence[Record]) -> list[Record]:
    return [_line(r["id"], r["text"], {}, "snips (unrelated)") for r in records]


def unrelated_openings(records: Sequence[Record]) -> list[Record]:
    return [_line(f"{r['id']}-opening", opening(r["text"]), {}, "kleister_nda opening (unrelated)") for r in records]


def build(snips: Sequence[Record], contracts: Sequence[Record], args: argparse.Namespace) -> dict[str, list[Record]]:
    """Every schema's mix, relevant documents first."""
    by_length = sorted(contracts, key=lambda r: len(str(r["text"])))
    first = args.relevant if args.held_out else 0
    relevant_contracts = by_length[first : first + args.relevant]
    others = by_length[:first] + by_length[first + args.relevant :]
    openings = unrelated_openings(spread(others, args.openings, offset=_half_step(others, args.openings, args)))
    utterances = spread(snips, args.unrelated, offset=_half_step(snips, args.unrelated, args))
    relevant_snips = spread(snips, args.relevant, offset=3 + _half_step(snips, args.relevant, args))
    mixes: dict[str, list[Record]] = {
        "nda": [_line(r["id"], r["text"], r["expected"], "kleister_nda") for r in relevant_contracts]
        + unrelated_snips(utterances),
        "contact": unrelated_snips(utterances),
        "snips": [_line(r["id"], r["text"], r["expected"]["slots"], "snips") for r in relevant_snips] + openings,
    }
    for name in _FALSE_POSITIVE_ONLY:
        mixes[name] = unrelated_snips(utterances) + openings
    return mixes


def _half_step(records: Sequence[Record], count: int, args: argparse.Namespace) -> int:
    """0, or with ``--held-out`` half the spacing of ``count`` records drawn from ``records``: between the first's."""
    return max(1, len(records) // max(count, 1)) // 2 if args.held_out else 0


def _write(path: Path, rows: Iterable[Record]) -> int:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--unrelated", type=int, default=40, help="SNIPS utterances per mix")
    parser.add_argument("--relevant", type=int, default=15, help="relevant documents (nda, snips)")
    parser.add_argument("--openings", type=int, default=20, help="contract openings per mix")
    parser.add_argument("--held-out", action="store_true", help="a second set, disjoint from the first")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    snips = _records(DATA / "snips" / "eval.jsonl")
    contracts = _records(DATA / "kleister_nda" / "train.jsonl")
    for name, rows in build(snips, contracts, args).items():
        relevant = sum(1 for row in rows if row["expected"])
        path = args.out / f"{name}_mix.jsonl"
        count = _write(path, rows)
        print(f"{path}: {count} documents ({relevant} relevant, {count - relevant} unrelated)")


if __name__ == "__main__":
    main()
