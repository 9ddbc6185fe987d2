"""``extractor serve`` as a user runs it: a subprocess on a free port, its children found with psutil."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from extractor.local.process import free_port
from tests.support.processes import started

__all__ = ["Served", "serve"]


@dataclass
class Served:
    url: str
    process: psutil.Process
    log: Path

    def child(self, needle: str) -> psutil.Process:
        """The running descendant whose command line contains ``needle`` (``redis-server``, ``llama_cpp.server``)."""
        for child in self.process.children(recursive=True):
            if needle in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                return child
        raise AssertionError(f"no running child with {needle!r} in its command line")


@contextmanager
def serve(data_dir: Path, env: Mapping[str, str] | None = None, ready_s: float = 180) -> Iterator[Served]:
    """Run `extractor serve` on a free port with only ``env`` of our settings set; SIGTERM it on the way out."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")}
    environ |= {"EXTRACTOR_DATA_DIR": str(data_dir), "EXTRACTOR_PORT": str(port), **(env or {})}
    log_path = data_dir.parent / f"serve-{port}.log"
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "extractor", "serve"]
    with started(argv, f"{url}/readyz", env=environ, log_path=log_path, timeout_s=ready_s, grace_s=60) as proc:
        yield Served(url, psutil.Process(proc.pid), log_path)
