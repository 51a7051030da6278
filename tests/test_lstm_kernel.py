"""The LSTM C kernel's build: its source ships as package data, the compiled-kernel cache is
keyed on source + flags + compiler + CPU, and `make kernel-check` fails on any warning.
(Its numerics are held to PyTorch in test_models.py.)"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlapi.models import lstm_kernel

REPO = Path(__file__).resolve().parents[1]
COMPILER = lstm_kernel.find_compiler()
needs_compiler = pytest.mark.skipif(
    COMPILER is None or shutil.which(COMPILER) is None, reason="no C compiler"
)
# Valid C that gcc and clang warn about under -Wall -Wextra (an unused variable).
WARNS = "int lstm_forward(void) { int unused; return 0; }\n"
SOURCE = lstm_kernel.c_source()


def test_the_source_is_read_from_the_package():
    source = lstm_kernel.c_source()
    assert source == (REPO / "src/mlapi/models/lstm_kernel.c").read_text(encoding="utf-8")
    assert "void lstm_forward(" in source and "void lstm_backward(" in source


def test_the_wheel_ships_the_source(tmp_path):
    """A non-editable install must find lstm_kernel.c: it is package data in pyproject."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(project)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("mlapi-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("mlapi/models/lstm_kernel.c").decode()
    assert shipped == lstm_kernel.c_source()


@pytest.mark.parametrize(
    "change",
    [
        ("c_source", lambda: SOURCE + "\n/* changed */\n"),
        ("CFLAGS", (*lstm_kernel.CFLAGS, "-DCHANGED")),
    ],
    ids=["source", "flags"],
)
def test_the_cache_key_changes_with_the_source_and_flags(monkeypatch, change):
    before = lstm_kernel._build_key("cc")
    monkeypatch.setattr(lstm_kernel, *change)
    assert lstm_kernel._build_key("cc") != before


def test_the_cache_key_changes_with_the_compiler():
    assert lstm_kernel._build_key("cc") != lstm_kernel._build_key("clang")
    assert lstm_kernel._build_key("cc") == lstm_kernel._build_key("cc")


@needs_compiler
def test_the_kernel_compiles_without_a_warning():
    assert lstm_kernel.compile_check(COMPILER) == []


@needs_compiler
def test_a_warning_fails_the_check_with_and_without_openmp():
    failures = lstm_kernel.compile_check(COMPILER, WARNS)
    assert len(failures) == 2
    assert failures[0].startswith("[-fopenmp]") and failures[1].startswith("[without OpenMP]")
    assert all("unused" in failure for failure in failures)


@needs_compiler
def test_kernel_check_command_exits_1_with_the_compiler_message(monkeypatch, capsys):
    monkeypatch.setattr(lstm_kernel, "c_source", lambda: WARNS)
    assert lstm_kernel._main() == 1
    out, err = capsys.readouterr()
    assert "FAILED" in out and "-Werror" in out
    assert "unused" in err


def test_kernel_check_skips_without_a_compiler(monkeypatch, capsys):
    monkeypatch.setattr(lstm_kernel, "find_compiler", lambda: None)
    assert lstm_kernel._main() == 0
    assert "no C compiler" in capsys.readouterr().out
