"""The OpenAPI document made to say exactly what the API does, where Litestar's generation says less.

Litestar builds the document from the routes; three things it cannot know or renders lossily are set here, once,
after it is built: request models in pydantic's own JSON Schema (``additionalProperties: false`` of a model that
forbids extra members, ``minimum: 0``, which Litestar drops), the security schemes and which operations need a key,
and problem+json as the media type of every error answer (Litestar documents its own 400 as ``application/json``).
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    PathItem,
    Schema,
    SecurityScheme,
)
from pydantic import BaseModel

from extractor.api.problems import PROBLEM_JSON

__all__ = ["API_SECURITY", "tighten_openapi"]

API_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
"""Either scheme is accepted (when the service has API keys configured)."""

_SECURITY_SCHEMES = {
    "bearer": SecurityScheme(type="http", scheme="bearer", description="`Authorization: Bearer <API key>`"),
    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header", description="The API key."),
}
_METHODS = ("get", "put", "post", "delete", "patch")


def tighten_openapi(app: Litestar, models: list[type[BaseModel]], secured_prefix: str = "/v1/") -> None:
    """Rewrite ``app``'s OpenAPI document in place (it is built once and served as is)."""
    document = app.openapi_schema
    components = document.components if isinstance(document.components, Components) else Components()
    document.components = components
    schemas = cast("dict[str, Any]", components.schemas if components.schemas is not None else {})
    components.schemas = schemas
    for model in models:
        _replace_model(schemas, model)
    components.security_schemes = dict(_SECURITY_SCHEMES)
    for path, item in (document.paths or {}).items():
        for operation in _operations(item):
            if path.startswith(secured_prefix):
                operation.security = API_SECURITY
            if operation.request_body is not None:
                _add_unsupported_media_type(operation)
            _problem_media_types(operation)


def _replace_model(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    generated = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schemas.update(generated.pop("$defs", {}))
    schemas[model.__name__] = generated


def _operations(item: PathItem) -> list[Operation]:
    return [op for op in (getattr(item, method, None) for method in _METHODS) if isinstance(op, Operation)]


def _problem_media_types(operation: Operation) -> None:
    """Every 4xx/5xx answer is a problem document: its media type says so, its schema is ``Problem``."""
    for status, response in (operation.responses or {}).items():
        if not status.startswith(("4", "5")) or isinstance(response, str) or not hasattr(response, "content"):
            continue
        content = response.content or {}
        if set(content) != {PROBLEM_JSON}:
            response.content = {
                PROBLEM_JSON: OpenAPIMediaType(schema=cast("Schema", {"$ref": "#/components/schemas/Problem"}))
            }


def _add_unsupported_media_type(operation: Operation) -> None:
    """A route that reads a body refuses other media types (``api/limits.py``)."""
    responses = operation.responses if operation.responses is not None else {}
    responses.setdefault("415", OpenAPIResponse(description="The body's Content-Type is not one the route reads"))
    operation.responses = responses
