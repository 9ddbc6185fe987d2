"""``extractor eval`` (score extractions against labelled data, over HTTP or in-process) and ``extractor export``
(kept results as fine-tuning data)."""

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

from extractor.cli.service import service_options
from extractor.client import DEFAULT_URL, AsyncClient, ExtractorClientError
from extractor.errors import ExtractorError
from extractor.evaluation.calibration import calibration, compare_calibration
from extractor.evaluation.emptiness import compare_empty, empty_report
from extractor.evaluation.export import write_export
from extractor.evaluation.progress import ProgressFile, last_outcomes
from extractor.evaluation.runner import (
    Backend,
    EvalRun,
    HttpBackend,
    InProcessBackend,
    calibration_cells,
    load_cases,
    relevance,
    run_eval,
    score_run,
)
from extractor.evaluation.sampling import sample_by_length
from extractor.extraction.result import ExtractOptions
from extractor.extraction.results_log import ResultsLog
from extractor.registry.schema import SchemaDefinition
from extractor.registry.service import read_definitions
from extractor.runtime import bundled_schema_dir, open_runtime
from extractor.settings import Settings
from extractor.vocabulary import DEFAULT_TENANT

__all__ = ["EvalConfig", "eval_command", "export_command", "parse_compare"]

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
async def _http_backend(config: EvalConfig, api_key: str | None, timeout_s: float) -> AsyncIterator[Backend]:
    async with AsyncClient(config.url or DEFAULT_URL, api_key, timeout=httpx.Timeout(timeout_s, connect=5.0)) as client:
        yield HttpBackend(client)


@asynccontextmanager
async def _in_process_backend(config: EvalConfig, settings: Settings, tenant: str) -> AsyncIterator[Backend]:
    if config.model is not None:
        settings = settings.model_copy(update={"model_name": config.model})
    async with open_runtime(settings) as runtime:
        await runtime.registry.register_bundled()
        yield InProcessBackend(runtime.registry, runtime.extraction, tenant)


@dataclass(frozen=True)
class _EvalRequest:
    schema_ref: str
    data: Path
    expected_path: str | None
    limit: int | None
    seed: int
    concurrency: int
    fields: list[str] | None
    register: Path | None
    cache: bool
    api_key: str | None
    tenant: str
    settings: Settings | None  # set for --in-process
    baseline: Path | None = None  # --baseline: an earlier --json output, the A of the comparison
    rescore: Path | None = None  # --rescore: an earlier --json output scored again instead of running
    timeout_s: float = 300.0  # --timeout: one document's extraction over HTTP
    resume: Path | None = None  # --resume: outcomes kept as they come, and not run again


def _read_baseline(path: Path, cases: Sequence[Any], option: str = "--baseline") -> tuple[EvalRun, str, dict[str, Any]]:
    """The run saved in ``path`` (``extractor eval --json``, or a ``--resume`` file), its outcomes of ``cases``: it
    must hold every one of them (it may hold more: a run of a whole set scored on a subset of it). Also its label
    and the saved document around it (of a ``--resume`` file: only its label)."""
    run, document = _saved(path, option)
    selected = run.of([case.id for case in cases])
    if selected is None:
        raise click.BadParameter(
            f"{path} did not score every document of --data: run it on the same documents (or on more of them)",
            param_hint=option,
        )
    return selected, f"baseline {path} ({document.get('config', 'unknown configuration')})", document


def _saved(path: Path, option: str) -> tuple[EvalRun, dict[str, Any]]:
    """The run in ``path`` and the document around it: ``extractor eval --json``'s output, or a ``--resume`` file (an
    outcome per line; it names no fields: the schema's properties are then the bundled schema's, or
    --register-schema's)."""
    problem = f"{path} is neither the --json output of extractor eval nor a --resume file"
    try:
        text = path.read_text(encoding="utf-8")
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and "run" in document:
            run = EvalRun.from_json(document["run"])
        else:  # JSON lines, or a --resume file of one line
            run, document = EvalRun(last_outcomes(text), 0.0), {"config": f"--resume file {path.name}"}
        if not run.outcomes:
            raise ValueError("no outcomes")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise click.BadParameter(f"{problem} ({exc})", param_hint=option) from exc
    return run, document


def _read_definition(path: Path) -> SchemaDefinition:
    document = json.loads(path.read_text(encoding="utf-8"))
    return SchemaDefinition.model_validate(document if "json_schema" in document else {"json_schema": document})


_Runs = tuple[list[EvalRun], list[str], dict[str, Any]]


async def _run_configs(
    request: _EvalRequest, cases: Sequence[Any], first: EvalConfig, second: EvalConfig | None
) -> _Runs:
    """Each configuration's run over ``cases``, its label, and the schema's properties."""

    def backend(config: EvalConfig) -> Any:
        if request.settings is None:
            return _http_backend(config, request.api_key, request.timeout_s)
        return _in_process_backend(config, request.settings, request.tenant)

    async with AsyncExitStack() as stack:
        backends = [await stack.enter_async_context(backend(c)) for c in (first, second) if c is not None]
        if request.register is not None:
            definition = _read_definition(request.register)
            for each in backends:
                await each.register(request.schema_ref.partition("@")[0], definition)
        properties = await backends[0].properties(request.schema_ref)
        configs = [c for c in (first, second) if c is not None]
        progress = stack.enter_context(ProgressFile(request.resume)) if request.resume is not None else None
        runs = []
        for each, config in zip(backends, configs, strict=True):
            options = {"cache": request.cache, **config.options}
            runs.append(await run_eval(each, request.schema_ref, cases, options, request.concurrency, progress))
    return runs, [c.describe() for c in configs], properties


def _saved_run(path: Path, cases: Sequence[Any], request: _EvalRequest) -> _Runs:
    """``--rescore``: the run saved in ``path``, scored again without calling anything."""
    run, label, document = _read_baseline(path, cases, option="--rescore")
    properties = document.get("properties") or {name: {} for name in document.get("fields", [])}
    if not properties:
        properties = {name: {} for name in request.fields} if request.fields else _schema_properties(request)
    return [run], [label.replace("baseline ", "saved ", 1)], dict(properties)


def _schema_properties(request: _EvalRequest) -> dict[str, Any]:
    """The --schema's top-level properties, read without a service: --register-schema's, else the bundled one's."""
    name = request.schema_ref.partition("@")[0]
    if request.register is not None:
        definition = _read_definition(request.register)
    else:
        bundled = read_definitions(bundled_schema_dir(request.settings or Settings()))
        if name not in bundled:
            raise click.BadParameter(
                f"a --resume file does not say the schema's fields, and {name!r} is not a bundled schema: "
                "pass --register-schema FILE (or --fields)",
                param_hint="--rescore",
            )
        definition = bundled[name]
    properties = definition.json_schema.get("properties")
    return dict(properties) if isinstance(properties, Mapping) else {}


async def _evaluate(request: _EvalRequest, first: EvalConfig, second: EvalConfig | None) -> dict[str, Any]:
    cases = sample_by_length(load_cases(request.data, expected_path=request.expected_path), request.limit, request.seed)
    if request.rescore is not None:
        runs, labels, properties = _saved_run(request.rescore, cases, request)
    else:
        runs, labels, properties = await _run_configs(request, cases, first, second)
    fields = request.fields or list(properties)
    if request.baseline is not None:
        baseline, label, _ = _read_baseline(request.baseline, cases)
        runs, labels, second = [baseline, *runs], [label, *labels], first
    report, _ = score_run(cases, runs[0], fields, properties)
    relevant = relevance(cases, fields, properties)
    cells = [calibration_cells(cases, run, fields, properties) for run in runs]
    statuses = [[o.status for o in run.outcomes] for run in runs]
    result: dict[str, Any] = {
        "schema": request.schema_ref,
        "documents": len(cases),
        "fields": fields,
        "properties": properties,
        "config": labels[0],
        "run": runs[0].to_json(),
        "report": report,
        "empty": empty_report(relevant, statuses[0]),
        "calibration": calibration(cells[0]),
    }
    if second is not None:
        report_b, comparison = score_run(cases, runs[1], fields, properties, baseline=runs[0])
        result["compare"] = {
            "config": labels[1],
            "run": runs[1].to_json(),
            "report": report_b,
            "empty": empty_report(relevant, statuses[1]),
            "calibration": calibration(cells[1]),
            "difference": comparison,
            "empty_difference": compare_empty(relevant, statuses[0], statuses[1]),
            "ece_difference": compare_calibration(cells[0], cells[1]),
        }
    return result


_REPORTS = ("report", "empty", "calibration", "difference", "empty_difference", "ece_difference")


def _as_json(result: Mapping[str, Any]) -> dict[str, Any]:
    out = {**result, **{key: result[key].to_json() for key in _REPORTS if key in result}}
    if "compare" in result:
        compare = result["compare"]
        out["compare"] = {**compare, **{key: compare[key].to_json() for key in _REPORTS if key in compare}}
    return out


def _as_text(result: Mapping[str, Any]) -> str:
    parts = [f"A: {result['config']}", _run_line(result["run"]), result["report"].to_table()]
    parts += [result["empty"].to_table(), result["calibration"].to_table()]
    if "compare" in result:
        compare = result["compare"]
        parts += ["", f"B: {compare['config']}", _run_line(compare["run"]), compare["report"].to_table()]
        parts += [compare["empty"].to_table(), compare["calibration"].to_table()]
        parts += ["", "B - A (paired, clustered by document):", compare["difference"].to_table()]
        parts += [compare["empty_difference"].to_table(), _ece_line(compare["ece_difference"])]
    return "\n".join(parts)


def _ece_line(estimate: Any) -> str:
    if estimate.value != estimate.value:  # nan: a run without confidences
        return "expected calibration error, B - A: - (a run gave no confidences)"
    if estimate.se != estimate.se:
        return f"expected calibration error, B - A: {estimate.value:+.3f}"
    return (
        f"expected calibration error, B - A: {estimate.value:+.3f} [{estimate.low:.2f}, {estimate.high:.2f}]"
        " (bootstrap over documents)"
    )


def _run_line(run: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{status} {n}" for status, n in run["counts"].items())
    line = f"{counts}; {run['seconds']:.1f} s; median {run['median_latency_ms']} ms per document"
    return "\n".join([line, *(f"  failed: {e}" for e in run["errors"])])


@click.command("eval")
@click.option("--schema", "schema_ref", required=True, help="`nda` or `nda@2`.")
@click.option("--data", "data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@service_options
@click.option("--in-process", is_flag=True, help="Run the pipeline here (EXTRACTOR_* settings), not over HTTP.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="Tenant for --in-process.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="A sample of N documents, one from each of N length strata (long documents stay in).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Of the --limit sample.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--fields", default=None, help="Comma-separated fields to score (default: the schema's).")
@click.option("--expected-path", default=None, help="Dotted path of the field dict inside `expected` (SNIPS: slots).")
@click.option("--register-schema", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--compare", multiple=True, metavar="KEY=VALUE", help="Second configuration: grounding=strict, ...")
@click.option(
    "--baseline",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An earlier --json output of the same documents: compare this run (B) with it (A), paired.",
)
@click.option(
    "--rescore",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score an earlier --json output (or a --resume file, even one still being written) again instead of "
    "running, on the --data documents (all of them or a subset of its own); with --baseline: compare two saved runs.",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append each document's outcome to FILE as it comes, and do not run again the documents FILE already "
    "holds: a long run that was stopped goes on where it was (run the same command).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds one document's extraction may take over HTTP (a slow model on a loaded machine takes minutes).",
)
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
    seed: int,
    concurrency: int,
    fields: str | None,
    expected_path: str | None,
    register_schema: Path | None,
    compare: tuple[str, ...],
    baseline: Path | None,
    rescore: Path | None,
    resume: Path | None,
    timeout_s: float,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Score extractions of DATA (JSONL of {"id", "text", "expected"}) per field, with 95% intervals.

    --register-schema FILE registers FILE under the --schema name first. --compare runs a second configuration
    on the same documents (url=..., model=... with --in-process, or a request option: grounding=strict,
    max_attempts=1, temperature=0.7) and reports paired differences. --baseline FILE compares with a saved run
    instead (another version of the service, measured earlier).
    """
    first = EvalConfig(url=None if in_process else url)
    second = parse_compare(compare, first)
    if (baseline is not None or rescore is not None) and second is not None:
        raise click.BadParameter("--compare runs a second configuration: not with --baseline or --rescore")
    if resume is not None and (second is not None or rescore is not None):
        raise click.BadParameter("--resume keeps the outcomes of one run: not with --compare or --rescore")
    with ExitStack() as stack:
        settings = _start_local(stack) if in_process else None
        request = _EvalRequest(
            schema_ref=schema_ref,
            data=data,
            expected_path=expected_path,
            limit=limit,
            seed=seed,
            concurrency=concurrency,
            fields=[f.strip() for f in fields.split(",") if f.strip()] if fields else None,
            register=register_schema,
            cache=not no_cache,
            api_key=api_key,
            tenant=tenant,
            settings=settings,
            baseline=baseline,
            rescore=rescore,
            timeout_s=timeout_s,
            resume=resume,
        )
        try:
            result = asyncio.run(_evaluate(request, first, second))
        except ExtractorError as exc:
            raise click.ClickException(exc.detail) from exc
        except ExtractorClientError as exc:
            raise click.ClickException(str(exc)) from exc
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
