"""The sidebar's sign-in part in Streamlit's AppTest (no browser): a Log in button only when
sign-in can work; otherwise what is wrong, with no secret on the page."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
"""
COOKIE_SECRET = "cookie-secret-never-shown-0123456789"
CLIENT_SECRET = "client-secret-never-shown-9876543210"


class _Discovery(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        body = json.dumps(
            {
                "issuer": host,
                "authorization_endpoint": f"{host}/auth",
                "token_endpoint": f"{host}/token",
                "jwks_uri": f"{host}/jwks",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A discovery document served on 127.0.0.1 (only the check reads it here)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/openid-configuration"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment) -> Path:
    (tmp_path / "feature_flags.yaml").write_text(FLAGS)
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    st.cache_resource.clear()
    st.cache_data.clear()


def _auth(metadata_url: str, **changes: str | None) -> dict[str, str]:
    auth = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": COOKIE_SECRET,
        "client_id": "rollout",
        "client_secret": CLIENT_SECRET,
        "server_metadata_url": metadata_url,
    }
    for key, value in changes.items():
        if value is None:
            del auth[key]
        else:
            auth[key] = value
    return auth


def _run(
    auth: dict[str, str] | None,
    user: dict[str, object] | None = None,
    url: str = "http://localhost:8501/",
    page: str | None = None,
) -> AppTest:
    """The app as someone sees it: `user` is what the identity cookie holds (AppTest stands
    in for the provider here; tests/browser/test_sign_in.py signs in for real)."""
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=30)
    if auth is not None:
        at.secrets["auth"] = auth
    at.user = user or {"is_logged_in": False}
    at.context = {"url": url}
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception
    return at


def _sidebar_text(at: AppTest) -> str:
    parts = [c.value for c in at.sidebar.caption]
    parts += [e.value for e in (*at.sidebar.error, *at.sidebar.warning)]
    parts += [b.label for b in at.sidebar.button]
    return "\n".join(parts)


def _no_secret_anywhere(at: AppTest) -> None:
    shown = str(at._tree)
    assert COOKIE_SECRET not in shown and CLIENT_SECRET not in shown


def test_a_reachable_provider_offers_log_in(state, provider):
    at = _run(_auth(provider))
    assert [b.label for b in at.sidebar.button] == ["Log in"]
    assert "👁 Viewer — not signed in" in _sidebar_text(at)
    assert not at.sidebar.warning and not at.sidebar.error
    _no_secret_anywhere(at)


def test_an_unreachable_provider_is_named_instead_of_a_log_in_button(state):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    at = _run(_auth(f"http://127.0.0.1:{port}/.well-known/openid-configuration"))
    assert [b.label for b in at.sidebar.button] == []
    (warning,) = at.sidebar.warning
    assert warning.value.replace("\\", "") == (  # as markdown shows it
        f"Sign-in provider unreachable (127.0.0.1:{port}): connection refused. "
        "You can still watch; actions need sign-in. Reload the page to try again."
    )
    assert at.title[0].value.endswith("Rollout overview")  # watching goes on
    _no_secret_anywhere(at)


def test_incomplete_auth_settings_are_named_never_their_values(state, provider):
    at = _run(_auth(provider, client_secret=None, client_id=""))
    assert [b.label for b in at.sidebar.button] == []
    (error,) = at.sidebar.error
    assert "lacks client_id, client_secret" in error.value
    _no_secret_anywhere(at)


def test_credentials_in_the_metadata_url_are_not_shown(state):
    at = _run(_auth("http://admin:pa55word@127.0.0.1:1/.well-known/openid-configuration"))
    (warning,) = at.sidebar.warning
    assert "pa55word" not in str(at._tree) and "admin" not in warning.value
    _no_secret_anywhere(at)


def test_without_auth_there_is_no_sign_in_and_the_dashboard_is_read_only(state):
    at = _run(None)
    assert [b.label for b in at.sidebar.button] == []
    assert "👁 Read-only viewer (no sign-in configured)" in _sidebar_text(at)


ROLES = '{"alice@example.com": "operator", "group:admins": "admin"}'


@pytest.mark.parametrize(
    ("email", "groups", "role"),
    [
        ("alice@example.com", [], "operator"),
        ("Alice@Example.com", ["oncall"], "operator"),
        ("carol@example.com", ["admins"], "admin"),
        ("alice@example.com", ["admins"], "admin"),  # the highest role wins
        ("victor@example.com", ["oncall"], "viewer"),  # unmapped: the default role
        ("victor@example.com", "admins", "viewer"),  # a groups claim that is not a list
    ],
)
def test_the_role_comes_from_the_e_mail_or_a_group(
    state, provider, monkeypatch, email, groups, role
):
    monkeypatch.setenv("ROLLOUT_ROLES", ROLES)
    user = {"is_logged_in": True, "email": email, "groups": groups}
    at = _run(_auth(provider), user, page="../pages/flag_detail.py")
    assert f"👤 `{email}` — **{role}**" in _sidebar_text(at)
    assert [b.label for b in at.sidebar.button] == ["Log out"]
    offered = {b.label for b in at.button}
    if role == "viewer":
        assert "🛑 Kill (0 %, disabled)" not in offered
        assert "Actions need the operator role." in [c.value for c in at.caption]
    else:
        assert {"⏫ Advance to 50 %", "⏬ Roll back to 10 %", "🛑 Kill (0 %, disabled)"} <= offered


def test_a_name_from_the_provider_is_shown_literally(state, provider):
    email = "**x** [click](javascript:alert(1)) ``tick``\n<b>@example.com"
    at = _run(_auth(provider), {"is_logged_in": True, "email": email})
    label = next(c.value for c in at.sidebar.caption if c.value.startswith("👤"))
    assert label == (
        "👤 ``` **x** [click](javascript:alert(1)) ``tick``\\n<b>@example.com ``` — **viewer**"
    )


def test_opened_at_another_address_it_links_to_the_one_sign_in_returns_to(state, provider):
    at = _run(_auth(provider), url="http://127.0.0.1:8501/")
    assert [b.label for b in at.sidebar.button] == []
    assert (
        "Sign-in works only at http://localhost:8501 (the address the provider returns to), "
        "not at http://127.0.0.1:8501."
    ) in (_sidebar_text(at))
    (link,) = at.sidebar.get("link_button")
    assert link.proto.url == "http://localhost:8501"
