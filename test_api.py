"""Probe a running mlapi server: the seed's three curl cases, then the error cases.

Usage: python test_api.py [BASE_URL]      (default http://127.0.0.1:5000)
Prints one line per case and exits 1 if any case fails (2 if the server is unreachable).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import requests

JSON = {"Content-Type": "application/json"}
SETOSA = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    body: bytes | None = None
    headers: dict | None = None
    check: Callable[[dict], bool] | None = None  # extra check on the JSON answer


def post_json(name: str, payload, status: int, check=None, headers=JSON) -> Case:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Case(name, "POST", "/predict", status, body, headers, check)


def is_error(status: int) -> Callable[[dict], bool]:
    def check(answer: dict) -> bool:
        error = answer.get("error", {})
        return error.get("status") == status and bool(error.get("message"))

    return check


def cases(body_limit: int) -> list[Case]:
    def probabilities_ok(answer):
        return (
            answer.get("prediction") == "setosa"
            and abs(sum(answer["probabilities"].values()) - 1) < 1e-4
        )

    return [
        # The seed's three curl cases.
        post_json("seed 1: valid features -> setosa", {"features": SETOSA}, 200, probabilities_ok),
        post_json(
            "seed 2: three features -> 400", {"features": [5.1, 3.5, 1.4]}, 400, is_error(400)
        ),
        post_json(
            "seed 3: text/plain -> 415",
            b"hello",
            415,
            is_error(415),
            {"Content-Type": "text/plain"},
        ),
        # Batch and the error cases.
        post_json(
            "batch of two -> two predictions",
            {"instances": [SETOSA, [6.7, 3.0, 5.2, 2.3]]},
            200,
            lambda a: (
                [p["prediction"] for p in a.get("predictions", [])] == ["setosa", "virginica"]
            ),
        ),
        post_json("malformed JSON -> 400", b'{"features": [5.1,', 400, is_error(400)),
        post_json("JSON array body -> 400", [SETOSA], 400, is_error(400)),
        post_json("missing features -> 400", {"feature": SETOSA}, 400, is_error(400)),
        post_json(
            "string element -> 400", {"features": [5.1, "3.5", 1.4, 0.2]}, 400, is_error(400)
        ),
        post_json(
            "boolean element -> 400", {"features": [5.1, True, 1.4, 0.2]}, 400, is_error(400)
        ),
        post_json("null element -> 400", {"features": [5.1, None, 1.4, 0.2]}, 400, is_error(400)),
        post_json("NaN element -> 400", b'{"features": [5.1, NaN, 1.4, 0.2]}', 400, is_error(400)),
        post_json(
            "float32 overflow -> 400", {"features": [5.1, 1e39, 1.4, 0.2]}, 400, is_error(400)
        ),
        post_json(
            "both features and instances -> 400",
            {"features": SETOSA, "instances": [SETOSA]},
            400,
            is_error(400),
        ),
        post_json("body over the limit -> 413", b" " * (body_limit + 1), 413, is_error(413)),
        Case("GET /health -> 200", "GET", "/health", 200, check=lambda a: a.get("status") == "ok"),
        Case("GET /models -> 200", "GET", "/models", 200, check=lambda a: "models" in a),
        Case("unknown path -> 404 JSON", "GET", "/no-such-endpoint", 404, check=is_error(404)),
        Case("GET /predict -> 405 JSON", "GET", "/predict", 405, check=is_error(405)),
    ]


def run_case(base_url: str, case: Case) -> tuple[bool, str]:
    response = requests.request(
        case.method, base_url + case.path, data=case.body, headers=case.headers, timeout=10
    )
    try:
        answer = response.json()
    except ValueError:
        return False, f"{response.status_code}, not JSON"
    ok = response.status_code == case.status and (case.check is None or case.check(answer))
    summary = answer.get("prediction") or answer.get("error", {}).get("message", "")
    return ok, f"{response.status_code} {str(summary)[:90]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:5000")
    parser.add_argument("--body-limit", type=int, default=1 << 20, help="server's MAX_BODY_BYTES")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    failures = 0
    for case in cases(args.body_limit):
        try:
            ok, detail = run_case(base_url, case)
        except requests.ConnectionError:
            print(
                f"cannot reach {base_url}: start the server with `python app.py`", file=sys.stderr
            )
            return 2
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {case.name:<40} {detail}")
    print(f"{len(cases(args.body_limit)) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
