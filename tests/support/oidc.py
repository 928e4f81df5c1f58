"""Signing in for real: a dashboard with `[auth]` against a real OpenID Connect provider
(`tests/oidc/provider.mjs`, oidc-provider 9.13.3 on Node), driven in Chromium through the
provider's own login form. Registered in tests/conftest.py (`pytest_plugins`).

Fixtures and helpers:

- `oidc_provider` (session fixture) -> `OidcProvider`: the provider, started once per
  session (polled until its discovery document answers), stopped at the end. `issuer`
  is `http://127.0.0.1:<port>`; `register(redirect_uri) -> OidcClient` registers a client
  (RFC 7591): every dashboard gets its own client with its exact `redirect_uri`.
- `oidc_dashboard` (function fixture): a factory
  `oidc_dashboard(state, flags=FLAGS, *, env=None, seed=None) -> OidcDashboard` (a
  `Process`) that starts a seeded dashboard (tests/support/dashboards.py) whose
  `--secrets.files` holds an `[auth]` block for the session's provider; dashboards it
  started stop when the test ends. `url` is `http://localhost:<port>`: sign-in only works
  on the origin of `redirect_uri` (the OAuth state cookie is set there).
- `start_oidc_dashboard(provider, state, ...)`: the same for fixtures of a wider scope
  (call `stop()` yourself); `port=` and `client=` serve a provider started by hand.
- `serve_signing_in(provider, state, env)`: a dashboard on a state directory prepared by
  the test (nothing seeded), signing in at `provider`; call `stop()` yourself.
- `start_provider(log, *, port=None, redirect_uris=(), accounts=ACCOUNTS)` ->
  `OidcProvider`: another provider, e.g. one a test stops; `redirect_uris` are its static
  client's (`static_client`); `accounts` maps logins to their groups.
- `sign_in(context_or_page, url, email) -> Page`: opens `url`, clicks "Log in", fills the
  provider's form as `email` (any password) and waits until the sidebar shows
  "👤 <email> — <role>"; the page is then on the Overview (Streamlit returns to `/`
  after a sign-in). Give each person a fresh `BrowserContext` (the identity is a
  cookie): `sign_in(chromium.new_context(viewport=VIEWPORT), server.url, "bob@example.com")`.
  Each round trip (click on "Log in" → identity shown) is recorded, and the session's
  median is printed in pytest's summary.
- `sign_out(page)`: clicks "Log out" and waits for "Log in".
- `forge_sign_in(context, server, email, groups=())`: the shortcut for tests that are not
  about signing in: puts the identity cookie Streamlit would set (signed with the
  dashboard's `cookie_secret`) into `context`; the next page load is signed in. It uses a
  Streamlit 1.67 internal, pinned by tests/browser/test_sign_in.py.

Accounts (any login is an account; the ID token carries `email`, `name` and `groups`):
alice@example.com [oncall], bob@example.com [oncall], carol@example.com [admins],
victor@example.com [], anyone else []. Map them with `ROLLOUT_ROLES`, e.g.
`env={"ROLLOUT_ROLES": '{"group:oncall": "operator", "group:admins": "admin"}'}`.

A two-operator test:

    def test_alice_requests_bob_approves(chromium, oidc_dashboard, tmp_path):
        server = oidc_dashboard(tmp_path, env={"ROLLOUT_ROLES": '{"group:oncall": "operator"}'})
        alice = sign_in(chromium.new_context(viewport=VIEWPORT), server.url, "alice@example.com")
        bob = sign_in(chromium.new_context(viewport=VIEWPORT), server.url, "bob@example.com")
        alice.goto(f"{server.url}/flag_detail?env=production&flag=alpha&refresh=off")
        ...

Missing Node or `tests/oidc/node_modules` fails the test (never skips): `make test` runs
`npm ci --prefix tests/oidc` when it is missing.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import Engine

from tests.support.dashboards import seeded_dashboard
from tests.support.identities import identity_cookie
from tests.support.servers import ROOT, ServerProcess, free_port

__all__ = [
    "ACCOUNTS",
    "FLAGS",
    "VIEWPORT",
    "OidcClient",
    "OidcDashboard",
    "OidcProvider",
    "auth_secrets",
    "forge_sign_in",
    "oidc_dashboard",
    "oidc_provider",
    "sign_in",
    "sign_in_round_trips",
    "sign_out",
    "start_oidc_dashboard",
    "start_provider",
]

PROVIDER_DIR = ROOT / "tests" / "oidc"
#: login → groups in the provider's ID token (tests/oidc/provider.mjs)
ACCOUNTS: Mapping[str, tuple[str, ...]] = {
    "alice@example.com": ("oncall",),
    "bob@example.com": ("oncall",),
    "carol@example.com": ("admins",),
    "victor@example.com": (),
}
VIEWPORT = {"width": 1400, "height": 900}
#: alpha is in the middle of its rollout (Flag detail offers Advance, Roll back and Kill)
#: and, like beta, has evaluations in the seeded reference workload
FLAGS = """
version: "1"
flags:
  alpha:
    state: rollout
    rollout: {percentage: 25}
  beta:
    state: enabled
"""
_STATIC_CLIENT_ID = "rollout-dashboard"
_STATIC_CLIENT_SECRET = "rollout-dashboard-test-secret"  # the test provider's static client
_round_trips: list[float] = []


@dataclass(frozen=True)
class OidcClient:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass
class OidcProvider:
    """A running provider; `stop()` ends it (its registered clients are forgotten)."""

    issuer: str
    server: ServerProcess
    registration_token: str = field(repr=False)
    static_client: OidcClient

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def register(self, redirect_uri: str) -> OidcClient:
        """A new client whose only redirect (and post-logout) URI is `redirect_uri`."""
        body = json.dumps(
            {
                "redirect_uris": [redirect_uri],
                "post_logout_redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.issuer}/reg",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.registration_token}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            client = json.load(answer)
        return OidcClient(client["client_id"], client["client_secret"])

    def stop(self) -> None:
        self.server.stop()


@dataclass
class OidcDashboard(ServerProcess):
    """A dashboard with sign-in; `url` is `http://localhost:<port>`."""

    provider: OidcProvider | None = None
    client: OidcClient | None = None
    cookie_secret: str = field(default="", repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never reach a page or a log: its cookie and client secrets."""
        return tuple(
            s for s in (self.cookie_secret, self.client and self.client.client_secret) if s
        )


def start_provider(
    log: Path,
    *,
    port: int | None = None,
    redirect_uris: Sequence[str] = (),
    accounts: Mapping[str, Sequence[str]] = ACCOUNTS,
) -> OidcProvider:
    """Run `tests/oidc/provider.mjs` on 127.0.0.1 until its discovery document answers.
    `redirect_uris` are those of its static client; others register (`register`).
    `accounts` gives logins their `groups` (any other login has none)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the sign-in tests need Node.js 20 or newer and npm")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("the test OIDC provider is not installed: run `npm ci --prefix tests/oidc`")
    port = port or free_port()
    token = secrets.token_urlsafe(16)
    env = {
        "PATH": str(Path(node).parent),
        "OIDC_PORT": str(port),
        "OIDC_REGISTRATION_TOKEN": token,
        "OIDC_CLIENT_ID": _STATIC_CLIENT_ID,
        "OIDC_CLIENT_SECRET": _STATIC_CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris) or "http://localhost:1/oauth2callback",
        "OIDC_ACCOUNTS": json.dumps({login: list(groups) for login, groups in accounts.items()}),
    }
    handle = log.open("ab")
    process = subprocess.Popen(
        [node, str(PROVIDER_DIR / "provider.mjs")],
        env=env,
        cwd=PROVIDER_DIR,
        stdout=handle,
        stderr=handle,
    )
    issuer = f"http://127.0.0.1:{port}"
    provider = OidcProvider(
        issuer,
        ServerProcess(issuer, process, log),
        token,
        OidcClient(_STATIC_CLIENT_ID, _STATIC_CLIENT_SECRET),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(provider.metadata_url, timeout=1) as answer:
                if json.load(answer).get("issuer") == issuer:
                    return provider
        except OSError:
            time.sleep(0.1)
    provider.stop()
    raise RuntimeError(f"the OIDC provider did not answer within 30 s:\n{log.read_text()[-3000:]}")


def auth_secrets(provider: OidcProvider, client: OidcClient, port: int, cookie_secret: str) -> str:
    """The `[auth]` block of a dashboard on `localhost:<port>` signing in at `provider`."""
    values = {
        "redirect_uri": f"http://localhost:{port}/oauth2callback",
        "cookie_secret": cookie_secret,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "server_metadata_url": provider.metadata_url,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    # prompt=login: oidc-provider refuses Streamlit's default select_account; the groups
    # claim comes with its own scope, as with Dex
    lines.append('client_kwargs = { prompt = "login", scope = "openid email profile groups" }')
    return "[auth]\n" + "\n".join(lines) + "\n"


def start_oidc_dashboard(
    provider: OidcProvider,
    state: Path,
    flags: str = FLAGS,
    *,
    env: Mapping[str, str] | None = None,
    seed: Callable[[Engine, datetime], object] | None = None,
    port: int | None = None,
    client: OidcClient | None = None,
) -> OidcDashboard:
    """A seeded dashboard on `state` signing in at `provider` (a client registered for it
    unless `client` is given), served at `http://localhost:<port>`."""
    port = port or free_port()
    client = client or provider.register(f"http://localhost:{port}/oauth2callback")
    cookie_secret = secrets.token_urlsafe(32)
    secrets_file = state / "secrets.toml"
    secrets_file.write_text(auth_secrets(provider, client, port, cookie_secret))
    server = seeded_dashboard(
        state, flags, seed=seed, env=env, port=port, args=["--secrets.files", str(secrets_file)]
    )
    return OidcDashboard(
        f"http://localhost:{port}",
        server.process,
        server.log_path,
        provider=provider,
        client=client,
        cookie_secret=cookie_secret,
    )


def serve_signing_in(
    provider: OidcProvider, state: Path, env: Mapping[str, str], *, log_name: str = "streamlit.log"
) -> OidcDashboard:
    """The dashboard on `state` as it is (flags and database already there: nothing seeded)
    signing in at `provider`, served at `http://localhost:<port>`; `env` holds the
    settings. Call `stop()` yourself."""
    from app.serve import streamlit_command
    from tests.support.servers import start

    port = free_port()
    client = provider.register(f"http://localhost:{port}/oauth2callback")
    cookie_secret = secrets.token_urlsafe(32)
    secrets_file = state / "secrets.toml"
    secrets_file.write_text(auth_secrets(provider, client, port, cookie_secret))
    command = [*streamlit_command(port), "--secrets.files", str(secrets_file)]
    server = start(command, {"ROLLOUT_STATE_DIR": str(state), **env}, port, state / log_name)
    return OidcDashboard(
        f"http://localhost:{port}",
        server.process,
        server.log_path,
        provider=provider,
        client=client,
        cookie_secret=cookie_secret,
    )


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """The session's OpenID Connect provider (see the module docstring)."""
    provider = start_provider(tmp_path_factory.mktemp("oidc") / "provider.log")
    yield provider
    provider.stop()


@pytest.fixture
def oidc_dashboard(oidc_provider: OidcProvider) -> Iterator[Callable[..., OidcDashboard]]:
    """`oidc_dashboard(state, flags=FLAGS, *, env=None, seed=None)`: a dashboard signing in
    at the session's provider, stopped when the test ends."""
    started: list[OidcDashboard] = []

    def start(
        state: Path,
        flags: str = FLAGS,
        *,
        env: Mapping[str, str] | None = None,
        seed: Callable[[Engine, datetime], object] | None = None,
    ) -> OidcDashboard:
        server = start_oidc_dashboard(oidc_provider, state, flags, env=env, seed=seed)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def sign_in(target: BrowserContext | Page, url: str, email: str) -> Page:
    """Sign in at the dashboard `url` as `email` through the provider's login form, as a
    person does; the page, back on the dashboard with "👤 <email> — <role>" in the sidebar."""
    page = target if isinstance(target, Page) else target.new_page()
    page.goto(url)
    log_in = page.get_by_role("button", name="Log in")
    expect(log_in).to_be_visible(timeout=60_000)
    started = time.monotonic()
    log_in.click()
    page.wait_for_url(re.compile(r"/interaction/"), timeout=30_000)
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    expect(page.get_by_text(f"👤 {email} — ")).to_be_visible(timeout=30_000)
    _round_trips.append(time.monotonic() - started)
    return page


def sign_out(page: Page) -> None:
    """Click "Log out" and wait until "Log in" is offered again."""
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=30_000)


def forge_sign_in(
    context: BrowserContext,
    server: OidcDashboard,
    email: str,
    groups: Sequence[str] = (),
    *,
    cookie_secret: str | None = None,
) -> None:
    """Add to `context` the identity cookie Streamlit sets after a sign-in as `email` with
    `groups`, signed with `cookie_secret` (default: the dashboard's own); see
    tests/support/identities.py."""
    secret = cookie_secret or server.cookie_secret
    context.add_cookies([identity_cookie(email, server.url, groups, secret)])  # type: ignore[list-item]


def sign_in_round_trips() -> list[float]:
    """Seconds from the click on "Log in" to the identity shown, for each `sign_in` so far."""
    return list(_round_trips)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _round_trips:
        terminalreporter.write_line(
            f"OIDC sign-in round trips (click on Log in → identity shown): "
            f"n={len(_round_trips)}, median {statistics.median(_round_trips):.2f} s "
            f"({min(_round_trips):.2f}–{max(_round_trips):.2f})"
        )
