"""Train the seed's RandomForest on Iris and save it as `modelo.pkl` + `modelo.onnx`.

The pickle is the seed's artifact (a bare fitted estimator). The ONNX copy is what
the server runs: same labels, probabilities within 1e-5 on all 150 rows, checked
here before it is kept. Both carry a JSON sidecar with their sha256.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from mlapi.artifacts import atomic_write_bytes, utc_now_iso, write_sidecar
from mlapi.data.iris import load_iris
from mlapi.errors import ArtifactError
from mlapi.serving.settings import DEFAULT_MODELO_PATH, IRIS_MODEL_FILE, default_modelo_path

SEED = 42
HOLDOUT_FRACTION = 0.2
N_ESTIMATORS = 100
PARITY_TOLERANCE = 1e-5


def default_model_path() -> Path:
    """$MODELO_PATH, else ./modelo.pkl (the serving default, defined in serving.settings)."""
    return default_modelo_path()


def train_new_version(models_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """Train into `<models_dir>/iris/<next version>/modelo.pkl` (+ ONNX, sidecars), atomically.

    A seed-style ./modelo.pkl found there first becomes version 1 (`mlapi.versions`).
    """
    from mlapi import versions

    with versions.new_version(Path(models_dir), "iris", DEFAULT_MODELO_PATH) as install:
        summary = train_and_save(install.staging / IRIS_MODEL_FILE)
    return install.installed / IRIS_MODEL_FILE, summary


def onnx_path_for(pickle_path: str | os.PathLike) -> Path:
    """`modelo.pkl` -> `modelo.onnx`, beside it."""
    return Path(pickle_path).with_suffix(".onnx")


def train_and_save(path: str | os.PathLike) -> dict[str, Any]:
    """Fit on a stratified hold-out split, write pickle + ONNX + sidecars; return the sidecar."""
    data = load_iris()
    model, holdout_accuracy = fit_forest(data, seed=SEED)

    fields = {
        "name": "iris",
        "model": "RandomForestClassifier",
        "class_names": list(data.class_names),
        "feature_names": list(data.feature_names),
        "holdout_accuracy": holdout_accuracy,
        "holdout_fraction": HOLDOUT_FRACTION,
        "seed": SEED,
        "sklearn_version": sklearn.__version__,
        "created_at": utc_now_iso(),
    }
    pickle_path = Path(path)
    onnx_path = onnx_path_for(pickle_path)
    # Convert and check before writing anything, so a failed check changes no file.
    onnx_bytes = _checked_onnx(model, data.x, onnx_path.name)
    atomic_write_bytes(onnx_path, onnx_bytes)
    write_sidecar(onnx_path, **fields, converted_from=pickle_path.name)
    atomic_write_bytes(pickle_path, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    return write_sidecar(pickle_path, **fields)


def fit_forest(data, *, seed: int) -> tuple[RandomForestClassifier, float]:
    """The forest fitted on a stratified split drawn with `seed`, and its hold-out accuracy."""
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        data.x, data.y, test_size=HOLDOUT_FRACTION, stratify=data.y, random_state=seed
    )
    model = RandomForestClassifier(n_estimators=N_ESTIMATORS, random_state=seed)
    model.fit(x_train, y_train)
    return model, float((model.predict(x_holdout) == y_holdout).mean())


def _checked_onnx(model: RandomForestClassifier, x_all: np.ndarray, name: str) -> bytes:
    """The forest as ONNX bytes, after ONNX Runtime matched scikit-learn on every row."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    onnx_bytes = to_onnx(
        model,
        x_all[:1],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    ).SerializeToString()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: x_all})
    max_diff = float(np.abs(probabilities - model.predict_proba(x_all)).max())
    if not np.array_equal(labels, model.predict(x_all)) or max_diff > PARITY_TOLERANCE:
        raise ArtifactError(
            f"ONNX export of the Iris model disagrees with scikit-learn "
            f"(max probability difference {max_diff:.2e}); {name} and the pickle were not written"
        )
    return onnx_bytes
