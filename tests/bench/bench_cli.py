"""The command line as on-call uses it: `--help`, `rollback` with every source down, and
`status --json` at 1,000 flags against a real backfilled Prometheus.

Run: `make bench` (or `uv run python -m tests.bench.bench_cli [--runs N]`).
Baselines, in the same run and interleaved with what they are compared to:
- the bare imports a rollback cannot avoid: `python -c "import sqlalchemy, ruamel.yaml,
  pydantic"` (same interpreter); targets: `--help` <= 0.5x, `rollback` <= 1.5x of it;
- the raw HTTP time (plain `requests`, JSON decoded) of exactly the requests `status`
  sends; target: `status --json` <= 2 x (raw + the import baseline).

Every command is a fresh process, timed from spawn to exit, with bytecode caching on
(one unmeasured warm-up run each writes the .pyc files, as an installed package has them).
Peak RSS is measured in separate runs under a small forking parent: a child forked from
this (large) process would report this process's pages as its own peak.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from app.metrics_db.database import open_database
from app.runtime import open_runtime
from app.settings import load_settings
from tests.bench.bench_actions import write_config
from tests.bench.bench_overview import ENVIRONMENT, WINDOW, Tier, spread
from tests.bench.workloads import END, Workload
from tests.support.servers import free_port

BASELINE = [sys.executable, "-c", "import sqlalchemy, ruamel.yaml, pydantic"]
#: forks, execs argv[1:], waits: prints the child's peak RSS (KB) on stderr, last line
PEAK_RSS = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\n{usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""
CLI = [str(Path(sys.executable).with_name("rollout-dashboard"))]


@dataclass(frozen=True)
class Run:
    seconds: float
    stdout: str
    stderr: str


def run(command: Sequence[str], env: dict[str, str]) -> Run:
    """Spawn `command`, wait for it; its wall time and output. Exits on a failure."""
    started = time.perf_counter()
    done = subprocess.run(list(command), env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return Run(seconds, done.stdout, done.stderr)


def peak_rss_mb(command: Sequence[str], env: dict[str, str]) -> float:
    """Peak resident memory of `command`, run under the small PEAK_RSS parent."""
    done = run([sys.executable, "-I", "-S", "-c", PEAK_RSS, *command], env)
    return int(done.stderr.split()[-1]) / 1024


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment with bytecode caching on and only the given settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ROLLOUT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    return {**env, **settings}


def interleaved(runs: int, steps: dict[str, Callable[[int], float]]) -> dict[str, list[float]]:
    """Each step once per round, in turn, so the machine's noise hits them alike;
    one unmeasured warm-up round first."""
    for step in steps.values():
        step(-1)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(runs):
        for name, step in steps.items():
            samples[name].append(step(i))
    return samples


def verdict(value: float, limit: float) -> str:
    return f"{'met' if value <= limit else 'NOT met'} (limit {limit:.2f} s)"


def rollback_and_help(runs: int, workdir: Path) -> None:
    workdir.mkdir(parents=True)
    base = write_config(workdir, 1000)
    closed = free_port()
    env = clean_env(
        ROLLOUT_STATE_DIR=str(workdir),
        ROLLOUT_FLAGS_FILE=str(base),
        ROLLOUT_PROMETHEUS_URL=f"http://127.0.0.1:{closed}",
        ROLLOUT_DATABASE_URL=f"postgresql+psycopg://rollout@127.0.0.1:{closed}/rollout",
        ROLLOUT_DEMO="true",
    )

    def rollback_command(i: int) -> list[str]:
        return [*CLI, "rollback", f"flag_{i:05d}", "--reason", "bench", "--actor", "bench"]

    def rollback(i: int) -> float:
        flag = f"flag_{i + 1:05d}"  # a different flag each run: every run writes
        done = run(rollback_command(i + 1), env)
        assert f"{flag}: rollout 25 % → rollout 10 %" in done.stdout, done.stdout
        assert "applied" in done.stdout, done.stdout
        return done.seconds

    samples = interleaved(
        runs,
        {
            "baseline": lambda _: run(BASELINE, env).seconds,
            "--help": lambda _: run([*CLI, "--help"], env).seconds,
            "rollback": rollback,
        },
    )
    rss = interleaved(
        min(runs, 5),
        {
            "baseline": lambda _: peak_rss_mb(BASELINE, env),
            "rollback": lambda i: peak_rss_mb(rollback_command(500 + i), env),
        },
    )
    journal = (workdir / "audit-journal.jsonl").read_text().splitlines()
    written = runs + 1 + min(runs, 5) + 1
    assert len(journal) == 2 * written, "every rollback is journalled (pending + applied)"
    baseline = statistics.median(samples["baseline"])
    print("\n(1) on-call commands, sources down (Prometheus and PostgreSQL at a closed port)")
    print(f"  [1,000-flag YAML config in {workdir}]")
    print(f"  baseline imports    {spread([1000 * s for s in samples['baseline']], ' ms', 0)}")
    for name, factor in (("--help", 0.5), ("rollback", 1.5)):
        ms = [1000 * s for s in samples[name]]
        median = statistics.median(samples[name])
        print(f"  {name:<19} {spread(ms, ' ms', 0)}")
        print(
            f"  {'':<19} = {median / baseline:.2f}x baseline (target <= {factor}x): "
            f"{verdict(median, factor * baseline)}"
        )
    print(f"  rollback peak RSS   {spread(rss['rollback'], ' MB', 0)}")
    print(f"  baseline peak RSS   {spread(rss['baseline'], ' MB', 0)}")


def status_requests(tier: Tier, settings: dict[str, str]) -> list[str]:
    """The exact URLs `status` sends, captured from one in-process run."""
    runtime = open_runtime(load_settings(**settings))
    assert runtime.prometheus is not None
    urls: list[str] = []
    session = runtime.prometheus._client._session  # the bench looks inside; the app never does
    session.hooks["response"].append(lambda reply, *_a, **_k: urls.append(reply.request.url))
    overview = runtime.overview(ENVIRONMENT, END)
    assert overview.source == "prometheus", overview.notices
    assert len(overview.rows) == tier.workload.flags
    return urls


def status(runs: int, workdir: Path) -> None:
    tier = Tier(Workload(1000), workdir / "prometheus-1000")
    try:
        url = f"sqlite:///{workdir / 'metrics.db'}"
        open_database(url).dispose()  # an installed dashboard's database is migrated already
        settings = {
            "state_dir": str(workdir),
            "flags_file": str(workdir / "prometheus-1000" / "feature_flags.yaml"),
            "database_url": url,
            "prometheus_url": tier.server.url,
            "prometheus_timeout_seconds": "60",
            "rate_window_seconds": str(int(WINDOW.total_seconds())),
        }
        env = clean_env(**{f"ROLLOUT_{k.upper()}": v for k, v in settings.items()})
        urls = status_requests(tier, settings)
        session = requests.Session()
        command = [*CLI, "status", "--json", "--env", ENVIRONMENT, "--at", END.isoformat()]

        def raw(_: int) -> float:
            started = time.perf_counter()
            for request_url in urls:
                reply = session.get(request_url, timeout=60)
                reply.raise_for_status()
                reply.json()
            return time.perf_counter() - started

        def cli(_: int) -> float:
            done = run(command, env)
            assert done.stdout.count('"flag":') == tier.workload.flags
            return done.seconds

        samples = interleaved(
            runs, {"baseline": lambda _: run(BASELINE, env).seconds, "raw": raw, "status": cli}
        )
    finally:
        tier.server.stop()
    baseline = statistics.median(samples["baseline"])
    raw_median = statistics.median(samples["raw"])
    median = statistics.median(samples["status"])
    limit = 2 * (raw_median + baseline)
    print(f"\n(2) status --json at 1,000 flags\n  [{tier.describe()}]")
    print(f"  {len(urls)} HTTP requests per status")
    print(f"  baseline imports    {spread([1000 * s for s in samples['baseline']], ' ms', 0)}")
    print(f"  raw requests        {spread([1000 * s for s in samples['raw']], ' ms', 0)}")
    print(f"  status --json       {spread([1000 * s for s in samples['status']], ' ms', 0)}")
    print(
        f"  {'':<19} = {median / (raw_median + baseline):.2f}x (raw + baseline) "
        f"(target <= 2x): {verdict(median, limit)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not Path(CLI[0]).exists():
        raise SystemExit(f"{CLI[0]} not found: run `uv sync` first")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"{args.runs} runs each, interleaved with their baseline; wall time spawn to exit")
    with tempfile.TemporaryDirectory() as tmp:
        rollback_and_help(args.runs, Path(tmp) / "rollback")
    with tempfile.TemporaryDirectory() as tmp:
        status(args.runs, Path(tmp))


if __name__ == "__main__":
    main()
