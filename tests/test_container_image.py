"""The real image: the repository's Dockerfile built with buildah, run, and probed on loopback.

There is no Docker engine here, so `scripts/build-image` builds the Dockerfile with
`buildah bud --isolation chroot --format docker` on a local stand-in for python:3.11-slim
(`scripts/standin-python-base`, made once per machine from Debian's packages). The image's own
CMD then runs as the image's own user (`buildah run --isolation chroot`, in this machine's network
namespace, bound to 127.0.0.1), and is probed from here: /health, /ready, the README's curl cases,
a sentiment model mounted read-only where the Dockerfile says, the HEALTHCHECK from the image's
config, what the image must not hold (torch, scikit-learn, pip...), the uid of the serving
processes, and a second run with a read-only root filesystem and tmpfs on /tmp.

Needs root, buildah and debootstrap (.ci/run installs them); skips otherwise, unless
MLAPI_REQUIRE_CONTAINER_TEST=1 (set by .ci/run) makes a missing tool a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from mlapi.testing import REPO_ROOT, free_port, wait_until_healthy

TOOLS = ("buildah", "debootstrap", "unshare", "chroot")
IMAGE = "localhost/mlapi:ci-test"
PICKLE_IMAGE = "localhost/mlapi:ci-test-pickle"
NOT_IN_THE_IMAGE = ("torch", "sklearn", "scipy", "onnx", "skl2onnx", "pip")
VENV_LIMIT_MIB = 180
SETOSA = [5.1, 3.5, 1.4, 0.2]


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "building and running the image with buildah needs root"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs buildah and debootstrap)"
    return None


if missing_prerequisite() and os.environ.get("MLAPI_REQUIRE_CONTAINER_TEST") == "1":
    raise RuntimeError(f"the container test must run here: {missing_prerequisite()}")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_prerequisite() is not None, reason=str(missing_prerequisite())),
]


def buildah(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def build(tag: str, *build_args: str) -> None:
    started = time.monotonic()
    command = [sys.executable, str(REPO_ROOT / "scripts" / "build-image"), "-t", tag]
    for build_arg in build_args:
        command += ["--build-arg", build_arg]
    built = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert built.returncode == 0, built.stderr[-5000:]
    print(f"built {tag} in {time.monotonic() - started:.0f} s")


class Container:
    """A working container of an image: run commands in it, serve its CMD, read its files."""

    def __init__(self, image: str):
        self.config = json.loads(buildah("inspect", "--type", "image", image).stdout)["Docker"][
            "config"
        ]
        self.name = buildah("from", "--pull=false", image).stdout.strip()
        self.root = Path(buildah("mount", self.name).stdout.strip())
        self.env = dict(pair.split("=", 1) for pair in self.config["Env"])

    def remove(self) -> None:
        buildah("rm", self.name, check=False)

    def run_args(self, env: dict[str, str], volumes: dict[Path, str]) -> list[str]:
        args = ["run", "--isolation", "chroot", "--user", self.config["User"]]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        for source, target in volumes.items():
            args += ["-v", f"{source}:{target}:ro"]
        return [*args, self.name, "--"]

    def run(self, *command: str, env=None, volumes=None) -> subprocess.CompletedProcess:
        return buildah(*self.run_args(env or {}, volumes or {}), *command, check=False)

    def uid(self, user: str) -> int:
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if user in (fields[0], fields[2]):
                return int(fields[2])
        raise AssertionError(f"user {user} is not in the image's /etc/passwd")

    def venv_mib(self) -> float:
        venv = self.root / "opt" / "venv"
        files = (p for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
        return sum(p.stat().st_size for p in files) / 2**20


class Server:
    """The image's CMD, started by `command`, on 127.0.0.1:port; its output in `log`."""

    def __init__(self, command: list[str], port: int, log: Path):
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_until_healthy(self.base_url, self.process, timeout=120)
        except RuntimeError:
            self.stop()
            raise AssertionError(log.read_text()[-3000:]) from None

    def stop(self) -> None:
        # The whole group: `unshare --fork` ignores SIGTERM itself and leaves it to its child.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def processes(self) -> list[int]:
        """pids of the server's processes: its descendants that run inside the image's root."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, rest = stat.read_text().split(" (", 1)
                children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
            except (OSError, IndexError, ValueError):
                continue
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                if os.readlink(f"/proc/{pid}/root") != "/":
                    found.append(pid)
            except OSError:
                continue
        return found


def uids(pid: int) -> set[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return {int(uid) for uid in line.split()[1:]}


@pytest.fixture(scope="module")
def image() -> str:
    build(IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def container(image):
    container = Container(image)
    yield container
    container.remove()


@pytest.fixture(scope="module")
def sentiment_dir(sentiment_models_dir, tmp_path_factory) -> Path:
    """The tests' tiny exported LSTM (conftest), copied readable by the image's user, as a
    model folder mounted into the image must be."""
    sentiment = tmp_path_factory.mktemp("models") / "sentiment"
    shutil.copytree(sentiment_models_dir / "sentiment", sentiment)
    for path in [sentiment.parent, sentiment, *sentiment.rglob("*")]:  # versions: 1/...
        path.chmod(0o755 if path.is_dir() else 0o644)
    return sentiment


@pytest.fixture(scope="module")
def served(container, sentiment_dir, tmp_path_factory):
    """The image's CMD as its user, with the sentiment model mounted read-only."""
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2"}
    volumes = {sentiment_dir: f"{container.env['MODELS_DIR']}/sentiment"}
    command = ["buildah", *container.run_args(env, volumes), *container.config["Cmd"]]
    server = Server(command, port, tmp_path_factory.mktemp("logs") / "server.log")
    yield server
    server.stop()


def test_health_ready_and_models(served):
    assert requests.get(f"{served.base_url}/health", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{served.base_url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    models = {
        m["name"]: m for m in requests.get(f"{served.base_url}/models", timeout=10).json()["models"]
    }
    assert models["iris"]["loaded"] and models["iris"]["backend"] == "onnx"
    assert models["iris"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert models["sentiment"]["loaded"] and models["sentiment"]["run_name"] == "tiny_lstm"
    assert models["sentiment"]["version"] == "1"  # MODELS_DIR/sentiment/1/


def test_the_readme_curl_cases(served):
    url = f"{served.base_url}/predict"
    valid = requests.post(url, json={"features": SETOSA}, timeout=10)
    assert valid.status_code == 200 and valid.json()["prediction"] == "setosa"
    assert set(valid.json()["probabilities"]) == {"setosa", "versicolor", "virginica"}
    three = requests.post(url, json={"features": SETOSA[:3]}, timeout=10)
    assert three.status_code == 400 and "features" in three.json()["error"]["message"]
    plain = requests.post(url, data="5.1,3.5,1.4,0.2", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and "Content-Type" in plain.json()["error"]["message"]


def test_the_mounted_sentiment_model_answers_as_it_does_here(served, sentiment_dir):
    from mlapi.serving.sentiment import SentimentPredictor

    texts = ["great moving film", "awful boring plot"]
    answer = requests.post(f"{served.base_url}/sentiment", json={"texts": texts}, timeout=10)
    assert answer.status_code == 200, answer.text
    served_scores = [p["score"] for p in answer.json()["predictions"]]
    here = SentimentPredictor.load(sentiment_dir / "1").predict_proba(texts)  # version 1
    np.testing.assert_allclose(served_scores, here, atol=1e-5)
    assert served_scores[0] > 0.5 > served_scores[1]


def test_the_healthcheck_from_the_image_config_passes_and_fails(served, container):
    healthcheck = container.config["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD"  # kept: the image is built in Docker's format
    port = served.base_url.rsplit(":", 1)[1]
    assert container.run(*healthcheck[1:], env={"PORT": port}).returncode == 0
    unused = container.run(*healthcheck[1:], env={"PORT": str(free_port())})
    assert unused.returncode != 0 and "Connection refused" in unused.stderr


def test_the_server_processes_run_as_the_image_user_not_root(served, container):
    expected = container.uid(container.config["User"])
    assert expected != 0
    pids = served.processes()
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids}
    assert sum(b"gunicorn" in command for command in commands.values()) >= 3, commands  # 1+2
    assert all(uids(pid) == {expected} for pid in pids), {pid: uids(pid) for pid in pids}


def test_the_server_log_has_no_traceback_nor_onnxruntime_warning(served):
    requests.get(f"{served.base_url}/health", timeout=10)
    log = served.log.read_text()
    assert "Booting worker" in log
    assert "Traceback" not in log and "[W:onnxruntime" not in log, log[-3000:]


def test_the_image_holds_no_training_code_pip_or_pickle(container):
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    found = container.run("python", "-c", probe % (NOT_IN_THE_IMAGE,))
    assert found.returncode == 0 and found.stdout.strip() == "[]", found.stdout + found.stderr
    files = (container.root / "models").iterdir()  # (and mount points the runs made)
    assert sorted(p.name for p in files if p.is_file()) == [
        "modelo.onnx",
        "modelo.onnx.json",
    ]
    venv = container.venv_mib()
    print(f"/opt/venv: {venv:.0f} MiB")
    assert venv <= VENV_LIMIT_MIB


READ_ONLY_RUN = r"""
set -eu
root=$1; sentiment=$2; shift 2
new=$(mktemp -d)
mount --bind "$root" "$new"
mount -o remount,bind,ro "$new"
mount -t proc proc "$new/proc"
mount --rbind /dev "$new/dev"
mount -t tmpfs -o mode=1777 tmpfs "$new/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
mount --bind "$sentiment" "$new/models/sentiment"
mount -o remount,bind,ro "$new/models/sentiment"
exec chroot --userspec="$UID_GID" "$new" "$@"
"""


def read_only_command(container: Container, sentiment_dir: Path, env: dict[str, str], *command):
    """`command` in the image with its root filesystem read-only and tmpfs on /tmp and /dev/shm
    (a private mount namespace, this network namespace): what a Kubernetes pod with
    readOnlyRootFilesystem and an emptyDir on /tmp gives it."""
    (container.root / "models" / "sentiment").mkdir(exist_ok=True)  # the mount point
    uid = container.uid(container.config["User"])
    environment = [f"{k}={v}" for k, v in {**container.env, **env}.items()]
    return [
        *("unshare", "--mount", "--fork", "--kill-child=SIGTERM"),
        *("env", f"UID_GID={uid}:{uid}", "sh", "-c", READ_ONLY_RUN, "read-only-run"),
        *(str(container.root), str(sentiment_dir)),
        *("/usr/bin/env", "-i", *environment, *command),
    ]


def test_serves_with_a_read_only_root_filesystem(container, sentiment_dir, tmp_path):
    write = "import os\nfor p in ('/opt/venv/x', os.path.expanduser('~/x'), '/tmp/x'):\n"
    write += (
        "    try: open(p, 'w'); print(p, 'ok')\n    except OSError as e: print(p, e.strerror)\n"
    )
    probe = read_only_command(container, sentiment_dir, {}, "python", "-c", write)
    tried = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert tried.returncode == 0, tried.stderr
    assert "/opt/venv/x Read-only file system" in tried.stdout
    assert "/tmp/x ok" in tried.stdout and tried.stdout.count(" ok") == 1, tried.stdout

    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1"}
    command = read_only_command(container, sentiment_dir, env, *container.config["Cmd"])
    server = Server(command, port, tmp_path / "read-only.log")
    try:
        assert requests.get(f"{server.base_url}/ready", timeout=10).status_code == 200
        answer = requests.post(f"{server.base_url}/predict", json={"features": SETOSA}, timeout=10)
        assert answer.status_code == 200 and answer.json()["prediction"] == "setosa"
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Traceback" not in log and "[W:onnxruntime" not in log, log[-3000:]


@pytest.fixture(scope="module")
def pickle_only_dir(container, tmp_path_factory) -> Path:
    """modelo.pkl + sidecar trained here (no modelo.onnx beside it), readable by the image user."""
    from mlapi.iris_model import train_and_save

    folder = tmp_path_factory.mktemp("pickle")
    train_and_save(folder / "modelo.pkl")
    (folder / "modelo.onnx").unlink()
    (folder / "modelo.onnx.json").unlink()
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def serve_pickle(container: Container, pickle_dir: Path, log: Path):
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "MODELO_PATH": "/pickle/modelo.pkl"}
    command = [
        "buildah",
        *container.run_args(env, {pickle_dir: "/pickle"}),
        *container.config["Cmd"],
    ]
    return Server(command, port, log)


def test_the_default_image_cannot_unpickle(container, pickle_only_dir, tmp_path):
    server = serve_pickle(container, pickle_only_dir, tmp_path / "server.log")
    try:
        answer = requests.post(f"{server.base_url}/predict", json={"features": SETOSA}, timeout=10)
    finally:
        server.stop()
    assert answer.status_code == 503 and "sklearn" in answer.json()["error"]["message"]


def test_serve_pickle_build_arg_serves_a_pickle(pickle_only_dir, tmp_path):
    build(PICKLE_IMAGE, "SERVE_PICKLE=1")
    container = Container(PICKLE_IMAGE)
    try:
        assert {"modelo.pkl", "modelo.onnx"} <= {
            p.name for p in (container.root / "models").iterdir()
        }
        print(f"/opt/venv with SERVE_PICKLE=1: {container.venv_mib():.0f} MiB")
        server = serve_pickle(container, pickle_only_dir, tmp_path / "server.log")
        try:
            base = server.base_url
            answer = requests.post(f"{base}/predict", json={"features": SETOSA}, timeout=10)
            models = requests.get(f"{base}/models", timeout=10).json()["models"]
        finally:
            server.stop()
    finally:
        container.remove()
    assert answer.status_code == 200 and answer.json()["prediction"] == "setosa"
    assert next(m for m in models if m["name"] == "iris")["backend"] == "pickle"
