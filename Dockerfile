# The prediction API in a container: gunicorn + ONNX Runtime, serving dependencies only.
#
#   docker build -t mlapi .
#   docker run --rm -p 8000:8000 mlapi
#   docker run --rm -p 8000:8000 -v "$PWD/models/sentiment:/models/sentiment:ro" mlapi   # + LSTM
#
# The Iris model is trained while building (seeded: the same model as `python train_model.py`)
# and only its ONNX copy is kept: the runtime has neither scikit-learn, scipy, onnx nor torch,
# and no pip. `--build-arg SERVE_PICKLE=1` adds scikit-learn and modelo.pkl, for serving a
# pickle (MODELO_PATH=/models/modelo.pkl with no modelo.onnx beside it).
# The sentiment model is mounted at /models/sentiment (train it with `mlapi train imdb`).
# Settings are environment variables: PORT, WEB_CONCURRENCY (workers; set it to the CPUs given
# with --cpus), GUNICORN_THREADS, GUNICORN_BODY_TIMEOUT, LOG_LEVEL, MAX_BODY_BYTES, MAX_BATCH...
# BASE_IMAGE picks another base with python3.11 (CI builds on a local stand-in for it:
# scripts/standin-python-base).
ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: these layers are rebuilt only when the requirements change.
COPY requirements-serve.txt requirements-serve-pickle.txt requirements-iris.txt ./
# The build venv: serving + training the Iris model. Its versions pin the runtime's.
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install -r requirements-serve.txt -r requirements-iris.txt \
    && /opt/build/bin/pip freeze --all > build-versions.txt
ARG SERVE_PICKLE=0
# The runtime venv: serving only, the same versions, no pip (the build venv's pip installs it),
# less what serving never runs: test suites, ONNX Runtime's offline model tools (~26 MB).
RUN python -m venv --without-pip /opt/venv \
    && /opt/build/bin/pip --python /opt/venv/bin/python install -c build-versions.txt -r requirements-serve.txt \
    && if [ "$SERVE_PICKLE" = 1 ]; then /opt/build/bin/pip --python /opt/venv/bin/python install -c build-versions.txt -r requirements-serve-pickle.txt; fi \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/onnxruntime/transformers \
        /opt/venv/lib/python3*/site-packages/onnxruntime/quantization \
        /opt/venv/lib/python3*/site-packages/onnxruntime/tools
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps . \
    && /opt/build/bin/pip --python /opt/venv/bin/python check \
    && /opt/venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
RUN PYTHONPATH=/src/src /opt/build/bin/python -m mlapi train iris --out /models/modelo.pkl \
    && if [ "$SERVE_PICKLE" != 1 ]; then rm /models/modelo.pkl /models/modelo.pkl.json; fi

FROM ${BASE_IMAGE} AS runtime
RUN useradd --system --no-create-home --uid 10001 --shell /usr/sbin/nologin mlapi
COPY --from=build /opt/venv /opt/venv
COPY --from=build /models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODELO_PATH=/models/modelo.onnx \
    MODELS_DIR=/models \
    ORT_DISABLE_TELEMETRY=1
# ORT_DISABLE_TELEMETRY: ONNX Runtime keeps no telemetry store (it would write one under
# ~/.cache and warn at start where it cannot), so the root filesystem can be read-only.
USER mlapi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=3)"]
CMD ["gunicorn", "--config", "python:mlapi.serving.gunicorn_conf", "mlapi.serving.wsgi:app"]
