"""`mlapi bundle`: the seed's delivery zip ("Entrega"), runnable on its own.

`entrega_flask_ml_api.zip` holds one folder, `entrega_flask_ml_api/`, with:

- the seed's files: app.py, train_model.py, test_api.py, environment.yml, README.md, modelo.pkl;
- what they need to run: modelo.onnx (the model the server prefers) and both JSON sidecars,
  gunicorn.conf.py, Makefile, pyproject.toml + src/mlapi (so `pip install .` works) and
  requirements-serve.txt;
- the sentiment model (`models/sentiment/`) when one is installed;
- MANIFEST.json: every file with its sha256, the source commit, when the zip was built.

Models are copied only after their sha256 matches their sidecar. When there is no Iris model
at `--modelo-path`, a fresh one is trained into the bundle (seeded, as `python train_model.py`
does); the caller's directory is left as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlapi.artifacts import atomic_path, sha256_file, sidecar_path, utc_now_iso, verified_metadata
from mlapi.errors import ArtifactError, MlapiError
from mlapi.serving.settings import (
    DEFAULT_MODELO_PATH,
    DEFAULT_MODELS_DIR,
    IRIS_MODEL_FILE,
    default_modelo_path,
    default_models_dir,
)
from mlapi.versions import served_artifact

BUNDLE_NAME = "entrega_flask_ml_api"
DEFAULT_OUT = f"{BUNDLE_NAME}.zip"
SEED_FILES = ("app.py", "train_model.py", "test_api.py", "environment.yml", "README.md")
SUPPORT_FILES = ("gunicorn.conf.py", "Makefile", "pyproject.toml", "requirements-serve.txt")
SKIPPED_NAMES = {"__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".tmp")


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    files: tuple[str, ...]  # paths inside the bundle folder
    iris_source: str  # where modelo.pkl came from: a path, or "trained for the bundle"
    sentiment_included: bool


def register(subparsers: argparse._SubParsersAction) -> None:
    bundle = subparsers.add_parser(
        "bundle",
        help="write the delivery zip (entrega_flask_ml_api.zip)",
        description="Write the seed's delivery zip: app.py, modelo.pkl, train_model.py, "
        "test_api.py, environment.yml, README.md and what they need to run (the mlapi "
        "source, pyproject.toml, the ONNX model, gunicorn.conf.py).",
    )
    bundle.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="the zip to write")
    bundle.add_argument(
        "--modelo-path",
        type=Path,
        default=default_modelo_path(),
        help="Iris model to ship (trained into the bundle if missing)",
    )
    bundle.add_argument(
        "--models-dir",
        type=Path,
        default=default_models_dir(),
        help="ships <models-dir>/sentiment/ when it holds a model",
    )
    bundle.add_argument("--no-sentiment", action="store_true", help="leave the sentiment model out")
    bundle.add_argument(
        "--source", type=Path, default=None, help="project checkout (default: this package's)"
    )
    bundle.set_defaults(handler=_bundle)


def _bundle(args: argparse.Namespace) -> int:
    check_flags(args)
    summary = build_bundle(
        args.out,
        modelo_path=args.modelo_path,
        models_dir=None if args.no_sentiment else args.models_dir,
        source=args.source,
    )
    size_mb = summary.path.stat().st_size / 1e6
    sentiment = "included" if summary.sentiment_included else "not included"
    print(
        f"wrote {summary.path} ({len(summary.files)} files, {size_mb:.1f} MB); "
        f"Iris model: {summary.iris_source}; sentiment model: {sentiment}"
    )
    print(f"run it: unzip {summary.path.name}; cd {BUNDLE_NAME}; pip install .; python app.py")
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """One line naming the flag, its value and what is allowed, before any work is done."""
    if args.out.is_dir():
        raise MlapiError(f"--out must be the zip file to write, got {str(args.out)!r}, a folder")
    if args.modelo_path.is_dir():
        raise MlapiError(
            f"--modelo-path must be the Iris model file, got {str(args.modelo_path)!r}, a folder"
        )
    if not args.no_sentiment and args.models_dir.exists() and not args.models_dir.is_dir():
        got = str(args.models_dir)
        raise MlapiError(f"--models-dir must be a folder (it holds sentiment/), got file {got!r}")
    if args.source is not None and not (args.source / "pyproject.toml").is_file():
        raise MlapiError(
            f"--source must be a checkout of this project (with pyproject.toml), "
            f"got {str(args.source)!r}"
        )


def build_bundle(
    out: str | os.PathLike,
    *,
    modelo_path: str | os.PathLike = DEFAULT_MODELO_PATH,
    models_dir: str | os.PathLike | None = DEFAULT_MODELS_DIR,
    source: str | os.PathLike | None = None,
) -> BundleSummary:
    """Write the delivery zip at `out` (atomically) and say what went into it."""
    root = Path(source) if source is not None else project_root()
    files = project_files(root)
    with tempfile.TemporaryDirectory(prefix="mlapi-bundle-") as staging:
        if Path(modelo_path) == DEFAULT_MODELO_PATH:  # the served version, as the server does
            versioned = served_artifact(Path(models_dir or DEFAULT_MODELS_DIR), "iris", modelo_path)
            modelo_path = versioned or modelo_path
        iris_files, iris_source = iris_model_files(Path(modelo_path), Path(staging))
        files.update(iris_files)
        sentiment = sentiment_model_files(Path(models_dir)) if models_dir is not None else {}
        files.update(sentiment)
        manifest = {
            "name": BUNDLE_NAME,
            "created_at": utc_now_iso(),
            "source_commit": git_commit(root),
            "iris_model": iris_source,
            "files": {name: sha256_file(path) for name, path in sorted(files.items())},
        }
        out = Path(out)
        with atomic_path(out) as tmp:
            write_zip(tmp, files, manifest)
    names = (*sorted(files), "MANIFEST.json")
    return BundleSummary(out, names, iris_source, bool(sentiment))


def project_root() -> Path:
    """The checkout this package runs from (src/mlapi/ -> the folder holding pyproject.toml)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ArtifactError(
            f"mlapi bundle needs the project's source checkout, and {root} is not one "
            "(no pyproject.toml). Run it from a clone, or pass --source."
        )
    return root


def project_files(root: Path) -> dict[str, Path]:
    """Bundle path -> file, for the seed's files, their support files and src/mlapi."""
    files = {}
    for name in (*SEED_FILES, *SUPPORT_FILES):
        if not (root / name).is_file():
            raise ArtifactError(f"{root / name} is missing; cannot build the delivery bundle")
        files[name] = root / name
    package = root / "src" / "mlapi"
    if not (package / "__init__.py").is_file():
        raise ArtifactError(f"{package} is not the mlapi package; cannot build the bundle")
    for path in sorted(package.rglob("*")):
        if path.is_file() and _shipped(path.relative_to(package)):
            files[path.relative_to(root).as_posix()] = path
    return files


def _shipped(relative: Path) -> bool:
    hidden = any(part.startswith(".") for part in relative.parts)
    skipped = any(part in SKIPPED_NAMES for part in relative.parts)
    return not (hidden or skipped or relative.name.endswith(SKIPPED_SUFFIXES))


def iris_model_files(modelo_path: Path, staging: Path) -> tuple[dict[str, Path], str]:
    """modelo.pkl (+ modelo.onnx) and sidecars, verified; trained into `staging` if missing."""
    from mlapi.serving.iris import TRAIN_HINT

    if not modelo_path.exists():
        from mlapi.iris_model import train_and_save

        modelo_path = staging / IRIS_MODEL_FILE
        train_and_save(modelo_path)
        source = "trained for the bundle"
    else:
        source = str(modelo_path)
    artifacts = [modelo_path]
    onnx_path = modelo_path.with_suffix(".onnx")
    if onnx_path.exists():
        artifacts.append(onnx_path)
    files = {}
    for artifact in artifacts:
        verified_metadata(
            artifact, what="Iris model", hint=TRAIN_HINT
        )  # ArtifactError unless the sha256 matches
        name = Path(IRIS_MODEL_FILE).stem + artifact.suffix
        files[name] = artifact
        files[f"{name}.json"] = sidecar_path(artifact)
    return files, source


def sentiment_model_files(models_dir: Path) -> dict[str, Path]:
    """The served version of models/sentiment/ as models/sentiment/* (verified), or nothing."""
    from mlapi.serving.sentiment import TRAIN_HINT

    directory = served_artifact(models_dir, "sentiment")
    if directory is None or not (directory / "metadata.json").is_file():
        return {}
    metadata = verified_metadata(directory, what="sentiment model", hint=TRAIN_HINT)
    names = ["metadata.json", *metadata["files"]]
    return {f"models/sentiment/{name}": directory / name for name in names}


def write_zip(path: Path, files: dict[str, Path], manifest: dict) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, file in sorted(files.items()):
            archive.write(file, f"{BUNDLE_NAME}/{name}")
        archive.writestr(f"{BUNDLE_NAME}/MANIFEST.json", json.dumps(manifest, indent=2) + "\n")


def git_commit(root: Path) -> str | None:
    """The checkout's HEAD commit, or None outside git (the zip is still valid)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
