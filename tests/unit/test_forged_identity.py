"""Pins the Streamlit internals the forged sign-in cookie of tests/support/identities.py
relies on: if an upgrade changes how `_streamlit_user` is signed or read, this fails
here instead of the browser tests silently running as an anonymous viewer."""

from __future__ import annotations

from streamlit.web.server.starlette import starlette_websocket
from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value

from tests.support.identities import COOKIE_NAME, COOKIE_SECRET, user_cookie_value

ORIGIN = "http://localhost:8599"


def test_streamlit_reads_the_forged_cookie_as_the_signed_in_user():
    value = user_cookie_value("alice@example.com", ORIGIN, ["oncall"])
    decoded = decode_signed_value(COOKIE_SECRET, COOKIE_NAME, value)
    assert decoded is not None
    user = starlette_websocket._parse_decoded_user_cookie(decoded, ORIGIN)
    assert user["is_logged_in"] is True
    assert user["email"] == "alice@example.com" and user["groups"] == ["oncall"]
    assert "origin" not in user


def test_a_cookie_signed_with_another_secret_or_for_another_origin_is_ignored():
    forged = user_cookie_value("mallory@example.com", ORIGIN, secret="not-the-secret")
    assert decode_signed_value(COOKIE_SECRET, COOKIE_NAME, forged) is None
    elsewhere = user_cookie_value("alice@example.com", "http://127.0.0.1:8599")
    decoded = decode_signed_value(COOKIE_SECRET, COOKIE_NAME, elsewhere)
    assert decoded is not None
    assert starlette_websocket._parse_decoded_user_cookie(decoded, ORIGIN) == {}
