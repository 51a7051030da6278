"""WSGI entry for gunicorn: `gunicorn mlapi.serving.wsgi:app` (settings from the environment)."""

from mlapi.serving import create_app

app = create_app()
