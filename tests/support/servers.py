"""Starting the dashboard for browser tests: a real process, polled until healthy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A server a test started (dashboard, Prometheus, VictoriaMetrics); `stop()` ends it
    (terminate, then kill) and may be called more than once."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: the dashboard processes of the browser tests
Process = ServerProcess


def start(command: Sequence[str], env: Mapping[str, str], port: int, log: Path) -> Process:
    """Run `command` (which serves Streamlit on `port`) until `/_stcore/health` answers."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    handle = log.open("wb")
    process = subprocess.Popen(
        list(command), env={**clean, **env}, cwd=log.parent, stdout=handle, stderr=handle
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dashboard exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as answer:
                if answer.read() == b"ok":
                    return ServerProcess(url, process, log)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"dashboard not healthy within 60 s:\n{log.read_text()[-3000:]}")


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
