"""scripts/llama_cpp_build.py: the flags that make llama.cpp portable, and the wheelhouse folder they name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llama_cpp_build.py"


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_cpp_build", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_is_the_pin_in_pyproject(build: ModuleType) -> None:
    assert build.pinned_version() == "0.3.36"


@pytest.mark.parametrize("machine", ["x86_64", "AMD64", "aarch64", "arm64"])
def test_no_flags_tie_the_build_to_the_building_cpu(build: ModuleType, machine: str) -> None:
    args = build.cmake_args(machine)

    assert "-DGGML_NATIVE=OFF" in args
    assert not any("native" in arg.lower() and arg != "-DGGML_NATIVE=OFF" for arg in args)
    assert not any(arg.endswith("=ON") and ("AVX512" in arg or "AMX" in arg) for arg in args)


def test_x86_64_keeps_avx2_and_turns_avx512_and_amx_off(build: ModuleType) -> None:
    args = set(build.cmake_args("x86_64"))

    assert {"-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"} <= args
    assert {"-DGGML_AVX512=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= args


def test_an_unknown_machine_is_refused(build: ModuleType) -> None:
    with pytest.raises(SystemExit, match="only x86-64 and arm64"):
        build.cmake_args("riscv64")


def test_the_wheelhouse_folder_changes_with_version_flags_and_python(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXTRACTOR_WHEELHOUSE", str(tmp_path))
    portable = build.wheel_dir("0.3.36", ["-DGGML_NATIVE=OFF"])

    assert portable.parent == tmp_path
    assert f"cp{sys.version_info.major}{sys.version_info.minor}" in portable.name
    assert build.wheel_dir("0.3.36", ["-DGGML_NATIVE=ON"]) != portable
    assert build.wheel_dir("0.3.37", ["-DGGML_NATIVE=OFF"]) != portable
    assert build.wheel_dir("0.3.36", ["-DGGML_NATIVE=OFF"]) == portable
