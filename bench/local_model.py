"""The bundled SmolLM2-135M through extractor: overhead against llama.cpp called directly, and SNIPS quality.

    python -m bench.local_model [--n 100] [--rounds 8] [--json out.json]

1. Overhead: the same prompt and grammar (``json_object`` + schema) sent (a) straight to the llama.cpp server with
   the openai client and (b) through extractor's pipeline (cache off), interleaved; median latency, tokens/s, ratio.
2. SNIPS (``../shared/data/snips/eval.jsonl``, every 7th utterance: all 7 intents): one schema per intent with that
   intent's slots as nullable string fields. Schema-valid rate, exact match of slot values (case/space-folded),
   and the share of predicted values not found in the text, with grounding ``annotate`` and ``strict``.
3. Prompt style: the compact field list extractor sends vs the JSON Schema pasted into the system message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI
from redis.asyncio import Redis

from bench.common import machine, table, write_json
from extractor.errors import ExtractionFailedError
from extractor.extraction.enforcement import response_format
from extractor.extraction.prompt import build_messages
from extractor.extraction.result import ExtractOptions
from extractor.local.model import LocalModelServer
from extractor.registry.compiled import CompiledSchema
from extractor.registry.schema import SchemaDefinition
from extractor.registry.service import read_definitions
from extractor.runtime import Runtime, bundled_schema_dir, open_runtime
from extractor.settings import Settings
from extractor.vocabulary import EnforcementLevel

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "snips"
RECEIPT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"


def _fold(value: Any) -> str:
    return " ".join(str(value).casefold().split())


def snips_definitions() -> dict[str, SchemaDefinition]:
    slots = json.loads((DATA / "slots_by_intent.json").read_text())
    return {
        f"snips_{intent.lower()}": SchemaDefinition(
            description="the slot values of a voice-assistant request",
            instructions="Each field is a short phrase copied word for word from the request, or null.",
            json_schema={
                "type": "object",
                "properties": {
                    slot: {"type": ["string", "null"], "description": slot.replace("_", " ")} for slot in names
                },
            },
        )
        for intent, names in slots.items()
    }


async def overhead(services: Runtime, rounds: int) -> dict[str, Any]:
    """Direct llama.cpp call vs the whole pipeline, same messages and grammar, alternating order each round."""
    schema = await services.registry.resolve("default", "receipt")
    direct = AsyncOpenAI(base_url=services.settings.model_base_url, api_key="x")
    messages = build_messages(schema, RECEIPT)
    fmt = response_format(EnforcementLevel.JSON_OBJECT_SCHEMA, schema.wire_schema, schema.strict)
    timings: dict[str, list[float]] = {"llama.cpp direct": [], "extractor": []}
    tokens: dict[str, list[int]] = {"llama.cpp direct": [], "extractor": []}

    async def call_direct() -> int:
        reply = await direct.chat.completions.create(  # type: ignore[call-overload]
            model=await services.model.name(),
            messages=messages,
            response_format=fmt,
            max_tokens=1024,
            temperature=0.0,
            seed=0,
        )
        return reply.usage.completion_tokens if reply.usage else 0

    async def call_extractor() -> int:
        result = await services.extraction.extract("default", "receipt", RECEIPT, ExtractOptions(cache=False))
        return result.usage.completion_tokens

    contenders = {"llama.cpp direct": call_direct, "extractor": call_extractor}
    await call_extractor()  # probe and warm the prompt cache once, uncounted
    for round_no in range(rounds):
        order = list(contenders.items())[:: 1 if round_no % 2 == 0 else -1]
        for name, call in order:
            start = time.perf_counter()
            tokens[name].append(await call())
            timings[name].append(time.perf_counter() - start)
    await direct.close()
    rows: dict[str, dict[str, Any]] = {}
    for name in contenders:
        median = statistics.median(timings[name])
        rows[name] = {
            "median_ms": round(median * 1000, 1),
            "tokens_per_s": round(sum(tokens[name]) / sum(timings[name]), 1),
            "completion_tokens_median": statistics.median(tokens[name]),
            "samples_ms": [round(t * 1000, 1) for t in timings[name]],
        }
    rows["ratio"] = {"median_ms": round(rows["extractor"]["median_ms"] / rows["llama.cpp direct"]["median_ms"], 3)}
    return rows


async def snips(services: Runtime, n: int, grounding: str) -> dict[str, Any]:
    sample = _snips_sample(n)
    failures: dict[str, int] = {}
    valid = empty = predicted = ungrounded = gold_total = gold_hit = correct_pred = 0
    for record in sample:
        gold = {k: v[0] for k, v in record["expected"]["slots"].items()}
        gold_total += len(gold)
        name = f"snips_{record['expected']['intent'].lower()}"
        try:
            result = await services.extraction.extract(
                "default",
                name,
                record["text"],
                ExtractOptions(grounding=grounding, cache=False),
            )
        except ExtractionFailedError as exc:
            failures[exc.code] = failures.get(exc.code, 0) + 1
            continue
        valid += 1
        data = result.data or {}
        empty += result.status == "empty"
        raw = {k: v for k, v in data.items() if v is not None}
        for key, value in raw.items():
            predicted += 1
            ungrounded += result.fields.get(f"/{key}") is not None and result.fields[f"/{key}"].grounded is False
            correct_pred += key in gold and _fold(value) == _fold(gold[key])
        gold_hit += sum(1 for k, v in gold.items() if k in raw and _fold(raw[k]) == _fold(v))
    return {
        "grounding": grounding,
        "utterances": len(sample),
        "schema_valid_rate": round(valid / len(sample), 3),
        "empty_rate": round(empty / len(sample), 3),
        "slot_recall_exact": round(gold_hit / gold_total, 3),
        "precision_exact": round(correct_pred / predicted, 3) if predicted else None,
        "values_predicted": predicted,
        "ungrounded_share": round(ungrounded / predicted, 3) if predicted else None,
        "failures": failures,
    }


def _pasted_schema_messages(schema: CompiledSchema, text: str) -> list[dict[str, str]]:
    """The alternative the prompt module rejects: the whole JSON Schema pasted into the system message."""
    system = (
        f"Extract {schema.version.description} from the document. Reply with JSON valid against this JSON Schema:\n"
        f"{json.dumps(schema.version.json_schema)}\nUse null for anything the document does not state."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Document:\n<<<\n{text}\n>>>"}]


async def prompt_styles(services: Runtime, n: int) -> list[dict[str, Any]]:
    """Compact field list (what extractor sends) vs pasted schema, same grammar, scored on SNIPS slots."""
    sample = _snips_sample(n)
    rows = []
    for style, build in (("field list", build_messages), ("pasted schema", _pasted_schema_messages)):
        hits = gold_total = predicted = invented = 0
        prompt_tokens = 0
        for record in sample:
            schema = await services.registry.resolve("default", f"snips_{record['expected']['intent'].lower()}")
            fmt = response_format(EnforcementLevel.JSON_OBJECT_SCHEMA, schema.wire_schema, schema.strict)
            reply = await services.model.complete(
                build(schema, record["text"]), fmt, max_tokens=512, temperature=0.0, seed=0
            )
            prompt_tokens += reply.prompt_tokens
            try:
                data = json.loads(reply.content)
            except ValueError:
                data = {}
            gold = {k: v[0] for k, v in record["expected"]["slots"].items()}
            values = {k: v for k, v in data.items() if v not in (None, "")} if isinstance(data, dict) else {}
            gold_total += len(gold)
            hits += sum(1 for k, v in gold.items() if k in values and _fold(values[k]) == _fold(v))
            predicted += len(values)
            invented += sum(1 for v in values.values() if _fold(v) not in _fold(record["text"]))
        rows.append(
            {
                "prompt": style,
                "utterances": len(sample),
                "prompt_tokens_mean": round(prompt_tokens / len(sample), 1),
                "slot_recall_exact": round(hits / gold_total, 3),
                "values_predicted": predicted,
                "not_in_text_share": round(invented / predicted, 3) if predicted else None,
            }
        )
    return rows


def _snips_sample(n: int) -> list[dict[str, Any]]:
    """Every 7th utterance (the file is grouped by intent, so all 7 intents appear), at most ``n``."""
    lines = [json.loads(line) for line in (DATA / "eval.jsonl").read_text().split("\n") if line.strip()]
    return lines[::7][:n]


async def _register(services: Runtime) -> None:
    bundled = read_definitions(bundled_schema_dir(services.settings))
    await services.registry.register_bundled(bundled | snips_definitions())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as logs, LocalModelServer(log_dir=Path(logs)) as server:
        settings = Settings(
            redis_url=args.redis_url,
            model_base_url=server.base_url,
            model_name=server.model_name,
            model_context_tokens=server.n_ctx,
            model_timeout_s=300,
            cache={"keep_results": 0},
        )
        await Redis.from_url(args.redis_url).flushdb()
        async with open_runtime(settings) as runtime:
            await _register(runtime)
            report: dict[str, Any] = {"machine": machine(), "overhead": await overhead(runtime, args.rounds)}
            if not args.overhead_only:
                # Without grounding's verdict applied (annotate), then with it (strict): same prompts, seed 0.
                report["snips"] = [await snips(runtime, args.n, mode) for mode in ("annotate", "strict")]
                report["prompts"] = await prompt_styles(runtime, args.prompt_n)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompt-n", type=int, default=35, help="SNIPS utterances for the prompt-style comparison")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--overhead-only", action="store_true", help="Skip the SNIPS and prompt-style parts")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    overhead_rows = [[name, *list(row.values())[:3]] for name, row in report["overhead"].items() if name != "ratio"]
    print(table(["path", "median ms", "tokens/s", "completion tokens"], overhead_rows))
    print(f"overhead ratio (extractor / direct, median latency): {report['overhead']['ratio']['median_ms']}")
    for part in ("snips", "prompts"):
        if part in report:
            print(table(list(report[part][0]), [list(row.values()) for row in report[part]]))
    write_json(args.json, report)


if __name__ == "__main__":
    main()
