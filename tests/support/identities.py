"""Signed-in people for tests that are not about signing in (/work/shared/OIDC.md,
"Shortcut for tests that are not about signing in").

The dashboard is started with a secrets file holding an `[auth]` block, and each person's
browser context gets the identity cookie Streamlit itself sets after an OIDC login
(`_streamlit_user`), signed with the block's `cookie_secret`. No provider is contacted:
the block's `server_metadata_url` points nowhere, so "Log in" would fail, and these
tests never press it. This relies on a Streamlit internal (`create_signed_value` and the
cookie's payload); `tests/unit/test_forged_identity.py` pins both, so an upgrade that
changes them fails there, not as a mysterious anonymous page.

The page must be opened at `http://localhost:<port>`: the cookie names that origin, and
Streamlit ignores a cookie whose origin is not the page's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext
from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

from app.demo.launcher import streamlit_command
from tests.support.servers import Process, free_port, start

__all__ = [
    "COOKIE_NAME",
    "COOKIE_SECRET",
    "auth_secrets",
    "identity_cookie",
    "signed_in_context",
    "signed_in_dashboard",
    "user_cookie_value",
]

COOKIE_NAME = "_streamlit_user"
#: test-only: signs the forged cookies; never a real deployment's secret
COOKIE_SECRET = "rollout-tests-cookie-secret-0123456789abcdef"


def auth_secrets(port: int, cookie_secret: str = COOKIE_SECRET) -> str:
    """A secrets.toml `[auth]` block for a dashboard on `port` (no reachable provider)."""
    return (
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{cookie_secret}"\n'
        'client_id = "rollout-tests"\n'
        'client_secret = "rollout-tests-secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n'
    )


def user_cookie_value(
    email: str,
    origin: str,
    groups: Sequence[str] = (),
    secret: str = COOKIE_SECRET,
) -> str:
    """The signed `_streamlit_user` value Streamlit sets after an OIDC login of `email`."""
    payload = {
        "sub": email,
        "email": email,
        "name": email.split("@")[0],
        "groups": list(groups),
        "origin": origin,
        "is_logged_in": True,
        "provider": "default",
    }
    return create_signed_value(secret, COOKIE_NAME, json.dumps(payload)).decode()


def identity_cookie(
    email: str, origin: str, groups: Sequence[str] = (), secret: str = COOKIE_SECRET
) -> dict[str, object]:
    """The Playwright cookie of `email`, signed in at `origin` (`http://localhost:PORT`)
    with `secret` (the dashboard's `cookie_secret`)."""
    return {
        "name": COOKIE_NAME,
        "value": user_cookie_value(email, origin, groups, secret),
        "url": origin,
        "httpOnly": True,
        "sameSite": "Lax",
    }


def signed_in_context(
    browser: Browser,
    origin: str,
    email: str,
    viewport: Mapping[str, int] | None = None,
) -> BrowserContext:
    """A browser context (its own cookies: one person) signed in as `email`."""
    context = browser.new_context(viewport=dict(viewport or {"width": 1500, "height": 1000}))  # type: ignore[arg-type]
    context.add_cookies([identity_cookie(email, origin)])  # type: ignore[list-item]
    return context


def signed_in_dashboard(
    state: Path,
    env: Mapping[str, str],
    *,
    log_name: str = "streamlit.log",
) -> Process:
    """The dashboard on `state` with sign-in configured (the `[auth]` block in a secrets
    file of its own), served at `http://localhost:<port>`, the origin the cookies name.
    `env` holds the settings (`ROLLOUT_ROLES`, ...)."""
    port = free_port()
    secrets = state / "auth-secrets.toml"
    secrets.write_text(auth_secrets(port))
    command = [*streamlit_command(port), "--secrets.files", str(secrets)]
    server = start(command, {"ROLLOUT_STATE_DIR": str(state), **env}, port, state / log_name)
    server.url = f"http://localhost:{port}"
    return server
