"""The prediction API.

Development: python app.py [--host HOST] [--port PORT]   (default 127.0.0.1:5000; env HOST, PORT)
Production:  gunicorn -w 2 -b 0.0.0.0:5000 app:app      (settings in gunicorn.conf.py)
"""

import argparse
import os

from mlapi.serving import create_app

app = create_app()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve the mlapi prediction API (dev server).")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    app.run(host=args.host, port=args.port, threaded=True)
