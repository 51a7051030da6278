"""A WSGI app for the graceful-shutdown test: the real app, with an Iris predictor that takes
SLOW_SECONDS to answer, so that a request can be in flight when SIGTERM arrives. When a request
enters the slow predictor, the file SLOW_STARTED_FILE (if set) is created: the test waits for it."""

import os
import time
from pathlib import Path

from mlapi.serving import create_app

app = create_app()
_iris = app.extensions["mlapi"].registry.get("iris")
_predict = _iris.predict


def _slow_predict(rows):
    if started := os.environ.get("SLOW_STARTED_FILE"):
        Path(started).touch()
    time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    return _predict(rows)


_iris.predict = _slow_predict
