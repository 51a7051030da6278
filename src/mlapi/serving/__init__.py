"""The prediction API: `create_app()` builds the Flask app (it never imports torch).

`create_app` is imported on first use, so that `mlapi.serving.settings` (the serving
defaults, read by the CLI and the Iris trainer) can be imported without Flask.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from mlapi.serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
