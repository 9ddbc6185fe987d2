"""``POST /v1/extract``: one document, answered inline."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK
from pydantic import BaseModel, ConfigDict, Field

from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.services import Services

__all__ = ["ExtractController", "ExtractRequest"]


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_ref: str = Field(alias="schema", description="`receipt` (latest version) or `receipt@3`.", min_length=1)
    text: str = Field(description="The document.")
    options: ExtractOptions = Field(default_factory=ExtractOptions)


class ExtractController(Controller):
    path = "/v1/extract"
    tags = ["extraction"]

    @post("/", summary="Extract structured data from one document", status_code=HTTP_200_OK)
    async def extract(
        self, data: JSONBody[ExtractRequest], services: NamedDependency[Services], tenant: NamedDependency[str]
    ) -> ExtractionResult:
        return await services.extraction.extract(tenant, data.schema_ref, data.text, data.options)
