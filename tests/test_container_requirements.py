"""The container's requirements: they mirror pyproject, hold no torch, and are enough to serve.

The image itself is built and probed by tests/test_container_image.py (where buildah can run).
What is checked here, everywhere:

- each requirements file says exactly what its part of pyproject says: requirements-serve.txt
  the base dependencies, requirements-serve-pickle.txt the `pickle` extra,
  requirements-iris.txt the `iris` extra (`-r` includes and `mlapi[...]` self-references
  followed);
- the serving requirements pull in neither scikit-learn, scipy, onnx nor any training framework;
- the Dockerfile installs what it should where it should, and .dockerignore lets in every COPY
  source;
- offline: the server starts and answers from *only* the requirement closure of
  requirements-serve.txt (those distributions, taken from this venv, linked into an empty
  folder, run with `python -S` so that no other site-packages is visible), with the Dockerfile's
  own CMD, ENV and HEALTHCHECK and only modelo.onnx; the build stage's `mlapi train iris` runs
  from the closure of requirements-serve.txt + requirements-iris.txt;
- online, opt-in (MLAPI_TEST_PIP_INSTALL=1, it downloads from PyPI): the same from a fresh venv
  made by `pip install -r requirements-serve.txt`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import Distribution, distribution
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlapi.testing import REPO_ROOT, free_port, wait_until_healthy

REQUIREMENTS = REPO_ROOT / "requirements-serve.txt"
PICKLE_REQUIREMENTS = REPO_ROOT / "requirements-serve-pickle.txt"
IRIS_REQUIREMENTS = REPO_ROOT / "requirements-iris.txt"
TRAINING_ONLY = {"torch", "matplotlib", "gensim", "onnxscript", "pyyaml", "pytest"}
NOT_FOR_SERVING = TRAINING_ONLY | {"scikit-learn", "scipy", "onnx", "skl2onnx", "pip"}


def read_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    """The requirements of a pip requirements file, its `-r` includes followed."""
    requirements = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            requirements += read_requirements(path.parent / line[3:].strip())
        elif line:
            requirements.append(Requirement(line))
    return requirements


def pyproject_dependencies(extra: str | None = None) -> list[Requirement]:
    """The base dependencies, or an extra's own (its `mlapi[...]` self-references followed)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = project["optional-dependencies"][extra] if extra else project["dependencies"]
    requirements = []
    for requirement in map(Requirement, specs):
        if canonicalize_name(requirement.name) == project["name"]:
            for included in sorted(requirement.extras):
                requirements += pyproject_dependencies(included)
        else:
            requirements.append(requirement)
    return requirements


def normalized(requirements: list[Requirement]) -> dict[str, str]:
    return {canonicalize_name(r.name): str(r.specifier) + str(r.marker or "") for r in requirements}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, arguments = current.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return instructions[starts[-1] :]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, arguments in runtime_stage():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


def exec_form(keyword: str) -> list[str]:
    """The JSON-array command of the runtime stage's CMD or HEALTHCHECK."""
    (arguments,) = [args for kw, args in runtime_stage() if kw == keyword]
    return json.loads(arguments[arguments.index("[") :])


def requirement_closure(requirements: list[Requirement]) -> dict[str, Distribution]:
    """Every distribution the requirements pull in, as installed in this venv."""
    closure: dict[str, Distribution] = {}
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        dist = distribution(name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (name, dist.version)
        closure[name] = dist
        for extra in ("", *requirement.extras):
            todo += [(Requirement(spec), extra) for spec in dist.requires or []]
    return closure


def link_distributions(dists, target: Path) -> None:
    """Symlink each distribution's installed files (its RECORD) into `target`."""
    for dist in dists:
        for file in dist.files or []:
            if file.parts[0] == "..":  # console scripts in bin/: not importable, not needed
                continue
            link = target / file
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(dist.locate_file(file)).resolve())


@pytest.mark.parametrize(
    "path, extra",
    [(REQUIREMENTS, None), (PICKLE_REQUIREMENTS, "pickle"), (IRIS_REQUIREMENTS, "iris")],
    ids=lambda value: getattr(value, "name", value),
)
def test_requirements_files_mirror_pyproject(path, extra):
    assert normalized(read_requirements(path)) == normalized(pyproject_dependencies(extra))


def test_requirement_files_follow_includes(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\nflask>=3.0  # why\n")
    (tmp_path / "b.txt").write_text("-r a.txt\nonnx>=1.16\n")
    assert normalized(read_requirements(tmp_path / "b.txt")) == {"flask": ">=3.0", "onnx": ">=1.16"}


def test_serving_requirements_pull_in_no_scikit_learn_nor_training_framework():
    closure = requirement_closure(read_requirements())
    assert {"flask", "onnxruntime", "gunicorn", "numpy"} <= set(closure)
    assert not NOT_FOR_SERVING & set(closure)
    pickle_closure = requirement_closure(read_requirements(PICKLE_REQUIREMENTS))
    assert "scikit-learn" in pickle_closure and not TRAINING_ONLY & set(pickle_closure)


def test_every_dockerfile_copy_source_is_in_the_build_context():
    ignore = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    assert ignore[ignore.index("*") :][0] == "*"  # deny everything, then let sources back in
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in arguments:
            sources += shlex.split(arguments)[:-1]
    assert sources and {source.rstrip("/") for source in sources} <= allowed
    assert all((REPO_ROOT / source).exists() for source in sources)


def dockerfile_args() -> dict[str, str]:
    return dict(
        arguments.split("=", 1)
        for keyword, arguments in dockerfile_instructions()
        if keyword == "ARG"
    )


def test_both_stages_build_on_python_slim_unless_told_otherwise():
    assert dockerfile_args()["BASE_IMAGE"] == "python:${PYTHON_VERSION}-slim"
    assert dockerfile_args()["PYTHON_VERSION"] == "3.11"
    froms = [arguments.split()[0] for kw, arguments in dockerfile_instructions() if kw == "FROM"]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]


def test_runtime_stage_is_non_root_healthchecked_and_serves_onnx():
    stage = runtime_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert exec_form("HEALTHCHECK")[0] == "python"
    assert dockerfile_env()["MODELO_PATH"].endswith(".onnx")
    assert dockerfile_env()["ORT_DISABLE_TELEMETRY"] == "1"


def pip_installs(pip: str) -> list[str]:
    """The arguments of each `PIP install ...` in the Dockerfile's RUN instructions."""
    runs = " ".join(
        arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"
    )
    return [args.strip() for args in re.findall(re.escape(pip) + r" install ([^;&]*)", runs)]


def test_the_runtime_venv_gets_only_the_serving_requirements_at_the_build_venvs_versions():
    runtime = "/opt/build/bin/pip --python /opt/venv/bin/python"
    assert pip_installs(runtime) == [
        "-c build-versions.txt -r requirements-serve.txt",
        "-c build-versions.txt -r requirements-serve-pickle.txt",  # only with SERVE_PICKLE=1
        "--no-deps .",
    ]
    assert pip_installs("/opt/build/bin/pip") == [
        "-r requirements-serve.txt -r requirements-iris.txt"
    ]
    assert dockerfile_args()["SERVE_PICKLE"] == "0"
    assert '[ "$SERVE_PICKLE" = 1 ]; then ' + runtime in " ".join(
        arguments for _, arguments in dockerfile_instructions()
    )


@pytest.fixture(scope="module")
def serving_only_site(tmp_path_factory) -> Path:
    """A folder holding exactly the requirement closure of requirements-serve.txt."""
    site = tmp_path_factory.mktemp("serving-site")
    link_distributions(requirement_closure(read_requirements()).values(), site)
    return site


@pytest.fixture(scope="module")
def iris_build_site(tmp_path_factory) -> Path:
    """The build stage's: the closure of requirements-serve.txt + requirements-iris.txt."""
    site = tmp_path_factory.mktemp("iris-build-site")
    requirements = read_requirements() + read_requirements(IRIS_REQUIREMENTS)
    link_distributions(requirement_closure(requirements).values(), site)
    return site


def isolated_python(site: Path) -> tuple[list[str], dict[str, str]]:
    """`python -S` (no site-packages) that sees only `site`, our src/ and the stdlib."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GUNICORN"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT / "src")])
    return [sys.executable, "-S"], env


@pytest.mark.slow
def test_server_starts_from_only_the_serving_requirements_with_the_dockerfile_cmd(
    serving_only_site, iris_build_site, tmp_path
):
    python, env = isolated_python(serving_only_site)
    no_torch = subprocess.run([*python, "-c", "import torch"], env=env, capture_output=True)
    assert no_torch.returncode != 0 and b"No module named 'torch'" in no_torch.stderr
    no_sklearn = subprocess.run([*python, "-c", "import sklearn"], env=env, capture_output=True)
    assert no_sklearn.returncode != 0

    # The build stage: `python -m mlapi train iris --out /models/modelo.pkl`, then only
    # modelo.onnx (+ sidecar) is kept.
    models = tmp_path / "models"
    build_python, build_env = isolated_python(iris_build_site)
    train = subprocess.run(
        [*build_python, "-m", "mlapi", "train", "iris", "--out", str(models / "modelo.pkl")],
        env=build_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    (models / "modelo.pkl").unlink()
    (models / "modelo.pkl.json").unlink()

    # The runtime stage: its ENV (on loopback, a free port, our model dir) and its CMD.
    port = free_port()
    env.update(dockerfile_env())
    env.update(HOST="127.0.0.1", PORT=str(port), MODELO_PATH=str(models / "modelo.onnx"))
    env["MODELS_DIR"] = str(models)
    command = exec_form("CMD")
    assert command[0] == "gunicorn"
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [*python, "-m", "gunicorn", *command[1:]],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_healthy(base_url, server, timeout=60)
            answer = requests.post(
                f"{base_url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, timeout=10
            )
            assert answer.status_code == 200 and answer.json()["prediction"] == "setosa"
            iris = requests.get(f"{base_url}/models", timeout=10).json()["models"][0]
            assert iris["name"] == "iris" and iris["backend"] == "onnx"
            healthcheck = exec_form("HEALTHCHECK")
            assert healthcheck[0] == "python"
            check = subprocess.run([*python, *healthcheck[1:]], env=env, timeout=30)
            assert check.returncode == 0
        finally:
            server.terminate()
            # A worker may take gunicorn's whole graceful_timeout (30 s) to go: not this test's
            # subject (requests are answered); wait past it.
            server.wait(timeout=90)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MLAPI_TEST_PIP_INSTALL") != "1",
    reason="downloads the serving requirements from PyPI; set MLAPI_TEST_PIP_INSTALL=1",
)
def test_requirements_install_into_a_fresh_venv_and_serve(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-cache-dir"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=900)
    subprocess.run([*pip, "--no-deps", str(REPO_ROOT)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "check"], check=True)
    for module in ("torch", "sklearn"):
        missing = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert missing.returncode != 0, module

    # The Iris model is trained with this venv (the image's build stage has scikit-learn).
    from mlapi.iris_model import train_and_save

    models = tmp_path / "models"
    train_and_save(models / "modelo.pkl")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GUNICORN"))}
    env.update(dockerfile_env())
    env.update(HOST="127.0.0.1", PORT=str(port), MODELO_PATH=str(models / "modelo.onnx"))
    env.update(MODELS_DIR=str(models), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    server = subprocess.Popen(exec_form("CMD"), cwd=tmp_path, env=env)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server, timeout=60)
        check = subprocess.run(exec_form("HEALTHCHECK"), env=env, timeout=30)
        assert check.returncode == 0
    finally:
        server.terminate()
        server.wait(timeout=90)  # past gunicorn's graceful_timeout
