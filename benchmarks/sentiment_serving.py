"""Sentiment serving speed and memory: in-process latency, batch throughput, worker RSS.

    python benchmarks/sentiment_serving.py [--models-dir models] [--repeats 300]

Measures, in one run:
1. latency of one 200-token review through the serving path (`SentimentPredictor.predict`:
   tokenize + encode + ONNX Runtime, one thread), p50/p95 over `--repeats` calls — and, as the
   reference in the same run, the same network in PyTorch (the training framework) on the same
   ids, so the ratio tells what ONNX Runtime buys;
2. throughput on batches of 256 such reviews (reviews/s), ONNX Runtime vs PyTorch;
3. resident memory (VmRSS) of each gunicorn worker with both models loaded, after requests
   to both endpoints.
Goals (issue 5): p50 <= 2 ms; >= 2,000 reviews/s at batch 256; each worker <= 200 MB.

The network measured is seed-size (the seed recipe's defaults in ExperimentConfig: vocabulary
50,000, Embedding 128, LSTM 64, maxlen 300) with random weights, exported with the project's
exporter, so that PyTorch runs the very same network; speed does not depend on the weights.
When a model is installed in --models-dir/sentiment (a real run), its latency is measured too,
and the workers' RSS is taken with it loaded. Results go to
benchmarks/results/sentiment_serving.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from mlapi.artifacts import atomic_write_json, utc_now_iso
from mlapi.iris_model import train_and_save
from mlapi.serving.sentiment import SentimentPredictor
from mlapi.testing import REPO_ROOT, GunicornServer, rss_mb, server_env
from mlapi.training.config import ExperimentConfig

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results" / "sentiment_serving.json"
SEED = ExperimentConfig()  # the seed recipe's sizes
WORDS = [
    "the",
    "film",
    "was",
    "a",
    "moving",
    "and",
    "beautifully",
    "acted",
    "story",
    "but",
    "the",
    "plot",
    "dragged",
    "in",
    "the",
    "middle",
    "while",
    "the",
    "score",
    "and",
    "the",
    "cast",
    "were",
    "wonderful",
    "and",
    "i",
    "would",
    "watch",
    "it",
    "again",
    "with",
    "friends",
]


def review(n_tokens: int = 200, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_tokens))


def seed_size_network(models_dir: Path):
    """A seed-size LSTM with random weights, exported to `models_dir`; returns the torch net."""
    import torch

    from mlapi.export import export_sentiment_model
    from mlapi.models.lstm import LSTMClassifier
    from mlapi.text import Vocabulary

    torch.manual_seed(0)
    texts = [review(200, seed) for seed in range(64)]
    vocabulary = Vocabulary(num_words=SEED.vocab_size, maxlen=SEED.maxlen).fit(texts)
    network = LSTMClassifier(SEED.vocab_size, SEED.embed_dim, SEED.hidden_size).eval()
    export_sentiment_model(
        network,
        vocabulary,
        vocabulary.encode(texts),
        models_dir,
        run_name="seed_size_random_weights",
        arch="lstm",
        metrics={},
        versions={},
    )
    return network


def pytorch_predict(network):
    import torch

    torch.set_num_threads(1)  # as ONNX Runtime in the server: one thread per request

    def predict(ids: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(network(torch.from_numpy(ids.astype(np.int64)))).numpy()

    return predict


def time_calls(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure_latency_and_throughput(model_dir: Path, network, repeats: int) -> dict:
    model = SentimentPredictor.load(model_dir)
    torch_predict = pytorch_predict(network)
    one = [review(200)]
    batch = [review(200, seed) for seed in range(256)]
    one_ids = model.predictor.vocabulary.encode(one)
    batch_ids = model.predictor.vocabulary.encode(batch)

    ort_one = time_calls(lambda: model.predict(one), repeats)
    torch_one = time_calls(lambda: torch_predict(one_ids), repeats)
    session_run = model.predictor.session.run
    batch_repeats = max(5, repeats // 30)
    ort_batch = time_calls(lambda: model.predict(batch), batch_repeats)
    ort_batch_ids = time_calls(
        lambda: session_run(["probability"], {"input_ids": batch_ids.astype(np.int64)}),
        batch_repeats,
    )
    torch_batch = time_calls(lambda: torch_predict(batch_ids), batch_repeats)
    return {
        "one_review_ms": {
            "onnxruntime_p50": 1e3 * percentile(ort_one, 50),
            "onnxruntime_p95": 1e3 * percentile(ort_one, 95),
            "pytorch_p50": 1e3 * percentile(torch_one, 50),
            "ratio_pytorch_over_onnxruntime": percentile(torch_one, 50) / percentile(ort_one, 50),
        },
        "batch_256_reviews_per_s": {
            "onnxruntime": 256 / statistics.median(ort_batch),  # text in: tokenize + encode + run
            "onnxruntime_network_only": 256 / statistics.median(ort_batch_ids),
            "pytorch_network_only": 256 / statistics.median(torch_batch),
        },
    }


def measure_worker_rss(models_dir: Path, workdir: Path) -> dict:
    modelo = workdir / "modelo.pkl"
    train_and_save(modelo)
    env = server_env(MODELO_PATH=str(modelo), MODELS_DIR=str(models_dir))
    with GunicornServer(env, "-w", "2") as server:
        for _ in range(50):  # reach both workers, both models
            texts = [review(200)] * 32
            requests.post(f"{server.base_url}/sentiment", json={"texts": texts}, timeout=10)
            requests.post(f"{server.base_url}/predict", json={"features": [5.1, 3.5, 1.4, 0.2]})
        ready = requests.get(f"{server.base_url}/ready", timeout=5).status_code
        return {"ready_status": ready, "worker_rss_mb": [rss_mb(p) for p in server.worker_pids()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=os.environ.get("MODELS_DIR", "models"))
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()

    installed = Path(args.models_dir)
    if not (installed / "sentiment" / "metadata.json").exists():
        installed = None
    with tempfile.TemporaryDirectory() as tmp:
        seed_size_dir = Path(tmp) / "models"
        network = seed_size_network(seed_size_dir)
        speed = measure_latency_and_throughput(seed_size_dir / "sentiment", network, args.repeats)
        if installed is not None:
            model = SentimentPredictor.load(installed / "sentiment")
            times = time_calls(lambda: model.predict([review(200)]), args.repeats)
            speed["installed_model"] = {
                "run_name": model.info()["run_name"],
                "one_review_p50_ms": 1e3 * percentile(times, 50),
            }
        memory = measure_worker_rss(installed or seed_size_dir, Path(tmp))

    worst_rss = max(memory["worker_rss_mb"])
    goals = {
        "p50_one_review_le_2ms": speed["one_review_ms"]["onnxruntime_p50"] <= 2.0,
        "batch_256_ge_2000_per_s": speed["batch_256_reviews_per_s"]["onnxruntime"] >= 2000,
        "worker_rss_le_200mb": worst_rss <= 200,
    }
    result = {
        "benchmark": "sentiment_serving",
        "created_at": utc_now_iso(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "network": f"seed-size LSTM ({SEED.vocab_size:,} x {SEED.embed_dim} embedding, "
        f"LSTM {SEED.hidden_size}), random weights",
        **speed,
        **memory,
        "goals_met": goals,
    }
    one, batch = speed["one_review_ms"], speed["batch_256_reviews_per_s"]
    print("network: seed-size LSTM, random weights (the same network in both columns)")
    print("| measure | ONNX Runtime (served path) | PyTorch (reference) | goal |")
    print("| --- | --- | --- | --- |")
    print(
        f"| one 200-token review, p50 | {one['onnxruntime_p50']:.2f} ms "
        f"| {one['pytorch_p50']:.2f} ms (network only) | <= 2 ms |"
    )
    print(
        f"| batch of 256, reviews/s | {batch['onnxruntime']:.0f} "
        f"(network only: {batch['onnxruntime_network_only']:.0f}) "
        f"| {batch['pytorch_network_only']:.0f} (network only) | >= 2000 |"
    )
    rss = ", ".join(f"{r:.0f} MB" for r in memory["worker_rss_mb"])
    print(f"| RSS per gunicorn worker, both models loaded | {rss} | | <= 200 MB |")
    if "installed_model" in speed:
        extra = speed["installed_model"]
        print(f"installed model {extra['run_name']}: p50 {extra['one_review_p50_ms']:.2f} ms")
    print(f"goals met: {goals}")
    atomic_write_json(args.out, result)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
