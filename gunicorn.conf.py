"""gunicorn picks this file up from the repo root: `gunicorn -w 2 -b 0.0.0.0:5000 app:app`."""

from mlapi.serving.gunicorn_conf import *  # noqa: F403
