"""``POST /v1/extract``: one document, answered inline."""

from __future__ import annotations

import time

from litestar import Controller, MediaType, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK
from pydantic import BaseModel, ConfigDict, Field

from extractor.api.problems import problems
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.services import Services
from extractor.telemetry.logs import log_extraction
from extractor.telemetry.report import ExtractionReport

__all__ = ["ExtractController", "ExtractRequest"]


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_ref: str = Field(alias="schema", description="`receipt` (latest version) or `receipt@3`.", min_length=1)
    text: str = Field(description="The document.")
    options: ExtractOptions = Field(default_factory=ExtractOptions)


class ExtractController(Controller):
    path = "/v1/extract"
    tags = ["extraction"]

    @post(
        "/",
        summary="Extract structured data from one document",
        status_code=HTTP_200_OK,
        responses={
            HTTP_200_OK: ResponseSpec(ExtractionResult, description="The extraction", generate_examples=False),
            **problems(400, 404, 413, 422, 502, 504),
        },
    )
    async def extract(
        self, data: JSONBody[ExtractRequest], services: NamedDependency[Services], tenant: NamedDependency[str]
    ) -> Response[bytes]:
        report, started = ExtractionReport(), time.perf_counter()
        try:
            # Already JSON (a cache hit is never parsed); Litestar's serializer would do model_dump, then msgspec.
            body = await services.extraction.extract_json(tenant, data.schema_ref, data.text, data.options, report)
        finally:
            text = data.text if services.settings.log_documents else None
            log_extraction("extract", report, time.perf_counter() - started, text)
        return Response(body.encode(), media_type=MediaType.JSON)
