"""What every command that talks to a running service shares: its ``--url`` and ``--api-key``, and one client."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from extractor.client import DEFAULT_URL, Client, ExtractorAPIError, ServiceUnreachableError

__all__ = ["echo_json", "service_client", "service_options"]

F = TypeVar("F", bound=Callable[..., Any])

_url = click.option(
    "--url", envvar="EXTRACTOR_URL", default=DEFAULT_URL, show_default=True, help="The running service."
)
_api_key = click.option("--api-key", envvar="EXTRACTOR_API_KEY", default=None, help="Sent as a Bearer token.")


def service_options(command: F) -> F:
    """``--url`` (``EXTRACTOR_URL``) and ``--api-key`` (``EXTRACTOR_API_KEY``)."""
    return _url(_api_key(command))


@contextmanager
def service_client(url: str, api_key: str | None) -> Iterator[Client]:
    """A client of the service. A problem document goes to stderr as JSON and exits 1, so scripts can read it;
    an unreachable service is a one-line error."""
    try:
        with Client(url, api_key) as client:
            yield client
    except ExtractorAPIError as exc:
        click.echo(json.dumps(exc.problem.document(), ensure_ascii=False), err=True)
        sys.exit(1)
    except ServiceUnreachableError as exc:
        raise click.ClickException(str(exc)) from exc


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))
