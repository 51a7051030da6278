# The prediction API in a container: gunicorn + ONNX Runtime, serving dependencies only (no torch).
#
#   docker build -t mlapi .
#   docker run --rm -p 8000:8000 mlapi
#   docker run --rm -p 8000:8000 -v "$PWD/models/sentiment:/models/sentiment:ro" mlapi   # + LSTM
#
# The Iris model is trained while building (seeded: the same model as `python train_model.py`);
# the sentiment model is mounted at /models/sentiment (train it with `mlapi train imdb`).
# Settings are environment variables: PORT, WEB_CONCURRENCY (workers; set it to the CPUs given
# with --cpus), GUNICORN_THREADS, GUNICORN_BODY_TIMEOUT, LOG_LEVEL, MAX_BODY_BYTES, MAX_BATCH...
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is rebuilt only when requirements-serve.txt changes.
COPY requirements-serve.txt ./
RUN pip install -r requirements-serve.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . \
    && pip check \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"
RUN mlapi train iris --out /models/modelo.pkl

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --system --no-create-home --uid 10001 --shell /usr/sbin/nologin mlapi
COPY --from=build /opt/venv /opt/venv
COPY --from=build /models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODELO_PATH=/models/modelo.pkl \
    MODELS_DIR=/models
USER mlapi
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=3)"]
CMD ["gunicorn", "--config", "python:mlapi.serving.gunicorn_conf", "mlapi.serving.wsgi:app"]
