"""Write the evaluation samples used in docs/benchmarks.md for the bundled model.

    python -m bench.eval_samples OUT_DIR

- ``snips_14.jsonl``: every 50th SNIPS utterance (the file is grouped by intent, 100 each: 2 per intent).
- ``kleister_short.jsonl``: the 10 shortest Kleister-NDA contracts (3-7k characters), the ones that fit the
  bundled model's 4096-token context.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    snips = _records(DATA / "snips" / "eval.jsonl")[::50]
    contracts = sorted(_records(DATA / "kleister_nda" / "train.jsonl"), key=lambda r: len(str(r["text"])))[:10]
    for name, rows in (("snips_14.jsonl", snips), ("kleister_short.jsonl", contracts)):
        lines = [json.dumps({"id": r["id"], "text": r["text"], "expected": r["expected"]}) for r in rows]
        (out / name).write_text("\n".join(lines) + "\n")
        print(f"{out / name}: {len(rows)} records")


if __name__ == "__main__":
    main()
