"""Classic baselines on the same split as the neural runs, for every comparison.

    tfidf_lr   TF-IDF (unigrams + bigrams, sublinear tf) + logistic regression
    nbsvm      NBSVM (Wang & Manning 2012): binarized uni+bigram counts scaled by the
               naive-Bayes log-count ratio r, + logistic regression (the "NB-LR" variant)

Both use mlapi.text.tokenize, fit on the training portion only, pick C by validation
accuracy only, and read the test split once, after the choice.

    result = run_baseline("nbsvm", data="../shared/data/aclImdb_v1.tar.gz")
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlapi.text import tokenize

BASELINES = ("tfidf_lr", "nbsvm")
C_GRIDS = {"tfidf_lr": (4.0, 16.0, 64.0, 256.0), "nbsvm": (0.01, 0.03, 0.1, 0.3, 1.0)}
DESCRIPTIONS = {
    "tfidf_lr": "TF-IDF (uni+bigrams, sublinear tf, min_df 2) + logistic regression",
    "nbsvm": "NBSVM: binary uni+bigram counts x NB log-count ratio + logistic regression",
}


def unigrams_and_bigrams(text: str | list[str]) -> list[str]:
    """The analyzer of both baselines: mlapi tokens plus their bigrams. Takes a raw text
    or an already tokenized one (so a split is tokenized once for all baselines)."""
    words = tokenize(text) if isinstance(text, str) else text
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


class NBFeatures(BaseEstimator, TransformerMixin):
    """x -> x * r with r = log((p / |p|_1) / (q / |q|_1)), p, q = alpha + feature counts
    of the positive and the negative reviews (Wang & Manning 2012)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: Any, y: np.ndarray) -> NBFeatures:
        y = np.asarray(y)
        p = self.alpha + np.asarray(x[y == 1].sum(axis=0)).ravel()
        q = self.alpha + np.asarray(x[y == 0].sum(axis=0)).ravel()
        self.ratio_ = np.log((p / p.sum()) / (q / q.sum()))
        return self

    def transform(self, x: Any) -> sparse.csr_matrix:
        return sparse.csr_matrix(x).multiply(self.ratio_).tocsr()


def make_pipeline(name: str, c: float) -> Pipeline:
    common = {"analyzer": unigrams_and_bigrams, "min_df": 2, "dtype": np.float32}
    classifier = LogisticRegression(C=c, solver="liblinear", max_iter=1000)
    if name == "tfidf_lr":
        return Pipeline(
            [("tfidf", TfidfVectorizer(sublinear_tf=True, **common)), ("lr", classifier)]
        )
    if name == "nbsvm":
        counts = CountVectorizer(binary=True, **common)
        return Pipeline([("counts", counts), ("nb", NBFeatures()), ("lr", classifier)])
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {name!r}")


@dataclass(frozen=True)
class BaselineFit:
    pipeline: Pipeline
    c: float
    val_accuracy_by_c: dict[float, float]
    train_accuracy: float
    val_accuracy: float
    fit_seconds: float  # features + every C of the grid


def fit_baseline(
    name: str,
    train: tuple[list, np.ndarray],
    val: tuple[list, np.ndarray],
    c_grid: tuple[float, ...] | None = None,
) -> BaselineFit:
    """Fit the features once on `train`, one classifier per C; keep the best on `val`."""
    started = time.perf_counter()
    (x_train, y_train), (x_val, y_val) = train, val
    features = Pipeline(make_pipeline(name, 1.0).steps[:-1])
    f_train = features.fit_transform(x_train, y_train)
    f_val = features.transform(x_val)
    scores, models = {}, {}
    for c in c_grid or C_GRIDS[name]:
        model = LogisticRegression(C=c, solver="liblinear", max_iter=1000).fit(f_train, y_train)
        scores[c] = float(np.mean(model.predict(f_val) == y_val))
        models[c] = model
    best = max(scores, key=lambda c: (scores[c], -c))  # ties: the stronger regularization
    pipeline = Pipeline([*features.steps, ("lr", models[best])])
    train_accuracy = float(np.mean(models[best].predict(f_train) == y_train))
    return BaselineFit(
        pipeline, best, scores, train_accuracy, scores[best], time.perf_counter() - started
    )


def predict_proba(pipeline: Pipeline, texts: list) -> np.ndarray:
    return pipeline.predict_proba(texts)[:, 1].astype(np.float32)


def parameter_count(pipeline: Pipeline) -> int:
    classifier = pipeline.steps[-1][1]
    return int(classifier.coef_.size + classifier.intercept_.size)


@dataclass(frozen=True)
class BaselineSplits:
    """The tokenized training portion, validation split and test split, as the neural
    runs see them (same reviews, same seeded stratified split)."""

    train: tuple[list[list[str]], np.ndarray]
    val: tuple[list[list[str]], np.ndarray]
    test: tuple[list[list[str]], np.ndarray]
    val_texts: list[str]  # raw, for latency


def load_splits(
    data: str | os.PathLike | None,
    *,
    val_fraction: float,
    seed: int,
    limit: int | None = None,
) -> BaselineSplits:
    from mlapi.data.imdb import find_dataset, load_split, stratified_sample, validation_split

    root = find_dataset(data)
    reviews = load_split(root, "train")
    labels = np.array([r.label for r in reviews], dtype=np.int32)
    chosen = np.arange(len(reviews)) if limit is None else stratified_sample(labels, limit, seed)
    train_part, val_part = validation_split(labels[chosen], val_fraction, seed)
    train_index, val_index = chosen[train_part], chosen[val_part]
    tokens = {i: tokenize(reviews[i].text) for i in chosen.tolist()}
    test = load_split(root, "test")

    def part(index: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        return [tokens[i] for i in index.tolist()], labels[index]

    return BaselineSplits(
        train=part(train_index),
        val=part(val_index),
        test=(
            [tokenize(r.text) for r in test],
            np.array([r.label for r in test], dtype=np.int32),
        ),
        val_texts=[reviews[i].text for i in val_index.tolist()],
    )


def run_baseline(name: str, splits: BaselineSplits) -> tuple[dict[str, Any], Pipeline]:
    """Fit with C chosen on val, then test once. Returns (metrics, fitted pipeline)."""
    from mlapi.evaluation import classify

    fit = fit_baseline(name, splits.train, splits.val)
    test = classify(splits.test[1], predict_proba(fit.pipeline, splits.test[0]))
    metrics = {
        "name": name,
        "description": DESCRIPTIONS[name],
        "c": fit.c,
        "val_accuracy_by_c": {str(c): acc for c, acc in fit.val_accuracy_by_c.items()},
        "train_accuracy": fit.train_accuracy,
        "val_accuracy": fit.val_accuracy,
        "train_val_gap": fit.train_accuracy - fit.val_accuracy,
        "test_accuracy": test.accuracy,
        "roc_auc": test.roc_auc,
        "fit_seconds": fit.fit_seconds,
        "parameters": parameter_count(fit.pipeline),
        "n_train": len(splits.train[1]),
        "n_val": len(splits.val[1]),
        "n_test": test.n,
        "test": asdict(test),
    }
    return metrics, fit.pipeline
