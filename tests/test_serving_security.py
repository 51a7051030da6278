"""Security headers, trusted hosts, what unauthenticated clients see, and API key handling."""

from __future__ import annotations

import logging
from html.parser import HTMLParser

import pytest
from helpers.api import SETOSA

from mlapi.cli import main
from mlapi.errors import MlapiError
from mlapi.serving import commands
from mlapi.serving.settings import ServingSettings


def test_the_page_gets_a_strict_csp_and_the_common_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp  # everything is served locally
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/predict", {"features": SETOSA}),
        ("post", "/sentiment", {"text": "Great."}),
        ("post", "/predict", {"features": "bad"}),
        ("get", "/models", None),
        ("get", "/nowhere", None),
    ],
)
def test_api_answers_are_not_stored_and_allow_nothing(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.headers["Cache-Control"] == "no-store"
    assert (
        response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_static_assets_may_be_cached(client):
    assert "no-store" not in client.get("/static/app.js").headers.get("Cache-Control", "")


class InlineFinder(HTMLParser):
    """Everything a strict CSP would block: inline scripts, styles, handlers, javascript: URLs."""

    def __init__(self):
        super().__init__()
        self.found, self._in_script = [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            self._in_script = True
            if "src" not in attrs:
                self.found.append("<script> without src")
        for name, value in attrs.items():
            if name == "style" or name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}=javascript:")

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append("inline script text")


@pytest.mark.parametrize("variant", ["ready", "missing models", "with key"])
def test_the_page_has_nothing_inline_that_the_csp_would_block(make_app, tmp_path, variant):
    overrides = {
        "ready": {},
        "missing models": {"models_dir": tmp_path, "modelo_path": tmp_path / "m.pkl"},
        "with key": {"api_key": "k"},
    }[variant]
    finder = InlineFinder()
    finder.feed(make_app(**overrides).test_client().get("/").get_data(as_text=True))
    assert finder.found == []


def test_an_untrusted_host_is_never_written_into_the_page(client):
    page = client.get("/", headers={"Host": "evil.example:666"}).get_data(as_text=True)
    assert "evil.example" not in page
    assert '<span class="origin">http://127.0.0.1:5000</span>' in page  # the script fills it in


def test_trusted_hosts_refuse_other_hosts_and_name_the_trusted_one(make_app):
    client = make_app(trusted_hosts="api.example.com").test_client()
    refused = client.get("/health", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and refused.get_json()["error"]["status"] == 400
    assert (
        client.post(
            "/predict", json={"features": SETOSA}, headers={"Host": "evil.example"}
        ).status_code
        == 400
    )
    page = client.get("/", headers={"Host": "api.example.com"})
    assert page.status_code == 200
    assert '<span class="origin">http://api.example.com</span>' in page.get_data(as_text=True)


@pytest.fixture
def broken_models(make_app, tmp_path):
    """A server whose models fail to load from a folder whose name must not leak."""
    secret = tmp_path / "secret-home-dir"
    (secret / "sentiment").mkdir(parents=True)  # there, but without its files
    return lambda **kw: make_app(modelo_path=secret / "modelo.pkl", models_dir=secret, **kw)


def test_model_problems_are_shown_without_directories(broken_models, caplog):
    with caplog.at_level(logging.INFO, logger="mlapi.serving"):
        client = broken_models().test_client()
    answers = [
        client.get("/ready"),
        client.get("/models"),
        client.get("/"),
        client.get("/v1/models/iris"),
        client.post("/predict", json={"features": SETOSA}),
        client.post("/sentiment", json={"text": "Fine."}),
    ]
    for answer in answers:
        assert "secret-home-dir" not in answer.get_data(as_text=True)
    assert "…/modelo.pkl" in answers[0].get_json()["error"]["message"]  # the file, not where
    assert "secret-home-dir" in caplog.text  # the log keeps the detail


def test_an_authenticated_client_sees_the_whole_problem(broken_models):
    client = broken_models(api_key="k").test_client()
    models = client.get("/models", headers={"X-API-Key": "k"}).get_data(as_text=True)
    assert "secret-home-dir" in models
    assert "secret-home-dir" not in client.get("/models").get_data(as_text=True)
    wrong = client.get("/models", headers={"X-API-Key": "nope"}).get_data(as_text=True)
    assert "secret-home-dir" not in wrong


@pytest.mark.parametrize("env", [{"API_KEY": ""}, {"API_KEY": "   "}])
def test_an_empty_api_key_refuses_to_start(env):
    with pytest.raises(MlapiError, match="API_KEY is set but empty"):
        ServingSettings.from_env(env=env)


def test_mlapi_serve_with_an_empty_api_key_says_one_line(monkeypatch, capsys):
    monkeypatch.setenv("API_KEY", "")
    monkeypatch.setattr(commands.os, "execv", lambda *a: pytest.fail("it started"))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "API_KEY is set but empty" in err


NON_ASCII_KEY = "clé-ünïcode-ключ"


def test_a_non_ascii_key_matches_when_sent_as_utf8(make_app):
    client = make_app(api_key=NON_ASCII_KEY).test_client()
    as_utf8 = NON_ASCII_KEY.encode("utf-8").decode("latin-1")  # what WSGI hands over
    ok = client.post("/predict", json={"features": SETOSA}, headers={"X-API-Key": as_utf8})
    assert ok.status_code == 200
    bearer = {"Authorization": f"Bearer {as_utf8}"}
    assert client.post("/predict", json={"features": SETOSA}, headers=bearer).status_code == 200


def test_a_key_sent_in_another_encoding_does_not_match(make_app):
    key = "clé"
    client = make_app(api_key=key).test_client()
    as_latin1 = key  # é as the single latin-1 byte 0xE9
    answer = client.post("/predict", json={"features": SETOSA}, headers={"X-API-Key": as_latin1})
    assert answer.status_code == 401
