"""A long document through the pipeline: wall time against the ideal, memory, parts; and what planning costs.

    python -m bench.long_document [--chars 100000] [--latency-ms 100] [--rounds 3] [--concurrency 1,4,8,16]

The model is ``bench.fake_openai`` in a subprocess, answering each call after ``--latency-ms``; the pipeline runs
in this process (``open_runtime``, as ``eval --in-process`` does) with the bundled model's shape: a 4096-token
window and 1024 tokens reserved for the answer. The fake has no tokenizer, so parts are sized by the estimate
(``budget.CHARS_PER_TOKEN``). The document is Kleister-NDA contracts joined until ``--chars`` characters.

For each ``part_concurrency`` it reports the median wall time of an uncached extraction against the ideal,
ceil(parts / concurrency) x latency; rounds interleave the concurrencies. Peak memory is traced (``tracemalloc``)
over one extraction, untimed. Planning is timed alone: ``PartPlanner.plan`` for a short text (the single-part path,
no token counting) and for the long one (the split).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import Server, free_port, machine, table, write_json
from extractor.extraction.result import ExtractOptions
from extractor.runtime import Runtime, open_runtime
from extractor.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kleister_nda" / "train.jsonl"
SHORT = "ACME Corp and Widget LLC agree to keep each other's secrets for two years from 1 March 2024 (Delaware law)."


def document(chars: int) -> str:
    """Contracts joined by blank lines, cut at ``chars`` (at a word end)."""
    texts, size = [], 0
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if size >= chars:
            break
        text = json.loads(line)["text"]
        texts.append(text)
        size += len(text) + 2
    return "\n\n".join(texts)[:chars].rsplit(" ", 1)[0]


async def extract(runtime: Runtime, text: str) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await runtime.extraction.extract("default", "nda", text, ExtractOptions(cache=False))
    return time.perf_counter() - started, result


async def plan_cost_us(runtime: Runtime, text: str, rounds: int) -> float:
    """Median microseconds of planning ``text`` (schema resolved and level known beforehand)."""
    schema = await runtime.registry.resolve("default", "nda")
    level = await runtime.extraction._prober.level()
    planner = runtime.extraction._planner
    model = await runtime.model.name()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await planner.plan(schema, level, text, model)
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def settings_for(args: argparse.Namespace, model_url: str, concurrency: int) -> Settings:
    return Settings(
        redis_url=args.redis_url,
        model_base_url=model_url,
        model_enforcement="json_schema",
        model_context_tokens=4096,
        extraction={"max_tokens": 1024, "part_concurrency": concurrency},
    )


async def run(args: argparse.Namespace, model_url: str) -> dict[str, Any]:
    text = document(args.chars)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    walls: dict[int, list[float]] = {c: [] for c in concurrencies}
    parts = 0
    for round_ in range(args.rounds):
        for concurrency in concurrencies[round_ % len(concurrencies) :] + concurrencies[: round_ % len(concurrencies)]:
            async with open_runtime(settings_for(args, model_url, concurrency)) as runtime:
                await runtime.registry.register_bundled()
                await extract(runtime, SHORT)  # window, level and tokenizer probe: once per process, not timed
                wall, result = await extract(runtime, text)
                walls[concurrency].append(wall)
                parts = result.parts
    async with open_runtime(settings_for(args, model_url, concurrencies[-1])) as runtime:
        await runtime.registry.register_bundled()
        await extract(runtime, SHORT)
        tracemalloc.start()
        await extract(runtime, text)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        planning = {
            "short_text_us": round(await plan_cost_us(runtime, SHORT, 200), 1),
            "long_text_us": round(await plan_cost_us(runtime, text, 5), 1),
        }
    latency_s = args.latency_ms / 1000
    rows = {
        str(c): {
            "median_s": round(statistics.median(walls[c]), 3),
            "ideal_s": round(math.ceil(parts / c) * latency_s, 3),
            "ratio": round(statistics.median(walls[c]) / (math.ceil(parts / c) * latency_s), 2),
        }
        for c in concurrencies
    }
    return {
        "machine": machine(),
        "chars": len(text),
        "parts": parts,
        "latency_ms": args.latency_ms,
        "rounds": args.rounds,
        "by_concurrency": rows,
        "traced_peak_mib": round(peak / 2**20, 2),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "planning": planning,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,4,8,16", help="part_concurrency values, comma-separated")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    port = free_port()
    fake = [sys.executable, "-m", "bench.fake_openai", "--port", str(port), "--latency-ms", str(args.latency_ms)]
    with Server(fake, port, ready_path="/v1/models"):
        report = asyncio.run(run(args, f"http://127.0.0.1:{port}/v1"))
    print(f"{report['chars']} characters, {report['parts']} parts, {report['latency_ms']} ms a call")
    rows = [[c, r["median_s"], r["ideal_s"], r["ratio"]] for c, r in report["by_concurrency"].items()]
    print(table(["part_concurrency", "median s", "ideal s", "ratio"], rows))
    print(f"traced peak {report['traced_peak_mib']} MiB; max RSS {report['max_rss_mib']} MiB")
    print(
        f"planning: short text {report['planning']['short_text_us']} us, long {report['planning']['long_text_us']} us"
    )
    write_json(args.json, report)


if __name__ == "__main__":
    main()
