"""What ``extractor serve`` starts for you when nothing is configured: a bundled Redis and the bundled model."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import click

from extractor.local.model import LocalModelServer, local_model_available
from extractor.local.redis import BundledRedis
from extractor.local.supervisor import Supervisor
from extractor.settings import Settings
from extractor.vocabulary import GroundingMode

__all__ = ["MODEL", "REDIS", "start_embedded"]

log = logging.getLogger("extractor")

_BUNDLED_DEADLINE_S = 600.0

MODEL = "model"
REDIS = "redis"
"""The names under which the supervisor knows the bundled model server and the bundled Redis."""

_NO_MODEL = (
    "no model endpoint configured and the bundled model is not installed. Either point extractor at any "
    "OpenAI-compatible endpoint (EXTRACTOR_MODEL_BASE_URL=https://..., EXTRACTOR_MODEL_API_KEY=..., "
    "EXTRACTOR_MODEL_NAME=...) or install the bundled model: bash scripts/install"
)


def start_embedded(settings: Settings, stack: ExitStack) -> tuple[Settings, Supervisor | None]:
    """Start what ``settings`` leaves unset, under a supervisor that restarts a child that dies.

    Each child is stopped when ``stack`` closes (also on SIGINT/SIGTERM); the supervisor is None when nothing was
    started.
    """
    if settings.model_base_url is not None and settings.redis_url is not None:
        return settings, None
    supervisor = Supervisor()
    stack.callback(supervisor.close)
    if settings.model_base_url is None:
        if not local_model_available():
            raise click.ClickException(_NO_MODEL)
        # Log-probabilities need every position's logits kept, and llama-cpp-python ranks the whole vocabulary in
        # Python for each token it returns: only when asked for (EXTRACTOR_EXTRACTION__LOGPROBS=true).
        server = LocalModelServer(log_dir=settings.data_dir, logprobs=settings.extraction.logprobs)
        url = server.start()
        supervisor.watch(MODEL, "bundled model server", server)
        log.warning(
            "using the bundled SmolLM2-135M model at %s: it is for trying extractor, not for real documents; "
            "set EXTRACTOR_MODEL_BASE_URL (and EXTRACTOR_MODEL_API_KEY, EXTRACTOR_MODEL_NAME) to use a real model",
            url,
        )
        # The server's own window is a hard limit (it does not report it): a larger setting would overflow it.
        window = min(settings.model_context_tokens or server.n_ctx, server.n_ctx)
        # The cache knows the server by its weights, not by its port, which changes at every start.
        identity = settings.model_identity or server.identity
        settings = settings.model_copy(
            update={
                "model_base_url": url,
                "model_name": server.model_name,
                "model_context_tokens": window,
                "model_identity": identity,
            }
        )
        defaults: dict[str, object] = {}
        if "grounding" not in settings.extraction.model_fields_set:
            # A 135M model invents values for documents that hold none: only what the text supports is kept.
            defaults["grounding"] = GroundingMode.STRICT
        if "part_concurrency" not in settings.extraction.model_fields_set:
            # The server answers one request at a time: more parts in flight only wait, into the model timeout.
            defaults["part_concurrency"] = 1
        extraction = settings.extraction.model_copy(update=defaults)
        settings = settings.model_copy(update={"extraction": extraction})
        if "request_deadline_s" not in settings.limits.model_fields_set:
            # On a CPU, one call of the bundled model can take a minute, and a long document's parts run one at a
            # time: the hosted-endpoint default would cut answers that are on their way.
            limits = settings.limits.model_copy(update={"request_deadline_s": _BUNDLED_DEADLINE_S})
            settings = settings.model_copy(update={"limits": limits})
    if settings.redis_url is None:
        redis = BundledRedis(settings.data_dir)
        url = redis.start()
        supervisor.watch(REDIS, "bundled Redis server", redis)
        settings = settings.model_copy(update={"redis_url": url})
    return settings, supervisor
