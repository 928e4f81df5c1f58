"""A real, local Unleash server: for the tests and `rollout-dashboard demo --with-unleash`.

`deploy/unleash` pins unleash-server (package.json and its lock file); `install_unleash`
copies both into a cache directory and runs `npm ci` there once (about 20 s, 200 MB).
`start_unleash` runs it on 127.0.0.1 over a PostgreSQL database of its own, with an admin
token for the dashboard and one SDK (backend) token per environment, and waits until
`/health` answers. Unleash creates its tables on the first start (about 4 s).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import RolloutError

__all__ = [
    "LocalUnleash",
    "UnleashNotInstalled",
    "install_unleash",
    "installed_unleash",
    "start_unleash",
    "unleash_cache_dir",
]

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "unleash"
#: The environments of a fresh Unleash (open-source edition).
ENVIRONMENTS = ("development", "production")
ADMIN_TOKEN_NAME = "rollout-dashboard"  # noqa: S105 (a name, not a secret)


class UnleashNotInstalled(RolloutError, RuntimeError):
    """Node.js / npm missing, or the install failed: the message says what to run."""


def unleash_cache_dir() -> Path:
    """Where the pinned unleash-server is installed: `$ROLLOUT_UNLEASH_CACHE`, else
    `$XDG_CACHE_HOME/rollout-dashboard/unleash-server` (`~/.cache/...`)."""
    explicit = os.environ.get("ROLLOUT_UNLEASH_CACHE")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rollout-dashboard" / "unleash-server"


def installed_unleash(cache: Path | None = None) -> Path | None:
    """The cache directory when it holds exactly the pinned install, else None."""
    cache = cache or unleash_cache_dir()
    lock = cache / "package-lock.json"
    if not (cache / "node_modules" / "unleash-server" / "package.json").is_file():
        return None
    if not lock.is_file() or lock.read_bytes() != (PACKAGE_DIR / "package-lock.json").read_bytes():
        return None
    return cache


def install_unleash(cache: Path | None = None) -> Path:
    """Install the pinned unleash-server into `cache` unless it is there already."""
    cache = cache or unleash_cache_dir()
    if installed_unleash(cache) is not None:
        return cache
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise UnleashNotInstalled("Node.js 20 and npm are needed to run a local Unleash server")
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "server.mjs"):
        shutil.copyfile(PACKAGE_DIR / name, cache / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cache,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise UnleashNotInstalled(f"npm ci in {cache} failed:\n{done.stderr[-2000:]}")
    return cache


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalUnleash:
    """A running local Unleash. `url` is the server's root (the SDKs want `url + "/api"`)."""

    url: str
    admin_token: str
    admin_token_name: str
    sdk_tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    #: name → admin token of someone else (see `start_unleash`'s `other_admins`)
    other_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def metrics_url(self) -> str:
        """Unleash's own Prometheus endpoint (unauthenticated)."""
        return f"{self.url}/internal-backstage/prometheus"

    def stop(self) -> None:
        """Graceful stop (SIGTERM, about 1.6 s), then kill; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_unleash(
    database_url: str,
    log_path: Path,
    *,
    port: int | None = None,
    environments: Sequence[str] = ENVIRONMENTS,
    cache: Path | None = None,
    admin_token: str | None = None,
    sdk_secret: str | None = None,
    other_admins: Sequence[str] = (),
    timeout: float = 60.0,
) -> LocalUnleash:
    """Start the pinned unleash-server over `database_url` (`postgres://…`, a database
    of its own) and wait for `/health`. The tokens are created on the first start only:
    reusing a database needs the same `admin_token` and `sdk_secret`. `other_admins` are
    names of further admin tokens (someone else writing in Unleash): `other_tokens`."""
    cache = install_unleash(cache)
    node = shutil.which("node")
    assert node is not None  # install_unleash checked
    shutil.copyfile(PACKAGE_DIR / "server.mjs", cache / "server.mjs")
    port = port or _free_port()
    admin_token = admin_token or f"*:*.{secrets.token_hex(16)}"
    sdk_secret = sdk_secret or secrets.token_hex(16)
    others = {name: f"*:*.{secrets.token_hex(16)}" for name in other_admins}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(cache)),
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "UNLEASH_ADMIN_TOKEN": admin_token,
        "UNLEASH_ADMIN_TOKEN_NAME": ADMIN_TOKEN_NAME,
        "UNLEASH_SDK_ENVIRONMENTS": ",".join(environments),
        "UNLEASH_SDK_SECRET": sdk_secret,
        "UNLEASH_OTHER_ADMIN_TOKENS": ",".join(f"{n}={t}" for n, t in others.items()),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [node, str(cache / "server.mjs")], env=env, cwd=cache, stdout=log, stderr=log
        )
    server = LocalUnleash(
        f"http://127.0.0.1:{port}",
        admin_token,
        ADMIN_TOKEN_NAME,
        {name: f"default:{name}.{sdk_secret}" for name in environments},
        process,
        log_path,
        others,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"unleash-server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=1) as answer:  # noqa: S310
                if json.load(answer).get("health") == "GOOD":
                    return server
        except (OSError, urllib.error.URLError, ValueError):
            time.sleep(0.2)
    server.stop()
    tail = log_path.read_text()[-3000:]
    raise RuntimeError(f"unleash-server did not answer within {timeout:g} s:\n{tail}")
