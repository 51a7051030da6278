"""The naive reference for the load benchmark: the seed's Flask app as it first was.

It unpickles the RandomForest once per worker and, on each request, calls
`predict` and `predict_proba` on one row with scikit-learn. No validation beyond
the seed's, no ONNX. benchmarks/load.py serves it with `gunicorn -w 2 app:app`
(the seed's command, default sync workers) and compares our server against it.

MODELO_PATH (default ./modelo.pkl) says which pickle to load.
"""

import os
import pickle

from flask import Flask, jsonify, request

CLASS_NAMES = ["setosa", "versicolor", "virginica"]

with open(os.environ.get("MODELO_PATH", "modelo.pkl"), "rb") as f:
    model = pickle.load(f)

app = Flask(__name__)


@app.post("/predict")
def predict():
    data = request.get_json(force=True)
    features = data["features"]
    if len(features) != 4:
        return jsonify(error="features must have 4 numbers"), 400
    label = int(model.predict([features])[0])
    probabilities = model.predict_proba([features])[0]
    return jsonify(
        prediction=CLASS_NAMES[label],
        probabilities=dict(zip(CLASS_NAMES, map(float, probabilities), strict=True)),
    )


@app.get("/health")
def health():
    return jsonify(status="ok")
