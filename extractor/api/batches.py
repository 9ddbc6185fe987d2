"""``/v1/batches``: submit many documents, follow progress, stream results, cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage, Stream
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from extractor.answers import Batch, BatchEvent, BatchResultLine
from extractor.api.problems import problems
from extractor.errors import InvalidInputError
from extractor.extraction.result import ExtractOptions
from extractor.jobs.service import BatchService, Submission, describe
from extractor.nesting import TooDeepError, loads_bounded
from extractor.pointer import inline_refs

__all__ = ["BatchController", "BatchDocument", "BatchRequest", "parse_submission"]

NDJSON = "application/x-ndjson"
_OPTIONS_DEPTH = 4
"""``?options=`` is a flat object: anything deeper is refused before it is validated."""


class BatchDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="The caller's id of the document; results carry it back.")
    text: str


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_ref: str = Field(alias="schema", min_length=1, description="`receipt` (latest version) or `receipt@3`.")
    documents: list[BatchDocument] = Field(min_length=1)
    options: ExtractOptions = Field(default_factory=ExtractOptions)


def _invalid(exc: ValidationError, where: str) -> InvalidInputError:
    errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False, include_input=False)]
    return InvalidInputError(f"invalid {where}: {errors[0]['msg']}", errors=errors)


def _ndjson_documents(body: bytes) -> list[BatchDocument]:
    documents = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            try:
                documents.append(BatchDocument.model_validate_json(line))
            except ValidationError as exc:
                raise _invalid(exc, f"NDJSON line {number}") from exc
    return documents


def parse_submission(body: bytes, content_type: str, schema: str | None, options: str | None) -> Submission:
    """A JSON body ``{schema, documents, options}``, or NDJSON documents with ``?schema=`` and ``?options=``."""
    try:
        if content_type.split(";")[0].strip().lower() == NDJSON:
            request = BatchRequest.model_validate(
                {
                    "schema": schema or "",
                    "documents": _ndjson_documents(body),
                    "options": loads_bounded(options, _OPTIONS_DEPTH) if options else {},
                }
            )
        else:
            request = BatchRequest.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc, "batch") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"options is not JSON: {exc}") from exc
    except TooDeepError as exc:
        raise InvalidInputError(f"options {exc}: it is a flat object of options") from exc
    documents = [(doc.id, doc.text) for doc in request.documents]
    return Submission(request.schema_ref, request.options, documents)


@dataclass
class _SubmitOperation(Operation):
    """``POST /v1/batches`` reads its body itself (JSON or NDJSON), so Litestar cannot see it: say what it is."""

    def __post_init__(self) -> None:
        batch = inline_refs(BatchRequest.model_json_schema(by_alias=True))
        document = inline_refs(BatchDocument.model_json_schema(by_alias=True))
        content = {
            "application/json": OpenAPIMediaType(schema=cast("Schema", batch)),
            NDJSON: OpenAPIMediaType(schema=cast("Schema", {**document, "description": "One document per line."})),
        }
        self.request_body = RequestBody(content=content, required=True)


async def _sse(events: AsyncIterator[BatchEvent]) -> AsyncIterator[ServerSentEventMessage]:
    async for event in events:
        yield ServerSentEventMessage(data=event.model_dump_json(), event="final" if event.final else "progress")


class BatchController(Controller):
    path = "/v1/batches"
    tags = ["batches"]

    @post(
        "/",
        summary="Submit a batch (JSON, or NDJSON with ?schema=)",
        operation_id="create_batch",
        description=(
            "Body: `{schema, documents: [{id, text}], options}` as JSON, or one `{id, text}` per line with "
            "`Content-Type: application/x-ndjson` and `?schema=receipt&options={...}`. 202 with the batch; "
            "an `Idempotency-Key` replay answers 200 with the same batch."
        ),
        status_code=HTTP_202_ACCEPTED,
        responses={
            HTTP_200_OK: ResponseSpec(
                Batch, description="An `Idempotency-Key` replay: the same batch", generate_examples=False
            ),
            **problems(400, 404, 413, 422),
        },
        operation_class=_SubmitOperation,
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        batches: NamedDependency[BatchService],
        tenant: NamedDependency[str],
        schema: FromQuery[str | None] = None,
        options: FromQuery[str | None] = None,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[Batch]:
        submission = parse_submission(await request.body(), request.content_type[0], schema, options)
        record, created = await batches.submit(tenant, submission, idempotency_key)
        return Response(
            describe(record),
            status_code=HTTP_202_ACCEPTED if created else HTTP_200_OK,
            headers={"Location": f"/v1/batches/{record.batch_id}"},
        )

    @get(
        "/{batch_id:str}",
        summary="Progress of a batch: counts by status, times, documents per second",
        operation_id="get_batch",
        responses=problems(404, 410),
    )
    async def status(
        self, batch_id: FromPath[str], batches: NamedDependency[BatchService], tenant: NamedDependency[str]
    ) -> Batch:
        return describe(await batches.get(tenant, batch_id))

    @get(
        "/{batch_id:str}/results",
        summary="Results as NDJSON, in submission order",
        operation_id="get_batch_results",
        description=(
            "One line per document: the `/v1/extract` result plus `id` and `index`; failed items carry `error`, "
            "cancelled ones `status: cancelled`. Without `wait` the stream stops before the first unfinished "
            "document (continue with `offset`); with `wait=true` it follows the batch to its end."
        ),
        media_type=NDJSON,
        responses={
            HTTP_200_OK: ResponseSpec(
                BatchResultLine,  # type: ignore[arg-type]  # a union of models is documented as oneOf
                description="One JSON object per line",
                media_type=NDJSON,
                generate_examples=False,
            ),
            **problems(404, 410),
        },
    )
    async def results(
        self,
        batch_id: FromPath[str],
        batches: NamedDependency[BatchService],
        tenant: NamedDependency[str],
        offset: FromQuery[int] = 0,
        wait: FromQuery[bool] = False,
    ) -> Stream:
        return Stream(await batches.results(tenant, batch_id, offset, wait), media_type=NDJSON)

    @get(
        "/{batch_id:str}/events",
        summary="Server-sent progress events; the last one is `final`",
        operation_id="get_batch_events",
        responses={
            HTTP_200_OK: ResponseSpec(
                BatchEvent,
                description="`progress` events, then one `final`",
                media_type="text/event-stream",
                generate_examples=False,
            ),
            **problems(404, 410),
        },
    )
    async def events(
        self, batch_id: FromPath[str], batches: NamedDependency[BatchService], tenant: NamedDependency[str]
    ) -> ServerSentEvent:
        return ServerSentEvent(_sse(await batches.events(tenant, batch_id)))

    @delete(
        "/{batch_id:str}",
        summary="Cancel: nothing new starts, running calls abort, results stay",
        operation_id="cancel_batch",
        description=(
            "Answers once the workers have stopped the batch (`counts.running` is 0 then), so that no model call of "
            "it starts after the answer. A worker that does not answer within 5 s (dead, or cut off from Redis) "
            "keeps its items `running` until its chunk is handed out again, which cancels them."
        ),
        status_code=200,
        responses=problems(404, 410),
    )
    async def cancel(
        self, batch_id: FromPath[str], batches: NamedDependency[BatchService], tenant: NamedDependency[str]
    ) -> Batch:
        return describe(await batches.cancel(tenant, batch_id))
