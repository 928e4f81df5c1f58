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
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import IO

from app.logs import json_line, say

__all__ = ["COOKIE_SECRET", "interrupt_on_sigterm", "serve", "streamlit_command", "streamlit_env"]

#: Streamlit's cookie secret (every replica needs the same one); like every secret it may
#: be read from a file named by `<NAME>_FILE`
COOKIE_SECRET = "STREAMLIT_SERVER_COOKIE_SECRET"  # noqa: S105 - a variable name

ENTRY_POINT = Path(__file__).parent / "main.py"


def streamlit_command(port: int, address: str = "127.0.0.1", *, quiet: bool = False) -> list[str]:
    """Streamlit on `port`; `quiet`: without its welcome banner (JSON logs)."""
    banner = ["--logger.hideWelcomeMessage", "true"] if quiet else []
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
        *banner,
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


def serve(port: int, address: str = "127.0.0.1", *, log_format: str = "text") -> int:
    """Streamlit on the configured sources, bound to `address` (0.0.0.0: every interface,
    so put TLS and sign-in in front). SettingsInvalid for an unusable cookie secret file,
    before anything starts. With `log_format` json, every line Streamlit writes that is
    not JSON already (its own log, a traceback) is wrapped in a JSON object."""
    env = streamlit_env(os.environ)
    say(f"Rollout Dashboard: serving on {address}:{port}", log_format=log_format)
    interrupt_on_sigterm()  # a container stop ends Streamlit too
    if log_format != "json":
        try:
            return subprocess.call(streamlit_command(port, address), env=env)
        except KeyboardInterrupt:  # `call` has killed Streamlit already
            return 0
    child = subprocess.Popen(
        streamlit_command(port, address, quiet=True),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    pumps = [
        threading.Thread(target=_as_json, args=(child.stdout, sys.stdout), daemon=True),
        threading.Thread(target=_as_json, args=(child.stderr, sys.stderr), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        code = 0
    for pump in pumps:
        pump.join(5)
    return code


def _as_json(lines: IO[str] | None, out: IO[str]) -> None:
    """Copy `lines` to `out`, each as one JSON object (those that are one already as
    they are; blank lines dropped)."""
    if lines is None:
        return
    for line in lines:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if not (text.startswith("{") and text.endswith("}")):
            text = json_line("info", text.strip(), "streamlit")
        out.write(text + "\n")
        out.flush()


def interrupt_on_sigterm() -> None:
    """SIGTERM (a CI runner, `timeout`, a container stop) raises KeyboardInterrupt in the
    main thread, so that it cleans up as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
