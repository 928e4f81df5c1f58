"""A real VictoriaMetrics serving the same known data as the backfilled Prometheus.

The roll-ups are imported in Prometheus text format (timestamps in milliseconds) and
flushed before the server is handed out. `start_victoriametrics` fails loudly (never
skips) when the Debian package is missing, so CI cannot pass without the real server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from app.metrics_db.records import EvaluationRollup
from tests.support.prometheus import openmetrics_from_rollups
from tests.support.servers import ServerProcess, free_port

__all__ = ["VictoriaMetricsProcess", "prometheus_text_in_milliseconds", "start_victoriametrics"]

_INSTALL_HINT = (
    "install the Debian package: apt-get update && "
    "apt-get install -y --no-install-recommends victoria-metrics"
)


VictoriaMetricsProcess = ServerProcess


def prometheus_text_in_milliseconds(openmetrics_text: str) -> str:
    """The samples of `openmetrics_text` (timestamps in seconds) with ms timestamps.

    Comment lines (`# TYPE`, `# EOF`) are dropped; every sample must carry a timestamp.
    """
    lines: list[str] = []
    for line in openmetrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        # the timestamp is the last field; label values may contain spaces, it cannot
        sample, _, seconds = line.rpartition(" ")
        lines.append(f"{sample} {round(float(seconds) * 1000)}")
    return "\n".join(lines) + "\n"


def _require() -> str:
    path = shutil.which("victoria-metrics") or (
        "/usr/bin/victoria-metrics" if Path("/usr/bin/victoria-metrics").exists() else None
    )
    if path is None:
        raise RuntimeError(f"`victoria-metrics` not found: {_INSTALL_HINT}")
    return path


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as reply:
        body: bytes = reply.read()
        return body


def _wait_healthy(server: VictoriaMetricsProcess, ready_timeout: float) -> None:
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if _get(f"{server.url}/health").strip() == b"OK":
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"victoria-metrics did not become healthy on {server.url}")


def _import(server: VictoriaMetricsProcess, prometheus_text: str) -> None:
    request = urllib.request.Request(
        f"{server.url}/api/v1/import/prometheus",
        data=prometheus_text.encode("utf-8"),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        if reply.status not in (200, 204):
            raise RuntimeError(f"victoria-metrics import answered HTTP {reply.status}")
    _get(f"{server.url}/internal/force_flush")


def _samples_visible(server: VictoriaMetricsProcess, query: str, at_seconds: float) -> int:
    params = urllib.parse.urlencode({"query": query, "time": repr(at_seconds)})
    reply = json.loads(_get(f"{server.url}/api/v1/query?{params}"))
    result = reply["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def start_victoriametrics(
    data: str | Iterable[EvaluationRollup], workdir: Path, ready_timeout: float = 30.0
) -> VictoriaMetricsProcess:
    """Serve `data` (roll-ups, or OpenMetrics text with second timestamps) on a free port.

    Raises RuntimeError when victoria-metrics is missing, does not become healthy within
    `ready_timeout` seconds, or the imported samples are not visible to a query.
    """
    binary = _require()
    text = data if isinstance(data, str) else openmetrics_from_rollups(data)
    prometheus_text = prometheus_text_in_milliseconds(text)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / "victoria-metrics.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={workdir / 'data'}",
                "-retentionPeriod=100y",
                # the default 30 s offset hides the newest samples of a pinned query
                "-search.latencyOffset=1s",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = VictoriaMetricsProcess(
        url=f"http://127.0.0.1:{port}", process=process, log_path=log_path
    )
    try:
        _wait_healthy(server, ready_timeout)
        _import(server, prometheus_text)
        stamps = [int(line.rpartition(" ")[2]) for line in prometheus_text.splitlines()]
        # every sample, counted at the newest timestamp over a range reaching the oldest
        span_seconds = (max(stamps) - min(stamps)) // 1000 + 1
        query = f'sum(count_over_time({{__name__=~".+"}}[{span_seconds}s]))'
        expected = len(stamps)
        deadline = time.monotonic() + ready_timeout
        visible = 0
        while time.monotonic() < deadline:
            visible = _samples_visible(server, query, max(stamps) / 1000)
            if visible >= expected:
                return server
            time.sleep(0.2)
        raise RuntimeError(f"victoria-metrics shows {visible} of {expected} imported samples")
    except (RuntimeError, OSError, KeyError, ValueError) as error:
        server.stop()
        log_tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"victoria-metrics on {server.url} not usable: {error}\n{log_tail}"
        ) from error
