"""The prediction API.

Development: python app.py [--host HOST] [--port PORT]   (default 127.0.0.1:5000; env HOST, PORT)
Production:  gunicorn -w 2 -b 0.0.0.0:5000 app:app      (settings in gunicorn.conf.py)
"""

import argparse
import sys

from mlapi.errors import MlapiError
from mlapi.serving import create_app
from mlapi.serving.settings import DEFAULT_PORT, default_host, default_port, listen_port

app = create_app()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the mlapi prediction API (dev server).")
    parser.add_argument("--host", default=default_host())
    parser.add_argument("--port", default=None, help=f"1-65535 (default: $PORT or {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = listen_port(default_port(), "PORT")
    else:
        args.port = listen_port(args.port)
    return args


if __name__ == "__main__":
    try:
        args = parse_args()
    except MlapiError as exc:
        sys.exit(f"app.py: error: {exc}")
    app.run(host=args.host, port=args.port, threaded=True)
