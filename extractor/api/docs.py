"""The interactive API docs (``/schema`` with Scalar, ``/schema/swagger``), loading only the service's own files.

Litestar's render plugins default to a public CDN (Scalar at ``@latest``); here every script, style sheet and
icon is a pinned copy served by the service (``extractor/api/assets.py``), and Scalar's calls home are off.
"""

from __future__ import annotations

from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin

from extractor.api.assets import static_url

__all__ = ["SCALAR_VERSION", "SWAGGER_UI_VERSION", "docs_render_plugins"]

SWAGGER_UI_VERSION = "5.35.0"
SCALAR_VERSION = "1.76.0"
_FAVICON = f'<link rel="icon" type="image/svg+xml" href="{static_url("app/favicon.svg")}">'

# Unless told not to, Scalar loads fonts from its own host, reports telemetry, and offers its hosted request proxy,
# an AI agent, MCP and SDK generators: all calls to third parties from a page where API keys are typed.
_SCALAR_OPTIONS: dict[str, object] = {
    "withDefaultFonts": False,
    "telemetry": False,
    "proxyUrl": "",
    "hideClientButton": True,
    "showDeveloperTools": "never",
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
}


def docs_render_plugins() -> list[OpenAPIRenderPlugin]:
    """Scalar first (it answers ``/schema``), then Swagger UI at ``/schema/swagger``."""
    swagger = f"vendor/swagger-ui-{SWAGGER_UI_VERSION}"
    return [
        ScalarRenderPlugin(
            js_url=static_url(f"vendor/scalar-{SCALAR_VERSION}/standalone.js"),
            css_url=static_url("app/scalar.css"),
            options=_SCALAR_OPTIONS,
            favicon=_FAVICON,
        ),
        SwaggerRenderPlugin(
            js_url=static_url(f"{swagger}/swagger-ui-bundle.js"),
            css_url=static_url(f"{swagger}/swagger-ui.css"),
            standalone_preset_js_url=static_url(f"{swagger}/swagger-ui-standalone-preset.js"),
            path="/swagger",
            favicon=_FAVICON,
        ),
    ]
