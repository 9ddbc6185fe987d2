"""The portable llama.cpp build against a native one: prompt and generation tokens per second, interleaved.

    python -m bench.llama_build --python /tmp/venv-native/bin/python [--rounds 10] [--json out.json]

Each contender is a Python whose llama-cpp-python was built one way: this interpreter (installed by
``scripts/install``: portable) and each ``--python`` (for example a venv where ``pip install llama-cpp-python``
compiled the default ``-march=native``). Each serves the bundled SmolLM2-135M GGUF with the same flags as
``extractor serve``, all at once on their own ports; the requests go to one server at a time, in rotated order
per round, so machine drift falls on all alike. Per request the server's own usage counts are divided by the
wall time: a long prompt with one output token (prompt processing, what extraction mostly is) and a short
prompt generating up to 128 tokens at temperature 0 (generation).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, rotations, table, write_json
from extractor.local.model import LocalModelServer, find_bundled_model
from extractor.local.process import free_port, spawn, terminate, wait_until

PROMPT = " ".join(
    f"Item {i}: {i * 3 % 17} units of part number {1000 + i} were shipped on day {i % 28 + 1}." for i in range(60)
)
STORY = "Write a long story about a lighthouse keeper and a storm."


def _build_of(python: str) -> str:
    """The llama-cpp-python version and the CPU features its ggml was compiled to use."""
    code = "import llama_cpp, sys; print(llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    return f"{out[0]}: {out[1].strip()[:160]}"


@contextmanager
def _server(python: str, gguf: Path, log_dir: Path) -> Iterator[str]:
    port = free_port()
    argv = [python, *LocalModelServer(gguf).command(gguf, port)[1:]]
    log = log_dir / f"server-{port}.log"
    proc = spawn(argv, log)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(lambda: _answers(url), proc, timeout_s=120, what=python, log_path=log, error=RuntimeError)
        yield url
    finally:
        terminate(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/models", timeout=2).is_success
    except httpx.HTTPError:
        return False


def _rate(url: str, content: str, max_tokens: int) -> tuple[float, float]:
    """(prompt tokens/s, completion tokens/s) of one chat request, each over the whole wall time."""
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "temperature": 0, "seed": 0}
    started = time.perf_counter()
    usage: dict[str, Any] = httpx.post(f"{url}/chat/completions", json=body, timeout=300).json()["usage"]
    elapsed = time.perf_counter() - started
    return usage["prompt_tokens"] / elapsed, usage["completion_tokens"] / elapsed


def _paired(rates: dict[str, list[float]], python: str, base: str) -> str:
    """The median of the per-round ratios: a round's load falls on both of its requests alike."""
    return f"{statistics.median(a / b for a, b in zip(rates[python], rates[base], strict=True)):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True, help="Another build's interpreter (repeatable).")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    gguf = find_bundled_model()
    if gguf is None:
        raise SystemExit("the bundled model is not installed: bash scripts/install")
    pythons = [sys.executable, *args.python]
    builds = {python: _build_of(python) for python in pythons}
    prompt: dict[str, list[float]] = {python: [] for python in pythons}
    generation: dict[str, list[float]] = {python: [] for python in pythons}
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls = {python: stack.enter_context(_server(python, gguf, log_dir)) for python in pythons}
        for python in pythons:  # warm-up: first-touch page faults and caches are not what we measure
            _rate(urls[python], PROMPT, 1)
            _rate(urls[python], STORY, 16)
        for order in rotations(pythons, args.rounds):
            for python in order:
                prompt[python].append(_rate(urls[python], PROMPT, 1)[0])
                generation[python].append(_rate(urls[python], STORY, 128)[1])
    rows = []
    result: dict[str, Any] = {"machine": machine(), "rounds": args.rounds, "builds": {}}
    for python in pythons:
        p, g = statistics.median(prompt[python]), statistics.median(generation[python])
        versus = [_paired(prompt, python, pythons[0]), _paired(generation, python, pythons[0])]
        rows.append([python, f"{p:.0f}", f"{g:.1f}", *versus])
        result["builds"][python] = {
            "build": builds[python],
            "prompt_tps": prompt[python],
            "generation_tps": generation[python],
        }
    for python in pythons:
        print(f"{python}: {builds[python]}")
    print(table(["python", "prompt tok/s", "gen tok/s", "prompt vs first", "gen vs first"], rows))
    print("medians of the rounds; 'vs first': the median of the per-round ratios to the first python (this one)")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
