"""A run's files in its output folder, finding a saved run, and re-evaluating it.

    saved = find_run("imdb_lstm__adam2e-4_clip1.0__bce__vs0.2__bs64__ep10")
    test = evaluate_run(saved)          # the test metrics, recomputed from the checkpoint

torch is imported inside `evaluate_run` only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlapi.errors import ArtifactError, MlapiError
from mlapi.training.config import ExperimentConfig

if TYPE_CHECKING:
    from mlapi.evaluation import ClassificationMetrics

OUTPUT_FILES = {
    "checkpoint": "best.pt",
    "vocabulary": "vocabulary.json",
    "config": "config.json",
    "history": "history.csv",
    "curves": "curves.png",
    "confusion_csv": "confusion_matrix.csv",
    "confusion_png": "confusion_matrix.png",
    "metrics": "metrics.json",
    "report": "report.md",
}
HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")


def output_path(out_dir: str | os.PathLike, run: str, kind: str) -> Path:
    """`<out_dir>/<run>_<file>` for one of OUTPUT_FILES' kinds."""
    return Path(out_dir) / f"{run}_{OUTPUT_FILES[kind]}"


@dataclass(frozen=True)
class SavedRun:
    run_name: str
    out_dir: Path
    config: ExperimentConfig
    saved: dict[str, Any]  # the whole <run>_config.json

    def path(self, kind: str) -> Path:
        return output_path(self.out_dir, self.run_name, kind)


def find_run(run: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> SavedRun:
    """A run by name (in `out_dir`), by its `_config.json` path, or by any of its files."""
    given = Path(run)
    if given.is_file():
        config_path = _config_beside(given)
    elif out_dir is None:
        raise ArtifactError(f"no saved run file {str(run)!r}; give the folder of the runs")
    else:
        config_path = output_path(out_dir, str(run), "config")
    if not config_path.is_file():
        raise ArtifactError(f"no saved run {str(run)!r}: {config_path} does not exist")
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        config = ExperimentConfig.from_dict(saved["config"])
    except (MlapiError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{config_path} is not a valid run config: {exc}") from exc
    return SavedRun(saved.get("run_name", config.run_name), config_path.parent, config, saved)


def _config_beside(file: Path) -> Path:
    suffixes = sorted(OUTPUT_FILES.values(), key=len, reverse=True)
    for suffix in suffixes:
        if file.name.endswith("_" + suffix):
            run = file.name[: -len(suffix) - 1]
            return output_path(file.parent, run, "config")
    raise ArtifactError(f"{file} is not a file of a saved run")


def evaluate_run(
    saved: SavedRun, data: str | os.PathLike | None = None, *, device: str = "cpu"
) -> ClassificationMetrics:
    """Rebuild the network from the run's config, vocabulary and best checkpoint, then
    recompute the test metrics (on `device`). `data` defaults to the run's own dataset."""
    import torch

    from mlapi.data.imdb import load_encoded_test
    from mlapi.evaluation import classify
    from mlapi.models.registry import build_network
    from mlapi.text import Vocabulary
    from mlapi.training.loop import predict_proba
    from mlapi.training.run import use_torch_threads

    use_torch_threads()
    for kind in ("checkpoint", "vocabulary"):
        if not saved.path(kind).is_file():
            raise ArtifactError(f"{saved.path(kind)} is missing; cannot evaluate the run")
    vocabulary = Vocabulary.load(saved.path("vocabulary"))
    network = build_network(saved.config, vocabulary.size)
    try:
        state = torch.load(saved.path("checkpoint"), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        network.to(device)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load {saved.path('checkpoint')}: {exc}") from exc
    if data is None:
        data = saved.saved.get("data") or saved.saved.get("dataset_root")
    x_test, y_test, _ = load_encoded_test(data, vocabulary)
    return classify(y_test, predict_proba(network, x_test))
