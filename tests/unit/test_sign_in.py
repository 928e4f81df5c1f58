"""Whether sign-in can work now: the `[auth]` settings and the provider's discovery document,
checked against real local HTTP servers (a closed port, one that never answers, wrong
answers). Nothing here may quote a secret."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.sign_in import (
    ProviderStatus,
    check_provider,
    missing_auth_settings,
    sign_in_origin,
)

DISCOVERY = {
    "issuer": "http://127.0.0.1:1",
    "authorization_endpoint": "http://127.0.0.1:1/auth",
    "token_endpoint": "http://127.0.0.1:1/token",
    "jwks_uri": "http://127.0.0.1:1/jwks",
}
AUTH = {
    "redirect_uri": "https://rollout.example.com/oauth2callback",
    "cookie_secret": "s3cret-cookie-value",
    "client_id": "rollout",
    "client_secret": "s3cret-client-value",
    "server_metadata_url": "https://login.example.com/.well-known/openid-configuration",
}


ROUTES = {
    "/ok": (200, "application/json", json.dumps(DISCOVERY).encode()),
    "/down": (503, "text/plain", b"maintenance"),
    "/html": (200, "text/html", b"<html>login portal</html>"),
    "/not-oidc": (200, "application/json", b'{"hello": "world"}'),
    "/a-list": (200, "application/json", b"[1, 2]"),
}


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, kind, body = ROUTES.get(self.path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_provider_serving_its_discovery_document_is_reachable(server):
    status = check_provider(f"{server}/ok")
    assert status == ProviderStatus(True, server.removeprefix("http://"), "")
    assert status.message == ""


def test_a_closed_port_is_named_as_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    status = check_provider(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
    assert not status.reachable
    assert status.problem == "connection refused"
    assert status.message == (
        f"Sign-in provider unreachable (127.0.0.1:{port}): connection refused. "
        "You can still watch; actions need sign-in. Reload the page to try again."
    )


def test_a_provider_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        status = check_provider(f"http://127.0.0.1:{port}/x", timeout=0.3)
    assert not status.reachable and status.problem == "no answer within 0.3 s"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/down", "its discovery document answered HTTP 503"),
        ("/missing", "its discovery document answered HTTP 404"),
        ("/html", "its discovery document is not OpenID Connect metadata"),
        ("/not-oidc", "its discovery document is not OpenID Connect metadata"),
        ("/a-list", "its discovery document is not OpenID Connect metadata"),
    ],
)
def test_a_wrong_answer_is_named(server, path, problem):
    status = check_provider(f"{server}{path}")
    assert not status.reachable and status.problem == problem


def test_an_unknown_host_is_named():
    status = check_provider("http://no-such-host.invalid/.well-known/openid-configuration")
    assert not status.reachable
    assert status.host == "no-such-host.invalid"
    assert status.problem == "host name not found"


@pytest.mark.parametrize("url", ["ftp://login.example.com/x", "login.example.com", "", "http://"])
def test_a_url_that_is_not_http_is_refused_without_a_request(url):
    status = check_provider(url)
    assert not status.reachable
    assert status.problem == "server_metadata_url is not an http:// or https:// URL"


def test_credentials_in_the_metadata_url_never_reach_the_message():
    status = check_provider("http://user:hunter2@127.0.0.1:1/.well-known/openid-configuration")
    assert status.host == "127.0.0.1:1"
    assert "hunter2" not in status.message and "user" not in status.message


def test_complete_auth_settings_lack_nothing():
    assert missing_auth_settings(AUTH) == []


def test_missing_auth_settings_are_named_never_the_values():
    partial = {k: v for k, v in AUTH.items() if k not in {"client_secret", "server_metadata_url"}}
    partial["client_id"] = ""
    missing = missing_auth_settings(partial)
    assert missing == ["client_id", "client_secret", "server_metadata_url"]
    assert not any("s3cret" in name for name in missing)


def test_sign_in_returns_to_the_origin_of_the_redirect_uri():
    assert sign_in_origin("https://rollout.example.com/oauth2callback") == (
        "https://rollout.example.com"
    )
    assert sign_in_origin("http://localhost:8501/oauth2callback") == "http://localhost:8501"
    assert sign_in_origin("not a url") is None
