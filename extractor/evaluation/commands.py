"""The ``extractor eval`` and ``extractor export`` commands (registered on the CLI group by ``extractor.cli``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import click
import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from extractor.api.deps import DEFAULT_TENANT
from extractor.errors import ExtractorError
from extractor.evaluation.export import write_export
from extractor.evaluation.runner import Backend, HttpBackend, InProcessBackend, load_cases, run_eval, score_run
from extractor.extraction.result import ExtractOptions
from extractor.extraction.results_log import ResultsLog
from extractor.registry.schema import SchemaDefinition
from extractor.services import build_services
from extractor.settings import Settings

__all__ = ["EvalConfig", "eval_command", "export_command", "parse_compare"]

DEFAULT_URL = "http://127.0.0.1:8000"
_SETTINGS_KEYS = frozenset({"model"})  # in-process only: a Settings override, not a request option
_SERVICE_KEYS = frozenset({"url"})  # over HTTP only: another running service


@dataclass(frozen=True)
class EvalConfig:
    """One configuration under test: where extractions run and the request options sent with each."""

    url: str | None = None
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f"service {self.url}" if self.url else "in-process" + (f", model {self.model}" if self.model else "")
        return f"{where}, options {json.dumps(self.options, sort_keys=True)}"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_compare(pairs: Sequence[str], base: EvalConfig) -> EvalConfig | None:
    """The second configuration: ``base`` with each ``KEY=VALUE`` applied (``url``, ``model`` or a request option)."""
    if not pairs:
        return None
    config = base
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--compare")
        if (key in _SERVICE_KEYS and base.url is None) or (key in _SETTINGS_KEYS and base.url is not None):
            where = "over HTTP" if key in _SERVICE_KEYS else "with --in-process (a service has its model fixed)"
            raise click.BadParameter(f"{key}= works only {where}", param_hint="--compare")
        if key == "url":
            config = replace(config, url=raw)
        elif key == "model":
            config = replace(config, model=raw)
        elif key in ExtractOptions.model_fields:
            config = replace(config, options={**config.options, key: _value(raw)})
        else:
            known = ", ".join(sorted({*ExtractOptions.model_fields, *_SERVICE_KEYS, *_SETTINGS_KEYS}))
            raise click.BadParameter(f"unknown key {key!r}; known: {known}", param_hint="--compare")
    return config


@asynccontextmanager
async def _http_backend(config: EvalConfig, api_key: str | None) -> AsyncIterator[Backend]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(600.0, connect=5.0)
    async with httpx.AsyncClient(base_url=config.url or DEFAULT_URL, headers=headers, timeout=timeout) as client:
        yield HttpBackend(client)


@asynccontextmanager
async def _in_process_backend(config: EvalConfig, settings: Settings, tenant: str) -> AsyncIterator[Backend]:
    if config.model is not None:
        settings = settings.model_copy(update={"model_name": config.model})
    services = build_services(settings)
    try:
        await services.registry.register_bundled()
        yield InProcessBackend(services, tenant)
    finally:
        await services.aclose()


@dataclass(frozen=True)
class _EvalRequest:
    schema_ref: str
    data: Path
    expected_path: str | None
    limit: int | None
    concurrency: int
    fields: list[str] | None
    register: Path | None
    cache: bool
    api_key: str | None
    tenant: str
    settings: Settings | None  # set for --in-process


def _read_definition(path: Path) -> SchemaDefinition:
    document = json.loads(path.read_text(encoding="utf-8"))
    return SchemaDefinition.model_validate(document if "json_schema" in document else {"json_schema": document})


async def _evaluate(request: _EvalRequest, first: EvalConfig, second: EvalConfig | None) -> dict[str, Any]:
    def backend(config: EvalConfig) -> Any:
        if request.settings is None:
            return _http_backend(config, request.api_key)
        return _in_process_backend(config, request.settings, request.tenant)

    cases = load_cases(request.data, expected_path=request.expected_path, limit=request.limit)
    async with AsyncExitStack() as stack:
        backends = [await stack.enter_async_context(backend(c)) for c in (first, second) if c is not None]
        if request.register is not None:
            definition = _read_definition(request.register)
            for each in backends:
                await each.register(request.schema_ref.partition("@")[0], definition)
        properties = await backends[0].properties(request.schema_ref)
        fields = request.fields or list(properties)
        configs = [c for c in (first, second) if c is not None]
        runs = []
        for each, config in zip(backends, configs, strict=True):
            options = {"cache": request.cache, **config.options}
            runs.append(await run_eval(each, request.schema_ref, cases, options, request.concurrency))
    report, _ = score_run(cases, runs[0], fields, properties)
    result: dict[str, Any] = {
        "schema": request.schema_ref,
        "documents": len(cases),
        "fields": fields,
        "config": first.describe(),
        "run": runs[0].to_json(),
        "report": report,
    }
    if second is not None:
        report_b, comparison = score_run(cases, runs[1], fields, properties, baseline=runs[0])
        result["compare"] = {
            "config": second.describe(),
            "run": runs[1].to_json(),
            "report": report_b,
            "difference": comparison,
        }
    return result


def _as_json(result: Mapping[str, Any]) -> dict[str, Any]:
    out = {**result, "report": result["report"].to_json()}
    if "compare" in result:
        compare = result["compare"]
        out["compare"] = {
            **compare,
            "report": compare["report"].to_json(),
            "difference": compare["difference"].to_json(),
        }
    return out


def _as_text(result: Mapping[str, Any]) -> str:
    parts = [f"A: {result['config']}", _run_line(result["run"]), result["report"].to_table()]
    if "compare" in result:
        compare = result["compare"]
        parts += ["", f"B: {compare['config']}", _run_line(compare["run"]), compare["report"].to_table()]
        parts += ["", "B - A (paired, clustered by document):", compare["difference"].to_table()]
    return "\n".join(parts)


def _run_line(run: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{status} {n}" for status, n in run["counts"].items())
    line = f"{counts}; {run['seconds']:.1f} s; median {run['median_latency_ms']} ms per document"
    return "\n".join([line, *(f"  failed: {e}" for e in run["errors"])])


@click.command("eval")
@click.option("--schema", "schema_ref", required=True, help="`nda` or `nda@2`.")
@click.option("--data", "data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", envvar="EXTRACTOR_URL", default=DEFAULT_URL, show_default=True, help="A running service.")
@click.option("--api-key", envvar="EXTRACTOR_API_KEY", default=None, help="Sent as a Bearer token.")
@click.option("--in-process", is_flag=True, help="Run the pipeline here (EXTRACTOR_* settings), not over HTTP.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="Tenant for --in-process.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N documents.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--fields", default=None, help="Comma-separated fields to score (default: the schema's).")
@click.option("--expected-path", default=None, help="Dotted path of the field dict inside `expected` (SNIPS: slots).")
@click.option("--register-schema", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--compare", multiple=True, metavar="KEY=VALUE", help="Second configuration: grounding=strict, ...")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def eval_command(
    schema_ref: str,
    data: Path,
    url: str,
    api_key: str | None,
    in_process: bool,
    tenant: str,
    limit: int | None,
    concurrency: int,
    fields: str | None,
    expected_path: str | None,
    register_schema: Path | None,
    compare: tuple[str, ...],
    no_cache: bool,
    as_json: bool,
) -> None:
    """Score extractions of DATA (JSONL of {"id", "text", "expected"}) per field, with 95% intervals.

    --register-schema FILE registers FILE under the --schema name first. --compare runs a second configuration
    on the same documents (url=..., model=... with --in-process, or a request option: grounding=strict,
    max_attempts=1, temperature=0.7) and reports paired differences.
    """
    first = EvalConfig(url=None if in_process else url)
    second = parse_compare(compare, first)
    with ExitStack() as stack:
        settings = _start_local(stack) if in_process else None
        request = _EvalRequest(
            schema_ref=schema_ref,
            data=data,
            expected_path=expected_path,
            limit=limit,
            concurrency=concurrency,
            fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else None,
            register=register_schema,
            cache=not no_cache,
            api_key=api_key,
            tenant=tenant,
            settings=settings,
        )
        try:
            result = asyncio.run(_evaluate(request, first, second))
        except ExtractorError as exc:
            raise click.ClickException(exc.detail) from exc
    click.echo(json.dumps(_as_json(result), indent=2) if as_json else _as_text(result))


def _start_local(stack: ExitStack) -> Settings:
    """Settings from the environment, starting the bundled Redis and model for what they leave unset."""
    from extractor.local.embedded import start_embedded

    settings, _ = start_embedded(Settings(), stack)
    return settings


def _redis_url(stack: ExitStack) -> str:
    settings = Settings()
    if settings.redis_url is not None:
        return settings.redis_url
    from extractor.local.redis import BundledRedis

    redis = BundledRedis(settings.data_dir)
    stack.callback(redis.stop)
    return redis.start()


async def _export(url: str, tenant: str, schema_ref: str, out: TextIO, include_all: bool) -> int:
    redis: Redis = Redis.from_url(url, decode_responses=True)
    try:
        log = ResultsLog(redis, keep=0)  # keep only limits appends; reading ignores it
        return await write_export(log, tenant, schema_ref, out, include_ungrounded=include_all)
    finally:
        await redis.aclose()


@click.command("export")
@click.option("--schema", "schema_ref", required=True, help="`nda` (every version) or `nda@2`.")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
@click.option("--all", "include_all", is_flag=True, help="Also results with values not found in the text.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
def export_command(schema_ref: str, output: TextIO, include_all: bool, tenant: str) -> None:
    """Write the kept results of a schema as chat-format fine-tuning JSONL (system, user, assistant).

    Reads the service's Redis directly (EXTRACTOR_REDIS_URL, else the bundled one in EXTRACTOR_DATA_DIR).
    """
    with ExitStack() as stack:
        try:
            count = asyncio.run(_export(_redis_url(stack), tenant, schema_ref, output, include_all))
        except RedisError as exc:
            raise click.ClickException(f"cannot read the results from Redis: {exc}") from exc
    click.echo(f"wrote {count} example(s)", err=True)
