"""Build llama-cpp-python's wheel portably, once per version and flags; print the folder that holds it.

Used by ``scripts/install`` (and so by ``scripts/test``, CI and the Dockerfile). The version is the one pinned
in pyproject.toml's ``local`` extra; the flags are below. Never ``-march=native``: the same wheel must run on
every x86-64 machine with AVX2 (Haswell, Zen and later) and on every arm64 machine, whatever else the CPU
that built it advertises. Runtime CPU dispatch (ggml's per-variant backends) is not used: its best variant on
a CPU that advertises AMX is the AMX one, the very code that crashed on a VM that does not allow AMX tiles.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "llama-cpp-python"

# ggml's defaults with GGML_NATIVE=OFF on x86-64 are SSE4.2, AVX, AVX2, BMI2, FMA and F16C (all on every AVX2
# CPU); AVX-512 and AMX stay off. Spelled out so a change of ggml's defaults cannot widen the build silently.
_X86_64 = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_BMI2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_AVX512=OFF",
    "-DGGML_AVX_VNNI=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
]
# Without GGML_NATIVE ggml compiles for the compiler's default target (armv8-a), which every arm64 CPU runs.
_AARCH64 = ["-DGGML_NATIVE=OFF"]
PORTABLE_FLAGS = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def pinned_version() -> str:
    """The ``==`` version of llama-cpp-python in pyproject.toml's ``local`` extra (one place to change it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["optional-dependencies"]["local"]:
        match = re.fullmatch(r"llama-cpp-python(?:\[[\w,]+\])?==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise SystemExit(f"pyproject.toml: the 'local' extra must pin {PACKAGE}==VERSION")


def cmake_args(machine: str | None = None) -> list[str]:
    machine = (machine or platform.machine()).lower()
    try:
        return PORTABLE_FLAGS[machine]
    except KeyError:
        raise SystemExit(f"no portable llama.cpp flags for {machine!r}: only x86-64 and arm64 are supported") from None


def wheel_dir(version: str, args: list[str]) -> Path:
    """``<wheelhouse>/<version>-<python>-<machine>-<hash of the flags>``: any change is a new folder."""
    base = Path(os.environ.get("EXTRACTOR_WHEELHOUSE") or Path.home() / ".cache" / "extractor" / "wheels")
    digest = hashlib.sha256(" ".join(args).encode()).hexdigest()[:12]
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return base / f"{PACKAGE}-{version}-{python}-{platform.machine().lower()}-{digest}"


def build(version: str, args: list[str], into: Path) -> None:
    """``pip wheel`` from the source distribution, no pip cache, flags through CMAKE_ARGS; atomic on success."""
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=into.parent))
    log = staging / "build.log"
    print(f"building {PACKAGE} {version} for any {platform.machine()} CPU (once; 5-15 min on 2 cores)", file=sys.stderr)
    env = {**os.environ, "CMAKE_ARGS": " ".join(args), "FORCE_CMAKE": "1"}
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE]
    with log.open("wb") as out:
        code = subprocess.call([*command, "-w", str(staging), f"{PACKAGE}=={version}"], stdout=out, stderr=out, env=env)
    if code != 0 or not list(staging.glob("*.whl")):
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"building {PACKAGE} failed (exit {code}); full log: {log}")
    (staging / "cmake-args.txt").write_text("\n".join(args) + "\n", encoding="utf-8")
    shutil.rmtree(into, ignore_errors=True)
    staging.rename(into)


def main() -> None:
    version, args = pinned_version(), cmake_args()
    target = wheel_dir(version, args)
    if not list(target.glob("*.whl")):
        build(version, args, target)
    print(target)


if __name__ == "__main__":
    main()
