"""The installed llama.cpp is the portable build: it uses no instruction beyond the baseline of its architecture,
and it generates on the oldest CPU it promises (emulated by qemu-user, so any host can check it)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import pytest

from extractor.local.model import find_bundled_model

pytestmark = pytest.mark.e2e

# The oldest CPU each architecture's build promises to run on: x86-64 with AVX2 but no AVX-512 (Haswell), and
# plain ARMv8.0 (Cortex-A53).
BASELINE_CPU = {"x86_64": "Haswell", "aarch64": "cortex-a53"}
GENERATE = """
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
print(model("The capital of France is", max_tokens=4, temperature=0)["choices"][0]["text"])
"""


def test_the_build_uses_no_cpu_extension_beyond_the_baseline() -> None:
    import llama_cpp

    features = llama_cpp.llama_print_system_info().decode()

    for extension in ("AVX512", "AVX_VNNI", "AMX"):
        assert f"{extension} = 1" not in features, features
    if platform.machine() == "x86_64":
        assert "AVX2 = 1" in features, features


def test_the_build_generates_on_the_oldest_cpu_it_promises() -> None:
    machine = platform.machine()
    qemu = shutil.which(f"qemu-{machine}")
    assert qemu is not None, f"qemu-{machine} is missing: bash scripts/install-test-tools installs qemu-user"
    gguf = find_bundled_model()
    assert gguf is not None

    run = subprocess.run(
        [qemu, "-cpu", BASELINE_CPU[machine], sys.executable, "-c", GENERATE, str(gguf)],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, f"exit {run.returncode} on an emulated {BASELINE_CPU[machine]}: {run.stderr[-2000:]}"
    assert "Paris" in run.stdout
