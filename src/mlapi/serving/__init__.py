"""The prediction API: `create_app()` builds the Flask app (it never imports torch)."""

from mlapi.serving.app import create_app

__all__ = ["create_app"]
