"""A small C kernel for the recurrent-dropout LSTM's step loops, built on first use.

The step loop's time goes into many tiny ops (a 64x256 matmul and a few gate updates per
step), so per-op dispatch dominates in PyTorch. The C code (`lstm_kernel.c`, shipped as
package data beside this module) does one step of a block of batch rows in one pass, with
register-blocked matmuls, and splits the batch rows across OpenMP threads: rows are
independent through time, so threads never wait for each other. Built with -fopenmp, it
shares PyTorch's OpenMP runtime and thread pool (libgomp is loaded once per process), so
its threads do not compete with PyTorch's own.

It is compiled with the system C compiler (`cc`, or $CC) into a cache folder
($MLAPI_KERNEL_CACHE, default ~/.cache/mlapi/kernels), once per source, flags, compiler
and CPU, and loaded with ctypes (without OpenMP if the compiler lacks it: then
single-threaded). Without a compiler, or with MLAPI_LSTM_KERNEL=torch, `load()` returns
None and `mlapi.models.recurrent_dropout` uses its pure-PyTorch loop, which the tests hold
this kernel to. `python -m mlapi.models.lstm_kernel` (`make kernel-check`) compiles the
source with these flags and -Wall -Wextra -Werror, with and without OpenMP.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.resources
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from mlapi.artifacts import atomic_path

# -ffp-contract=fast: a * b + c as one FMA (ISO C mode would keep separate multiply and add).
CFLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math")
CFLAGS += ("-std=c11",)
LINK_FLAGS = ("-shared", "-fPIC")
OPENMP_CHOICES = (("-fopenmp",), ())  # tried in this order
WARNINGS_AS_ERRORS = ("-Wall", "-Wextra", "-Werror")

_lock = threading.Lock()
_state: dict[str, object] = {}


@functools.cache
def c_source() -> str:
    """The kernel's C source, read from the installed package."""
    resource = importlib.resources.files("mlapi.models").joinpath("lstm_kernel.c")
    return resource.read_text(encoding="utf-8")


def load() -> ctypes.CDLL | None:
    """The compiled kernel, or None when it is disabled or cannot be built (warns once)."""
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _build_and_load()
        return _state["lib"]  # type: ignore[return-value]


def _build_and_load() -> ctypes.CDLL | None:
    if os.environ.get("MLAPI_LSTM_KERNEL", "c") == "torch":
        return None
    compiler = find_compiler()
    if compiler is None:
        message = "no C compiler: the recurrent-dropout LSTM uses its slower PyTorch loop"
        warnings.warn(message, stacklevel=3)
        return None
    library = _cache_dir() / f"lstm_{_build_key(compiler)}.so"
    try:
        if not library.exists():
            _compile(compiler, library)
        lib = ctypes.CDLL(str(library))
    except (OSError, subprocess.SubprocessError) as exc:
        message = f"LSTM C kernel unavailable ({exc}); using the slower PyTorch loop"
        warnings.warn(message, stacklevel=3)
        return None
    int_, ptr = ctypes.c_int, ctypes.c_void_p
    lib.lstm_forward.argtypes = [int_] * 3 + [ptr] * 9 + [int_]
    lib.lstm_backward.argtypes = [int_] * 3 + [ptr] * 12 + [int_]
    lib.lstm_forward.restype = lib.lstm_backward.restype = None
    return lib


def find_compiler() -> str | None:
    """$CC, else `cc` or `gcc` on the PATH."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cache_dir() -> Path:
    default = Path.home() / ".cache" / "mlapi" / "kernels"
    return Path(os.environ.get("MLAPI_KERNEL_CACHE", default))


def _build_key(compiler: str) -> str:
    """Source, flags, compiler and CPU: `-march=native` code is only valid on its own CPU."""
    cpu = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu += "".join(line for line in f if line.startswith(("model name", "flags")))
    except OSError:
        pass
    key = "\n".join([c_source(), " ".join(CFLAGS), compiler, cpu])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _compile(compiler: str, library: Path) -> None:
    """Build with OpenMP if the compiler can, else without (single-threaded kernel)."""
    with atomic_path(library) as tmp:
        source = tmp.with_suffix(".c")
        source.write_text(c_source(), encoding="utf-8")
        try:
            for openmp in OPENMP_CHOICES:
                built = _run_compiler(compiler, source, tmp, openmp)
                if built.returncode == 0:
                    return
            raise subprocess.SubprocessError(built.stderr.strip().splitlines()[-1:])
        finally:
            source.unlink(missing_ok=True)


def _run_compiler(
    compiler: str, source: Path, output: Path, extra: tuple[str, ...]
) -> subprocess.CompletedProcess:
    cmd = [compiler, *CFLAGS, *extra, *LINK_FLAGS, "-o", str(output), str(source)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def compile_check(compiler: str, source_text: str | None = None) -> list[str]:
    """Compile the kernel (or `source_text`) with the runtime flags plus -Wall -Wextra
    -Werror, once with and once without OpenMP, into a temporary folder. Returns the
    compiler's messages of each failed build (empty: both built without a warning)."""
    failures = []
    with tempfile.TemporaryDirectory(prefix="mlapi-kernel-check-") as folder:
        source = Path(folder) / "lstm_kernel.c"
        source.write_text(c_source() if source_text is None else source_text, encoding="utf-8")
        for openmp in OPENMP_CHOICES:
            output = Path(folder) / "lstm_kernel.so"
            built = _run_compiler(compiler, source, output, (*openmp, *WARNINGS_AS_ERRORS))
            if built.returncode != 0:
                label = " ".join(openmp) or "without OpenMP"
                failures.append(f"[{label}]\n{built.stderr.strip()}")
    return failures


def threads_for(batch: int) -> int:
    """The kernel's threads: PyTorch's intra-op count, at most one per batch row."""
    return max(1, min(torch.get_num_threads(), batch))


def ptr(tensor: torch.Tensor) -> int:
    assert tensor.is_contiguous() and tensor.dtype == torch.float32
    return tensor.data_ptr()


def _main() -> int:
    """`make kernel-check`: exit 1 with the compiler's messages on any warning."""
    compiler = find_compiler()
    if compiler is None:
        print("kernel-check: no C compiler ($CC, cc, gcc); skipped (the PyTorch loop is used)")
        return 0
    failures = compile_check(compiler)
    for failure in failures:
        print(failure, file=sys.stderr)
    flags = " ".join([*CFLAGS, *WARNINGS_AS_ERRORS])
    verdict = "FAILED" if failures else "ok"
    print(f"kernel-check: {compiler} {flags} (with and without -fopenmp): {verdict}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_main())
