"""Security headers, trusted hosts, API keys and what an unauthenticated client may see.

- Every answer: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
  `X-Frame-Options: DENY`, and a Content-Security-Policy: strict for the page (its script, style
  and requests come from this server only; no inline code), `default-src 'none'` for the rest.
  `Cache-Control: no-store` on every answer but the static assets (predictions included).
- TRUSTED_HOSTS: Flask's own check (a request for any other Host gets a 400). Without it the
  Host header is never written into a page or an answer (see pages.py).
- API keys are compared as UTF-8 bytes, in constant time.
- Model problems name files; a client that has not presented the API key sees them without
  directories (the server log keeps the whole text).
"""

from __future__ import annotations

import hmac
import re

from flask import Flask, current_app, request

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# Absolute paths (POSIX or Windows), quoted or not: kept to their last part in public messages.
_QUOTED_PATH = re.compile(r"""(['"])(?:[A-Za-z]:\\|/)[^'"]*[/\\]([^'"/\\]*)\1""")
_ABSOLUTE_PATH = re.compile(r"""(?:[A-Za-z]:\\|/)(?:[^\s'"`:;,()]*[/\\])+""")


def init_app(app: Flask, trusted_hosts: tuple[str, ...] | None) -> None:
    if trusted_hosts:
        app.config["TRUSTED_HOSTS"] = list(trusted_hosts)
    app.after_request(add_security_headers)


def add_security_headers(response):
    response.headers.update(COMMON_HEADERS)
    html = response.mimetype == "text/html"
    response.headers["Content-Security-Policy"] = PAGE_CSP if html else API_CSP
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def key_matches(presented: str | None, expected: str) -> bool:
    """`presented` as received (WSGI gives header bytes as latin-1 text) against the UTF-8 key."""
    if presented is None:
        return False
    try:
        raw = presented.encode("latin-1")  # the bytes the client sent
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(raw, expected.encode("utf-8"))


def presented_key() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key")


def is_authenticated(api_key: str | None) -> bool:
    """True only when an API key is configured and this request presents it."""
    return bool(api_key) and key_matches(presented_key(), api_key)


def public_text(text: str | None) -> str | None:
    """`text` for an authenticated client; otherwise with directories cut from absolute paths."""
    if text is None or is_authenticated(current_app.extensions["mlapi"].settings.api_key):
        return text
    return _ABSOLUTE_PATH.sub("…/", _QUOTED_PATH.sub(r"\1…/\2\1", text))
