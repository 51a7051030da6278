"""Real servers for tests and benchmarks: start gunicorn on a free loopback port, wait, stop.

Not used by the product itself; kept in the package so tests and benchmarks share one copy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            if requests.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still booting
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {base_url} did not become healthy in {timeout}s")


def server_env(**extra: str) -> dict[str, str]:
    """The caller's environment without gunicorn overrides, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")}
    return {**env, **extra}


class GunicornServer:
    """`gunicorn [args] TARGET` in `cwd` (so its gunicorn.conf.py applies), on 127.0.0.1."""

    def __init__(
        self,
        env: dict[str, str],
        *args: str,
        cwd: Path = REPO_ROOT,
        target: str = "app:app",
        log_path: Path | None = None,
    ):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", *args, target]
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_healthy(self.base_url, self.process)
        except BaseException:
            self.stop()
            raise

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return code

    def __enter__(self) -> GunicornServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
