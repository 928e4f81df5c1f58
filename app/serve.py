"""`rollout-dashboard serve`: the dashboard only, on the configured sources (the autopilot
runs as its own process, `rollout-dashboard autopilot`), and the Streamlit command line
that the demo and the tests start too.

`serve` binds the address it is given (`--address` or `ROLLOUT_SERVER_ADDRESS`, 127.0.0.1
by default).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

__all__ = ["COOKIE_SECRET", "interrupt_on_sigterm", "serve", "streamlit_command", "streamlit_env"]

#: Streamlit's cookie secret (every replica needs the same one); like every secret it may
#: be read from a file named by `<NAME>_FILE`
COOKIE_SECRET = "STREAMLIT_SERVER_COOKIE_SECRET"  # noqa: S105 - a variable name

ENTRY_POINT = Path(__file__).parent / "main.py"


def streamlit_command(port: int, address: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ENTRY_POINT),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]


def streamlit_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with `STREAMLIT_SERVER_COOKIE_SECRET` read from the file
    `STREAMLIT_SERVER_COOKIE_SECRET_FILE` names (passed in the environment, never on the
    command line). SettingsInvalid, naming the variable and never the secret, when both
    are set or the file cannot be read."""
    from app.settings import SettingsInvalid, read_secret_file

    env = dict(environ)
    path = env.pop(f"{COOKIE_SECRET}_FILE", "")
    if not path:
        return env
    if env.get(COOKIE_SECRET):
        raise SettingsInvalid([f"{COOKIE_SECRET}: set both it and {COOKIE_SECRET}_FILE; keep one"])
    value, problem = read_secret_file(f"{COOKIE_SECRET}_FILE", path)
    if problem:
        raise SettingsInvalid([problem])
    env[COOKIE_SECRET] = str(value)
    return env


def serve(port: int, address: str = "127.0.0.1") -> int:
    """Streamlit on the configured sources, bound to `address` (0.0.0.0: every interface,
    so put TLS and sign-in in front). SettingsInvalid for an unusable cookie secret file,
    before anything starts."""
    env = streamlit_env(os.environ)
    print(f"Rollout Dashboard: serving on {address}:{port}", flush=True)
    interrupt_on_sigterm()  # a container stop ends Streamlit too
    try:
        return subprocess.call(streamlit_command(port, address), env=env)
    except KeyboardInterrupt:  # `call` has killed Streamlit already
        return 0


def interrupt_on_sigterm() -> None:
    """SIGTERM (a CI runner, `timeout`, a container stop) raises KeyboardInterrupt in the
    main thread, so that it cleans up as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
