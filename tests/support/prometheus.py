"""A real Prometheus serving known data: OpenMetrics from roll-ups, backfilled by promtool.

`start_prometheus` fails loudly (never skips) when the Debian package is missing, so CI
cannot pass without the real server.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.metrics_db.records import LATENCY_BUCKETS, EvaluationRollup
from queries.names import MetricNames
from tests.support.servers import ServerProcess, free_port

__all__ = [
    "BackfilledPrometheus",
    "PrometheusProcess",
    "openmetrics_from_rollups",
    "start_prometheus",
    "with_recorded_series",
]

_INSTALL_HINT = (
    "install the Debian package: apt-get update && "
    "apt-get install -y --no-install-recommends prometheus"
)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _le(bound: float) -> str:
    return repr(float(bound))


def _counter_family(name: str) -> tuple[str, str]:
    """(family name, type) for a counter sample name; OpenMetrics families drop `_total`."""
    if name.endswith("_total"):
        return name.removesuffix("_total"), "counter"
    return name, "unknown"


def openmetrics_from_rollups(
    rollups: Iterable[EvaluationRollup],
    names: MetricNames = MetricNames(),  # noqa: B008 - frozen dataclass, immutable
) -> str:
    """Cumulative counters and histogram at each interval end (seconds), ending in `# EOF`.

    Errors are summed per flag over variants and reasons; the histogram per flag.
    Families whose name in `names` is empty are not written.
    """
    # series key -> interval end -> increment
    evaluations: dict[tuple[str, str, str, str], dict[float, int]] = defaultdict(dict)
    errors: dict[tuple[str, str], dict[float, int]] = defaultdict(dict)
    latency: dict[tuple[str, str], dict[float, tuple[tuple[int, ...], float, int]]] = defaultdict(
        dict
    )
    for rollup in rollups:
        end = rollup.interval_start.timestamp() + rollup.interval_seconds
        key = (rollup.flag, rollup.variant, rollup.reason, rollup.environment)
        evaluations[key][end] = evaluations[key].get(end, 0) + rollup.evaluations
        flag_env = (rollup.flag, rollup.environment)
        errors[flag_env][end] = errors[flag_env].get(end, 0) + rollup.errors
        if rollup.latency_buckets:
            if len(rollup.latency_buckets) != len(LATENCY_BUCKETS) + 1:
                raise ValueError("latency_buckets needs one count per bound plus +Inf")
            buckets, total, count = latency[flag_env].get(
                end, ((0,) * (len(LATENCY_BUCKETS) + 1), 0.0, 0)
            )
            latency[flag_env][end] = (
                tuple(a + b for a, b in zip(buckets, rollup.latency_buckets, strict=True)),
                total + rollup.latency_sum,
                count + rollup.latency_count,
            )

    lines: list[str] = []
    family, kind = _counter_family(names.evaluations)
    lines.append(f"# TYPE {family} {kind}")
    for (flag, variant, reason, environment), points in sorted(evaluations.items()):
        labels = _labels(
            {
                names.flag_label: flag,
                names.variant_label: variant,
                names.reason_label: reason,
                names.environment_label: environment,
            }
        )
        running = 0
        for end in sorted(points):
            running += points[end]
            lines.append(f"{names.evaluations}{labels} {running} {_number(end)}")

    if names.errors:
        family, kind = _counter_family(names.errors)
        lines.append(f"# TYPE {family} {kind}")
        for (flag, environment), points in sorted(errors.items()):
            labels = _labels(
                {
                    names.flag_label: flag,
                    names.error_type_label: "simulated",
                    names.environment_label: environment,
                }
            )
            running = 0
            for end in sorted(points):
                running += points[end]
                lines.append(f"{names.errors}{labels} {running} {_number(end)}")

    if names.duration and latency:
        lines.append(f"# TYPE {names.duration} histogram")
        for (flag, environment), histogram in sorted(latency.items()):
            base = {names.flag_label: flag, names.environment_label: environment}
            bucket_totals = [0] * (len(LATENCY_BUCKETS) + 1)
            sum_total, count_total = 0.0, 0
            for end in sorted(histogram):
                buckets, total, count = histogram[end]
                bucket_totals = [a + b for a, b in zip(bucket_totals, buckets, strict=True)]
                sum_total += total
                count_total += count
                stamp = _number(end)
                bounds = [_le(b) for b in LATENCY_BUCKETS] + ["+Inf"]
                for bound, cumulative in zip(bounds, bucket_totals, strict=True):
                    labels = _labels({**base, "le": bound})
                    lines.append(f"{names.duration}_bucket{labels} {cumulative} {stamp}")
                lines.append(f"{names.duration}_sum{_labels(base)} {sum_total!r} {stamp}")
                lines.append(f"{names.duration}_count{_labels(base)} {count_total} {stamp}")

    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BackfilledPrometheus:
    """What the `backfilled_prometheus` fixture yields."""

    url: str
    #: the pinned query time: the end of the last backfilled interval
    at: datetime


PrometheusProcess = ServerProcess


def _require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else None)
    if path is None:
        raise RuntimeError(f"`{tool}` not found: {_INSTALL_HINT}")
    return path


def start_prometheus(
    openmetrics_text: str, workdir: Path, ready_timeout: float = 30.0
) -> PrometheusProcess:
    """Backfill `openmetrics_text` with promtool, then serve it on a free local port.

    Raises RuntimeError when prometheus/promtool are missing, the backfill fails, or the
    server is not ready within `ready_timeout` seconds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    source = workdir / "metrics.om.txt"
    source.write_text(openmetrics_text, encoding="utf-8")
    # The blocks must exist before the server starts: later ones appear only after ~60 s.
    _promtool("tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir))
    source.unlink()
    return _serve(workdir, ready_timeout)


def with_recorded_series(
    server: PrometheusProcess,
    workdir: Path,
    rules: Path,
    start: datetime,
    end: datetime,
    ready_timeout: float = 30.0,
) -> PrometheusProcess:
    """The recording rules of `rules` evaluated by `server` every rule interval from
    `start` to `end` (`promtool tsdb create-blocks-from rules`), then `server` restarted
    on the same data with those blocks added: the recorded series a live Prometheus
    would have written, on backfilled data. `workdir` is the one `server` was started
    with. RuntimeError when promtool fails or the server does not come back."""
    blocks = workdir / "recorded-blocks"
    _promtool(
        "tsdb",
        "create-blocks-from",
        "rules",
        f"--url={server.url}",
        f"--start={int(start.timestamp())}",
        f"--end={int(end.timestamp())}",
        f"--output-dir={blocks}",
        str(rules),
    )
    server.stop()
    for block in blocks.iterdir():
        block.rename(workdir / "data" / block.name)
    blocks.rmdir()
    return _serve(workdir, ready_timeout)


def _promtool(*args: str) -> None:
    result = subprocess.run(
        [_require("promtool"), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool {args[:3]} failed: {result.stderr or result.stdout}")


def _serve(workdir: Path, ready_timeout: float) -> PrometheusProcess:
    """Prometheus on `workdir`/data, on a free local port, once `/-/ready` answers."""
    prometheus = _require("prometheus")
    data_dir = workdir / "data"
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  evaluation_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={data_dir}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    server.stop()
    log_tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"prometheus did not become ready on {server.url}:\n{log_tail}")
