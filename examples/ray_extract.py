"""Extract a data set with Ray Data: JSONL or Parquet of ``{id, text}`` rows in, Parquet of result records out.

Each output row has ``id``, ``index``, ``status`` and ``result`` (the line ``GET /v1/batches/{id}/results`` gives
for that document, as JSON text). Install the extra first: ``pip install 'extractor[ray]'``.

    # extractor's pipeline in the Ray workers, against an OpenAI-compatible endpoint (vLLM, OpenAI, ...)
    python examples/ray_extract.py docs.jsonl out/ --schema receipt --schema-file schemas/receipt.json \\
        --model-base-url http://vllm:8000/v1 --actors 4

    # the same schema as a running service's registry has it
    python examples/ray_extract.py docs.parquet out/ --schema receipt@2 --registry-url http://extractor:8000 ...

    # or each document sent to a running extractor service (its cache, tenancy and limits apply)
    python examples/ray_extract.py docs.jsonl out/ --schema receipt --service-url http://extractor:8000

On a Ray cluster, ``RAY_ADDRESS`` says where it is; without one, a local Ray starts on this machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import ray
import ray.data

from extractor.integrations.ray import ExtractBatches, ExtractViaService


def _read(path: str) -> ray.data.Dataset:
    """The rows; an ``index`` column, if they have one, is each record's ``index`` (else null: Ray Data has no
    global row number, and numbering 50 million rows would mean reading them all first)."""
    return ray.data.read_parquet(path) if path.endswith(".parquet") else ray.data.read_json(path)


def extract(args: argparse.Namespace) -> ray.data.Dataset:
    """The lazy dataset of result records for ``args``' input."""
    dataset = _read(args.input)
    common: dict[str, Any] = {"concurrency": args.concurrency}
    if args.service_url:
        fn: type[ExtractBatches | ExtractViaService] = ExtractViaService
        kwargs: dict[str, Any] = {"url": args.service_url, "api_key": args.api_key, **common}
    else:
        fn = ExtractBatches
        settings = {"model_base_url": args.model_base_url, "model_name": args.model_name}
        if args.model_enforcement:
            settings["model_enforcement"] = args.model_enforcement
        kwargs = {
            "schema_file": args.schema_file,
            "registry_url": args.registry_url,
            "api_key": args.api_key,
            "settings": {k: v for k, v in settings.items() if v is not None},
            **common,
        }
    return dataset.map_batches(
        fn,
        fn_constructor_args=(args.schema,),
        fn_constructor_kwargs=kwargs,
        batch_size=args.batch_size,
        batch_format="numpy",
        concurrency=args.actors,
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="A .jsonl or .parquet file (or folder) of {id, text} rows.")
    parser.add_argument("output", help="A folder for the Parquet files of result records.")
    parser.add_argument("--schema", required=True, help="`name` or `name@N`.")
    parser.add_argument("--schema-file", help="The schema as a file (bare JSON Schema or a definition).")
    parser.add_argument("--registry-url", help="Or: the running service whose registry holds the schema.")
    parser.add_argument("--service-url", help="Instead: send each document to this running service.")
    parser.add_argument("--api-key", help="For the service (registry or extraction), if it has keys.")
    parser.add_argument("--model-base-url", help="OpenAI-compatible endpoint (or EXTRACTOR_MODEL_BASE_URL).")
    parser.add_argument("--model-name")
    parser.add_argument("--model-enforcement", help="Skip the probe: json_schema, json_object_schema, ...")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors, each with its own model client.")
    parser.add_argument("--concurrency", type=int, default=32, help="Documents in flight per actor.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-cpus", type=int, default=None, help="For a local Ray only.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if not ray.is_initialized():
        ray.init(num_cpus=args.num_cpus)
    extract(args).write_parquet(args.output)


if __name__ == "__main__":
    main()
