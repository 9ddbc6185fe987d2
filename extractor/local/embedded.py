"""What ``extractor serve`` starts for you when nothing is configured: a bundled Redis and the bundled model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack

import click

from extractor.local.model import LocalModelServer, local_model_available
from extractor.local.redis import BundledRedis
from extractor.settings import Settings

__all__ = ["start_embedded"]

log = logging.getLogger("extractor")

_NO_MODEL = (
    "no model endpoint configured and the bundled model is not installed. Either point extractor at any "
    "OpenAI-compatible endpoint (EXTRACTOR_MODEL_BASE_URL=https://..., EXTRACTOR_MODEL_API_KEY=..., "
    "EXTRACTOR_MODEL_NAME=...) or install the bundled model: pip install 'extractor[local]'"
)


def start_embedded(settings: Settings, stack: ExitStack) -> tuple[Settings, Callable[[], bool] | None]:
    """Start what ``settings`` leaves unset; each child is stopped when ``stack`` closes (also on SIGINT/SIGTERM)."""
    model_alive: Callable[[], bool] | None = None
    if settings.model_base_url is None:
        if not local_model_available():
            raise click.ClickException(_NO_MODEL)
        server = LocalModelServer(log_dir=settings.data_dir)
        stack.callback(server.stop)
        url = server.start()
        log.warning(
            "using the bundled SmolLM2-135M model at %s: it is for trying extractor, not for real documents; "
            "set EXTRACTOR_MODEL_BASE_URL (and EXTRACTOR_MODEL_API_KEY, EXTRACTOR_MODEL_NAME) to use a real model",
            url,
        )
        settings = settings.model_copy(update={"model_base_url": url, "model_name": server.model_name})
        if "grounding" not in settings.extraction.model_fields_set:
            # A 135M model invents values for documents that hold none: only what the text supports is kept.
            extraction = settings.extraction.model_copy(update={"grounding": "strict"})
            settings = settings.model_copy(update={"extraction": extraction})
        model_alive = server.alive
    if settings.redis_url is None:
        redis = BundledRedis(settings.data_dir)
        stack.callback(redis.stop)
        settings = settings.model_copy(update={"redis_url": redis.start()})
    return settings, model_alive
