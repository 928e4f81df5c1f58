"""Whether OIDC sign-in (Streamlit's `st.login`, the `[auth]` table of `secrets.toml`) can
work right now: which settings are missing, and whether the provider's discovery document
answers. No Streamlit here; nothing returned ever holds a secret's value."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.quoting import printable

__all__ = [
    "REQUIRED_AUTH_SETTINGS",
    "ProviderStatus",
    "check_provider",
    "missing_auth_settings",
    "sign_in_origin",
]

#: what `st.login()` needs in `[auth]` (Streamlit refuses to start a login without one)
REQUIRED_AUTH_SETTINGS = (
    "redirect_uri",
    "cookie_secret",
    "client_id",
    "client_secret",
    "server_metadata_url",
)
_MAX_DOCUMENT_BYTES = 1_000_000


@dataclass(frozen=True)
class ProviderStatus:
    """The provider's discovery document answered (`reachable`), or why not (`problem`);
    `host` is the URL's host and port, without any credentials."""

    reachable: bool
    host: str
    problem: str

    @property
    def message(self) -> str:
        """What a person is told when sign-in cannot work; empty when it can."""
        if self.reachable:
            return ""
        return (
            f"Sign-in provider unreachable ({self.host}): {self.problem}. "
            "You can still watch; actions need sign-in. Reload the page to try again."
        )


def missing_auth_settings(auth: Mapping[str, object]) -> list[str]:
    """The names (never the values) of the settings `st.login()` needs that `auth` lacks
    or leaves empty, in the order of `REQUIRED_AUTH_SETTINGS`."""
    return [name for name in REQUIRED_AUTH_SETTINGS if not str(auth.get(name) or "").strip()]


def sign_in_origin(redirect_uri: str) -> str | None:
    """The origin (`scheme://host:port`) a browser must use for sign-in to work: the
    login's state cookie is set there and read back by the callback at `redirect_uri`."""
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def check_provider(metadata_url: str, *, timeout: float = 2.0) -> ProviderStatus:
    """GET the OpenID discovery document at `metadata_url` (at most `timeout` seconds per
    step); reachable when it is JSON with an authorization and a token endpoint."""
    parts = urlsplit(metadata_url)
    host = printable(parts.netloc.rpartition("@")[2])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ProviderStatus(False, host, "server_metadata_url is not an http:// or https:// URL")
    # the scheme is checked above: only http(s) reaches urlopen
    request = urllib.request.Request(metadata_url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = answer.read(_MAX_DOCUMENT_BYTES)
    except urllib.error.HTTPError as error:
        return ProviderStatus(False, host, f"its discovery document answered HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        return ProviderStatus(False, host, _connection_problem(error, timeout))
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not (
        isinstance(document, dict)
        and isinstance(document.get("authorization_endpoint"), str)
        and isinstance(document.get("token_endpoint"), str)
    ):
        return ProviderStatus(False, host, "its discovery document is not OpenID Connect metadata")
    return ProviderStatus(True, host, "")


def _connection_problem(error: OSError, timeout: float) -> str:
    reason: object = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, ssl.SSLError):
        return "TLS handshake failed"
    return "cannot connect"
