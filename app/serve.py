"""`rollout-dashboard serve`: the dashboard only, on the configured sources (the autopilot
runs as its own process, `rollout-dashboard autopilot`), and the Streamlit command line
that the demo and the tests start too.

`serve` binds the address it is given (`--address` or `ROLLOUT_SERVER_ADDRESS`, 127.0.0.1
by default).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

__all__ = ["interrupt_on_sigterm", "serve", "streamlit_command"]

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


def serve(port: int, address: str = "127.0.0.1") -> int:
    """Streamlit on the configured sources, bound to `address` (0.0.0.0: every interface,
    so put TLS and sign-in in front)."""
    print(f"Rollout Dashboard: serving on {address}:{port}", flush=True)
    interrupt_on_sigterm()  # a container stop ends Streamlit too
    try:
        return subprocess.call(streamlit_command(port, address))
    except KeyboardInterrupt:  # `call` has killed Streamlit already
        return 0


def interrupt_on_sigterm() -> None:
    """SIGTERM (a CI runner, `timeout`, a container stop) raises KeyboardInterrupt in the
    main thread, so that it cleans up as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt
